"""A dense model split into a shared trunk and one Linear head per task (task-incremental multi-head), or one
Linear head every task shares (GPM's single-head MLP on Permuted MNIST: each task's labels 0..C-1 on the same
outputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.data.tasks import Inputs
from exssnet.errors import ExssnetError
from exssnet.models.contract import find_classifier


def split_off_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the model's classifier (see exssnet.models.contract) by Identity; returns (trunk, feature width)."""
    name, classifier = find_classifier(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    features = classifier.in_features
    setattr(parent, child, nn.Identity())
    return model, features


class MultiHeadNet(nn.Module):
    """`trunk(x)` gives features; head t maps them to task t's classes.

    With `shared_width`, one head of that many outputs is built at once and every `add_head` appends that same
    module: `heads[t]` is then one Linear for all tasks, predictions are the argmax over all its outputs, and the
    head is shared like the trunk (it is in `shared_parameters`, so regularisers protect it).
    """

    def __init__(self, dense: nn.Module, shared_width: int | None = None) -> None:
        super().__init__()
        self.trunk, self.feature_dim = split_off_classifier(dense)
        self.heads = nn.ModuleList()
        self.shared_head: nn.Linear | None = None
        if shared_width is not None:
            device = next(self.trunk.parameters()).device
            self.shared_head = nn.Linear(self.feature_dim, shared_width).to(device)

    def add_head(self, num_classes: int) -> None:
        """The next task's head: a new Linear of `num_classes` outputs, or the shared one."""
        if self.shared_head is not None:
            if num_classes > self.shared_head.out_features:
                raise ExssnetError(f"a task has {num_classes} classes, more than the shared head's "
                                   f"{self.shared_head.out_features} outputs")
            self.heads.append(self.shared_head)
            return
        device = next(self.trunk.parameters()).device
        self.heads.append(nn.Linear(self.feature_dim, num_classes).to(device))

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters every task shares (what regularisers protect): the trunk's, and a shared head's."""
        shared = {name: p for name, p in self.trunk.named_parameters()}
        if self.shared_head is not None:
            shared.update({f"shared_head.{name}": p for name, p in self.shared_head.named_parameters()})
        return shared

    def features(self, x: Inputs) -> torch.Tensor:
        return self.trunk(*(x if isinstance(x, tuple) else (x,)))

    def forward(self, x: Inputs, task_id: int) -> torch.Tensor:
        return self.heads[task_id](self.features(x))

    def padded_logits(self, features: torch.Tensor, task_ids: torch.Tensor, width: int) -> torch.Tensor:
        """Each example's logits from its own task's head, zero-padded to `width` columns."""
        out = features.new_zeros(features.shape[0], width)
        for t in task_ids.unique().tolist():
            rows = (task_ids == t).nonzero().flatten()
            logits = self.heads[t](features[rows])
            out[rows, : logits.shape[1]] = logits
        return out

    def mixed_cross_entropy(self, features: torch.Tensor, y: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of a batch mixing tasks, each example scored by its own task's head."""
        total = features.new_zeros(())
        for t in task_ids.unique().tolist():
            rows = (task_ids == t).nonzero().flatten()
            total = total + F.cross_entropy(self.heads[t](features[rows]), y[rows], reduction="sum")
        return total / y.shape[0]
