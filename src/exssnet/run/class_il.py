"""Class-incremental evaluation as a run hook: infer the task, then classify with its subnetwork.

For each learned task's test set it measures
- task-inference accuracy: how often the inferred task is the true one;
- inferred-task accuracy: how often the inferred task is right AND its subnetwork's class is right
  (the class-incremental accuracy over all classes seen so far).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from exssnet.data.tasks import Inputs, Split, TaskData, concat_inputs, num_examples, take
from exssnet.errors import ExssnetError
from exssnet.methods.base import ContinualMethod
from exssnet.run.config import RunConfig
from exssnet.run.hooks import RunHook
from exssnet.seeds import class_il_seed
from exssnet.supermask import SupermaskNet
from exssnet.task_inference import check_settings, infer_task, predict_with_inferred_task


def supermask_net_of(method: ContinualMethod) -> SupermaskNet:
    """The supermask network of a method, or a clear error for methods without one."""
    net = getattr(method, "net", None)
    if not isinstance(net, SupermaskNet):
        raise ExssnetError(f"scenario 'class-il' needs a supermask method (supsup, ssnet, exssnet), not {method.name or type(method).__name__}")
    return net


def infer_and_predict(
    net: SupermaskNet, x: Inputs, candidates: list[int], mode: str, bn: str, batch_size: int, rule: str = "min-entropy"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inferred task, predicted class within it) for every example of `x`, batch by batch."""
    n = num_examples(x)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()  # a batch of one has no batch statistics: fold it into the previous batch
    inferred, predicted = [], []
    for start, stop in zip(starts, starts[1:] + [n]):
        chunk = take(x, torch.arange(start, stop, device=net.device))
        tasks = infer_task(net, chunk, candidates, mode, bn, rule)
        inferred.append(tasks)
        predicted.append(predict_with_inferred_task(net, chunk, tasks))
    return torch.cat(inferred), torch.cat(predicted)


def evaluate_tasks(
    net: SupermaskNet, splits: list[Split], mode: str, bn: str, batch_size: int, seed: int = 0, rule: str = "min-entropy"
) -> list[tuple[float, float]]:
    """(task-inference accuracy, inferred-task accuracy), percent, for each task's split.

    mode "batch": every batch holds one task's data (the SupSup setting), one id per batch.
    mode "example": all splits are pooled and shuffled, so a batch mixes tasks and nothing about a
    batch (not even its BatchNorm statistics) tells which task an example came from.
    """
    candidates = list(range(len(splits)))
    if mode == "batch":
        outcomes = [infer_and_predict(net, split.x, candidates, mode, bn, batch_size, rule) for split in splits]
        inferred = torch.cat([o[0] for o in outcomes])
        predicted = torch.cat([o[1] for o in outcomes])
    else:
        pooled = concat_inputs([split.x for split in splits])
        order = torch.randperm(num_examples(pooled), generator=torch.Generator().manual_seed(seed))
        order = order.to(net.device)
        shuffled_inferred, shuffled_predicted = infer_and_predict(
            net, take(pooled, order), candidates, mode, bn, batch_size, rule
        )
        inferred, predicted = torch.empty_like(shuffled_inferred), torch.empty_like(shuffled_predicted)
        inferred[order], predicted[order] = shuffled_inferred, shuffled_predicted
    true_task = torch.cat([torch.full((len(split),), j, device=inferred.device) for j, split in enumerate(splits)])
    labels = torch.cat([split.y for split in splits])
    right_task = inferred == true_task
    right_class = right_task & (predicted == labels)
    return [
        (100.0 * int(right_task[true_task == j].sum()) / len(split), 100.0 * int(right_class[true_task == j].sum()) / len(split))
        for j, split in enumerate(splits)
    ]


class ClassILHook(RunHook):
    """Collects class-IL metrics after the last task (and after every task when configured) into `class_il`."""

    state_key = "class_il"

    def __init__(self, config: RunConfig, method: ContinualMethod, tasks: list[TaskData]) -> None:
        check_settings(config.classil_mode, config.classil_bn, config.classil_rule)
        if any(not isinstance(task.test.x, (torch.Tensor, tuple)) for task in tasks):
            raise ExssnetError("class-il evaluation needs the test sets in memory; this benchmark streams its "
                               "images from disk (imagenet): use --scenario task-il")
        supermask_net_of(method)  # refused now, before any task, when the method has no supermask network
        self.method = method
        self.config, self.tasks = config, tasks
        self.task_inference_rows: list[list[float]] = []
        self.inferred_rows: list[list[float]] = []
        self.after: list[int] = []
        self.seconds = 0.0
        self.task_given_acc: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        return {"after": self.after, "task_inference_rows": self.task_inference_rows,
                "inferred_rows": self.inferred_rows, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The rows measured by the run being resumed (checked: row t holds t + 1 accuracies)."""
        after = state.get("after", [])
        for t, rows, inferred in zip(after, state.get("task_inference_rows", []), state.get("inferred_rows", [])):
            self.restore(t, {"task_inference_acc": rows, "inferred_task_acc": inferred})
        if len(self.after) != len(after):
            raise ExssnetError("the saved class-IL rows are damaged (fewer rows than evaluation points)")
        self.seconds = float(state.get("seconds", 0.0))

    def on_task_end(self, task: int, method: ContinualMethod, acc_row: list[float], record: dict) -> None:
        """Measure (when due); the rows also go into the task's record in results.json."""
        self.task_given_acc = list(acc_row)
        rows = self.after_task(task)
        if rows is not None:
            record["class_il"] = rows

    def add_results(self, results: dict) -> None:
        results["class_il"] = self.results(self.task_given_acc)

    def after_task(self, t: int) -> dict | None:
        """Evaluate every task 0..t with inferred task ids, if this point is one to record.

        Returns the rows measured (to keep with the task's record, so a resumed run has them), or None.
        """
        if not (self.config.classil_every_task or t == len(self.tasks) - 1):
            return None
        start = time.perf_counter()
        cfg = self.config
        splits = [task.test for task in self.tasks[: t + 1]]
        rows = evaluate_tasks(
            supermask_net_of(self.method), splits, cfg.classil_mode, cfg.classil_bn, cfg.classil_batch_size, class_il_seed(cfg.seed), cfg.classil_rule
        )
        record = {"task_inference_acc": [r[0] for r in rows], "inferred_task_acc": [r[1] for r in rows],
                  "seconds": time.perf_counter() - start}
        self.restore(t, record)
        return record

    def restore(self, t: int, record: dict) -> None:
        """Take the rows measured after task `t` (by `after_task`, possibly in the run this one resumes)."""
        rows = (record.get("task_inference_acc"), record.get("inferred_task_acc"))
        if not all(isinstance(row, list) and len(row) == t + 1 for row in rows):
            raise ExssnetError(f"the class-IL record of task {t} is damaged (expected {t + 1} accuracies per row)")
        self.task_inference_rows.append(list(rows[0]))  # type: ignore[arg-type]
        self.inferred_rows.append(list(rows[1]))  # type: ignore[arg-type]
        self.after.append(t)
        self.seconds += float(record.get("seconds", 0.0))

    def results(self, task_given_acc: list[float]) -> dict:
        """The `class_il` entry of results.json (final rows are after the last task)."""
        if not self.after:
            raise ExssnetError("class-IL evaluation never ran")
        tia, ia = self.task_inference_rows[-1], self.inferred_rows[-1]
        sizes = [num_examples(task.test.x) for task in self.tasks]
        return {
            "rule": self.config.classil_rule,
            "mode": self.config.classil_mode,
            "bn": self.config.classil_bn,
            "batch_size": self.config.classil_batch_size,
            "task_given_acc": task_given_acc,
            "task_inference_acc": tia,
            "inferred_task_acc": ia,
            "avg_task_given_acc": sum(task_given_acc) / len(task_given_acc),
            "avg_task_inference_acc": sum(tia) / len(tia),
            "avg_inferred_acc": sum(ia) / len(ia),
            "pooled_inferred_acc": sum(a * n for a, n in zip(ia, sizes)) / sum(sizes),
            "evaluated_after_tasks": self.after,
            "task_inference_acc_matrix": self.task_inference_rows,
            "inferred_task_acc_matrix": self.inferred_rows,
            "eval_time_s": self.seconds,
        }
