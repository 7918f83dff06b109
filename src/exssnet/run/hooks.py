"""Hooks into a run (Avalanche-style callbacks): logging, checkpoints and the like plug in here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exssnet.methods.base import ContinualMethod


class RunHook:
    """Override what you need; every call gets the task index it is about."""

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        """Before the first task."""

    def on_epoch(self, task: int, info: dict) -> None:
        """After each epoch of a phase: info has phase, epoch, loss and val_acc."""

    def on_task_end(self, task: int, method: "ContinualMethod", acc_row: list[float], record: dict) -> None:
        """After a task is learned and every seen task evaluated."""

    def add_results(self, results: dict) -> None:
        """Add this hook's own entries to the results, before they are written."""

    def on_run_end(self, results: dict) -> None:
        """After results are assembled (and written, when the run has an output folder)."""
