"""Running a sweep's cells in parallel: local processes (`--jobs N`) or a Slurm job array through submitit.

Every cell is one `run_experiment` in its own folder; a cell that was cut short (killed, preempted, timed out)
continues from its last finished task the next time it runs, so a resubmitted or requeued cell loses at most
one task of work.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig
from exssnet.run.files import RUN_STATE_FILE

EXECUTORS = ("process", "slurm", "local")  # local: submitit's local executor (tests, a workstation)


def threads_per_cell(config: RunConfig, jobs: int) -> RunConfig:
    """Give each of `jobs` simultaneous cells an equal share of the CPU cores (at least 1), unless threads is set."""
    if config.threads is not None:
        return config
    return replace(config, threads=max(1, (os.cpu_count() or 1) // jobs))


@dataclass
class CellJob:
    """One cell as a picklable callable; on a Slurm timeout or preemption submitit requeues it (`checkpoint`)."""

    config: dict[str, Any]
    out: str

    def __call__(self) -> float:
        from exssnet.run.runner import run_experiment

        out = Path(self.out)
        resume = (out / RUN_STATE_FILE).exists()  # a cell cut short continues from its last finished task
        config = RunConfig.from_dict(self.config)
        if config.threads is None and os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
            config = replace(config, threads=int(os.environ["SLURM_CPUS_PER_TASK"]))
        results = run_experiment(config, out=out, progress=False, resume=resume)
        return float(results["avg_acc"])

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(CellJob(self.config, self.out))


def run_processes(jobs_list: Sequence[tuple[str, CellJob]], jobs: int,
                  on_done: Callable[[str, float], None]) -> None:
    """Run the cells in `jobs` spawned processes; every cell runs even if another fails, then failures are reported."""
    failures = []
    # forkserver: each cell is forked from a server that imported the runner once (fast start, unlike spawn)
    # and has run no torch computation (safe, unlike forking this process, whose OpenMP pool may be running)
    context = get_context("forkserver")
    context.set_forkserver_preload(["exssnet.run.runner"])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(job): name for name, job in jobs_list}
        for future in as_completed(futures):
            name = futures[future]
            try:
                on_done(name, future.result())
            except ExssnetError as exc:
                failures.append(f"{name}: {exc}")
            except Exception as exc:  # a crash in one cell must not hide the others' results
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    if failures:
        raise ExssnetError(f"{len(failures)} sweep cell(s) failed (finished cells are kept; rerun to retry): "
                           + "; ".join(failures))


def parse_slurm_options(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (submitit parameters, e.g. slurm_partition=gpu timeout_min=600 gpus_per_node=1)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExssnetError(f"--slurm takes KEY=VALUE (a submitit parameter), got {item!r}")
        options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return options


def submit_array(jobs_list: Sequence[tuple[str, CellJob]], folder: Path, executor: str, jobs: int,
                 options: dict[str, Any], wait: bool, on_done: Callable[[str, float], None]) -> list[str]:
    """Submit the cells as one job array (Slurm) or as local submitit jobs; returns the job ids."""
    try:
        import submitit
    except ImportError:
        raise ExssnetError("--executor slurm/local needs submitit: pip install 'exssnet[slurm]' (submitit==1.5.4)") from None
    cluster = "slurm" if executor == "slurm" else "local"
    auto = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    try:
        auto.update_parameters(name="exssnet-sweep", slurm_array_parallelism=jobs, **options)
    except (TypeError, ValueError) as exc:
        raise ExssnetError(f"bad --slurm option: {exc}") from None
    with auto.batch():
        submitted = [auto.submit(job) for _, job in jobs_list]
    if wait:
        failures = []
        for (name, _), job in zip(jobs_list, submitted):
            try:
                on_done(name, job.result())
            except Exception as exc:  # submitit wraps the cell's error in a FailedJobError
                failures.append(f"{name}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}")
        if failures:
            raise ExssnetError(f"{len(failures)} sweep cell(s) failed (logs in {folder}): " + "; ".join(failures))
    return [job.job_id for job in submitted]
