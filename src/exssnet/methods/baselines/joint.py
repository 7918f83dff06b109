"""Joint (multitask) training: one model learns every task of the benchmark at once (upper-bound reference).

When the engine asks for the FIRST task, Joint trains on the union of all tasks' training data for
epochs_per_task epochs (the same number of gradient steps a sequential method takes over the whole run),
each example on its own task's head; the other learn_task calls train nothing. The model never changes
after the first task, so every column of the accuracy matrix is constant: forgetting is zero by
construction, and every row is the multitask model (it has seen future tasks: not a continual learner).
"""

from __future__ import annotations

import torch

from exssnet.data.tasks import Inputs, Split, TaskData, concat_inputs, to_device
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.loops import EpochCallback, accuracy


def union_split(splits: list[Split], label_stride: int, device: torch.device) -> Split:
    """All splits in one, each label encoded as task_id * label_stride + label."""
    x = concat_inputs([s.x for s in splits])
    y = torch.cat([s.y + t * label_stride for t, s in enumerate(splits)])
    return Split(to_device(x, device), y.to(device))


@register_method("joint", settings=BaselineSettings)
class Joint(DenseMethod):
    """Multitask training on every task at the first learn_task call; later calls learn nothing new."""


    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        self.num_learned += 1
        if task_id > 0:
            return {"train_phase": None, "note": "joint trained on every task when learning the first"}
        tasks = self.benchmark.tasks
        self.grow(0)
        stride = self.benchmark.max_classes
        union = TaskData("all-tasks", [c for each in tasks for c in each.classes],
                         union_split([each.train for each in tasks], stride, self.device),
                         union_split([each.val for each in tasks], stride, self.device),
                         union_split([each.test for each in tasks], stride, self.device), augment=task.augment)
        self.val_splits = [Split(to_device(each.val.x, self.device), each.val.y.to(self.device)) for each in tasks]
        history = self.fit(0, union, self.epochs_per_task, progress, on_epoch)
        return {"train_phase": history.to_dict(), "trained_on_tasks": len(tasks)}

    def grow(self, task_id: int) -> None:
        """Every task's head, when the first task (on which it trains on all of them) starts."""
        if task_id == 0:
            for each in self.benchmark.tasks:
                self.net.add_head(each.num_classes)

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        stride = self.benchmark.max_classes
        return self.net.mixed_cross_entropy(self.net.features(x), y % stride, y // stride)

    def validation_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        """The union's labels pick each example's own head (as in training)."""
        return self.training_loss(x, y, task_id)

    def validation_accuracy(self, task_id: int, task: TaskData) -> float:
        """Mean over tasks of the validation accuracy (tasks without validation examples skipped)."""
        scores = [accuracy(lambda v, t=t: self.net(v, t), split, self.config.eval_batch_size)
                  for t, split in enumerate(self.val_splits) if len(split)]
        return sum(scores) / len(scores)
