"""EWC (Kirkpatrick et al. 2017) and online EWC (Schwarz et al. 2018) on the shared trunk.

After each task the diagonal empirical Fisher of the trunk parameters is estimated from gradients of the task's
log-likelihood (true labels, eval-mode BatchNorm) over `ewc_fisher_examples` training examples (default
FISHER_EXAMPLES; 0: all): per example (`ewc_fisher_batch: 1`, the empirical Fisher), or, as in the public code of
HAT (Serra et al. 2018), whose EWC later papers rerun on Permuted MNIST (`fisher_matrix_diag`: batches of 20 over the
whole training split), the squared gradient of each batch's mean loss times the batch's size, averaged over the
examples. The batch estimate is smaller wherever per-example gradients disagree (about B times smaller where they
are pure noise), so the same lambda is a weaker penalty. The penalty is lambda/2 * sum F * (theta - anchor)^2:
- ewc keeps one (Fisher, anchor) pair per finished task (`ewc_merge: per-task`), or one pair whose Fisher is the
  mean over the finished tasks, anchored at the parameters after the newest (`ewc_merge: mean`, the variant in the
  public code of HAT (Serra et al. 2018): the penalty's curvature does not grow with the number of tasks);
- online-ewc keeps one pair: F <- gamma * F + F_new, anchor <- the parameters after the newest task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from exssnet.data.tasks import Benchmark, Inputs, TaskData, take
from exssnet.errors import ExssnetError
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.methods.method_state import MethodState
from exssnet.modes import evaluating
from exssnet.settings import CoreSettings, Settings, at_least_one, loss_weight, setting

FISHER_EXAMPLES = 1024
ParamDict = dict[str, torch.Tensor]


def diagonal_fisher(net: MultiHeadNet, task_id: int, task: TaskData, max_examples: int = FISHER_EXAMPLES,
                    batch: int = 1) -> ParamDict:
    """Diagonal Fisher of the log-likelihood w.r.t. each trunk parameter over the first `max_examples` training
    examples (0: all): sum over batches of `batch` examples of |batch| * (gradient of the batch's mean loss)^2,
    divided by the examples (`batch` 1: the mean squared per-example gradient)."""
    params = net.shared_parameters()
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    n = len(task.train) if max_examples == 0 else min(len(task.train), max_examples)
    with evaluating(net):
        for start in range(0, n, batch):
            index = torch.arange(start, min(n, start + batch), device=task.train.y.device)
            loss = F.cross_entropy(net(take(task.train.x, index), task_id), task.train.y[index])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads):
                if grad is not None:
                    fisher[name] += len(index) * grad.detach() ** 2
    return {name: value / max(n, 1) for name, value in fisher.items()}


def snapshot(params: dict[str, torch.Tensor]) -> ParamDict:
    """Detached copies of the named parameters."""
    return {name: p.detach().clone() for name, p in params.items()}


def quadratic_penalty(params: dict[str, torch.nn.Parameter], importance: ParamDict, anchor: ParamDict) -> torch.Tensor:
    """sum importance * (theta - anchor)^2 over the named parameters."""
    total = next(iter(params.values())).new_zeros(())
    for name, p in params.items():
        total = total + (importance[name] * (p - anchor[name]) ** 2).sum()
    return total


@dataclass
class EWCSettings(BaselineSettings):
    """Settings of ewc (online-ewc adds the Fisher decay)."""

    ewc_lambda: float = setting(100.0, "penalty strength")
    ewc_merge: str = setting("per-task", "ewc: 'per-task' (Fisher, anchor) pairs, or one pair with the 'mean' Fisher "
                                         "of the finished tasks anchored at the newest parameters")
    ewc_fisher_batch: int = setting(1, "examples per gradient of the Fisher estimate: 1 = per-example (the empirical "
                                       "Fisher); B > 1 = |batch| x (gradient of each batch's mean loss)^2, HAT's code (B 20)")
    ewc_fisher_examples: int = setting(FISHER_EXAMPLES, "training examples the Fisher is estimated on (the first ones of "
                                                        "the task's training split); 0: all of them")

    def check(self) -> None:
        super().check()
        loss_weight(self, "ewc_lambda")
        at_least_one(self, "ewc_fisher_batch")
        if self.ewc_fisher_examples < 0:
            raise ExssnetError(f"ewc_fisher_examples must be >= 0 (0: every training example), got {self.ewc_fisher_examples}")
        if self.ewc_merge not in ("per-task", "mean"):
            raise ExssnetError(f"ewc_merge must be 'per-task' or 'mean', got {self.ewc_merge!r}")


@dataclass
class OnlineEWCSettings(EWCSettings):
    """Settings of online-ewc."""

    ewc_gamma: float = setting(1.0, "decay of the accumulated Fisher, in [0, 1]")

    def check(self) -> None:
        super().check()
        if self.ewc_merge != "per-task":
            raise ExssnetError("online-ewc folds the Fisher with ewc_gamma; ewc_merge is ewc's setting")
        if not 0.0 <= self.ewc_gamma <= 1.0:
            raise ExssnetError(f"ewc_gamma must be in [0, 1] (the Fisher decay), got {self.ewc_gamma}")


@register_method("ewc", settings=EWCSettings)
class EWC(DenseMethod):
    """Elastic weight consolidation with one (Fisher, anchor) pair per finished task."""

    online = False

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.consolidated: list[tuple[ParamDict, ParamDict]] = []  # (Fisher, anchor) pairs
        self.fisher_tasks = 0  # finished tasks whose Fisher is in `consolidated`

    def consolidate(self, fisher: ParamDict, anchor: ParamDict) -> None:
        """Add a finished task's Fisher and anchor (online: fold it into the single decayed pair; `ewc_merge` mean:
        into the single pair whose Fisher is the mean over the finished tasks)."""
        anchor = snapshot(anchor)
        if self.consolidated and (self.online or self.settings.ewc_merge == "mean"):
            old, _ = self.consolidated[0]
            if self.online:
                fisher = {name: self.settings.ewc_gamma * old[name] + fisher[name] for name in fisher}
            else:
                seen = self.fisher_tasks  # tasks the old mean covers
                fisher = {name: (seen * old[name] + fisher[name]) / (seen + 1) for name in fisher}
            self.consolidated = []
        self.consolidated.append((fisher, anchor))
        self.fisher_tasks += 1

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        for i, (fisher, anchor) in enumerate(self.consolidated):
            state.put(f"ewc.{i}.fisher", fisher)
            state.put(f"ewc.{i}.anchor", anchor)
        state.values["ewc_pairs"] = len(self.consolidated)
        state.values["ewc_fisher_tasks"] = self.fisher_tasks
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        self.consolidated = [(state.under(f"ewc.{i}.fisher", self.device), state.under(f"ewc.{i}.anchor", self.device))
                             for i in range(state.value("ewc_pairs", int))]
        self.fisher_tasks = state.value("ewc_fisher_tasks", int)

    def penalty(self) -> torch.Tensor:
        params = self.net.shared_parameters()
        total = next(iter(params.values())).new_zeros(())
        for fisher, anchor in self.consolidated:
            total = total + quadratic_penalty(params, fisher, anchor)
        return 0.5 * self.settings.ewc_lambda * total

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        return super().training_loss(x, y, task_id) + self.penalty()

    def after_task(self, task_id: int, task: TaskData) -> None:
        settings = self.settings
        fisher = diagonal_fisher(self.net, task_id, task, settings.ewc_fisher_examples, settings.ewc_fisher_batch)
        self.consolidate(fisher, self.net.shared_parameters())


@register_method("online-ewc", settings=OnlineEWCSettings)
class OnlineEWC(EWC):
    """Online EWC: one Fisher decayed by ewc_gamma per task, anchored at the newest parameters."""

    online = True
