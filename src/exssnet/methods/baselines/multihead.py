"""A dense model split into a shared trunk and one Linear head per task (task-incremental multi-head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.data.tasks import Inputs
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
    """`trunk(x)` gives features; head t maps them to task t's classes."""

    def __init__(self, dense: nn.Module) -> None:
        super().__init__()
        self.trunk, self.feature_dim = split_off_classifier(dense)
        self.heads = nn.ModuleList()

    def add_head(self, num_classes: int) -> None:
        device = next(self.trunk.parameters()).device
        self.heads.append(nn.Linear(self.feature_dim, num_classes).to(device))

    def trunk_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters every task shares (what regularisers protect)."""
        return {name: p for name, p in self.trunk.named_parameters()}

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
