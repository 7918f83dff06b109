"""CGATE: task-incremental conditional channel gating (Abati et al. 2020) over a shared dense backbone.

Every Linear/Conv of the trunk becomes a `GatedLayer` and every BatchNorm a per-task BatchNorm
(exssnet.layers.gating). Task t trains its own gating modules, BatchNorms and head plus the filters
no earlier task uses, with cross-entropy + `cgate_sparsity` * (mean soft gate over the gated layers),
the sparsity objective that makes each task switch on few channels. After the task, the channels whose
gates fire (evaluation mode) on more than `cgate_relevance` of its validation examples (its training
examples when it has no validation split) are its relevant set, as Abati et al. 2020 select the kernels
to protect by their firing probability on validation data: their filters are frozen for every later
task (gradients zeroed, values restored after each step) and, at test time, the task's gates are
restricted to that set. A finished task therefore reads only frozen filters, its own
BatchNorms, gates and head: its outputs never change again (forgetting 0 by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.errors import ExssnetError
from exssnet.layers.gating import GatedLayer, PerTaskBatchNorm, inject_gates
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.methods.loops import Step
from exssnet.methods.method_state import MethodState
from exssnet.settings import CoreSettings, Settings, loss_weight, setting


@dataclass
class CGateSettings(BaselineSettings):
    """CGATE's own setting beside the dense baselines' epochs and learning rate."""

    cgate_sparsity: float = setting(0.02, "weight of the sparsity objective (mean soft gate)")
    cgate_relevance: float = setting(0.1, "a channel is relevant to (and frozen after) a task when its gate fires on "
                                          "more than this fraction of the task's validation examples, in [0, 1)")

    def check(self) -> None:
        super().check()
        loss_weight(self, "cgate_sparsity")
        value = self.cgate_relevance
        if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
            raise ExssnetError(f"cgate_relevance must be in [0, 1), got {value!r}")


@register_method("cgate", settings=CGateSettings)
class CGate(DenseMethod):
    """Per-task channel gates with a sparsity objective; channels a finished task uses are frozen."""

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.anchors: dict[GatedLayer, dict[str, torch.Tensor]] = {}  # frozen filters' values, per gated layer
        self.channels_used: list[list[int]] = []  # per task: relevant channels per gated layer

    def new_net(self) -> MultiHeadNet:
        net = super().new_net()
        inject_gates(net.trunk)
        return net.to(self.device)

    def gated(self) -> list[GatedLayer]:
        return [m for m in self.net.trunk.modules() if isinstance(m, GatedLayer)]

    def set_task(self, task_id: int) -> None:
        for module in self.net.trunk.modules():
            if isinstance(module, (GatedLayer, PerTaskBatchNorm)):
                module.task = task_id

    def grow(self, task_id: int) -> None:
        super().grow(task_id)
        for module in self.net.trunk.modules():
            if isinstance(module, GatedLayer):
                module.add_task()
            elif isinstance(module, PerTaskBatchNorm):
                module.add_task(self.device)

    def before_task(self, task_id: int, task: TaskData) -> None:
        super().before_task(task_id, task)
        self.anchors = {layer: {name: p.detach().clone() for name, p in layer.layer.named_parameters()}
                        for layer in self.gated()}

    def task_logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        self.set_task(task_id)
        return self.net(x, task_id)

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        loss = F.cross_entropy(self.task_logits(x, task_id), y)
        soft = [layer.last_soft.mean() for layer in self.gated() if layer.last_soft is not None]
        if soft:
            loss = loss + self.settings.cgate_sparsity * torch.stack(soft).mean()
        return loss

    def after_backward(self, task_id: int) -> None:
        for layer in self.gated():
            for p in layer.layer.parameters():
                if p.grad is not None:
                    p.grad[layer.frozen] = 0.0

    @torch.no_grad()
    def after_step(self, x: Inputs, y: torch.Tensor, task_id: int, step: Step) -> None:
        for layer in self.gated():
            for name, p in layer.layer.named_parameters():
                p[layer.frozen] = self.anchors[layer][name][layer.frozen]

    @torch.no_grad()
    def after_task(self, task_id: int, task: TaskData) -> None:
        """Mark the channels whose gates fire on more than `cgate_relevance` of the task's validation
        examples (training examples without a validation split) as its relevant, frozen set."""
        layers = self.gated()
        for layer in layers:
            layer.start_counting()
        self.net.eval()
        split = task.val if len(task.val) else task.train
        for x, _ in split.batches(self.config.eval_batch_size):
            self.task_logits(x, task_id)
        for layer in layers:
            layer.finish_task(layer.firing_probability() > self.settings.cgate_relevance)
        self.channels_used.append([int(layer.relevant[-1].sum()) for layer in layers])

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        for i, layer in enumerate(self.gated()):
            state.put(f"cgate.relevant.{i}", {str(t): relevant for t, relevant in enumerate(layer.relevant)})
        state.values["cgate_channels_used"] = self.channels_used
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        for i, layer in enumerate(self.gated()):
            relevant = state.under(f"cgate.relevant.{i}", self.device)
            layer.relevant = [relevant[str(t)] for t in range(len(relevant))]
        self.channels_used = state.value("cgate_channels_used", list)

    def summary(self) -> dict:
        layers = self.gated()
        return {"cgate_channels_used": self.channels_used,
                "cgate_channels": [layer.out_channels for layer in layers],
                "cgate_frozen_fraction": sum(int(g.frozen.sum()) for g in layers) / sum(g.out_channels for g in layers)}
