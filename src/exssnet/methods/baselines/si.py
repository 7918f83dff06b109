"""Synaptic Intelligence (Zenke et al. 2017) on the shared trunk.

During a task each trunk parameter accumulates the path integral w += -grad * delta (grad of the
training loss before a step, delta the step's change). At the task's end its importance grows by
max(w, 0) / ((theta_end - theta_start)^2 + xi) (clamped so the penalty stays a
valid quadratic); the penalty is c * sum importance * (theta - theta_end)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.ewc import ParamDict, quadratic_penalty, snapshot
from exssnet.methods.loops import Step
from exssnet.methods.method_state import MethodState
from exssnet.settings import CoreSettings, Settings, finite_positive, loss_weight, setting


@dataclass
class SISettings(BaselineSettings):
    """Settings of si."""

    si_c: float = setting(0.5, "penalty strength")
    si_xi: float = setting(0.001, "damping of the importance denominator, > 0")

    def check(self) -> None:
        super().check()
        finite_positive(self, "si_xi")
        loss_weight(self, "si_c")


@register_method("si", settings=SISettings)
class SI(DenseMethod):
    """Importance from the loss decrease each parameter caused along its training path."""


    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        params = self.net.shared_parameters()
        self.importance: ParamDict = {name: torch.zeros_like(p) for name, p in params.items()}
        self.anchor: ParamDict = snapshot(params)
        self.path: ParamDict = {}
        self.task_start: ParamDict = {}
        self.before_step: ParamDict = {}
        self.grads: ParamDict = {}

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        loss = super().training_loss(x, y, task_id)
        if self.num_learned:
            loss = loss + self.settings.si_c * quadratic_penalty(self.net.shared_parameters(), self.importance, self.anchor)
        return loss

    def before_task(self, task_id: int, task: TaskData) -> None:
        super().before_task(task_id, task)
        params = self.net.shared_parameters()
        self.task_start = snapshot(params)
        self.path = {name: torch.zeros_like(p) for name, p in params.items()}

    def after_backward(self, task_id: int) -> None:
        params = self.net.shared_parameters()
        self.before_step = snapshot(params)
        self.grads = {name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                      for name, p in params.items()}

    def after_step(self, x: Inputs, y: torch.Tensor, task_id: int, step: Step) -> None:
        for name, p in self.net.shared_parameters().items():
            self.path[name] -= self.grads[name] * (p.detach() - self.before_step[name])

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        state.put("si.importance", self.importance)
        state.put("si.anchor", self.anchor)
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        self.importance = state.under("si.importance", self.device)
        self.anchor = state.under("si.anchor", self.device)

    def after_task(self, task_id: int, task: TaskData) -> None:
        params = self.net.shared_parameters()
        for name, p in params.items():
            change = p.detach() - self.task_start[name]
            self.importance[name] += self.path[name].clamp(min=0) / (change ** 2 + self.settings.si_xi)
        self.anchor = snapshot(params)
