"""Individual: a fresh model (same architecture, one head) per task; nothing is shared, nothing forgotten."""

from __future__ import annotations

import torch

from exssnet.data.tasks import Benchmark, Inputs
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.settings import CoreSettings, Settings


@register_method("individual", settings=BaselineSettings)
class Individual(DenseMethod):
    """Task t is learned by model t alone; later tasks never touch it (zero forgetting by construction)."""


    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.nets: list[MultiHeadNet] = []

    def grow(self, task_id: int) -> None:
        self.net = self.new_net() if self.nets else self.net  # the first task uses the model built in __init__
        super().grow(task_id)
        self.nets.append(self.net)

    def resumed_modules(self) -> dict[str, torch.nn.Module]:
        return {f"nets.{t}": net for t, net in enumerate(self.nets)}  # the last is `self.net`: kept once

    def task_logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        return self.nets[task_id](x, 0)

    def eval_mode(self) -> None:
        for net in self.nets:
            net.eval()
