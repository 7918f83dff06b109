"""Claims that let several workers share one measurement grid: a worker runs a grid row only while it holds the row's
claim, a file it created exclusively (`O_EXCL`) that names the worker's process.

Two workers started on the same grid (`benchmarks/language_full.py`, `benchmarks/wsn_pmnist.py`) each take the next
row nobody holds, so a 2-core machine runs two rows at once with no row run twice. A claim whose process is gone (a
session that ended mid-run) is stale: the next worker to meet it removes it and takes the row (the run resumes from
its last finished task). A process is identified by its pid and its start time (Linux: /proc), so a pid reused by an
unrelated process after a restart does not keep a row held.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def process_tag(pid: int) -> str:
    """`pid` and, where /proc has it, the process's start time (clock ticks since boot): unique while it lives."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"  # field 22, counted after the "(comm)" field
    except (OSError, IndexError):
        return str(pid)


def holder_alive(tag: str) -> bool:
    """Whether the process a claim names still runs (the same process: its start time matches where known)."""
    try:
        pid = int(tag.split()[0])
    except (ValueError, IndexError):
        return True  # a claim being written this instant: count it as held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return len(tag.split()) < 2 or process_tag(pid) == tag


def claim_path(directory: Path, key: str) -> Path:
    return directory / (key.replace("/", "_").replace(" ", "_") + ".claim")


def claim(directory: Path, key: str) -> bool:
    """Take the row `key`: True when this process now holds its claim (created here, or stale and replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = claim_path(directory, key)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                tag = path.read_text()
            except OSError:
                continue  # released meanwhile: try again
            if holder_alive(tag):
                return False
            path.unlink(missing_ok=True)  # a dead worker's claim (this grid's own file): take the row over
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(process_tag(os.getpid()))
        return True
    return False


def is_held(directory: Path, key: str) -> bool:
    """Whether a live worker holds the row `key` now (read only: a stale claim is left for `claim` to replace)."""
    try:
        return holder_alive(claim_path(directory, key).read_text())
    except OSError:
        return False


def release(directory: Path, key: str) -> None:
    """Give the row `key` back (only a claim this process holds is removed)."""
    path = claim_path(directory, key)
    try:
        if path.read_text() == process_tag(os.getpid()):
            path.unlink()
    except OSError:
        pass


@contextmanager
def holding(directory: Path, key: str) -> Iterator[bool]:
    """`claim` the row `key` for the body of a with-statement (True when held) and `release` it after."""
    held = claim(directory, key)
    try:
        yield held
    finally:
        if held:
            release(directory, key)
