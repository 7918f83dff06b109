"""Masked Linear / Conv1d / Conv2d: one shared weight, per-task scores, per-task binary masks.

A layer never decides phases on its own: `SupermaskNet` drives it through `add_task`,
`use_scores`, `commit`, `use_mask` and `superpose`. Finished tasks keep a 1-bit packed mask
(`packed_mask_<t>` buffers); their float scores are kept only if the net asks for it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.topk import (
    masked_weight_with_grad_mask,
    pack_mask,
    straight_through_mask,
    superposed_mask,
    topk_mask,
    unpack_mask,
)

_MODES = ("scores", "mask", "superpose")


def signed_kaiming_constant_(weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Fill `weight` in place with +-sqrt(2 / fan_in), signs drawn at random."""
    fan_in = weight[0].numel()
    signs = torch.randint(0, 2, weight.shape, generator=generator, device="cpu").to(weight)
    with torch.no_grad():
        weight.copy_((signs * 2 - 1) * math.sqrt(2.0 / fan_in))


def init_scores(weight: torch.Tensor) -> torch.Tensor:
    """Fresh float scores shaped like `weight`: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    scores = torch.empty_like(weight, dtype=torch.float32)
    nn.init.kaiming_uniform_(scores, a=math.sqrt(5))
    return scores


class MaskedLayer(nn.Module):
    """Mixin holding the supermask state of a layer with a `weight` parameter and no bias."""

    weight: nn.Parameter

    def _init_supermask(self, density: float) -> None:
        self.density = float(density)
        self.scores = nn.ParameterDict()
        self.register_buffer("union", torch.zeros_like(self.weight, dtype=torch.bool))
        self.num_committed = 0
        self.mode = "mask"
        self.task = -1
        self._mask: torch.Tensor | None = None  # float 0/1 mask of the active task
        self._grad_mask: torch.Tensor | None = None  # where the weight may receive gradient
        self._alphas: torch.Tensor | None = None
        self._frozen_weight: tuple[tuple, torch.Tensor] | None = None  # (key, weight * mask) for no-grad use
        self._superposed: list[int] = []  # tasks mixed in superpose mode

    # ----- task lifecycle -------------------------------------------------------------
    def add_task(self, task: int, initial_scores: torch.Tensor | None = None) -> None:
        """Create trainable scores for `task` (a copy of `initial_scores` when given)."""
        if initial_scores is None:
            initial_scores = init_scores(self.weight)
        elif initial_scores.shape != self.weight.shape:
            raise ValueError(f"initial scores shape {tuple(initial_scores.shape)} != weight {tuple(self.weight.shape)}")
        self.scores[str(task)] = nn.Parameter(initial_scores.detach().clone().to(self.weight.device))

    def commit(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Freeze `task`'s mask from its scores; return (mask, free) with free = mask AND NOT earlier union."""
        if task != self.num_committed:
            raise RuntimeError(f"tasks must be committed in order: expected {self.num_committed}, got {task}")
        mask = topk_mask(self.scores[str(task)], self.density)
        self.register_buffer(f"packed_mask_{task}", pack_mask(mask))
        free = mask & ~self.union
        self.union |= mask
        self.num_committed += 1
        return mask, free

    def drop_scores(self, task: int) -> None:
        """Forget the float scores of a committed task (its packed mask stays)."""
        if str(task) in self.scores:
            del self.scores[str(task)]

    def mask_of(self, task: int) -> torch.Tensor:
        """Boolean mask of a committed task."""
        if not 0 <= task < self.num_committed:
            raise IndexError(f"task {task} has no committed mask (committed: {self.num_committed})")
        return unpack_mask(getattr(self, f"packed_mask_{task}"), self.weight.shape)

    # ----- what the forward pass uses -------------------------------------------------
    def use_scores(self, task: int) -> None:
        """Mask from live top-k of `task`'s scores (mask phase; straight-through gradient)."""
        if str(task) not in self.scores:
            raise KeyError(f"no scores for task {task}")
        self.mode, self.task = "scores", task
        self._mask = self._grad_mask = None
        self._alphas, self._superposed = None, []

    def use_mask(self, task: int, grad_mask: torch.Tensor | None = None) -> None:
        """Fixed committed mask of `task`; if `grad_mask` is given only it gets weight gradient."""
        self.mode, self.task = "mask", task
        self._mask = self.mask_of(task).to(self.weight.dtype)
        self._grad_mask = None if grad_mask is None else grad_mask.to(self.weight.dtype)
        self._alphas, self._superposed = None, []

    def superpose(self, tasks: list[int], alphas: torch.Tensor) -> None:
        """Weight `W * sum_i alphas[i] * M_tasks[i]` (SupSup one-shot task inference).

        The masks stay 1-bit packed: memory does not grow with the number of tasks mixed.
        """
        for t in tasks:
            if not 0 <= t < self.num_committed:
                raise IndexError(f"task {t} has no committed mask (committed: {self.num_committed})")
        self.mode, self.task = "superpose", -1
        self._mask = self._grad_mask = None
        self._superposed, self._alphas = list(tasks), alphas

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass multiplies by, for the current mode."""
        if self.mode == "scores":
            return self.weight * straight_through_mask(self.scores[str(self.task)], self.density)
        if self.mode == "superpose":
            assert self._alphas is not None
            packed = [getattr(self, f"packed_mask_{t}") for t in self._superposed]
            return self.weight * superposed_mask(self._alphas, packed, self.weight.shape, self.weight.dtype)
        if self._mask is None:
            raise RuntimeError("no task is active on this layer: call SupermaskNet.set_task first")
        if self._grad_mask is not None and self.weight.requires_grad:
            return masked_weight_with_grad_mask(self.weight, self._mask, self._grad_mask)
        if self.weight.requires_grad and torch.is_grad_enabled():
            return self.weight * self._mask
        return self._cached_masked_weight()

    def _cached_masked_weight(self) -> torch.Tensor:
        """`weight * mask`, recomputed only when the task, the mask or the weight's storage/version changes."""
        assert self._mask is not None
        key = (self.task, id(self._mask), self.weight.data_ptr(), self.weight._version, self.weight.dtype)
        if self._frozen_weight is None or self._frozen_weight[0] != key:
            self._frozen_weight = (key, self.weight.detach() * self._mask)
        return self._frozen_weight[1]

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"{super().extra_repr()}, density={self.density}, tasks={self.num_committed}"


class MaskedLinear(MaskedLayer, nn.Linear):
    """`nn.Linear` without bias whose weight is masked per task."""

    def __init__(self, in_features: int, out_features: int, density: float) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=False)
        signed_kaiming_constant_(self.weight)
        self._init_supermask(density)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())


class _MaskedConv(MaskedLayer):
    """Shared body of the masked convolutions; `_torch_conv` is the torch class it extends."""

    _torch_conv: type[nn.Module]

    def __init__(self, *args, density: float, **kwargs) -> None:
        kwargs["bias"] = False
        self._torch_conv.__init__(self, *args, **kwargs)
        signed_kaiming_constant_(self.weight)
        self._init_supermask(density)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), None)  # type: ignore[attr-defined]


class MaskedConv1d(_MaskedConv, nn.Conv1d):
    """`nn.Conv1d` without bias whose weight is masked per task."""

    _torch_conv = nn.Conv1d


class MaskedConv2d(_MaskedConv, nn.Conv2d):
    """`nn.Conv2d` without bias whose weight is masked per task."""

    _torch_conv = nn.Conv2d
