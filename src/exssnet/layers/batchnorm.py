"""Per-task BatchNorm: each task has its own running statistics; an affine `weight` / `bias`, when the
wrapped model had one, is kept frozen and shared by every task (applied after the normalisation).

The statistics live in `norms[t]` (state dict keys `norms.<t>.running_mean` ...); loading a state
dict creates the task slots it names. `SupermaskNet` selects what the forward uses with `select`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.view import View

SUPERPOSE_RULES = ("mixture", "batch")

_BN_BY_DIMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def running_factor(norm: nn.Module) -> float:
    """The update factor of `norm`'s running statistics for the batch just counted in `num_batches_tracked`.

    The plain mean of the batches so far until 1/momentum batches were seen, the exponential average
    (`momentum`) after: the starting mean 0 / variance 1 never weigh in. With torch's rule alone they keep
    weight (1 - momentum)^n after n batches (21% after 15), which dwarfs the true variance of a supermask's
    small activations on a short task and leaves evaluation far from training.
    """
    count = float(norm.num_batches_tracked)
    return 1.0 / count if norm.momentum is None else max(norm.momentum, 1.0 / count)


class MultitaskBatchNorm(nn.Module):
    """A list of `BatchNorm{1,2,3}d(affine=False)`, one per task; `task` selects which one runs.

    `affine=True` adds a frozen `weight` and `bias` (ones and zeros; the wrap copies the model's values in).
    """

    def __init__(self, num_features: int, dims: int = 1, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False) -> None:
        super().__init__()
        if dims not in _BN_BY_DIMS:
            raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
        self.num_features, self.dims, self.eps, self.momentum = num_features, dims, eps, momentum
        self.affine = affine
        self.export_affine = affine  # `plain_module` gives identity affine values when the wrapped BatchNorm had some
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=False) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=False) if affine else None
        self.norms = nn.ModuleList()
        self.task = -1
        self._active: nn.Module | None = None  # the selected task's BatchNorm
        self._unit_affine: tuple | None = None  # ((device, dtype), ones, zeros) for the training fast path
        self._superposed: tuple[torch.Tensor, torch.Tensor] | str | None = None

    def add_task(self, task: int) -> None:
        """Append fresh statistics for `task` (tasks are added in order)."""
        if task != len(self.norms):
            raise RuntimeError(f"BatchNorm tasks must be added in order: expected {len(self.norms)}, got {task}")
        norm = _BN_BY_DIMS[self.dims](self.num_features, eps=self.eps, momentum=self.momentum, affine=False)
        self.norms.append(norm)

    @property
    def num_tasks(self) -> int:
        return len(self.norms)

    def statistics(self, task: int) -> dict[str, torch.Tensor]:
        """`task`'s running statistics (the tensors themselves, not copies): running_mean, running_var, num_batches_tracked."""
        return dict(self.norms[task].named_buffers())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # type: ignore[no-untyped-def]
        """Create the task slots the state dict names (`norms.<t>.*`), in order, then load."""
        wanted = {key[len(prefix) + len("norms."):].split(".", 1)[0] for key in state_dict
                  if key.startswith(f"{prefix}norms.")}
        tasks = sorted(int(t) for t in wanted if t.isdigit())
        if tasks and tasks == list(range(len(tasks))):
            device = next((n.running_mean.device for n in self.norms), None)
            while len(self.norms) < len(tasks):
                self.add_task(len(self.norms))
                if device is not None:
                    self.norms[-1].to(device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def select(self, view: View, task: int = -1, *, tasks: list[int] | None = None, rule: str = "mixture") -> None:
        """Choose the statistics the forward uses (called by `SupermaskNet` only).

        View.SUPERPOSED: statistics standing for `tasks` by `rule` (see `superpose`; rule "batch" with
        no tasks: each batch's own statistics); any other view: `task`'s own statistics.
        """
        if view is View.SUPERPOSED:
            self.superpose(list(tasks or []), rule)
        else:
            self.set_task(task)

    def task_state(self, task: int) -> dict[str, torch.Tensor]:
        """A copy of `task`'s running statistics."""
        return {k: v.clone() for k, v in self.norms[task].state_dict().items()}

    def reset_task(self, task: int, state: dict[str, torch.Tensor] | None = None) -> None:
        """Start `task`'s running statistics again, or from `state` (from `task_state`)."""
        if state is None:
            self.norms[task].reset_running_stats()
        else:
            self.norms[task].load_state_dict(state)

    def plain_module(self, task: int) -> nn.Module:
        """A plain `BatchNorm{1,2,3}d` holding `task`'s running statistics (and num_batches_tracked), which
        normalises as this layer does for `task` in eval mode. It is affine only when there are affine values:
        the task's own (`norms[task].weight/bias`), else the layer's (`weight`/`bias`), else identity ones when
        the layer is affine or replaced an affine BatchNorm (`export_affine`: a freshly built model loads the export strictly)."""
        source = self.norms[task]
        weight = getattr(source, "weight", None)
        bias = getattr(source, "bias", None)
        if weight is None and bias is None:
            weight, bias = getattr(self, "weight", None), getattr(self, "bias", None)
        affine = weight is not None or bias is not None or self.affine or self.export_affine
        stats = source.running_mean
        plain = _BN_BY_DIMS[self.dims](self.num_features, eps=self.eps, momentum=self.momentum, affine=affine,
                                       device=stats.device, dtype=stats.dtype)
        with torch.no_grad():
            plain.running_mean.copy_(source.running_mean)
            plain.running_var.copy_(source.running_var)
            plain.num_batches_tracked.copy_(source.num_batches_tracked)
            if weight is not None:
                plain.weight.copy_(weight)
            if bias is not None:
                plain.bias.copy_(bias)
        return plain

    def set_task(self, task: int) -> None:
        self.task = task
        self._superposed = None
        self._select(self.norms[task] if 0 <= task < len(self.norms) else None)

    def _select(self, norm: nn.Module | None) -> None:
        # a plain attribute, not a registered submodule: state_dict keys stay `norms.<t>.*`
        object.__setattr__(self, "_active", norm)

    def superpose(self, tasks: list[int], rule: str = "mixture") -> None:
        """Normalise with statistics standing for several tasks at once (task inference).

        rule "mixture": the equal-weight mixture of the tasks' running statistics (mean of means;
        variance of the mixture = mean of (var + mean^2) - mean^2), a per-example rule.
        rule "batch": the current batch's own statistics, as constants (no gradient flows through them,
        so examples do not interact through gradients). Neither rule updates any running statistic.
        """
        if rule not in SUPERPOSE_RULES:
            raise ValueError(f"BatchNorm superposition rule must be one of {SUPERPOSE_RULES}, got {rule!r}")
        self.task = -1
        self._select(None)
        if rule == "batch":
            self._superposed = "batch"
            return
        means = torch.stack([self.norms[t].running_mean for t in tasks])
        variances = torch.stack([self.norms[t].running_var for t in tasks])
        mean = means.mean(dim=0)
        self._superposed = (mean, (variances + means**2).mean(dim=0) - mean**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self._active
        if active is not None:
            if self.training:
                if x.dtype != active.running_mean.dtype:  # mixed precision (amp): the module's path, same factor
                    active.num_batches_tracked.add_(1)
                    return self._affine(F.batch_norm(x, active.running_mean, active.running_var, None, None, True,
                                                     running_factor(active), self.eps))
                return self._train_forward(active, x)
            # evaluation fast path: the selected task's running statistics, without a module call
            return F.batch_norm(x, active.running_mean, active.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        if self._superposed == "batch":
            dims = [d for d in range(x.dim()) if d != 1]
            mean, var = x.mean(dim=dims).detach(), x.var(dim=dims, unbiased=False).detach()
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, eps=self.eps)
        if self._superposed is not None:
            mean, var = self._superposed
            return F.batch_norm(x, mean, var.clamp_min(0.0), self.weight, self.bias, training=False, eps=self.eps)
        if not 0 <= self.task < len(self.norms):
            raise RuntimeError("no task is active on this BatchNorm: call SupermaskNet.set_task first")
        return self._affine(self.norms[self.task](x))

    def _affine(self, out: torch.Tensor) -> torch.Tensor:
        """`out * weight + bias` per channel (the frozen affine values), or `out` when there are none."""
        if self.weight is None or self.bias is None:
            return out
        shape = [1, -1] + [1] * (out.dim() - 2)
        return out * self.weight.reshape(shape).to(out.dtype) + self.bias.reshape(shape).to(out.dtype)

    def _train_forward(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """What `norm(x)` does in training (batch statistics, running averages updated), ~20% faster.

        The normalisation gets a constant weight of ones and bias of zeros: torch's CPU kernels take a
        quicker path with them than with none, and the values are the same (x * 1 + 0).
        """
        norm.num_batches_tracked.add_(1)
        factor = running_factor(norm)
        if self.weight is not None and self.bias is not None:  # the frozen affine values
            weight, bias = self.weight, self.bias
        else:
            key = (x.device, x.dtype)
            if self._unit_affine is None or self._unit_affine[0] != key:
                ones = torch.ones(self.num_features, device=x.device, dtype=x.dtype)
                self._unit_affine = (key, ones, torch.zeros_like(ones))
            _, weight, bias = self._unit_affine
        return F.batch_norm(x, norm.running_mean, norm.running_var, weight, bias, True, factor, self.eps)

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"{self.num_features}, dims={self.dims}, tasks={len(self.norms)}"
