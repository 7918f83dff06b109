"""Command line: a thin layer over `exssnet.training.runner.run_experiment`.

    exssnet run --benchmark split-mnist --method exssnet --density 0.1 --seed 0 --out runs/x
    exssnet run --config configs/splitmnist.yaml --out runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from exssnet.config import RunConfig, load_yaml
from exssnet.errors import ExssnetError

# CLI flag -> (config field, type, help)
RUN_FLAGS: list[tuple[str, type, str]] = [
    ("benchmark", str, "benchmark name, e.g. split-mnist, split-fashion-mnist, split-digits"),
    ("method", str, "supsup, ssnet or exssnet"),
    ("model", str, "model name, e.g. lenet"),
    ("density", float, "fraction of weights each task's mask keeps, in (0, 1]"),
    ("seed", int, "random seed (class order, initialisation, data order)"),
    ("device", str, "cpu, cuda or cuda:N"),
    ("num_tasks", int, "use only the first N tasks"),
    ("classes_per_task", int, "classes per task"),
    ("class_order", str, "'seeded' permutation or 'sequential'"),
    ("val_fraction", float, "fraction of each task's training data held out for validation"),
    ("data_dir", str, "folder with the dataset files (standard formats)"),
    ("batch_size", int, "training batch size"),
    ("eval_batch_size", int, "evaluation batch size"),
    ("mask_epochs", int, "epochs of the mask (scores) phase per task"),
    ("weight_epochs", int, "epochs of the weight phase per task (ssnet, exssnet)"),
    ("mask_lr", float, "Adam learning rate of the mask phase"),
    ("weight_lr", float, "Adam learning rate of the weight phase"),
    ("threads", int, "torch CPU threads"),
]
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exssnet", description="Continual learning with supermask subnetworks.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="learn a sequence of tasks and write results.json")
    run.add_argument("--config", help="YAML file of config keys (flags given here override it)")
    for name, kind, text in RUN_FLAGS:
        run.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    run.add_argument("--drop-scores", dest="keep_scores", action="store_false", default=None,
                     help="keep only binary masks of finished tasks, not their float scores")
    run.add_argument("--nondeterministic", dest="deterministic", action="store_false", default=None,
                     help="allow nondeterministic (faster) kernels")
    run.add_argument("--out", type=Path, help="output folder for results.json")
    run.add_argument("--overwrite", action="store_true", help="replace an existing results.json in --out")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the YAML file, then flags given on the command line."""
    values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    for f in dataclasses.fields(RunConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return RunConfig.from_dict(values)


def command_run(args: argparse.Namespace) -> int:
    from exssnet.summary import format_summary
    from exssnet.training.runner import RESULTS_FILE, run_experiment

    config = config_from_args(args)
    results = run_experiment(config, out=args.out, progress=not args.quiet, overwrite=args.overwrite)
    print(format_summary(results))
    if args.out is not None:
        print(f"results written to {args.out / RESULTS_FILE}")
    return 0


COMMANDS = {"run": command_run}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ExssnetError as exc:
        print(f"exssnet: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("exssnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
