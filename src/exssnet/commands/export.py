"""`exssnet export RUN_DIR|CHECKPOINT --task T --out FILE`: one task as a plain model file (pt, safetensors, ONNX).

`exssnet export FILE --check` checks a written export against its sidecar and runs it on an example batch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "write one task (or each task) of a checkpoint as a plain model file: pt, safetensors (--sparse) or onnx"


def task_arg(value: str) -> int | str:
    """A task id, or 'all'."""
    if value == "all":
        return value
    try:
        task = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a task id or 'all', got {value!r}") from None
    if task < 0:
        raise argparse.ArgumentTypeError(f"must be a task id (0, 1, ...) or 'all', got {value!r}")
    return task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="RUN_DIR|CHECKPOINT|FILE",
                        help="checkpoint folder, or the --out folder of a run (its newest checkpoint); with --check, an export file")
    parser.add_argument("--task", type=task_arg, help="task id, or 'all' (one file per task into the --out folder)")
    parser.add_argument("--format", dest="fmt", choices=("pt", "safetensors", "onnx"), default="safetensors",
                        help="pt: torch state dict; safetensors (default); onnx: needs the onnx extra")
    parser.add_argument("--sparse", action="store_true", help="safetensors only: store just the nonzero weights and their coded mask")
    parser.add_argument("--out", type=Path, help="output file (a folder with --task all); a FILE.json sidecar is written next to it")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--check", action="store_true",
                        help="check the export FILE instead: it matches its sidecar, loads and runs on an example batch")


def execute(args: argparse.Namespace) -> int:
    from exssnet.errors import ExssnetError
    from exssnet.export_files import export_checkpoint, verify_export
    from exssnet.run.evaluate import resolve_checkpoint

    if args.check:
        if args.task is not None or args.out is not None or args.sparse or args.overwrite:
            raise ExssnetError("--check takes only the export file to check (no --task, --out, --sparse or --overwrite)")
        info = verify_export(args.checkpoint)
        print(f"{args.checkpoint}: {info['file_format']} export of task {info['task']} ({info['num_classes']} classes) "
              f"of {info['model_name']}, matches its sidecar and runs")
        return 0
    if args.task is None or args.out is None:
        raise ExssnetError("--task and --out are required (or --check to check an export file)")
    directory = resolve_checkpoint(args.checkpoint)
    for path in export_checkpoint(directory, None if args.task == "all" else args.task, args.fmt, args.out, sparse=args.sparse, overwrite=args.overwrite):
        print(f"wrote {path} ({path.stat().st_size} bytes) and {path.name}.json")
    return 0
