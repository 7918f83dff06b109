"""Per-task dense classifiers: each task its own `Linear` weight (and bias), outside the masks.

WSN's networks (Kang et al., ICML 2022) mask every layer but the classifier and give each task a dense head of
its own, trained with the task's mask; `to_supermask(..., head="per-task")` builds that network from any model
by replacing its classifier (`exssnet.models.contract.find_classifier`) with a `TaskHeadLinear`. The default,
`head="masked"`, masks the shared classifier like every other layer (the ExSSNeT paper's network).

State is ordinary PyTorch state keyed by task id: `task_weight.<t>` and `task_bias.<t>` (when the classifier
had a bias), each as wide as the task's class count (WSN's `Linear(100, 10)` per task: a task's logits are
computed by its own head only, so an export of the task computes them bit for bit); loading a state dict
creates the slots it names. A task's head trains in its own phases only and
is frozen (no `requires_grad`) once the task is finished, so a finished task's logits never change.
`SupermaskNet` selects what the forward uses with `select`, as for the masked layers:
- a task id: that task's head;
- View.SUPERPOSED: `sum_i alphas[i] * head_{tasks[i]}(x)`, each head zero-padded to `out_features` (linear in the alphas, as a masked layer's
  superposed product, so SupSup's task inference differentiates through it);
- a phantom task (KKT's candidate subnetworks, `SupermaskNet.scored`): no head exists, the logits are zeros
  (KKT reads the classifier's inputs, never its outputs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.view import View


class TaskHeadLinear(nn.Linear):
    """An `nn.Linear`-shaped classifier holding one dense weight (and bias) per task.

    `start`: a Linear whose weight and bias every new task's head starts from (a pretrained model's own
    classifier, `init="keep"`); None: torch's default `nn.Linear` draw per task from the global generator.
    It subclasses `nn.Linear` so that whatever finds the classifier (KKT's feature hook, export, checkpoints)
    finds this layer; it has no `weight` of its own (`task_weight[str(t)]` per task).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, start: nn.Linear | None = None) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = in_features, out_features
        self.has_bias = bias
        self.task_weight = nn.ParameterDict()
        self.task_bias = nn.ParameterDict()
        self.start_weight: torch.Tensor | None
        self.start_bias: torch.Tensor | None
        self.register_buffer("start_weight", None if start is None else start.weight.detach().clone())
        self.register_buffer("start_bias", None if start is None or start.bias is None or not bias
                             else start.bias.detach().clone())
        self.view = View.NONE
        self.task = -1
        self._mixture: tuple[list[int], torch.Tensor] | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.task_weight)

    # ----- task slots ----------------------------------------------------------------------
    def add_task(self, task: int, num_classes: int) -> None:
        """A head of `num_classes` outputs for `task` (tasks are added in order): the first rows of the `start`
        classifier, else a fresh draw."""
        if task != self.num_tasks:
            raise RuntimeError(f"heads must be added in order: expected task {self.num_tasks}, got {task}")
        if not 0 < num_classes <= self.out_features:
            raise ValueError(f"a head of {num_classes} outputs does not fit a classifier of {self.out_features}")
        weight, bias = self.fresh_values(num_classes)
        self.task_weight[str(task)] = nn.Parameter(weight)
        if bias is not None:
            self.task_bias[str(task)] = nn.Parameter(bias)

    def fresh_values(self, num_classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A new head's weight and bias: copies of `start`'s first rows, else torch's default Linear draw."""
        if self.start_weight is not None:
            weight = self.start_weight[:num_classes].clone()
            bias = None if not self.has_bias else (self.start_bias[:num_classes].clone() if self.start_bias is not None
                                                   else torch.zeros(num_classes, device=weight.device))
            return weight, bias
        weight = torch.empty(num_classes, self.in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        bias = None
        if self.has_bias:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            bias = torch.empty(num_classes).uniform_(-bound, bound)
        return weight, bias

    def parameters_of(self, task: int) -> list[nn.Parameter]:
        """`task`'s head weight (and bias)."""
        key = str(task)
        return [self.task_weight[key]] + ([self.task_bias[key]] if key in self.task_bias else [])

    def task_state(self, task: int) -> list[torch.Tensor]:
        """Copies of `task`'s head tensors (for `reset_task`)."""
        return [p.detach().clone() for p in self.parameters_of(task)]

    def reset_task(self, task: int, state: list[torch.Tensor] | None = None) -> None:
        """`task`'s head again from a fresh start (`fresh_values`) or from `state` (from `task_state`)."""
        values = list(self.fresh_values(self.task_weight[str(task)].shape[0])) if state is None else list(state)
        with torch.no_grad():
            for param, value in zip(self.parameters_of(task), [v for v in values if v is not None]):
                param.copy_(value)

    def set_trainable(self, task: int | None) -> None:
        """Only `task`'s head requires grad (None: no head)."""
        for key in self.task_weight:
            train = task is not None and key == str(task)
            self.task_weight[key].requires_grad_(train)
            if key in self.task_bias:
                self.task_bias[key].requires_grad_(train)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # type: ignore[no-untyped-def]
        """Create the task slots the state dict names (`task_weight.<t>`, with its width), in order, then load."""
        named = {key[len(prefix) + len("task_weight."):] for key in state_dict if key.startswith(f"{prefix}task_weight.")}
        tasks = sorted(int(t) for t in named if t.isdigit())
        if tasks == list(range(len(tasks))):
            for task in range(self.num_tasks, len(tasks)):
                weight = state_dict[f"{prefix}task_weight.{task}"]
                if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
                    continue  # the load reports the mismatch
                self.task_weight[str(task)] = nn.Parameter(torch.empty_like(weight, device="cpu"))
                if f"{prefix}task_bias.{task}" in state_dict:
                    self.task_bias[str(task)] = nn.Parameter(torch.empty(weight.shape[0], dtype=weight.dtype))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ----- what the forward uses ----------------------------------------------------------------
    def select(self, view: View, task: int = -1, *, tasks: list[int] | None = None,
               alphas: torch.Tensor | None = None) -> None:
        """`task`'s head for any view naming a task; View.SUPERPOSED: the alphas' mixture of `tasks`' heads;
        View.NONE: nothing (the forward refuses); a view without a task (a phantom): zero logits."""
        self.view, self.task, self._mixture = view, task, None
        if view is View.SUPERPOSED:
            assert tasks is not None and alphas is not None
            self._mixture = (list(tasks), alphas)

    def task_output(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """`task`'s head on `x`, bias included, zero-padded to `out_features`: the derivative of the superposed
        output by the task's alpha."""
        return F.linear(x, self._padded(self.task_weight, task),
                        self._padded(self.task_bias, task) if self.has_bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mixture is not None:
            tasks, alphas = self._mixture
            weight = sum(a * self._padded(self.task_weight, t) for a, t in zip(alphas, tasks))
            bias = sum(a * self._padded(self.task_bias, t) for a, t in zip(alphas, tasks)) if self.has_bias else None
            return F.linear(x, weight, bias)  # type: ignore[arg-type]
        if self.view is View.NONE:
            raise RuntimeError("no task is active on this head: call SupermaskNet.set_task first")
        if self.task < 0:  # a phantom task has no head
            return x.new_zeros(*x.shape[:-1], self.out_features)
        key = str(self.task)
        return F.linear(x, self.task_weight[key], self.task_bias[key] if self.has_bias else None)

    def _padded(self, values: nn.ParameterDict, task: int) -> torch.Tensor:
        """`task`'s head tensor with zero rows up to `out_features`."""
        value = values[str(task)]
        missing = self.out_features - value.shape[0]
        return F.pad(value, (0, 0, 0, missing) if value.dim() == 2 else (0, missing)) if missing else value

    def plain_module(self, task: int) -> nn.Linear:
        """A plain `nn.Linear` holding `task`'s head, as wide as its class count (nothing shared with this layer)."""
        weight = self.task_weight[str(task)]
        plain = nn.Linear(self.in_features, weight.shape[0], bias=self.has_bias, device="meta")
        plain.weight = nn.Parameter(weight.detach().clone())
        if self.has_bias:
            plain.bias = nn.Parameter(self.task_bias[str(task)].detach().clone())
        return plain

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.has_bias}, tasks={self.num_tasks}"
