"""Task-inference accuracy of SupSup's one-shot and binary rules and exact minimum entropy, many tasks.

SupSup's GNu setting: PermutedMNIST (or RotatedMNIST), every task all 10 digits under its own input
transformation, a supermask per task over one fixed random LeNet 300-100 (no BatchNorm). Trains the
masks for `max(--tasks)` tasks once (each on a seeded subset of MNIST's training set) and, after
10, 50 and 250 tasks (`--tasks`), infers the task of `--test-batches` test batches of every learned task
(one task per batch, `mode="batch"`) with each rule, printing the share of batches inferred right
and the seconds each rule took, beside SupSup's published claim.

    python benchmarks/task_inference_many.py [--benchmark permuted-mnist] [--tasks 10,50,250]
        [--train-per-task 4000] [--mask-epochs 1] [--test-batches 2] [--batch-size 128] [--threads 1]

SupSup (Wortsman et al. 2020) reports task-inference results only as figures; its text states that
"a single gradient step is often sufficient to identify the correct mask, even among 2500 tasks"
(one-shot, PermutedMNIST, LeNet 300-100 with 250 and 2500 tasks; binary on RotatedMNIST, 36 tasks).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from exssnet.data.tasks import Benchmark, Split, TaskData
from exssnet.data.transformed_mnist import (
    DIGITS,
    permute_images,
    read_mnist,
    rotate_images,
    rotation_angles,
    task_permutations,
)
from exssnet.methods import build_method
from exssnet.run.config import RunConfig
from exssnet.task_inference import infer_task

RULES = ("one-shot", "binary", "min-entropy")


def transforms(benchmark: str, num_tasks: int, seed: int):
    if benchmark == "permuted-mnist":
        return [lambda x, p=p: permute_images(x, p) for p in task_permutations(num_tasks, seed)]
    return [lambda x, a=a: rotate_images(x, a) for a in rotation_angles(num_tasks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=("permuted-mnist", "rotated-mnist"), default="permuted-mnist")
    parser.add_argument("--tasks", default="10,50,250", help="evaluate after these many tasks")
    parser.add_argument("--train-per-task", type=int, default=4000)
    parser.add_argument("--mask-epochs", type=int, default=1)
    parser.add_argument("--test-batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    checkpoints = sorted(int(n) for n in args.tasks.split(","))
    total = checkpoints[-1]
    train, test = read_mnist(None)
    shape = tuple(train.x.shape[1:])
    config = RunConfig(benchmark=args.benchmark, method="supsup", model="lenet", density=args.density, seed=args.seed,
                       mask_epochs=args.mask_epochs, weight_epochs=0, batch_size=args.batch_size, threads=args.threads)
    empty = Split(torch.zeros(0, *shape), torch.zeros(0, dtype=torch.long))
    placeholder = TaskData("shape", list(DIGITS), empty, empty, empty)
    method = build_method(config, Benchmark(args.benchmark, [placeholder], shape))
    generator = torch.Generator().manual_seed(args.seed + 1)
    n_test = args.test_batches * args.batch_size
    test_sets: list[Split] = []
    rows, task_acc = [], []
    started = time.perf_counter()
    for t, transform in enumerate(transforms(args.benchmark, total, args.seed)):
        index = torch.randperm(len(train), generator=generator)[: args.train_per_task]
        val_index = torch.randperm(len(train), generator=generator)[:256]
        test_index = torch.randperm(len(test), generator=generator)[:n_test]
        task = TaskData(f"task{t}", list(DIGITS), Split(transform(train.x[index]), train.y[index]),
                        Split(transform(train.x[val_index]), train.y[val_index]),
                        Split(transform(test.x[test_index]), test.y[test_index]))
        method.learn_task(t, task, False, None)
        method.eval_mode()
        with torch.no_grad():
            task_acc.append(float((method.logits(task.test.x, t).argmax(1) == task.test.y).float().mean()) * 100)
        test_sets.append(task.test)
        if t + 1 not in checkpoints:
            continue
        row = {"tasks": t + 1, "task_given_acc": sum(task_acc) / len(task_acc),
               "train_s": time.perf_counter() - started}
        for rule in RULES:
            right = batches = 0
            start = time.perf_counter()
            for j, split in enumerate(test_sets):
                for b in range(0, len(split), args.batch_size):
                    inferred = infer_task(method.net, split.x[b : b + args.batch_size], mode="batch", bn="batch", rule=rule)
                    right += int(inferred[0]) == j
                    batches += 1
            row[rule] = 100.0 * right / batches
            row[f"{rule}_s"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.benchmark}, LeNet 300-100 (no BatchNorm), density {args.density}, {args.train_per_task} training "
          f"examples x {args.mask_epochs} epoch per task, {args.test_batches} test batches of {args.batch_size} per task")
    print("tasks | task-given acc | one-shot | binary | min-entropy | seconds (one-shot / binary / min-entropy)")
    for r in rows:
        print(f"{r['tasks']:5d} | {r['task_given_acc']:14.2f} | {r['one-shot']:8.2f} | {r['binary']:6.2f} | "
              f"{r['min-entropy']:11.2f} | {r['one-shot_s']:.1f} / {r['binary_s']:.1f} / {r['min-entropy_s']:.1f}")
    print("SupSup (paper, figures only): one-shot 'often sufficient to identify the correct mask, even among 2500 tasks'")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
