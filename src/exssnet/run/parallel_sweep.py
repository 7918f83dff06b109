"""Running a sweep's cells in parallel: local processes (`--jobs N`) or a Slurm job array through submitit.

Every cell is one `run_experiment` in its own folder; a cell that was cut short (killed, preempted, timed out)
continues from its last finished task the next time it runs, so a resubmitted or requeued cell loses at most
one task of work.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, replace
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
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


def failure_reason(exc: BaseException) -> str:
    """One line saying why a cell failed: the ExssnetError's message, else the exception's type and message."""
    if isinstance(exc, ExssnetError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_reason(exitcode: int | None) -> str:
    """Why a cell's process ended without a result (killed by a signal, or exited early)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = (" (the kernel's out-of-memory killer sends SIGKILL: try fewer --jobs or a smaller batch)"
                if -exitcode == signal.SIGKILL else "")
        return f"its process was killed by {name}{hint}"
    return f"its process exited with code {exitcode} without a result"


def run_cell_process(job: Callable[[], float], channel: Connection) -> None:
    """The body of one cell's process: run it and send ("ok", avg_acc) or ("failed", reason) back."""
    try:
        outcome: tuple[str, Any] = ("ok", job())
    except BaseException as exc:  # noqa: BLE001  (Ctrl-C included: the parent names the cell)
        outcome = ("failed", failure_reason(exc)[:4000])  # well under a pipe's buffer: the parent reads after exit
    channel.send(outcome)
    channel.close()


def run_processes(jobs_list: Sequence[tuple[str, Callable[[], float]]], jobs: int,
                  on_done: Callable[[str, float], None],
                  on_failed: Callable[[str, str], None] = lambda name, reason: None) -> dict[str, str]:
    """Run every cell in its own process, `jobs` at a time; returns {cell: reason} of the cells that failed.

    A cell that raises, or whose process is killed (e.g. by the out-of-memory killer), fails alone:
    the other cells run to the end. `on_done(name, avg_acc)` / `on_failed(name, reason)` are called as
    each cell ends.
    """
    # forkserver: each cell is forked from a server that imported the runner once (fast start, unlike spawn)
    # and has run no torch computation (safe, unlike forking this process, whose OpenMP pool may be running)
    context = get_context("forkserver")
    context.set_forkserver_preload(["exssnet.run.runner"])
    waiting = list(jobs_list)
    running: dict[int, tuple[str, Any, Connection]] = {}
    failures: dict[str, str] = {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                name, job = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=run_cell_process, args=(job, sender), name=f"exssnet-cell-{name}")
                process.start()
                sender.close()
                running[process.sentinel] = (name, process, receiver)
            for sentinel in wait(list(running)):
                name, process, receiver = running.pop(sentinel)  # type: ignore[index]
                try:
                    outcome = receiver.recv() if receiver.poll() else None
                except (EOFError, OSError):
                    outcome = None
                receiver.close()
                process.join()
                if outcome is not None and outcome[0] == "ok":
                    on_done(name, float(outcome[1]))
                    continue
                failures[name] = outcome[1] if outcome is not None else exit_reason(process.exitcode)
                on_failed(name, failures[name])
    finally:
        for _, process, receiver in running.values():  # interrupted: stop the cells still running
            process.terminate()
            process.join()
            receiver.close()
    return failures


def parse_slurm_options(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (submitit parameters, e.g. slurm_partition=gpu timeout_min=600 gpus_per_node=1)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExssnetError(f"--slurm takes KEY=VALUE (a submitit parameter), got {item!r}")
        options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return options


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ExssnetError("--executor slurm/local needs submitit: pip install 'exssnet[slurm]' (submitit==1.5.4)") from None
    return submitit


def check_executor(executor: str, options: dict[str, Any]) -> None:
    """Before any cell starts: submitit installed, Slurm's commands present (slurm), every --slurm key known."""
    if executor == "process":
        if options:
            raise ExssnetError(f"--slurm {', '.join(options)}: --slurm options are for --executor slurm or local")
        return
    submitit = _import_submitit()
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if executor == "slurm" and missing:
        raise ExssnetError(f"--executor slurm needs Slurm, but {' and '.join(missing)} is not on this machine's PATH: "
                           "run the sweep on a Slurm login node, or use --executor process (this machine)")
    with tempfile.TemporaryDirectory() as folder:  # submitit's own key and type checks, without a cluster
        probe = submitit.AutoExecutor(folder=folder, cluster="debug")
        try:
            probe.update_parameters(**options)
        except (NameError, AssertionError, TypeError, ValueError) as exc:
            lines = [line for line in str(exc).splitlines()
                     if line.strip() and not line.startswith(("Known executors", "As a reminder"))]
            generic = ", ".join(submitit.AutoExecutor._typed_parameters())
            raise ExssnetError(f"bad --slurm option: {' '.join(lines) or type(exc).__name__} (keys are {generic}, "
                               "or slurm_<sbatch option> such as slurm_partition=gpu)") from None


def job_failure_reason(exc: BaseException) -> str:
    """The cell's own error line from a submitit job error (whose message holds the job's traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    if len(rules) >= 2 and rules[1] > rules[0] + 1:  # "... with trace:", a rule, the traceback, a rule, the log paths
        last = lines[rules[1] - 1]
        prefix = f"{ExssnetError.__module__}.{ExssnetError.__name__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return lines[0] if lines else type(exc).__name__  # e.g. a job Slurm killed: its state


def submit_array(jobs_list: Sequence[tuple[str, CellJob]], folder: Path, executor: str, jobs: int,
                 options: dict[str, Any], wait: bool, on_done: Callable[[str, float], None],
                 on_failed: Callable[[str, str], None] = lambda name, reason: None) -> list[str]:
    """Submit the cells as one job array (Slurm) or as local submitit jobs; returns the job ids.

    With `wait`, `on_done(name, avg_acc)` / `on_failed(name, reason)` are called as each cell's job ends."""
    submitit = _import_submitit()
    check_executor(executor, options)
    cluster = "slurm" if executor == "slurm" else "local"
    try:
        auto = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
        auto.update_parameters(name="exssnet-sweep", slurm_array_parallelism=jobs, **options)
        with auto.batch():
            submitted = [auto.submit(job) for _, job in jobs_list]
    except Exception as exc:  # sbatch refused the array, or submitit could not start
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ExssnetError(f"could not submit the sweep with --executor {executor}: "
                           f"{lines[-1] if lines else type(exc).__name__}") from None
    if wait:
        for (name, _), job in zip(jobs_list, submitted):
            try:
                value = job.result()
            except Exception as exc:  # submitit wraps the cell's error in a FailedJobError
                on_failed(name, f"{job_failure_reason(exc)} (log in {folder / str(job.job_id)})")
                continue
            on_done(name, value)
    return [job.job_id for job in submitted]
