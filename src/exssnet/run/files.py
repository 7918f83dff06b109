"""The one place that names a run folder's files, writes them atomically, and says which config keys are incidental.

A run folder `--out DIR` holds `results.json` when the run is finished, and while it goes on
`run_state.json` plus `checkpoints/task-<t>/` (see exssnet.run.resume) and `drift.safetensors` (exssnet.run.drift).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from exssnet.errors import ExssnetError

RESULTS_FILE = "results.json"
RUN_STATE_FILE = "run_state.json"
CHECKPOINTS_DIR = "checkpoints"
DRIFT_FILE = "drift.safetensors"  # earlier tasks' outputs right after each was learned (exssnet.run.drift)

# Config keys that say where and how a run ran, not what it computes: a sweep may skip a finished cell that differs
# only in these, and a report does not split groups by them.
INCIDENTAL_KEYS = frozenset({"data_dir", "device", "threads", "deterministic", "log_csv", "tensorboard", "workers",
                             "world_size"})
# The subset of INCIDENTAL_KEYS a resumed run may change (device and determinism could change the numbers,
# logging targets name files the first part of the run wrote).
RESUME_FREE_KEYS = frozenset({"threads", "workers"})
# results.json fields that hold wall-clock times (the only fields two identical runs may differ in)
TIMING_KEYS = frozenset({"wall_time_s", "seconds", "task_time_s", "total_time_s", "eval_time_s"})


def checkpoint_name(task: int) -> str:
    """The folder name, under CHECKPOINTS_DIR, of the checkpoint after `task`."""
    return f"task-{task:03d}"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temp file in the same folder, then rename over `path` (the old file stays on failure)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExssnetError(f"cannot write {path}: {exc.strerror or exc}") from None
