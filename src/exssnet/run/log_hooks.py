"""Per-epoch logging hooks: a CSV file and (optionally) TensorBoard scalars in the run's output folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exssnet.errors import ExssnetError
from exssnet.run.hooks import RunHook

if TYPE_CHECKING:
    from exssnet.methods.base import ContinualMethod
    from exssnet.run.config import RunConfig

CSV_FILE = "metrics.csv"
CSV_COLUMNS = ["task", "phase", "epoch", "loss", "val_acc"]
TENSORBOARD_DIR = "tensorboard"


class CsvLogHook(RunHook):
    """Appends one row (task, phase, epoch, loss, val_acc) per epoch; the file is complete after every row."""

    state_key = "metrics_csv"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0  # data rows in the file; a resumed run keeps those of the tasks finished before it

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = int(state.get("rows", 0))

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        kept: list[list[str]] = []
        if self.rows > 0 and self.path.is_file():
            with self.path.open(newline="") as handle:
                kept = list(csv.reader(handle))[1 : 1 + self.rows]
        self.rows = len(kept)
        with self.path.open("w", newline="") as handle:
            csv.writer(handle).writerows([CSV_COLUMNS, *kept])

    def on_epoch(self, task: int, info: dict) -> None:
        row = [task, info["phase"], info["epoch"], info["loss"], "" if info.get("val_acc") is None else info["val_acc"]]
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(row)
        self.rows += 1


class TensorBoardHook(RunHook):
    """Scalars `task<t>/<phase>/loss` and `.../val_acc` per epoch, `avg_acc_seen` per task."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.writer: Any = None

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ExssnetError("tensorboard logging needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch(self, task: int, info: dict) -> None:
        prefix = f"task{task}/{info['phase']}"
        self.writer.add_scalar(f"{prefix}/loss", info["loss"], info["epoch"])
        if info.get("val_acc") is not None:
            self.writer.add_scalar(f"{prefix}/val_acc", info["val_acc"], info["epoch"])
        self.writer.flush()

    def on_task_end(self, task: int, method: "ContinualMethod", acc_row: list[float], record: dict) -> None:
        self.writer.add_scalar("avg_acc_seen", sum(acc_row) / len(acc_row), task + 1)
        self.writer.flush()

    def on_run_end(self, results: dict) -> None:
        self.writer.close()


def logging_hooks(config: "RunConfig", out: Path | None) -> list[RunHook]:
    """The hooks `config` asks for; none without an output folder."""
    if out is None:
        return []
    hooks: list[RunHook] = []
    if config.log_csv:
        hooks.append(CsvLogHook(out / CSV_FILE))
    if config.tensorboard:
        hooks.append(TensorBoardHook(out / TENSORBOARD_DIR))
    return hooks
