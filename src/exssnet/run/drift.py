"""Drift of earlier tasks: what learning later tasks changed in each task's outputs (a run hook).

Accuracy-based forgetting cannot show a change that flips no prediction (or flips as many right as
wrong). Right after task j is learned this hook records j's test predictions (with j's id) and its
logits on a fixed probe batch (the first `probe_size` test examples). After the last task it compares:

- `changed_predictions[j]`: share (0..1) of j's test examples whose predicted class differs now;
- `max_logit_change[j]`: largest absolute change of any logit on the probe batch.

SupSup and ExSSNeT leave every finished task's subnetwork bit-identical, so both are exactly 0;
SSNeT retrains weights inside earlier masks and shows its drift. The records are the hook's state
(`state_dict`), saved with every checkpoint, so a resumed run measures the same drift as an
uninterrupted one. The outputs come from the run's own test evaluation (`on_test_outputs`), so drift
costs no extra pass; only where that evaluation is sharded (data parallel) does the hook score the
test sets itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from exssnet.data.tasks import Split, TaskData, num_examples, take
from exssnet.run.hooks import RunHook

if TYPE_CHECKING:
    from exssnet.methods.base import ContinualMethod

PROBE_SIZE = 256


@torch.no_grad()
def task_outputs(method: "ContinualMethod", task_id: int, split: Split, batch_size: int) -> torch.Tensor:
    """Logits (N, C) of `split` under task `task_id`, batch by batch (caller sets eval mode)."""
    return torch.cat([method.logits(x, task_id).float().cpu() for x, _ in split.batches(batch_size)])


def changed_share(before: torch.Tensor, after: torch.Tensor) -> float:
    """Share (0..1) of positions where two prediction vectors differ."""
    return float((before != after).float().mean()) if before.numel() else 0.0


def max_abs_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Largest absolute elementwise difference of two equally shaped tensors."""
    return float((after - before).abs().max()) if before.numel() else 0.0


class DriftHook(RunHook):
    """Records each task's outputs right after it is learned; compares them after the last task."""

    state_key = "drift"

    def __init__(self, tasks: list[TaskData], batch_size: int, probe_size: int = PROBE_SIZE) -> None:
        self.tasks, self.batch_size, self.probe_size = tasks, batch_size, probe_size
        self.predictions: dict[int, torch.Tensor] = {}
        self.probe_logits: dict[int, torch.Tensor] = {}
        self.drift: dict | None = None
        self.evaluated: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # this task end's (predictions, probe logits)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"pred.{j}": p.contiguous() for j, p in self.predictions.items()}
        state.update({f"logits.{j}": logits.contiguous() for j, logits in self.probe_logits.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            kind, _, j = key.partition(".")
            (self.predictions if kind == "pred" else self.probe_logits)[int(j)] = value

    def _probe(self, task: TaskData) -> Split:
        n = min(self.probe_size, num_examples(task.test.x))
        index = torch.arange(n, device=task.test.y.device)
        return Split(take(task.test.x, index), task.test.y[:n])

    def _outputs(self, method: "ContinualMethod", j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(test predictions, probe logits) of task j now: from the run's evaluation when it handed them over."""
        if j in self.evaluated:
            return self.evaluated[j]
        method.eval_mode()
        predictions = task_outputs(method, j, self.tasks[j].test, self.batch_size).argmax(dim=1)
        return predictions, task_outputs(method, j, self._probe(self.tasks[j]), self.batch_size)

    def on_test_outputs(self, task: int, seen: int, logits: torch.Tensor) -> None:
        if seen == task or task == len(self.tasks) - 1:  # what on_task_end uses
            self.evaluated[seen] = logits.argmax(dim=1), logits[: self.probe_size].clone()

    def on_task_end(self, task: int, method: "ContinualMethod", acc_row: list[float], record: dict) -> None:
        self.predictions[task], self.probe_logits[task] = self._outputs(method, task)
        if task == len(self.tasks) - 1:
            self.drift = self.measure(method)
        self.evaluated.clear()

    def measure(self, method: "ContinualMethod") -> dict:
        """The `drift` entry of results.json, measured now (after the last task)."""
        changed: list[float | None] = []
        largest: list[float | None] = []
        for j in range(len(self.tasks)):
            if j not in self.predictions:
                changed.append(None)
                largest.append(None)
                continue
            predictions, logits = self._outputs(method, j)
            changed.append(changed_share(self.predictions[j], predictions))
            largest.append(max_abs_change(self.probe_logits[j], logits))
        known = [c for c in changed if c is not None]
        return {
            "changed_predictions": changed,
            "max_logit_change": largest,
            "avg_changed_predictions": sum(known) / len(known) if known else None,
            "probe_size": self.probe_size,
        }

    def add_results(self, results: dict) -> None:
        if self.drift is not None:
            results["drift"] = self.drift
