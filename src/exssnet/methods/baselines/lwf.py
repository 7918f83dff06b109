"""Learning without Forgetting (Li & Hoiem 2016), multi-head: distil the old heads on new-task inputs.

Before each task after the first, a frozen copy of the model (eval mode) becomes the teacher. The loss is
cross-entropy on the new head plus lwf_alpha * T^2 * KL(teacher || student) of every old head's
softmax at temperature T, on the current batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.settings import CoreSettings, Settings, finite_positive, loss_weight, setting


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean."""
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature ** 2


@dataclass
class LwFSettings(BaselineSettings):
    """Settings of lwf."""

    lwf_alpha: float = setting(1.0, "weight of the distillation loss")
    lwf_temperature: float = setting(2.0, "distillation temperature, > 0")

    def check(self) -> None:
        super().check()
        finite_positive(self, "lwf_temperature")
        loss_weight(self, "lwf_alpha")


@register_method("lwf", settings=LwFSettings)
class LwF(DenseMethod):
    """Keeps old heads' answers on new data close to what the model answered before the new task."""


    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.teacher: MultiHeadNet | None = None

    def before_task(self, task_id: int, task: TaskData) -> None:
        if task_id > 0:
            self.teacher = copy.deepcopy(self.net).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        super().before_task(task_id, task)

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        features = self.net.features(x)
        loss = F.cross_entropy(self.net.heads[task_id](features), y)
        if self.teacher is None or self.settings.lwf_alpha == 0:
            return loss
        with torch.no_grad():
            old_features = self.teacher.features(x)
        for old in range(task_id):
            with torch.no_grad():
                target = self.teacher.heads[old](old_features)
            loss = loss + self.settings.lwf_alpha * distillation_loss(
                self.net.heads[old](features), target, self.settings.lwf_temperature)
        return loss
