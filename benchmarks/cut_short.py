"""What the grid scripts share about a run cut short: how many tasks its folder finished, and the seconds of a
run that finished over several sittings."""

from __future__ import annotations

import json
from pathlib import Path


def finished_tasks(folder: Path) -> int:
    """Tasks a run cut short in `folder` finished and checkpointed (0: nothing to resume, or results.json is there)."""
    try:
        if (folder / "results.json").exists():
            return 0
        return len(json.loads((folder / "run_state.json").read_text())["acc_rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def total_seconds(results: dict, sitting_s: float, resumed_at: int) -> float:
    """A run's seconds: this sitting's, plus the training time of the tasks 0..resumed_at-1 an earlier sitting
    finished (their evaluation time is not recorded)."""
    return sitting_s + (sum(results["task_time_s"][:resumed_at]) if resumed_at else 0.0)
