"""Names a run folder's files and writes them atomically.

A run folder `--out DIR` holds `results.json` when the run is finished, and while it goes on
`run_state.json` plus `checkpoints/task-<t>/` (see exssnet.run.resume), which also holds the run hooks'
tensors (`run_hooks.safetensors`, exssnet.run.hooks).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from exssnet.errors import ExssnetError
from exssnet.settings import CoreSettings, Role, role_of

RESULTS_FILE = "results.json"
RUN_STATE_FILE = "run_state.json"
CHECKPOINTS_DIR = "checkpoints"
HOOKS_FILE = "run_hooks.safetensors"  # in a checkpoint folder: the run hooks' tensor state (e.g. drift records)

# Core config keys that say where and how a run ran, not what it computes (their declared Role, exssnet.settings).
# Resume, sweep skip and completeness compare configs with `exssnet.run.config.config_diff`; the report still groups
# runs with this set (exssnet.report.aggregate), which holds core keys only.
INCIDENTAL_KEYS = frozenset(f.name for f in dataclasses.fields(CoreSettings) if role_of(f) is not Role.RESULT)
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
