"""Class-IL task inference on one trained network with every rule and granularity (docs/classil.md tables).

Trains `--method` on `--benchmark` once (the runner's defaults unless overridden), then evaluates the
test sets of all tasks with each (rule, mode): one-shot / binary / min-entropy, per batch / per example.

    python benchmarks/classil_modes.py --benchmark split-mnist --method exssnet [--mask-epochs 5 --weight-epochs 5]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from exssnet.methods import build_method
from exssnet.run.class_il import evaluate_tasks
from exssnet.run.config import RunConfig
from exssnet.run.runner import configure_torch, load_benchmark

COMBOS = [("one-shot", "batch"), ("one-shot", "example"), ("binary", "batch"), ("min-entropy", "batch"), ("min-entropy", "example")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="split-mnist")
    parser.add_argument("--method", default="exssnet")
    parser.add_argument("--num-tasks", type=int, default=None)
    parser.add_argument("--mask-epochs", type=int, default=5)
    parser.add_argument("--weight-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = RunConfig(benchmark=args.benchmark, method=args.method, num_tasks=args.num_tasks, mask_epochs=args.mask_epochs,
                       weight_epochs=args.weight_epochs, seed=args.seed, threads=1)
    configure_torch(config)
    benchmark = load_benchmark(config)
    method = build_method(config, benchmark)
    for t, task in enumerate(benchmark.tasks):
        torch.manual_seed(config.seed * 7919 + t)
        method.learn_task(t, task, False, None)
    splits = [task.test for task in benchmark.tasks]
    for rule, mode in COMBOS:
        start = time.perf_counter()
        rows = evaluate_tasks(method.net, splits, mode, "batch", 128, config.seed, rule)
        tia = [round(r[0], 1) for r in rows]
        print(json.dumps({"benchmark": args.benchmark, "method": args.method, "rule": rule, "mode": mode, "task_inference": tia,
                          "avg_task_inference": sum(r[0] for r in rows) / len(rows),
                          "avg_inferred": sum(r[1] for r in rows) / len(rows), "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
