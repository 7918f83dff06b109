"""`exssnet sweep`: a resumable grid of runs (methods x densities x seeds), then a report of the folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from exssnet.commands.run import add_config_flags, given_values
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig, core_keys

NAME = "sweep"
HELP = "run a grid of methods x densities x seeds (skipping finished cells) and report on it"


def comma_list(kind: Callable) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of base config keys (flags given here override it)")
    parser.add_argument("--methods", type=comma_list(str), help="comma-separated methods (default: the config's method)")
    parser.add_argument("--densities", type=comma_list(float), help="comma-separated densities (default: the config's)")
    parser.add_argument("--seeds", type=comma_list(int), help="comma-separated seeds (default: the config's seed)")
    parser.add_argument("--out", type=Path, required=True, help="sweep folder; one subfolder per cell")
    parser.add_argument("--no-report", action="store_true", help="skip the report after the grid")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells run at once: local processes (CPU threads split between them), or the Slurm array's parallelism")
    parser.add_argument("--executor", default="process", choices=["process", "slurm", "local"],
                        help="'process' (this machine), 'slurm' (a job array via submitit), 'local' (submitit's local executor)")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="a submitit parameter for --executor slurm, e.g. slurm_partition=gpu, timeout_min=600, gpus_per_node=1")
    parser.add_argument("--wait", action="store_true", help="--executor slurm: wait for the array, then report")
    add_config_flags(parser.add_argument_group("base config (every RunConfig key)"))


def execute(args: argparse.Namespace) -> int:
    from exssnet.distributed import launched_world_size
    from exssnet.report import build_report
    from exssnet.run.parallel_sweep import parse_slurm_options
    from exssnet.run.sweep import SweepCellsFailed, make_grid, run_sweep

    if launched_world_size() > 1:
        raise ExssnetError("exssnet sweep runs its cells itself (--jobs, --executor slurm): start it without torchrun")
    # flat keys, not one RunConfig: a setting of some of the methods goes to their cells only
    base = given_values(args)
    core = RunConfig.from_dict({k: v for k, v in base.items() if k in core_keys()})  # core keys checked up front
    cells = make_grid(args.methods or [core.method], args.densities or [core.density], args.seeds or [core.seed])
    wait = args.executor != "slurm" or args.wait
    failed: SweepCellsFailed | None = None
    try:
        done = run_sweep(base, cells, args.out, progress=not args.quiet, jobs=args.jobs, executor=args.executor,
                         slurm_options=parse_slurm_options(args.slurm), wait=wait)
    except SweepCellsFailed as exc:  # the other cells finished: report on them, then fail
        failed, done = exc, exc.done
    if not wait:
        print(f"sweep of {len(cells)} runs in {args.out}: {len(done['submitted'])} submitted as Slurm job(s) "
              f"{', '.join(done['submitted'][:3])}{' ...' if len(done['submitted']) > 3 else ''}, "
              f"{len(done['skipped'])} already done; rerun this command when they finish to report on them")
        return 0
    print(f"sweep of {len(cells)} runs in {args.out}: {len(done['ran'])} run, {len(done['skipped'])} already done"
          + (f", {len(failed.failures)} failed" if failed else ""))
    if not args.no_report and (done["ran"] or done["skipped"]):
        page = build_report([args.out], args.out / "report", title=f"sweep {args.out.name}", echo=print)
        print(f"report written to {page}")
    if failed:
        raise failed
    return 0
