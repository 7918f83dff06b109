"""Cost of supermasks vs the same dense model, measured in one run and printed as ratios.

- SupSup mask-phase training step / dense training step (Adam on the scores, lr 0.01)
- ExSSNeT weight-phase training step / dense training step (Adam on the compact free weights, lr 5e-4)
- WSN training step / dense training step (Adam on the scores and the compact free weights together, lr 1e-3)
- PackNet training step (before pruning) / dense training step (Adam on the compact free weights, lr 1e-3;
  its retraining after pruning is the ExSSNeT weight-phase step over the kept entries)
- masked inference (a finished task selected) / dense inference

Every round times each variant for a few steps in turn (the order rotates from round to round),
so a change in machine load hits all of them alike; a round's ratio is variant / dense of that
round, and the printed ratio is the median over rounds (paired medians). On the CPU the clock is the
process's CPU time (1 thread), so time that other processes take from a shared machine does not count.
The supermask nets have `--earlier-tasks` finished tasks, so the weight phase trains only the free entries.

The process keeps freed memory as the `exssnet` command does (`exssnet.allocator`, glibc): without it every
variant, dense included, pays page faults each step (`--allocator default` measures that setting).

    python benchmarks/step_ratio.py [--model lenet|resnet18-reduced] [--threads 1] [--rounds 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from exssnet import to_supermask
from exssnet.allocator import keep_freed_memory
from exssnet.methods.loops import phase_optimizer
from exssnet.models import build_model

MODELS = {"lenet": ((1, 28, 28), 2, 128), "resnet18-reduced": ((3, 32, 32), 20, 64)}


def timed(fn: Callable[[], None], steps: int, device: torch.device, clock: Callable[[], float]) -> float:
    """Median seconds of `steps` calls of `fn`, read on `clock`."""
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - start)
    return statistics.median(times)


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


def supermask_net(name: str, shape: tuple[int, ...], classes: int, density: float, earlier_tasks: int,
                  device: torch.device):
    """A supermask net with `earlier_tasks` finished tasks (random masks) and a new task in its mask phase."""
    net = to_supermask(build_model(name, shape, classes), density, init="signed-constant").to(device)
    for _ in range(earlier_tasks):
        net.add_task(classes)
        net.finish_task()
    net.add_task(classes)
    return net


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    shape, classes, batch = MODELS[args.model]
    batch = args.batch_size or batch
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, classes, (batch,), device=device)

    dense = build_model(args.model, shape, classes).to(device).train()
    dense_train = train_step(dense, phase_optimizer(dense.parameters(), 1e-3), x, y)
    dense_eval = build_model(args.model, shape, classes).to(device).eval()

    mask_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device).train()
    mask_train = train_step(mask_net, phase_optimizer(mask_net.trainable_parameters(), 0.01), x, y)

    weight_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device)
    weight_net.start_weight_phase(exclusive=True)
    weight_net.train()
    weight_train = train_step(weight_net, phase_optimizer(weight_net.trainable_parameters(), 5e-4), x, y)

    wsn_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device)
    wsn_net.start_joint_training()
    wsn_net.train()
    wsn_groups = [{"params": wsn_net.score_parameters(args.earlier_tasks)}, {"params": wsn_net.compact_parameters()}]
    wsn_train = train_step(wsn_net, phase_optimizer(wsn_groups, 1e-3), x, y)

    packnet_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device)
    packnet_net.start_free_training()
    packnet_net.train()
    packnet_train = train_step(packnet_net, phase_optimizer(packnet_net.trainable_parameters(), 1e-3), x, y)

    infer_net = supermask_net(args.model, shape, classes, args.density, args.earlier_tasks, device)
    infer_net.finish_task()
    infer_net.eval()
    infer_net.set_task(args.earlier_tasks)

    variants = {"dense_train": dense_train, "mask_phase": mask_train, "weight_phase": weight_train,
                "wsn_step": wsn_train, "packnet_step": packnet_train,
                "dense_infer": inference(dense_eval, x), "inference": inference(infer_net, x)}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for fn in variants.values():  # warm-up
        timed(fn, args.warmup, device, clock)
    names = list(variants)
    rows: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        rows.append({name: timed(variants[name], args.steps, device, clock) for name in order})
    pairs = {"mask_phase": "dense_train", "weight_phase": "dense_train", "wsn_step": "dense_train",
             "packnet_step": "dense_train", "inference": "dense_infer"}
    ratios = {name: statistics.median(row[name] / row[base] for row in rows) for name, base in pairs.items()}
    medians = {name: statistics.median(row[name] for row in rows) for name in names}
    return {"model": args.model, **{k: round(v, 3) for k, v in ratios.items()},
            "_ms": {k: round(v * 1e3, 3) for k, v in medians.items()}, "_batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 (lenet), 64 (resnet18-reduced)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5, help="steps of each variant per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--earlier-tasks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: this process's CPU time (default on the CPU: time other processes take from a "
                             "shared machine does not count); wall: elapsed time (default on CUDA)")
    parser.add_argument("--json", action="store_true", help="print one JSON line of the ratios")
    parser.add_argument("--allocator", choices=("keep", "default"), default="keep",
                        help="keep: freed memory stays in the process, as in `exssnet` runs; default: glibc's own settings")
    args = parser.parse_args()
    if args.allocator == "keep":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    if args.clock is None:
        args.clock = "cpu" if torch.device(args.device).type == "cpu" else "wall"
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the time of every thread; use it with --threads 1 or use --clock wall")
    result = measure(args)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}))
        return
    print(f"{args.model}, batch {result['_batch']}, density {args.density}, {args.earlier_tasks} earlier tasks, "
          f"device {args.device}, {args.threads} thread(s), {args.rounds} rounds x {args.steps} steps, paired medians, "
          f"{args.clock} clock, allocator {args.allocator}")
    for name, ms in result["_ms"].items():
        print(f"  {name:<14} {ms:8.3f} ms")
    print(f"ratio SupSup mask-phase step / dense step:    {result['mask_phase']:.3f}")
    print(f"ratio ExSSNeT weight-phase step / dense step: {result['weight_phase']:.3f}")
    print(f"ratio WSN joint step / dense step:            {result['wsn_step']:.3f}")
    print(f"ratio PackNet free-weight step / dense step:  {result['packnet_step']:.3f}")
    print(f"ratio masked inference / dense inference:     {result['inference']:.3f}")


if __name__ == "__main__":
    main()
