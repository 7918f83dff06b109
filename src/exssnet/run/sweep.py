"""A resumable grid of runs (methods x densities x seeds), each in OUT/<method>-d<density>-s<seed>/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tqdm.auto import tqdm

from exssnet.data import benchmark_names
from exssnet.data.benchmarks import benchmark_input_kind
from exssnet.data.imagenet import check_image_size
from exssnet.data.text_benchmarks import task_order
from exssnet.errors import ExssnetError
from exssnet.methods import method_names
from exssnet.methods.base import method_text_inputs
from exssnet.run.config import Purpose, RunConfig, config_diff, keys_read_by, unread_settings
from exssnet.run.files import RESULTS_FILE, RUN_STATE_FILE
from exssnet.run.parallel_sweep import (
    EXECUTORS,
    CellJob,
    check_executor,
    failure_reason,
    run_processes,
    submit_array,
    threads_per_cell,
)
from exssnet.run.runner import check_model_fits, run_experiment

RunFn = Callable[..., dict]


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    method: str
    density: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}-d{self.density:g}-s{self.seed}"


def make_grid(methods: Sequence[str], densities: Sequence[float], seeds: Sequence[int]) -> list[Cell]:
    """Every combination, in method, density, seed order; refuses empty axes and unknown methods."""
    for axis, values in (("methods", methods), ("densities", densities), ("seeds", seeds)):
        if not values:
            raise ExssnetError(f"the sweep needs at least one of {axis}")
    unknown = [m for m in methods if m not in method_names()]
    if unknown:
        raise ExssnetError(f"unknown method(s) {', '.join(unknown)}; known methods: {', '.join(method_names())}")
    cells = [Cell(m, float(d), int(s)) for m in dict.fromkeys(methods) for d in dict.fromkeys(densities)
             for s in dict.fromkeys(seeds)]
    return cells


SweepBase = RunConfig | Mapping[str, Any]  # a config, or flat config keys that may hold several methods' settings


def check_sweep_settings(values: Mapping[str, Any], methods: Sequence[str]) -> None:
    """Refuse a setting, given a value other than its default, that no method of the sweep reads (one line).

    A setting some of the methods read is applied to their cells and left out of the others'.
    """
    read = set().union(*(keys_read_by(m) for m in methods))
    unread, details = unread_settings(values, read)
    if unread:
        raise ExssnetError(f"no method of this sweep ({', '.join(dict.fromkeys(methods))}) reads {details}; remove "
                           f"{'it' if len(unread) == 1 else 'them'} or add a method that reads it")


def cell_config(base: SweepBase, cell: Cell) -> RunConfig:
    """The base config with the cell's method, density and seed (validated like any config).

    From flat keys (`SweepBase`), the cell keeps only the settings its method reads.
    """
    values = dict(base.to_dict() if isinstance(base, RunConfig) else base)
    values.update(method=cell.method, density=cell.density, seed=cell.seed)
    if not isinstance(base, RunConfig) and cell.method in method_names():
        values = {k: v for k, v in values.items() if k in keys_read_by(cell.method)}
    return RunConfig.from_dict(values)


def check_existing(path: Path, config: RunConfig) -> None:
    """A finished cell may only be skipped if it was run with the same settings."""
    try:
        saved = json.loads(path.read_text()).get("config", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        raise ExssnetError(f"{path} is unreadable; delete it to rerun that cell") from None
    differ = config_diff(saved, config.to_dict(), Purpose.SKIP)
    if differ:
        details = ", ".join(f"{d.key} {d.saved!r} there vs {d.now!r} now" for d in differ)
        raise ExssnetError(f"{path} was made with other settings ({details}); use another --out or delete it")


class SweepCellsFailed(ExssnetError):
    """Some cells failed (each named with its reason); the others ran. `done` is what run_sweep would return."""

    def __init__(self, failures: dict[str, str], total: int, done: dict[str, list[str]]) -> None:
        self.failures, self.done = failures, done
        listed = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        super().__init__(f"{len(failures)} of {total} sweep cells failed (finished cells are kept; rerun to retry "
                         f"them): {listed}")


def check_cell(config: RunConfig) -> None:
    """What can be known of a cell before any cell runs, without reading data: the method reads what the
    benchmark gives, the model fits, the text task order and the image size are valid."""
    kind = benchmark_input_kind(config.benchmark)
    if method_text_inputs(config.method) == "tokens":
        if kind not in (None, "tokens"):
            text = ", ".join(b for b in benchmark_names() if benchmark_input_kind(b) == "tokens")
            raise ExssnetError(f"method {config.method!r} fine-tunes a text encoder: use it with a text benchmark "
                               f"({text}), not {config.benchmark!r}")
    else:
        check_model_fits(config.benchmark, config.model)
    if kind == "tokens":  # text benchmarks: --text-order picks their tasks
        task_order(config.benchmark, config.text_order)
    if config.benchmark == "imagenet":
        check_image_size(config.image_size)


def check_cells(cells: Sequence[Cell], configs: Sequence[RunConfig]) -> None:
    """Refuse the sweep, before any cell starts, when some cells cannot run (each named)."""
    problems: dict[str, list[str]] = {}
    for cell, config in zip(cells, configs):
        try:
            check_cell(config)
        except ExssnetError as exc:
            problems.setdefault(str(exc), []).append(cell.name)
    if problems:
        raise ExssnetError("no cell was started, since some cannot run: " + "; ".join(
            f"{', '.join(names)}: {reason}" for reason, names in problems.items()))


def run_sweep(base: SweepBase, cells: Sequence[Cell], out: Path, progress: bool = True,
              run: RunFn = run_experiment, jobs: int = 1, executor: str = "process",
              slurm_options: dict | None = None, wait: bool = True) -> dict[str, list[str]]:
    """Run every cell whose results.json is missing (resuming cut-short cells); returns cells run and skipped.

    `base` is a RunConfig, or flat config keys (as `exssnet sweep` gives) that may hold settings of several of
    the cells' methods: each cell gets the ones its method reads; one that no cell's method reads is refused.
    Every setting of every cell is checked before the first starts. Cells are isolated: one that fails
    (or whose process is killed) is named with its reason and the others still run; then SweepCellsFailed
    (an ExssnetError) lists the failed cells. `jobs` > 1 runs that many cells at once, each in its own
    local process (CPU threads split between them); `executor` "slurm" submits the cells as a Slurm job
    array through submitit ("local": submitit's local executor), waiting for them only with `wait`
    (then "submitted" lists the job ids).
    """
    if jobs < 1:
        raise ExssnetError(f"--jobs must be at least 1, got {jobs}")
    if executor not in EXECUTORS:
        raise ExssnetError(f"unknown executor {executor!r}; known executors: {', '.join(EXECUTORS)}")
    check_executor(executor, slurm_options or {})
    if not isinstance(base, RunConfig):
        check_sweep_settings(base, [cell.method for cell in cells if cell.method in method_names()])
    configs = [cell_config(base, cell) for cell in cells]
    check_cells(cells, configs)
    if out.exists() and not out.is_dir():
        raise ExssnetError(f"sweep output {out} exists and is not a folder")
    done: dict[str, list[str]] = {"ran": [], "skipped": [], "submitted": []}
    pending = []
    for cell, config in zip(cells, configs):
        results_path = out / cell.name / RESULTS_FILE
        if results_path.exists():
            check_existing(results_path, config)
            done["skipped"].append(cell.name)
        else:
            pending.append((cell, config))
    failures: dict[str, str] = {}
    bar = tqdm(total=len(pending), desc="sweep", unit="run", disable=not progress)

    def finished(name: str, avg_acc: float) -> None:
        done["ran"].append(name)
        bar.update(1)
        bar.set_postfix_str(f"{name} avg_acc={avg_acc:.2f}")

    def failed(name: str, reason: str) -> None:
        failures[name] = reason
        bar.update(1)
        if progress:
            bar.write(f"sweep cell {name} failed: {reason}")

    try:
        if executor == "process" and jobs == 1:
            for cell, config in pending:
                bar.set_postfix_str(cell.name)
                # a cell cut short (Ctrl-C, crash) continues from its last finished task
                unfinished = (out / cell.name / RUN_STATE_FILE).exists()
                try:
                    results = run(config, out=out / cell.name, progress=False, resume=unfinished)
                except Exception as exc:  # one failing cell must not stop the others
                    failed(cell.name, failure_reason(exc))
                    continue
                finished(cell.name, results["avg_acc"])
        elif executor == "process":
            # local cells share this machine's cores
            work = [(cell.name, CellJob(threads_per_cell(config, jobs).to_dict(), str(out / cell.name)))
                    for cell, config in pending]
            run_processes(work, jobs, finished, failed)
        elif pending:
            # a Slurm cell takes its allocation's cores (SLURM_CPUS_PER_TASK)
            work = [(cell.name, CellJob(config.to_dict(), str(out / cell.name))) for cell, config in pending]
            out.mkdir(parents=True, exist_ok=True)
            done["submitted"] = submit_array(work, out / ".submitit", executor, jobs, slurm_options or {}, wait,
                                             finished, failed)
    finally:
        bar.close()
    order = {cell.name: i for i, cell in enumerate(cells)}
    done["ran"].sort(key=order.__getitem__)
    if failures:
        raise SweepCellsFailed(dict(sorted(failures.items(), key=lambda item: order[item[0]])), len(pending), done)
    return done
