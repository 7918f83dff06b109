"""Does WSN's head explain SupSup's PMNIST gap? Task 0 of WSN's Permuted MNIST, SupSup's mask phase alone.

Variants (same data order, seed, 784-100-100 bias-free body masked at density 0.5, batch 10, Adam lr 0.001
held constant, validation and test accuracy after each epoch):
- masked-head: the engine's design, a bias-free Linear(100, 10) masked like the body (random, fixed weights);
- dense-head: WSN's network, a bias-free Linear(100, 10) outside the masks, trained densely with the scores;
- dense-head-keep: as dense-head, with torch's default Linear init kept (init="keep") instead of signed constants.

    PYTHONPATH=src python benchmarks/supsup_head_check.py [--variants masked-head dense-head] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from exssnet import to_supermask
from exssnet.data.benchmarks import BenchmarkSpec, build_benchmark
from exssnet.data.tasks import TaskData

VARIANTS = ("masked-head", "dense-head", "dense-head-keep")


def accuracy(logits, split) -> float:
    with torch.no_grad():
        return (logits(split.x).argmax(1) == split.y).float().mean().item() * 100


def run(variant: str, task: TaskData, epochs: int) -> None:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(784, 100, bias=False), nn.ReLU(), nn.Linear(100, 100, bias=False),
                         nn.ReLU())
    dense = variant.startswith("dense-head")
    if not dense:
        body.append(nn.Linear(100, 10, bias=False))
    net = to_supermask(body, 0.5, init="keep" if variant.endswith("-keep") else "signed-constant")
    net.add_task(10)
    net.set_task(0)
    head = nn.Linear(100, 10, bias=False) if dense else None
    optimizer = torch.optim.Adam(list(net.trainable_parameters()) + (list(head.parameters()) if head else []), lr=1e-3)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return head(net(x)) if head is not None else net(x)

    generator = torch.Generator().manual_seed(1)
    for epoch in range(epochs):
        net.train()
        start = time.perf_counter()
        for x, y in task.train.batches(10, shuffle=True, generator=generator):
            loss = F.cross_entropy(logits(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        print(f"{variant} epoch {epoch + 1}: validation {accuracy(logits, task.val):.2f}, test {accuracy(logits, task.test):.2f} "
              f"({time.perf_counter() - start:.0f}s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = build_benchmark("permuted-mnist", BenchmarkSpec(seed=0, num_tasks=1, classes_per_task=10, val_fraction=0.1)).tasks[0]
    for variant in args.variants:
        run(variant, task, args.epochs)


if __name__ == "__main__":
    main()
