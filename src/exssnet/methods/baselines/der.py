"""Dark Experience Replay (Buzzega et al. 2020): replay stored logits (DER) and also labels (DER++).

The buffer stores each kept example with the logits its own head gave it during the step it was seen
(zero-padded to the widest task). Loss: cross-entropy on the current batch
+ der_alpha * mean squared error between current and stored logits of one buffer batch
+ (derpp only) der_beta * cross-entropy on the labels of a second buffer batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from exssnet.data.tasks import Inputs, concat_inputs, num_examples
from exssnet.methods.base import register_method
from exssnet.methods.baselines.er import ReplayMethod, ReplaySettings
from exssnet.methods.loops import Step
from exssnet.settings import loss_weight, setting


@dataclass
class DERSettings(ReplaySettings):
    """Settings of der (derpp adds the label-replay weight)."""

    der_alpha: float = setting(0.3, "weight of the logit-matching loss")

    def check(self) -> None:
        super().check()
        loss_weight(self, "der_alpha")


@dataclass
class DERppSettings(DERSettings):
    """Settings of derpp."""

    der_beta: float = setting(0.5, "weight of the replayed-label loss")

    def check(self) -> None:
        super().check()
        loss_weight(self, "der_beta")


@register_method("der", settings=DERSettings)
class DER(ReplayMethod):
    """Logit matching on replayed examples."""

    label_replay = False

    def logit_mse(self, current: torch.Tensor, stored: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Mean squared difference over each example's own classes (padding excluded)."""
        widths = torch.tensor(self.class_counts, device=task_ids.device)[task_ids]
        valid = torch.arange(current.shape[1], device=current.device)[None, :] < widths[:, None]
        return ((current - stored) ** 2)[valid].mean()

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        return self.training_step(x, y, task_id).loss

    def training_step(self, x: Inputs, y: torch.Tensor, task_id: int) -> Step:
        """The loss, and the batch's logits on its own head (padded to the widest task) for `after_step` to store."""
        n = y.shape[0]
        width = self.benchmark.max_classes
        if not len(self.buffer):
            logits = self.net(x, task_id)
            return Step(F.cross_entropy(logits, y), F.pad(logits.detach(), (0, width - logits.shape[1])))
        for_logits = self.buffer.sample(self.settings.replay_batch_size)
        batches = [x, for_logits.x]
        for_labels = self.buffer.sample(self.settings.replay_batch_size) if self.label_replay else None
        if for_labels is not None:
            batches.append(for_labels.x)
        features = self.net.features(concat_inputs(batches))
        logits = self.net.heads[task_id](features[:n])
        m = num_examples(for_logits.x)
        replayed = self.net.padded_logits(features[n : n + m], for_logits.task_ids, width)
        loss = F.cross_entropy(logits, y) + self.settings.der_alpha * self.logit_mse(
            replayed, for_logits.logits, for_logits.task_ids)
        if for_labels is not None:
            loss = loss + self.settings.der_beta * self.net.mixed_cross_entropy(
                features[n + m :], for_labels.y, for_labels.task_ids)
        return Step(loss, F.pad(logits.detach(), (0, width - logits.shape[1])))

    def after_step(self, x: Inputs, y: torch.Tensor, task_id: int, step: Step) -> None:
        self.buffer.add(x, y, self.task_ids_like(y, task_id), logits=step.logits)


@register_method("derpp", settings=DERppSettings)
class DERpp(DER):
    """DER plus label replay on a second buffer batch."""

    label_replay = True
