"""IDBR (Huang et al. 2021): information-disentanglement based regularisation with replay.

The pooled encoder output h is projected into a task-generic space g = tanh(G h) and a task-specific
space s = tanh(S h); each task's head reads [g; s]. Loss on the current batch plus replay_batch_size
stored examples (the `er` reservoir buffer): cross-entropy on their own heads
+ `idbr_task_lambda` * cross-entropy of a task-id classifier on s (s must say which task an example is from)
+ `lm_reg_lambda` * squared distance between g and the g of a frozen copy of the model after the previous
task (the generic space must not drift). IDBR's next-sentence-prediction loss on g is left out
(our tasks are single sentences or given pairs; there is no natural next sentence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.data.tasks import Inputs, TaskData
from exssnet.methods.base import register_method
from exssnet.methods.baselines.er import ER
from exssnet.methods.language.base import IDBRSettings, LanguageMethod
from exssnet.methods.language.encoder_net import EncoderNet, PooledEncoder, frozen_copy, load_encoder
from exssnet.methods.language.regularization import feature_drift


class DisentangledEncoder(PooledEncoder):
    """Pooled encoder followed by the generic (G) and specific (S) projections; forward gives [g; s]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.generic = nn.Linear(self.width, self.width)
        self.specific = nn.Linear(self.width, self.width)

    def spaces(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = super().forward(ids, mask)
        return torch.tanh(self.generic(h)), torch.tanh(self.specific(h))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.spaces(ids, mask), dim=1)


@register_method("idbr", settings=IDBRSettings)
class IDBR(LanguageMethod, ER):
    """Replay + task-id loss on the specific space + drift penalty on the generic space."""

    reference = None

    def new_net(self) -> EncoderNet:
        trunk = DisentangledEncoder(load_encoder(self.config.encoder))
        net = EncoderNet(trunk, 2 * trunk.width)
        net.task_classifier = nn.Linear(trunk.width, len(self.benchmark.tasks))
        return net.to(self.device)

    def new_parameters(self, task_id: int) -> list[nn.Parameter]:
        trunk = self.net.trunk
        return [*trunk.generic.parameters(), *trunk.specific.parameters(), *self.net.task_classifier.parameters(),
                *self.net.heads[task_id].parameters()]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.net.trunk.model.parameters())

    def before_task(self, task_id: int, task: TaskData) -> None:
        super().before_task(task_id, task)
        self.reference = frozen_copy(self.net.trunk) if task_id > 0 else None

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        x, y, task_ids = self.with_replay(x, y, task_id)
        generic, specific = self.net.trunk.spaces(*x)
        loss = self.net.mixed_cross_entropy(torch.cat([generic, specific], dim=1), y, task_ids)
        loss = loss + self.settings.idbr_task_lambda * F.cross_entropy(self.net.task_classifier(specific), task_ids)
        if self.reference is not None:
            with torch.no_grad():
                reference, _ = self.reference.spaces(*x)
            loss = loss + self.settings.lm_reg_lambda * feature_drift(generic, reference)
        return loss
