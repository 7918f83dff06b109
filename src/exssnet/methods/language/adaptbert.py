"""AdaptBERT: a frozen encoder with Houlsby adapters (exssnet.layers.adapter); one adapter set for all tasks.

- adaptbert-ft:     the shared adapters and the task's head are trained on each task in turn.
- adaptbert-replay: the same with experience replay (the `er` reservoir buffer).
"""

from __future__ import annotations

import torch
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.layers.adapter import AdaptedDense, inject_adapters
from exssnet.methods.base import register_method
from exssnet.methods.baselines.er import ER
from exssnet.methods.language.base import AdapterReplaySettings, AdapterSettings, LanguageMethod, freeze
from exssnet.methods.language.encoder_net import PooledEncoder


class AdapterMethod(LanguageMethod):
    """Encoder weights frozen; adapters (one set, or one per task) and heads train at lm_new_lr."""

    per_task_adapters = False

    def build_trunk(self, model: nn.Module) -> PooledEncoder:
        freeze(model)
        self.sites: list[AdaptedDense] = inject_adapters(model, self.settings.adapter_size)
        if not self.sites:
            raise ExssnetError(f"{type(model).__name__} has no BERT-like attention/feed-forward output to adapt")
        if not self.per_task_adapters:
            for site in self.sites:
                site.add_adapter()
        return PooledEncoder(model)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return []

    def adapter_slot(self, task_id: int) -> int:
        return task_id if self.per_task_adapters else 0

    def new_parameters(self, task_id: int) -> list[nn.Parameter]:
        slot = self.adapter_slot(task_id)
        adapters = [p for site in self.sites for p in site.adapters[slot].parameters()]
        return [*adapters, *self.net.heads[task_id].parameters()]

    def use_adapters(self, task_id: int) -> None:
        for site in self.sites:
            site.active = self.adapter_slot(task_id)

    def task_logits(self, x, task_id: int) -> torch.Tensor:
        self.use_adapters(task_id)
        return self.net(x, task_id)


@register_method("adaptbert-ft", settings=AdapterSettings)
class AdaptBertFT(AdapterMethod):
    """Shared adapters and the task's head, trained task after task."""


@register_method("adaptbert-replay", settings=AdapterReplaySettings)
class AdaptBertReplay(AdapterMethod, ER):
    """Shared adapters and heads with experience replay."""
