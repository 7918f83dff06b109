"""Hooks into a run (Avalanche-style callbacks): logging, checkpoints and the like plug in here.

A hook that keeps something a resumed run needs (rows it measured, outputs it recorded, lines it wrote) names it
with `state_key` and returns it from `state_dict()`: after every task the runner saves every hook's state with
the method's checkpoint (JSON values in run_state.json, tensors in the checkpoint folder), and a resumed run
hands it back through `load_state_dict()` before the first task it learns (exssnet.run.resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from exssnet.methods.base import ContinualMethod


class RunHook:
    """Override what you need; every call gets the task index it is about."""

    state_key: str = ""  # the name the hook's state is saved under; empty: nothing to resume

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on as if uninterrupted: JSON values and/or tensors (after a task ends)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned after the last finished task of the run being resumed."""

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        """Before the first task."""

    def on_epoch(self, task: int, info: dict) -> None:
        """After each epoch of a phase: info has phase, epoch, loss and val_acc."""

    def on_test_outputs(self, task: int, seen: int, logits: "torch.Tensor") -> None:
        """After task `task` is learned: the test logits (N, C, float32, CPU) of seen task `seen` under its own id,
        from the evaluation that gives the accuracy matrix (one process only: under data parallel each rank scores
        a shard of every batch, and this is not called)."""

    def on_task_end(self, task: int, method: "ContinualMethod", acc_row: list[float], record: dict) -> None:
        """After a task is learned and every seen task evaluated."""

    def add_results(self, results: dict) -> None:
        """Add this hook's own entries to the results, before they are written."""

    def on_run_end(self, results: dict) -> None:
        """After results are assembled (and written, when the run has an output folder)."""
