"""Regularization: replay plus an L2 penalty keeping the encoder's hidden features near the previous model's.

At the start of every task after the first, a frozen copy of the encoder (the model after the previous
task) is the reference; the loss adds `lm_reg_lambda` * mean over examples of the squared distance
between current and reference pooled hidden features, on the current batch and the replayed examples.
"""

from __future__ import annotations

import torch

from exssnet.data.tasks import Inputs, TaskData
from exssnet.methods.base import register_method
from exssnet.methods.language.base import RegularizationSettings
from exssnet.methods.language.encoder_net import frozen_copy
from exssnet.methods.language.replay import Replay


def feature_drift(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the squared L2 distance between feature rows."""
    return ((features - reference) ** 2).sum(dim=1).mean()


@register_method("regularization", settings=RegularizationSettings)
class Regularization(Replay):
    """Replay + L2 between current and previous-task pooled hidden features."""

    reference = None

    def before_task(self, task_id: int, task: TaskData) -> None:
        super().before_task(task_id, task)
        self.reference = frozen_copy(self.net.trunk) if task_id > 0 else None

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        x, y, task_ids = self.with_replay(x, y, task_id)
        features = self.net.features(x)
        loss = self.net.mixed_cross_entropy(features, y, task_ids)
        if self.reference is not None:
            with torch.no_grad():
                reference = self.reference(*x)
            loss = loss + self.settings.lm_reg_lambda * feature_drift(features, reference)
        return loss
