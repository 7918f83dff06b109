"""Cost of supermasks vs a dense LeNet, measured in one run and printed as ratios.

- ExSSNeT weight-phase training step / dense training step (same LeNet, same batch, Adam)
- SupSup mask-phase training step / dense training step
- masked inference / dense inference

    python benchmarks/step_ratio.py [--device cuda] [--batch-size 128] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from exssnet import to_supermask
from exssnet.models import build_model


def timed(fn: Callable[[], None], repeats: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def inference(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    @torch.no_grad()
    def infer() -> None:
        model(x)

    return infer


def build_models(device: torch.device, density: float, earlier_tasks: int):
    torch.manual_seed(0)
    dense = build_model("lenet", (1, 28, 28), 2).to(device)
    net = to_supermask(build_model("lenet", (1, 28, 28), 2), density).to(device)
    for _ in range(earlier_tasks):
        net.add_task(2)
        net.finish_task()
    return dense, net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dense, net = build_models(device, args.density, earlier_tasks=4)
    x = torch.randn(args.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 2, (args.batch_size,), device=device)

    # mask phase of a new task: scores train, weights frozen
    net.add_task(2)
    mask_step = train_step(net, torch.optim.Adam(net.trainable_parameters(), lr=1e-3), x, y)
    dense.train()
    net.train()
    dense_step = train_step(dense, torch.optim.Adam(dense.parameters(), lr=1e-3), x, y)
    # warm up both, then interleave so drift in machine load hits both alike
    for fn in (dense_step, mask_step):
        timed(fn, 20, device)
    results: dict[str, list[float]] = {"dense_train": [], "mask_train": [], "exssnet_train": [],
                                       "dense_infer": [], "masked_infer": []}
    for _ in range(args.repeats // 10):
        results["dense_train"] += timed(dense_step, 10, device)
        results["mask_train"] += timed(mask_step, 10, device)

    net.start_weight_phase(exclusive=True)
    weight_step = train_step(net, torch.optim.Adam(net.trainable_parameters(), lr=1e-3), x, y)
    timed(weight_step, 20, device)
    for _ in range(args.repeats // 10):
        results["dense_train"] += timed(dense_step, 10, device)
        results["exssnet_train"] += timed(weight_step, 10, device)
    net.finish_task()

    dense.eval()
    net.eval()
    net.set_task(2)
    for _ in range(args.repeats // 10):
        results["dense_infer"] += timed(inference(dense, x), 10, device)
        results["masked_infer"] += timed(inference(net, x), 10, device)

    median = {name: statistics.median(values) for name, values in results.items()}
    print(f"LeNet 784-300-100-2, batch {args.batch_size}, density {args.density}, device {device}, "
          f"{args.threads} thread(s), medians of {args.repeats} steps")
    for name, value in median.items():
        print(f"  {name:<14} {value * 1e3:8.3f} ms")
    print(f"ratio ExSSNeT weight-phase step / dense step: {median['exssnet_train'] / median['dense_train']:.2f}")
    print(f"ratio SupSup mask-phase step / dense step:    {median['mask_train'] / median['dense_train']:.2f}")
    print(f"ratio masked inference / dense inference:     {median['masked_infer'] / median['dense_infer']:.2f}")


if __name__ == "__main__":
    main()
