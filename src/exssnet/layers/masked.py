"""Masked Linear / Conv1d / Conv2d: one shared weight, per-task scores, per-task binary masks.

A layer never decides phases on its own: `SupermaskNet` drives it through `add_task`,
`use_scores`, `commit`, `start_compact`/`end_compact`, `use_mask` and `superpose`. Finished tasks keep
a 1-bit packed mask (`packed_mask_<t>` buffers); their float scores are kept only if the net asks for it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.topk import (
    ThresholdTracker,
    kept_count,
    pack_mask,
    scatter_compact,
    score_masked_weight,
    superposed_mask,
    topk_mask,
    unpack_mask,
)


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
    """Mixin holding the supermask state of a layer with a `weight` parameter and no bias.

    The shared `weight` never has `requires_grad`: no optimizer, weight decay or training loop that
    is handed `net.parameters()` can move it. The mask phase trains `scores[str(t)]`; the weight phase
    trains `compact_weight`, a 1-D parameter holding only the trainable entries (free entries for
    ExSSNeT, the mask's entries for SSNeT), which `write_back` copies into `weight`.
    """

    weight: nn.Parameter
    compact_weight: nn.Parameter | None

    def _init_supermask(self, density: float) -> None:
        self.density = float(density)
        self.weight.requires_grad_(False)
        self.scores = nn.ParameterDict()
        self.register_buffer("union", torch.zeros_like(self.weight, dtype=torch.bool))
        self.register_parameter("compact_weight", None)
        self.register_buffer("compact_index", None, persistent=False)  # flat indices of compact_weight
        self.num_committed = 0
        self.mode = "mask"
        self.task = -1
        self._threshold = ThresholdTracker()  # warm-started top-k of the mask phase
        self._compact_base: torch.Tensor | None = None  # weight * mask, frozen during the weight phase
        self._ready: torch.Tensor | None = None  # weight * mask of the selected task (mask mode)
        self._ready_key: tuple | None = None  # weight storage/version `_ready` was computed from
        self._ready_mask_version = -1  # version of the packed mask `_ready` was computed from
        self._alphas: torch.Tensor | None = None
        self._superposed: list[int] = []  # tasks mixed in superpose mode

    # ----- task lifecycle -------------------------------------------------------------
    def add_task(self, task: int, initial_scores: torch.Tensor | None = None) -> None:
        """Create trainable scores for `task` (a copy of `initial_scores` when given)."""
        if initial_scores is None:
            initial_scores = init_scores(self.weight)
        elif initial_scores.shape != self.weight.shape:
            raise ValueError(f"initial scores shape {tuple(initial_scores.shape)} != weight {tuple(self.weight.shape)}")
        self.scores[str(task)] = nn.Parameter(initial_scores.detach().clone().to(self.weight.device))

    def replace_scores(self, task: int, scores: torch.Tensor | None = None) -> None:
        """Restart the uncommitted `task`'s scores from `scores` (a fresh draw when None)."""
        if task < self.num_committed or str(task) not in self.scores:
            raise RuntimeError(f"task {task} has no scores in training to replace")
        self.add_task(task, scores)
        self._threshold.reset()

    def commit(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Freeze `task`'s mask from its scores; return (mask, free) with free = mask AND NOT earlier union."""
        if task != self.num_committed:
            raise RuntimeError(f"tasks must be committed in order: expected {self.num_committed}, got {task}")
        mask = topk_mask(self.scores[str(task)], self.density)
        self._threshold.reset()  # the mask phase is over: free the tracker's mask and scratch tensors
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

    # ----- weight phase: one compact parameter of the trainable entries ------------------
    def start_compact(self, task: int, trainable: torch.Tensor) -> nn.Parameter:
        """Train only the entries `trainable` (boolean, weight-shaped, inside task's mask) as one 1-D parameter."""
        self.write_back()
        index = trainable.reshape(-1).nonzero().reshape(-1).to(self.weight.device)
        self.compact_index = index
        values = self.weight.detach().reshape(-1).index_select(0, index)
        self.compact_weight = nn.Parameter(values, requires_grad=index.numel() > 0)  # none left: nothing trains
        # contiguous whatever the weight's memory format (channels_last): the forward scatters by flat index
        self._compact_base = (self.weight.detach() * self.mask_of(task).to(self.weight.dtype)).contiguous()
        self.mode, self.task = "compact", task
        self._ready = self._ready_key = None
        return self.compact_weight

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the compact parameter's values into `weight` (the weight phase's results become shared)."""
        if self.compact_weight is None:
            return
        weight, values = self.weight, self.compact_weight.detach()
        if weight.is_contiguous():
            weight.view(-1).index_copy_(0, self.compact_index, values)
        else:  # e.g. channels_last: flat indices count in the logical (row-major) order
            flat = weight.contiguous()
            flat.view(-1).index_copy_(0, self.compact_index, values)
            weight.copy_(flat)

    def end_compact(self) -> None:
        """Write the trained entries back and drop the compact parameter and its optimizer-facing state."""
        self.write_back()
        self.compact_weight = None
        self.compact_index = None
        self._compact_base = None
        if self.mode == "compact":
            self.mode = "none"

    # ----- what the forward pass uses -------------------------------------------------
    def use_scores(self, task: int) -> None:
        """Mask from live top-k of `task`'s scores (mask phase; straight-through gradient)."""
        if str(task) not in self.scores:
            raise KeyError(f"no scores for task {task}")
        self.write_back()
        if self.mode != "scores" or self.task != task:
            self._threshold.reset()
        self.mode, self.task = "scores", task
        self._ready = self._ready_key = None
        self._alphas, self._superposed = None, []

    def use_compact(self) -> None:
        """Back to the weight phase's task after another task was selected."""
        if self.compact_weight is None:
            raise RuntimeError("this layer is not in a weight phase")
        self.mode = "compact"
        self._alphas, self._superposed = None, []

    def use_mask(self, task: int) -> None:
        """Fixed committed mask of `task`; its masked weight is computed now, not per forward call."""
        if not 0 <= task < self.num_committed:
            raise IndexError(f"task {task} has no committed mask (committed: {self.num_committed})")
        self.write_back()
        packed_version = getattr(self, f"packed_mask_{task}")._version
        if (self.mode == "mask" and self.task == task and self._ready_key == self._weight_key()
                and self._ready_mask_version == packed_version):
            return
        self.mode, self.task = "mask", task
        self._alphas, self._superposed = None, []
        self._refresh_ready()
        self._ready_mask_version = packed_version

    def superpose(self, tasks: list[int], alphas: torch.Tensor) -> None:
        """Weight `W * sum_i alphas[i] * M_tasks[i]` (SupSup one-shot task inference).

        The masks stay 1-bit packed: memory does not grow with the number of tasks mixed.
        """
        for t in tasks:
            if not 0 <= t < self.num_committed:
                raise IndexError(f"task {t} has no committed mask (committed: {self.num_committed})")
        self.write_back()
        self.mode, self.task = "superpose", -1
        self._ready = self._ready_key = None
        self._superposed, self._alphas = list(tasks), alphas

    def _weight_key(self) -> tuple:
        """Storage and in-place version of the weight (a move to another device or dtype changes the storage)."""
        weight = self.weight
        return (weight.data_ptr(), weight._version)

    def _refresh_ready(self) -> None:
        with torch.no_grad():
            self._ready = self.weight * self.mask_of(self.task).to(self.weight.dtype)
        self._ready_key = self._weight_key()

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass multiplies by, for the current mode."""
        mode = self.mode
        if mode == "mask":
            weight = self.weight
            if weight.requires_grad and torch.is_grad_enabled():
                return weight * self.mask_of(self.task).to(weight.dtype)
            if self._ready_key != self._weight_key():  # the weight changed in place or moved
                self._refresh_ready()
            assert self._ready is not None
            return self._ready
        if mode == "scores":
            scores = self.scores[str(self.task)]
            return score_masked_weight(self.weight, scores, self._threshold, kept_count(scores.numel(), self.density))
        if mode == "compact":
            assert self.compact_weight is not None and self._compact_base is not None
            if self._compact_base.device != self.compact_weight.device:
                self._compact_base = self._compact_base.to(self.compact_weight.device)
            if self.compact_weight.numel() == 0:  # nothing of this layer trains: its weight is the frozen base
                return self._compact_base
            return scatter_compact(self.compact_weight, self._compact_base, self.compact_index)
        if mode == "superpose":
            assert self._alphas is not None
            packed = [getattr(self, f"packed_mask_{t}") for t in self._superposed]
            return self.weight * superposed_mask(self._alphas, packed, self.weight.shape, self.weight.dtype)
        raise RuntimeError("no task is active on this layer: call SupermaskNet.set_task first")

    def cached_tensors(self) -> list[torch.Tensor]:
        """Tensors the layer holds besides its parameters and buffers (speed caches), for memory accounting."""
        cached = [self._ready, self._compact_base]
        return [t for t in cached if t is not None] + self._threshold.buffers

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
