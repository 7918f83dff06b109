"""Per-task non-affine BatchNorm: each task has its own running statistics and nothing shared."""

from __future__ import annotations

import torch
from torch import nn

_BN_BY_DIMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class MultitaskBatchNorm(nn.Module):
    """A list of `BatchNorm{1,2}d(affine=False)`, one per task; `task` selects which one runs."""

    def __init__(self, num_features: int, dims: int = 1, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        if dims not in _BN_BY_DIMS:
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        self.num_features, self.dims, self.eps, self.momentum = num_features, dims, eps, momentum
        self.norms = nn.ModuleList()
        self.task = -1

    def add_task(self, task: int) -> None:
        """Append fresh statistics for `task` (tasks are added in order)."""
        if task != len(self.norms):
            raise RuntimeError(f"BatchNorm tasks must be added in order: expected {len(self.norms)}, got {task}")
        norm = _BN_BY_DIMS[self.dims](self.num_features, eps=self.eps, momentum=self.momentum, affine=False)
        self.norms.append(norm)

    def copy_task(self, source: int, target: int) -> None:
        """Start `target`'s running statistics from `source`'s (a copy)."""
        self.norms[target].load_state_dict(self.norms[source].state_dict())

    def set_task(self, task: int) -> None:
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 0 <= self.task < len(self.norms):
            raise RuntimeError("no task is active on this BatchNorm: call SupermaskNet.set_task first")
        return self.norms[self.task](x)

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"{self.num_features}, dims={self.dims}, tasks={len(self.norms)}"
