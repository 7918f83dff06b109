"""How large is EWC's Fisher under each estimator? Task 0 of WSN's Permuted MNIST EWC preset, after `--epochs`.

Trains the wsn-t1-pmnist-ewc preset's network on task 0 (seed 0, plain SGD 0.03, batch 10), then estimates the
diagonal Fisher three ways and prints, for each, its largest entry, the entries above 2 / (lr x lambda) (where
plain SGD on the penalty stops being stable) and its sum:
- per example over the first 1,024 training examples (this project's default);
- per example over every training example;
- HAT's code: batches of 20 over every training example (|batch| x squared gradient of the batch's mean loss).

    PYTHONPATH=src python benchmarks/ewc_fisher_check.py [--epochs 1] [--raw-pixels]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from exssnet.methods import build_method
from exssnet.methods.baselines.ewc import diagonal_fisher
from exssnet.run.config import RunConfig, load_yaml
from exssnet.run.runner import load_benchmark

PRESET = Path(__file__).resolve().parents[1] / "configs" / "wsn-t1-pmnist-ewc.yaml"
ESTIMATORS = (("per example, first 1,024", 1, 1024), ("per example, all", 1, 0), ("batches of 20, all (HAT)", 20, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--raw-pixels", action="store_true", help="pixels in [0, 1], as the preset before it took WSN's inputs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    values = {**load_yaml(PRESET), "num_tasks": 1, "baseline_epochs": args.epochs, "threads": 1}
    if args.raw_pixels:
        values["mnist_normalise"] = False
    config = RunConfig.from_dict(values)
    benchmark = load_benchmark(config)
    torch.manual_seed(config.seed)
    method = build_method(config, benchmark)
    task = benchmark.tasks[0]
    method.learn_task(0, task, progress=False, on_epoch=None)
    limit = 2 / (values["baseline_lr"] * values["ewc_lambda"])
    print(f"task 0 after {args.epochs} epoch(s); SGD on the penalty is unstable where the Fisher exceeds {limit:.4f}")
    for name, batch, examples in ESTIMATORS:
        start = time.perf_counter()
        fisher = diagonal_fisher(method.net, 0, task, examples, batch)
        largest = max(float(v.max()) for v in fisher.values())
        above = sum(int((v > limit).sum()) for v in fisher.values())
        total = sum(float(v.sum()) for v in fisher.values())
        print(f"{name}: largest {largest:.4f}, entries above {limit:.4f}: {above}, sum {total:.2f} "
              f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
