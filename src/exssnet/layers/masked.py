"""Masked Linear / Conv1d / Conv2d: one shared weight, per-task scores, per-task binary masks.

A layer may carry a frozen `bias` (the wrapped model's own, kept by `to_supermask`): shared by every
task, never trained, added after the masked product.

All per-task state is ordinary PyTorch state, keyed by task id (as PEFT keys `lora_A[name]`):
`scores[str(t)]` (a ParameterDict; a finished task's float scores stay only if the net asks for it)
and `masks[str(t)]` (a `TaskBuffers`: each finished task's mask packed 1 bit per weight), plus the
`union` buffer of all finished masks. `load_state_dict` creates the task slots a state dict names,
so a freshly wrapped layer loads a trained one's state.

What the forward pass uses is chosen by `select(view, ...)` with a `View`; `SupermaskNet` is the
only caller (`set_task`, `scored`, `superposed`). The task lifecycle (`add_task`, `commit`,
`start_compact` / `end_compact`) is also driven by it. `reference_forward` below is SupSup's masked
forward in a few lines: the fast paths here compute the same values and gradients (tests check it).
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.topk import (
    ThresholdTracker,
    joint_masked_weight,
    kept_count,
    pack_mask,
    scatter_compact,
    score_masked_weight,
    superposed_mask,
    topk_mask,
    unpack_mask,
)
from exssnet.layers.view import View


class _GetSubnet(torch.autograd.Function):
    """SupSup's GetSubnet: forward the 0/1 mask of the k largest inputs, backward the gradient unchanged."""

    @staticmethod
    def forward(ctx, magnitudes: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        mask = torch.zeros_like(magnitudes).flatten()
        mask[magnitudes.flatten().topk(k).indices] = 1.0
        return mask.view_as(magnitudes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def reference_forward(x: torch.Tensor, weight: torch.Tensor, scores: torch.Tensor, density: float,
                      op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.linear) -> torch.Tensor:
    """SupSup's masked forward, written plainly: the reference the fast `View.SCORES` path must equal.

    The mask keeps the `ceil(density * numel)` largest |scores|; the gradient passes straight through
    the top-k to |scores| (so d/dscores = d/dmask * sign(scores)). `op` is F.linear or a convolution.
    A finished task's forward is the same with the mask frozen: `op(x, weight * mask)`.
    """
    mask = _GetSubnet.apply(scores.abs(), kept_count(scores.numel(), density))
    return op(x, weight * mask)


class TaskBuffers(nn.Module):
    """Buffers keyed by task id (`str(t)`), like an `nn.ParameterDict` of buffers; state dict keys `<t>`.

    Loading a state dict creates the slots it names (with the stored shape and dtype), so a module
    built without tasks loads one that has them.
    """

    def __setitem__(self, key: str, value: torch.Tensor) -> None:
        self.register_buffer(key, value)

    def __getitem__(self, key: str) -> torch.Tensor:
        value = self._buffers[key]
        assert value is not None
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._buffers

    def __len__(self) -> int:
        return len(self._buffers)

    def keys(self) -> list[str]:
        return list(self._buffers)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # type: ignore[no-untyped-def]
        for key, value in state_dict.items():
            name = key[len(prefix):]
            if key.startswith(prefix) and "." not in name and name not in self._buffers and isinstance(value, torch.Tensor):
                self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


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
    """Mixin holding the supermask state of a layer with a `weight` parameter (and a frozen `bias` or None).

    The shared `weight` never has `requires_grad`: no optimizer, weight decay or training loop that
    is handed `net.parameters()` can move it. The mask phase trains `scores[str(t)]`; the weight phase
    trains `compact_weight`, a 1-D parameter holding only the trainable entries (free entries for
    ExSSNeT, the mask's entries for SSNeT), copied into `weight` when the phase ends or another view
    is selected.
    """

    weight: nn.Parameter
    compact_weight: nn.Parameter | None

    def _init_supermask(self, density: float) -> None:
        self.density = float(density)
        self.weight.requires_grad_(False)
        self.scores = nn.ParameterDict()
        self.masks = TaskBuffers()
        self.register_buffer("union", torch.zeros_like(self.weight, dtype=torch.bool))
        self.register_parameter("compact_weight", None)
        self.register_buffer("compact_index", None, persistent=False)  # flat indices of compact_weight
        self.view = View.NONE
        self.task = -1
        self._threshold = ThresholdTracker()  # warm-started top-k of the mask phase
        self._phantom: torch.Tensor | None = None  # scores given to `select(View.SCORES, scores=...)`
        self._compact_base: torch.Tensor | None = None  # weight * mask, frozen during the weight phase
        self._ready: torch.Tensor | None = None  # weight * mask of the selected task (View.MASK)
        self._ready_key: tuple | None = None  # weight storage/version `_ready` was computed from
        self._ready_mask_version = -1  # version of the packed mask `_ready` was computed from
        self._alphas: torch.Tensor | None = None
        self._superposed: list[int] = []  # tasks mixed in View.SUPERPOSED

    @property
    def num_committed(self) -> int:
        """Number of finished (committed) tasks: tasks 0 .. num_committed - 1 have a mask."""
        return len(self.masks)

    def _frozen_bias(self, size: int, wanted: bool) -> None:
        """Register `bias` (zeros, frozen; the wrap copies the model's values in) or None."""
        bias = nn.Parameter(torch.zeros(size, device=self.weight.device), requires_grad=False) if wanted else None
        self.register_parameter("bias", bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # type: ignore[no-untyped-def]
        """Create the score slots the state dict names (mask slots: `TaskBuffers` does it), then load."""
        scores_prefix = f"{prefix}scores."
        for key, value in state_dict.items():
            name = key[len(scores_prefix):]
            if key.startswith(scores_prefix) and "." not in name and name not in self.scores:
                self.scores[name] = nn.Parameter(torch.empty_like(value, device=self.weight.device),
                                                 requires_grad=False)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

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
        self.masks[str(task)] = pack_mask(mask)
        free = mask & ~self.union
        self.union |= mask
        return mask, free

    def drop_scores(self, task: int) -> None:
        """Forget the float scores of a committed task (its packed mask stays)."""
        if str(task) in self.scores:
            del self.scores[str(task)]

    def task_scores(self, task: int) -> torch.Tensor | None:
        """The float scores of `task` (detached), or None if the layer does not hold them."""
        key = str(task)
        return self.scores[key].detach() if key in self.scores else None

    def packed_mask(self, task: int) -> torch.Tensor:
        """The 1-bit packed mask of a committed task (uint8, `pack_mask` order)."""
        if not 0 <= task < self.num_committed:
            raise IndexError(f"task {task} has no committed mask (committed: {self.num_committed})")
        return self.masks[str(task)]

    def mask_of(self, task: int) -> torch.Tensor:
        """Boolean mask of a committed task."""
        return unpack_mask(self.packed_mask(task), self.weight.shape)

    # ----- weight phase: one compact parameter of the trainable entries ------------------
    def start_compact(self, task: int, trainable: torch.Tensor) -> nn.Parameter:
        """Train only the entries `trainable` (boolean, weight-shaped, inside task's mask) as one 1-D parameter."""
        self._write_back()
        index = trainable.reshape(-1).nonzero().reshape(-1).to(self.weight.device)
        self.compact_index = index
        values = self.weight.detach().reshape(-1).index_select(0, index)
        self.compact_weight = nn.Parameter(values, requires_grad=index.numel() > 0)  # none left: nothing trains
        # contiguous whatever the weight's memory format (channels_last): the forward scatters by flat index
        self._compact_base = (self.weight.detach() * self.mask_of(task).to(self.weight.dtype)).contiguous()
        self.view, self.task = View.COMPACT, task
        self._ready = self._ready_key = None
        return self.compact_weight

    def start_joint(self, task: int, trainable: torch.Tensor) -> nn.Parameter:
        """WSN: `task`'s scores and the entries `trainable` (the free ones) of the whole weight train together.

        The forward is `topk(|scores|) * W'` where W' is the weight with the `trainable` entries taken
        from one 1-D parameter (returned); the mask is not committed yet (`commit` does it from the scores).
        """
        self.start_free(task, trainable)
        self.view = View.JOINT
        return self.compact_weight  # type: ignore[return-value]

    def start_free(self, task: int, trainable: torch.Tensor, base_mask: torch.Tensor | None = None) -> nn.Parameter:
        """Train the entries `trainable` of `weight * base_mask` (the whole weight when None) as one 1-D parameter.

        Unlike `start_compact` the task needs no committed mask (PackNet trains the free weights first,
        then prunes); the view is `View.COMPACT`.
        """
        self._write_back()
        index = trainable.reshape(-1).nonzero().reshape(-1).to(self.weight.device)
        self.compact_index = index
        values = self.weight.detach().reshape(-1).index_select(0, index)
        self.compact_weight = nn.Parameter(values, requires_grad=index.numel() > 0)
        base = self.weight.detach() if base_mask is None else self.weight.detach() * base_mask.to(self.weight.dtype)
        self._compact_base = base.contiguous().clone()
        self.view, self.task = View.COMPACT, task
        self._ready = self._ready_key = None
        self._threshold.reset()
        return self.compact_weight

    def commit_mask(self, task: int, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Freeze a given boolean `mask` as `task`'s (PackNet: the weights owned by tasks <= `task`); as `commit`."""
        if task != self.num_committed:
            raise RuntimeError(f"tasks must be committed in order: expected {self.num_committed}, got {task}")
        if mask.shape != self.weight.shape or mask.dtype != torch.bool:
            raise ValueError(f"a mask must be boolean shaped like the weight {tuple(self.weight.shape)}")
        mask = mask.to(self.union.device)
        self.masks[str(task)] = pack_mask(mask)
        free = mask & ~self.union
        self.union |= mask
        return mask, free

    @torch.no_grad()
    def zero_entries(self, entries: torch.Tensor) -> None:
        """Set the weight's `entries` (boolean, weight-shaped; none inside a committed mask) to 0 (PackNet's pruning)."""
        if (entries.to(self.union.device) & self.union).any():
            raise RuntimeError("cannot zero weights that a finished task's mask uses")
        self._write_back()
        self.weight.masked_fill_(entries.to(self.weight.device), 0.0)
        self._ready = self._ready_key = None

    @torch.no_grad()
    def _write_back(self) -> None:
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
        self._write_back()
        self.compact_weight = None
        self.compact_index = None
        self._compact_base = None
        if self.view is View.COMPACT:
            self.view = View.NONE

    # ----- what the forward pass uses: one entry point ----------------------------------
    def select(self, view: View, task: int = -1, *, scores: torch.Tensor | None = None,
               tasks: list[int] | None = None, alphas: torch.Tensor | None = None) -> None:
        """Choose the weight the forward pass uses (called by `SupermaskNet` only).

        View.SCORES: live top-k of `task`'s scores, or of `scores` when given (a phantom task);
        View.COMPACT: the weight phase's task (after another view was selected);
        View.MASK: `task`'s committed mask; View.SUPERPOSED: `W * sum_i alphas[i] * M_tasks[i]`;
        View.NONE: nothing (the forward refuses to run). Any view but COMPACT first writes a weight
        phase's trained entries into the shared weight, so every task sees them.
        """
        if view is not View.COMPACT:
            self._write_back()
        if view is View.SCORES:
            self._select_scores(task, scores)
        elif view is View.COMPACT:
            if self.compact_weight is None:
                raise RuntimeError("this layer is not in a weight phase")
            self.view = View.COMPACT
        elif view is View.MASK:
            self._select_mask(task)
        elif view is View.JOINT:
            if self.compact_weight is None or str(task) not in self.scores:
                raise RuntimeError(f"this layer is not training task {task}'s scores and free weights together")
            if self.view is not View.JOINT or self.task != task:
                self._threshold.reset()
            self.view, self.task = View.JOINT, task
        elif view is View.SUPERPOSED:
            if tasks is None or alphas is None:
                raise ValueError("View.SUPERPOSED needs tasks and alphas")
            for t in tasks:
                self.packed_mask(t)  # a clear error for a task without a mask
            self.view, self.task = View.SUPERPOSED, -1
            self._ready = self._ready_key = None
            self._superposed, self._alphas = list(tasks), alphas
            return
        else:
            self.view, self.task = View.NONE, -1
            self._ready = self._ready_key = None
        if view is not View.SCORES:
            self._phantom = None
        self._alphas, self._superposed = None, []

    def _select_scores(self, task: int, scores: torch.Tensor | None) -> None:
        if scores is not None:
            if scores.shape != self.weight.shape:
                raise ValueError(f"scores shape {tuple(scores.shape)} != weight {tuple(self.weight.shape)}")
            self._threshold.reset()
            self._phantom = scores.detach().to(self.weight.device)
            self.view, self.task = View.SCORES, -1
        else:
            if str(task) not in self.scores:
                raise KeyError(f"no scores for task {task}")
            if self.view is not View.SCORES or self.task != task or self._phantom is not None:
                self._threshold.reset()
            self._phantom = None
            self.view, self.task = View.SCORES, task
        self._ready = self._ready_key = None

    def _select_mask(self, task: int) -> None:
        packed_version = self.packed_mask(task)._version
        if (self.view is View.MASK and self.task == task and self._ready_key == self._weight_key()
                and self._ready_mask_version == packed_version):
            return
        self.view, self.task = View.MASK, task
        self._refresh_ready()
        self._ready_mask_version = packed_version

    def _weight_key(self) -> tuple:
        """Storage and in-place version of the weight (a move to another device or dtype changes the storage)."""
        weight = self.weight
        return (weight.data_ptr(), weight._version)

    def _refresh_ready(self) -> None:
        with torch.no_grad():
            self._ready = self.weight * self.mask_of(self.task).to(self.weight.dtype)
        self._ready_key = self._weight_key()

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass multiplies by, for the selected view."""
        view = self.view
        if view is View.MASK:
            weight = self.weight
            if weight.requires_grad and torch.is_grad_enabled():
                return weight * self.mask_of(self.task).to(weight.dtype)
            if self._ready_key != self._weight_key():  # the weight changed in place or moved
                self._refresh_ready()
            assert self._ready is not None
            return self._ready
        if view is View.SCORES:
            scores = self._phantom if self._phantom is not None else self.scores[str(self.task)]
            return score_masked_weight(self.weight, scores, self._threshold, kept_count(scores.numel(), self.density))
        if view is View.COMPACT:
            assert self.compact_weight is not None and self._compact_base is not None
            if self._compact_base.device != self.compact_weight.device:
                self._compact_base = self._compact_base.to(self.compact_weight.device)
            if self.compact_weight.numel() == 0:  # nothing of this layer trains: its weight is the frozen base
                return self._compact_base
            return scatter_compact(self.compact_weight, self._compact_base, self.compact_index)
        if view is View.JOINT:
            assert self.compact_weight is not None and self._compact_base is not None
            weight = self._compact_base
            if weight.device != self.compact_weight.device:
                weight = self._compact_base = weight.to(self.compact_weight.device)
            scores = self.scores[str(self.task)]
            return joint_masked_weight(self.compact_weight, weight, self.compact_index, scores, self._threshold,
                                       kept_count(scores.numel(), self.density))
        if view is View.SUPERPOSED:
            assert self._alphas is not None
            packed = [self.masks[str(t)] for t in self._superposed]
            return self.weight * superposed_mask(self._alphas, packed, self.weight.shape, self.weight.dtype)
        raise RuntimeError("no task is active on this layer: call SupermaskNet.set_task first")

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The layer's operation (linear or convolution, its own stride/padding) with an explicit weight and
        without the frozen bias: linear in `weight` (the forward pass adds the bias)."""
        raise NotImplementedError

    def task_output(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """The layer's product for `x` under `task`'s committed mask, whatever view is selected, without the
        frozen bias: linear in the mask, so it is d(superposed output) / d(task's coefficient)."""
        return self.apply_weight(x, self.weight * self.mask_of(task).to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_weight(x, self.effective_weight())

    def plain_module(self, task: int) -> nn.Module:
        """A plain torch layer (the torch class this layer extends, same configuration) computing what this
        layer computes under committed `task`: weight = weight * mask (weight-phase entries included), and
        `bias` when the layer has one. Nothing is shared with this layer."""
        torch_type = _torch_base(type(self))
        accepted = inspect.signature(torch_type.__init__).parameters
        config = {name: getattr(self, name) for name in accepted
                  if name not in ("self", "bias", "device", "dtype") and hasattr(self, name)}
        bias = getattr(self, "bias", None)
        if "bias" in accepted:
            config["bias"] = bias is not None
        plain = torch_type(**config, device="meta")  # no initial draw: the parameters are assigned below
        plain.weight = nn.Parameter(self.weight.detach() * self.mask_of(task).to(self.weight.dtype))
        if bias is not None:
            plain.bias = nn.Parameter(bias.detach().clone())
        return plain

    def cached_tensors(self) -> list[torch.Tensor]:
        """Tensors the layer holds besides its parameters and buffers (speed caches), for memory accounting."""
        cached = [self._ready, self._compact_base, self._phantom]
        return [t for t in cached if t is not None] + self._threshold.buffers

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"{super().extra_repr()}, density={self.density}, tasks={self.num_committed}"


def _torch_base(layer_type: type) -> type[nn.Module]:
    """The torch layer class a masked layer class extends (nn.Linear for MaskedLinear, nn.Conv2d for MaskedConv2d)."""
    for base in layer_type.__mro__:
        if base.__module__.startswith("torch.nn.") and base is not nn.Module and not base.__name__.startswith("_"):
            return base
    raise TypeError(f"{layer_type.__name__} extends no torch layer class")


class MaskedLinear(MaskedLayer, nn.Linear):
    """`nn.Linear` whose weight is masked per task (a `bias`, when asked for, is frozen and shared)."""

    def __init__(self, in_features: int, out_features: int, density: float, bias: bool = False) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=False)
        signed_kaiming_constant_(self.weight)
        self._init_supermask(density)
        self._frozen_bias(out_features, bias)

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class _MaskedConv(MaskedLayer):
    """Shared body of the masked convolutions; `_torch_conv` is the torch class it extends."""

    _torch_conv: type[nn.Module]

    def __init__(self, *args, density: float, **kwargs) -> None:
        bias = bool(kwargs.pop("bias", False))
        self._torch_conv.__init__(self, *args, bias=False, **kwargs)
        signed_kaiming_constant_(self.weight)
        self._init_supermask(density)
        self._frozen_bias(self.out_channels, bias)  # type: ignore[attr-defined]

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, weight, None)  # type: ignore[attr-defined]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)  # type: ignore[attr-defined]


class MaskedConv1d(_MaskedConv, nn.Conv1d):
    """`nn.Conv1d` whose weight is masked per task."""

    _torch_conv = nn.Conv1d


class MaskedConv2d(_MaskedConv, nn.Conv2d):
    """`nn.Conv2d` whose weight is masked per task."""

    _torch_conv = nn.Conv2d
