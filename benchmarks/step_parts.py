"""Where a supermask training step spends its supermask-specific time, next to the dense optimizer step.

Times, per training step of the whole net (all masked layers), on the process's CPU clock (1 thread):

- mask_layers: the mask phase's masked weights, forward and backward (|scores|, the exact top-k threshold,
  `weight * mask`, `grad * weight * sign(scores)`), with the scores moved by Adam between steps
- mask_adam: Adam on the scores (lr 0.01)
- weight_layers: the weight phase's weights (frozen base with the compact entries scattered in), forward and backward
- weight_adam: Adam on the compact parameters (lr 5e-4)
- dense_adam: Adam on every parameter of the dense model (gradients set from stored tensors, included)
- dense_grads: setting those gradients alone (subtract it from dense_adam)

The convolutions, BatchNorms and activations are not timed here: they run the same kernels in every variant.
Variants alternate within each round; the printed value is the median over rounds.

    python benchmarks/step_parts.py [--model lenet|resnet18-reduced] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from step_ratio import MODELS, supermask_net, train_step

from exssnet.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18-reduced")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--earlier-tasks", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    shape, classes, batch = MODELS[args.model]
    torch.manual_seed(0)
    x, y = torch.randn(batch, *shape), torch.randint(0, classes, (batch,))

    dense = build_model(args.model, shape, classes).train()
    dense_opt = torch.optim.Adam(dense.parameters(), lr=1e-3)
    mask_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device).train()
    mask_opt = torch.optim.Adam(mask_net.trainable_parameters(), lr=0.01)
    weight_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device)
    weight_net.start_weight_phase(exclusive=True)
    weight_net.train()
    weight_opt = torch.optim.Adam(weight_net.trainable_parameters(), lr=5e-4)
    for step in (train_step(dense, dense_opt, x, y), train_step(mask_net, mask_opt, x, y),
                 train_step(weight_net, weight_opt, x, y)):
        for _ in range(3):  # optimizer state and the threshold trackers warm
            step()

    upstream = [torch.randn_like(layer.weight) * 1e-2 for layer in mask_net.masked_layers()]
    dense_grads = [torch.randn_like(p) * 1e-2 for p in dense.parameters()]

    def mask_layers() -> None:
        for layer, grad in zip(mask_net.masked_layers(), upstream):
            layer.effective_weight().backward(grad)

    def weight_layers() -> None:
        for layer, grad in zip(weight_net.masked_layers(), upstream):
            weight = layer.effective_weight()
            if weight.requires_grad:
                weight.backward(grad)

    def optimizer_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def dense_grads_only() -> None:
        for p, grad in zip(dense.parameters(), dense_grads):
            p.grad = grad.clone()

    def dense_adam() -> None:
        dense_grads_only()
        optimizer_step(dense_opt)()

    parts: dict[str, tuple[Callable[[], None], Callable[[], None] | None]] = {
        "mask_layers": (mask_layers, None),
        "mask_adam": (optimizer_step(mask_opt), mask_layers),  # (timed, untimed set-up before it)
        "weight_layers": (weight_layers, None),
        "weight_adam": (optimizer_step(weight_opt), weight_layers),
        "dense_adam": (dense_adam, None),
        "dense_grads": (dense_grads_only, lambda: dense_opt.zero_grad(set_to_none=True)),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, (fn, setup) in parts.items():
            if setup is not None:
                setup()
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    print(f"{args.model}, batch {batch}, {sum(1 for _ in mask_net.masked_layers())} masked layers, "
          f"{mask_net.num_maskable() / 1e6:.2f} M weights, {args.rounds} rounds, median ms per step:")
    for name, values in times.items():
        print(f"  {name:<14} {statistics.median(values) * 1e3:7.3f}")


if __name__ == "__main__":
    main()
