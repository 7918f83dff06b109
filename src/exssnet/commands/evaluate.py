"""`exssnet evaluate CKPT`: per-task test accuracy of a saved checkpoint (task id given)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "evaluate"
HELP = "per-task test accuracy of a saved checkpoint (a checkpoint folder or a run's --out folder)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder, or the --out folder of a run")
    parser.add_argument("--benchmark", help="benchmark name (default: the one the checkpoint was trained on)")
    parser.add_argument("--seed", type=int, help="seed of the class order (default: the training seed)")
    parser.add_argument("--data-dir", dest="data_dir", help="folder with the dataset files")
    parser.add_argument("--device", help="cpu, cuda or cuda:N")
    parser.add_argument("--classes-per-task", dest="classes_per_task", type=int, help="classes per task")
    parser.add_argument("--class-order", dest="class_order", help="'seeded' or 'sequential'")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="also write the accuracies to this JSON file")


def execute(args: argparse.Namespace) -> int:
    from exssnet.run.evaluate import evaluate_checkpoint
    from exssnet.run.files import write_json_atomic

    keys = ("benchmark", "seed", "data_dir", "device", "classes_per_task", "class_order", "threads")
    report = evaluate_checkpoint(args.checkpoint, {k: getattr(args, k) for k in keys})
    print(f"{report['checkpoint']} on {report['benchmark']} (seed {report['seed']}), test accuracy with task id:")
    for name, classes, acc in zip(report["task_names"], report["task_classes"], report["test_acc"]):
        print(f"  {name} {classes}: {acc:.2f}")
    if report["avg_acc"] is not None:
        print(f"average accuracy: {report['avg_acc']:.2f}")
    if args.out is not None:
        write_json_atomic(args.out, report)
        print(f"written to {args.out}")
    return 0
