"""Turn any torch model into a supermask model and drive its per-task phases.

`to_supermask(model, density, init=...)` replaces every Linear, Embedding, Conv1d/2d/3d and
ConvTranspose1d/2d/3d with a masked layer (one shared weight: the paper's signed constants or the
model's own; its bias kept frozen) and every BatchNorm1d/2d/3d with a per-task BatchNorm (affine
values kept frozen with init="keep"), the way PEFT injects adapters; a module reused under several names becomes one
shared layer. Every other parameter (LayerNorm/GroupNorm affine, PReLU, raw parameters) is frozen
and shared by every task, so nothing an optimizer over `net.parameters()` can reach moves a
finished task; the wrap names those modules once. What
cannot run correctly is refused with the module's path (`check_wrappable`, and a check of the first
forward pass for masked weights used outside their layer). `SupermaskNet` keeps the phase order:

    add_task -> Phase.MASK -> [start_weight_phase -> Phase.WEIGHTS] -> finish_task -> Phase.DONE   (then the next add_task)

Every transition goes through one guard (`_advance`), which refuses an illegal one with an
ExssnetError and then sets `requires_grad` for the new phase; trainers take `trainable_parameters()`.
What the layers' forward uses is chosen through `set_task`, `scored` (KKT's candidate subnetworks)
and `superposed` (task inference): they are the only callers of the layers' `select`.

All per-task state is ordinary PyTorch state: masks, scores and BatchNorm statistics are keyed by
task id in the layers, and the task list (class count and phase per task) is the net's extra state.
So `to_supermask(build_model(...), density).load_state_dict(net.state_dict())` rebuilds `net`
exactly (the task slots are created by the load), and `torch.save(net.state_dict(), path)` works.
"""

from __future__ import annotations

import warnings
import weakref
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Collection, Iterator, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from exssnet.errors import ExssnetError, check_density
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear
from exssnet.layers.masked_more import (
    MaskedConv3d,
    MaskedConvTranspose1d,
    MaskedConvTranspose2d,
    MaskedConvTranspose3d,
    MaskedEmbedding,
)
from exssnet.layers.task_head import TaskHeadLinear
from exssnet.layers.topk import kept_count
from exssnet.layers.view import View
from exssnet.models.contract import find_classifier
from exssnet.modes import evaluating


class Phase(str, Enum):
    """Where a task is in the phase order."""

    MASK = "mask"  # its scores train (the weights are frozen)
    WEIGHTS = "weights"  # its mask is committed; compact copies of its trainable weights train (SSNeT / ExSSNeT)
    DONE = "done"  # nothing trains; the next task may start


# the phase a task may move to from each phase (a new task starts in MASK once the last one is DONE)
NEXT_PHASES: dict[Phase, tuple[Phase, ...]] = {
    Phase.MASK: (Phase.WEIGHTS, Phase.DONE),
    Phase.WEIGHTS: (Phase.DONE,),
    Phase.DONE: (Phase.MASK,),
}


class WeightRule(str, Enum):
    """Which weights of a task's mask train in its weight phase."""

    ALL = "all"  # SSNeT: every weight in the mask
    EXCLUSIVE = "exclusive"  # ExSSNeT: only weights no earlier task's mask uses


@dataclass
class TaskState:
    """Bookkeeping for one task: its class count and where it is in the phase order."""

    num_classes: int
    phase: Phase = Phase.MASK


_BATCHNORMS = {nn.BatchNorm1d: 1, nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}
_MASKED_CONVS = (
    (nn.Conv2d, MaskedConv2d), (nn.Conv1d, MaskedConv1d), (nn.Conv3d, MaskedConv3d),
    (nn.ConvTranspose1d, MaskedConvTranspose1d), (nn.ConvTranspose2d, MaskedConvTranspose2d),
    (nn.ConvTranspose3d, MaskedConvTranspose3d),
)
# the layer types that get masked
_MASKABLE = (nn.Linear, nn.Embedding, *(torch_type for torch_type, _ in _MASKED_CONVS))
INITS = ("signed-constant", "keep")  # `to_supermask(init=...)`
HEADS = ("masked", "per-task")  # `to_supermask(head=...)`
_SUPERMASK_LAYERS = (MaskedLayer, MultitaskBatchNorm, TaskHeadLinear)  # what a wrap leaves as it is


class WrapWarning(UserWarning):
    """What `to_supermask` tells once per wrap: parameters kept frozen, or the default initialisation taken."""


def _replacement(module: nn.Module, density: float, init: str = "signed-constant") -> nn.Module | None:
    """The supermask version of `module`, or None if it is kept as is.

    Masked layers get the paper's signed-constant weights (`init="signed-constant"`) or a copy of the
    module's own weights (`init="keep"`); a bias is copied either way. A BatchNorm's affine values are
    kept (frozen) with "keep"; "signed-constant" uses the paper's non-affine per-task BatchNorm.
    """
    if isinstance(module, _SUPERMASK_LAYERS):
        return None
    layer = _masked_layer(module, density)
    if layer is not None:
        with torch.no_grad():
            if init == "keep":
                layer.weight.copy_(module.weight)
            if getattr(module, "bias", None) is not None:
                layer.bias.copy_(module.bias)  # type: ignore[union-attr]
        return layer
    dims = _batchnorm_dims(module)
    if dims is not None:
        norm = MultitaskBatchNorm(module.num_features, dims=dims, eps=module.eps, momentum=module.momentum,  # type: ignore[arg-type]
                                  affine=init == "keep" and module.weight is not None and module.bias is not None)
        norm.export_affine = module.weight is not None and module.bias is not None  # an export loads into the original
        if norm.weight is not None and norm.bias is not None:
            with torch.no_grad():
                norm.weight.copy_(module.weight)  # type: ignore[arg-type]
                norm.bias.copy_(module.bias)  # type: ignore[arg-type]
        return norm
    return None


def _masked_layer(module: nn.Module, density: float) -> MaskedLayer | None:
    """A masked layer of `module`'s type and shape (weights drawn, bias zeros), or None for other modules."""
    if isinstance(module, nn.Linear):
        return MaskedLinear(module.in_features, module.out_features, density=density, bias=module.bias is not None)
    if isinstance(module, nn.Embedding):
        return MaskedEmbedding(module.num_embeddings, module.embedding_dim, density=density,
                               padding_idx=module.padding_idx, scale_grad_by_freq=module.scale_grad_by_freq)
    for torch_type, masked_type in _MASKED_CONVS:
        if isinstance(module, torch_type):
            conv: Any = module
            extra = {"output_padding": conv.output_padding} if conv.transposed else {}
            return masked_type(
                conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                padding_mode=conv.padding_mode, density=density, bias=conv.bias is not None, **extra,
            )
    return None


def _batchnorm_dims(module: nn.Module) -> int | None:
    """1, 2 or 3 for a BatchNorm{1,2,3}d (or a subclass), else None."""
    for torch_type, dims in _BATCHNORMS.items():
        if isinstance(module, torch_type):
            return dims
    return None


def check_wrappable(model: nn.Module) -> None:
    """Refuse, naming the module's path, what a supermask model cannot run correctly.

    - a lazy module whose shapes are not known yet (nothing to mask);
    - nn.MultiheadAttention: it multiplies its projection weights functionally, so masked
      projection layers would be bypassed;
    - a norm layer that keeps running statistics but is not a BatchNorm{1,2,3}d (e.g. InstanceNorm
      with track_running_stats=True, SyncBatchNorm): its statistics would be shared by every task;
    - a weight or bias of a layer to be replaced that is also registered elsewhere (tied weights):
      the masked layer gets a weight of its own and the tie would silently break;
    - nn.Embedding with `max_norm`: it rescales its table in place, under every task's mask.
    """
    owners: dict[int, list[tuple[str, nn.Module]]] = {}
    for path, module in _walk(model):
        for pname, param in module._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append((f"{path}.{pname}" if path else pname, module))
    for path, module in _walk(model):
        where = f"module {path or '(the model itself)'!r} ({type(module).__name__})"
        if isinstance(module, nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise ExssnetError(f"{where} is lazy and has no shape yet: run one forward pass on an example batch "
                               "before wrapping it as a supermask model, or give it explicit sizes")
        if isinstance(module, nn.MultiheadAttention):
            raise ExssnetError(f"{where} cannot be masked: it multiplies its projection weights functionally, "
                               "bypassing masked layers; build attention from nn.Linear projections instead")
        if isinstance(module, nn.Embedding) and module.max_norm is not None:
            raise ExssnetError(f"{where} has max_norm, which rescales the shared table in place; use max_norm=None")
        if (isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
                and (_batchnorm_dims(module) is None or isinstance(module, nn.SyncBatchNorm))):
            raise ExssnetError(f"{where} keeps running statistics, which every task would share; use "
                               "BatchNorm1d/2d/3d (per-task statistics) or track_running_stats=False")
        if _replacement_kind(module):
            for pname, param in module._parameters.items():
                others = [name for name, owner in owners.get(id(param), []) if owner is not module] if param is not None else []
                if others:
                    mine = f"{path}.{pname}" if path else pname
                    raise ExssnetError(f"{mine!r} is the same tensor as {others[0]!r} (tied weights): a supermask layer "
                                       "gets a masked weight of its own, which would silently untie them; untie them")


def _replacement_kind(module: nn.Module) -> bool:
    """True for the module types `_replacement` swaps out."""
    return isinstance(module, _MASKABLE) or _batchnorm_dims(module) is not None


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Every module under every name it has, except the insides of supermask layers."""
    yield prefix, module
    if isinstance(module, _SUPERMASK_LAYERS):
        return
    for name, child in module._modules.items():
        if child is not None:
            yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def inject_supermask_layers(
    model: nn.Module, density: float, replaced: dict[int, weakref.ref] | None = None, init: str = "signed-constant"
) -> nn.Module:
    """Replace Linear/Embedding/Conv/ConvTranspose/BatchNorm modules of `model` in place; returns `model`.

    A module object reachable under several names becomes one shared supermask layer. `replaced`,
    when given, collects weak references to the parameters of the modules that were swapped out.
    `init` is "signed-constant" (the paper's weights) or "keep" (the model's own); see `to_supermask`.
    """
    if init not in INITS:
        raise ExssnetError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
    check_wrappable(model)
    _inject(model, density, {}, replaced if replaced is not None else {}, init)
    return model


def _inject(model: nn.Module, density: float, memo: dict[int, nn.Module], replaced: dict[int, weakref.ref],
            init: str) -> None:
    for name, child in list(model._modules.items()):  # named_children() would skip a second name of a module
        if child is None:
            continue
        if id(child) in memo:
            if memo[id(child)] is not child:
                setattr(model, name, memo[id(child)])
            continue
        if isinstance(child, _SUPERMASK_LAYERS):
            memo[id(child)] = child
            continue  # already a supermask layer: its inner BatchNorms are per-task state
        replacement = _replacement(child, density, init)
        if replacement is None:
            memo[id(child)] = child
            _inject(child, density, memo, replaced, init)
        else:
            memo[id(child)] = replacement
            for param in child.parameters(recurse=False):
                replaced[id(param)] = weakref.ref(param)
            setattr(model, name, replacement)


class _WeightUseProbe(TorchFunctionMode):
    """Fails on a masked layer's raw weight used outside that layer's forward (the mask would be bypassed),
    and on a parameter of a module that was replaced (the model still calls a module held outside its tree)."""

    def __init__(self, guarded: dict[int, tuple[torch.Tensor, str]], replaced: dict[int, weakref.ref]) -> None:
        super().__init__()
        self.guarded, self.replaced = guarded, replaced
        self.depth = 0  # > 0 while a masked layer's own forward runs

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = func(*args, **(kwargs or {}))
        if self.depth == 0 and (getattr(func, "__name__", "") != "__get__" or isinstance(result, torch.Tensor)):
            for value in tree_flatten((args, kwargs or {}))[0]:
                if not isinstance(value, torch.Tensor):
                    continue
                guarded = self.guarded.get(id(value))
                if guarded is not None and guarded[0] is value:
                    raise ExssnetError(
                        f"the model uses the weight of masked layer {guarded[1]!r} outside that layer's forward "
                        f"({getattr(func, '__name__', func)}), e.g. tied weights or F.linear(x, layer.weight.t()): "
                        "the mask would be bypassed; give that computation its own nn.Linear/Conv layer")
                old = self.replaced.get(id(value))
                if old is not None and old() is value:
                    raise ExssnetError(
                        "the model calls a Linear/Conv/BatchNorm that was replaced by a supermask layer through a "
                        "reference held outside its module tree (a plain list or attribute): it would run dense; "
                        "register it as a submodule (nn.ModuleList) instead")
        return result


class SupermaskNet(nn.Module):
    """A model whose masked layers hold one subnetwork per task over shared weights."""

    def __init__(
        self, model: nn.Module, density: float, keep_scores: bool = False, replaced: dict[int, weakref.ref] | None = None
    ) -> None:
        super().__init__()
        self.density = check_density(density)
        self.model = model
        self.keep_scores = keep_scores
        self.init = "signed-constant"  # how `to_supermask` chose the masked weights ("signed-constant" or "keep")
        self.tasks: list[TaskState] = []
        self.active_task = -1
        self._replaced = replaced or {}  # weak references to the parameters of the modules swapped out
        self._weight_use_checked = False  # the first forward pass checks how the masked weights are used
        self._mask_phase_views: dict[int, View] = {}  # a task whose mask phase trains more than scores (WSN, PackNet)
        self.nested_masks = False  # PackNet: a task's mask may hold earlier tasks' (its count is not the density's)
        self._index_layers()
        self.register_load_state_dict_post_hook(SupermaskNet._after_load)
        if not self.masked_layers():
            raise ExssnetError("the model has no Linear or Conv layer to mask")
        self._set_trainable()

    # ----- structure ----------------------------------------------------------------
    def _index_layers(self) -> None:
        """Find the masked layers and BatchNorms once: walking the modules grows with the task count."""
        self._named_masked: list[tuple[str, MaskedLayer]] = []
        self._norms: list[MultitaskBatchNorm] = []
        self._heads: list[TaskHeadLinear] = []
        for name, module in self.model.named_modules():
            if isinstance(module, MaskedLayer):
                self._named_masked.append((name, module))
            elif isinstance(module, MultitaskBatchNorm):
                self._norms.append(module)
            elif isinstance(module, TaskHeadLinear):
                self._heads.append(module)

    def masked_layers(self) -> list[MaskedLayer]:
        return [layer for _, layer in self._named_masked]

    def named_masked_layers(self) -> Iterator[tuple[str, MaskedLayer]]:
        return iter(self._named_masked)

    def norm_layers(self) -> list[MultitaskBatchNorm]:
        return list(self._norms)

    @property
    def head(self) -> str:
        """The classifier: "masked" like every layer (one shared head), or "per-task" dense heads."""
        return "per-task" if self._heads else "masked"

    def head_layers(self) -> list[TaskHeadLinear]:
        """The per-task dense classifiers (`to_supermask(head="per-task")`; none with the masked head)."""
        return list(self._heads)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def device(self) -> torch.device:
        return self.masked_layers()[0].weight.device

    def check_task(self, task: int) -> int:
        """Return `task` if it names an existing task, else raise a clear error."""
        if not isinstance(task, int) or isinstance(task, bool) or not 0 <= task < self.num_tasks:
            raise ExssnetError(f"task id {task!r} is out of range: this model has {self.num_tasks} task(s) (ids 0..{self.num_tasks - 1})")
        return task

    # ----- phase order --------------------------------------------------------------
    def add_task(
        self, num_classes: int, initial_scores: dict[str, torch.Tensor] | None = None
    ) -> int:
        """Start a new task in its mask phase; optional initial scores per masked layer name (others start fresh).

        A class count the model's classifier cannot produce is refused (the head is found as
        `exssnet.models.contract.find_classifier` finds it; a model whose head cannot be told is not checked).
        """
        self._check_class_count(num_classes)
        self._advance(Phase.MASK)
        task = self.num_tasks
        for name, layer in self.named_masked_layers():
            layer.add_task(task, None if initial_scores is None else initial_scores.get(name))
        for norm in self.norm_layers():
            norm.add_task(task)
        for head in self.head_layers():
            head.add_task(task, num_classes)
        self.model.to(self.device)
        self.tasks.append(TaskState(num_classes=num_classes))
        self._set_trainable()
        self.set_task(task)
        return task

    def restart_task(self, initial_scores: dict[str, torch.Tensor] | None = None,
                     norm_states: list[dict[str, torch.Tensor]] | None = None,
                     head_states: list[list[torch.Tensor]] | None = None) -> None:
        """Start the current task's mask phase again from new scores (fresh draws for layers not given).

        Its BatchNorm statistics and per-task head start again too, or take `norm_states` and `head_states`
        (from `mask_phase_state`).
        Only the task in its mask phase changes: committed tasks and the shared weights stay as they are.
        """
        if self.phase is not Phase.MASK:
            raise ExssnetError(f"only a task in its mask phase can restart (phase {self.phase.value!r})")
        task = self.num_tasks - 1
        for name, layer in self.named_masked_layers():
            layer.replace_scores(task, None if initial_scores is None else initial_scores.get(name))
        for i, norm in enumerate(self.norm_layers()):
            norm.reset_task(task, None if norm_states is None else norm_states[i])
        for i, head in enumerate(self.head_layers()):
            head.reset_task(task, None if head_states is None else head_states[i])
        self._set_trainable()
        self.set_task(task)

    def mask_phase_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], list[list[torch.Tensor]]]:
        """Copies of what the current mask phase trained: its scores per layer, its BatchNorm statistics and
        its per-task heads (`restart_task(*state)` returns to it)."""
        if self.phase is not Phase.MASK:
            raise ExssnetError(f"no task is in its mask phase (phase {self.phase.value!r})")
        task = self.num_tasks - 1
        scores = {name: s.clone() for name, s in self.task_scores(task).items()}
        return (scores, [norm.task_state(task) for norm in self.norm_layers()],
                [head.task_state(task) for head in self.head_layers()])

    def start_weight_phase(self, exclusive: bool | WeightRule) -> None:
        """Freeze the current task's mask and let its weights train.

        exclusive=True / WeightRule.EXCLUSIVE (ExSSNeT): only free weights (mask AND NOT earlier tasks' masks) train.
        exclusive=False / WeightRule.ALL (SSNeT): every weight in the mask trains.
        Each layer trains one compact parameter holding just those entries (`trainable_parameters()`);
        the shared weights themselves never require grad, so nothing else can move them.
        """
        exclusive = exclusive is WeightRule.EXCLUSIVE if isinstance(exclusive, WeightRule) else bool(exclusive)
        task = self._advance(Phase.WEIGHTS)
        for layer in self.masked_layers():
            mask, free = layer.commit(task)
            layer.start_compact(task, free if exclusive else mask)
            if not self.keep_scores:
                layer.drop_scores(task)
        self.tasks[task].phase = Phase.WEIGHTS
        self._set_trainable()
        self.set_task(task)

    def start_joint_training(self) -> None:
        """WSN: the current task (just added, in its mask phase) trains its scores and the free weights together.

        The forward is `topk(|scores|) * W'`, W' the shared weight with every entry no finished task's mask
        uses taken from a compact parameter (`trainable_parameters()`: the scores and those). `finish_task`
        commits the top-k of the scores and writes the trained free entries into the shared weight; weights
        inside earlier masks never change.
        """
        task = self._mask_phase_task("train scores and free weights together")
        for layer in self.masked_layers():
            layer.start_joint(task, ~layer.union)
        self._mask_phase_views[task] = View.JOINT
        self._set_trainable()
        self.set_task(task)

    def start_free_training(self, separate: Collection[str] = ()) -> None:
        """PackNet: the current task (just added) trains every free weight, with the earlier tasks' weights
        used frozen in the forward (the whole weight); it has no scores. Then `prune_and_retrain`.

        `separate`: names of masked layers whose earlier tasks' weights the task does not use (PackNet's
        per-task classifier: a task's head is only its own weights).
        """
        task = self._mask_phase_task("train the free weights")
        for name, layer in self.named_masked_layers():
            layer.drop_scores(task)
            layer.start_free(task, ~layer.union, ~layer.union if name in separate else None)
        self._mask_phase_views[task] = View.COMPACT
        self._set_trainable()
        self.set_task(task)

    def prune_and_retrain(self, keep: float, separate: Collection[str] = (), zero_pruned: bool = False,
                          of_free: bool = False) -> dict[str, int]:
        """PackNet: keep the `keep` fraction of each layer (`kept_count`, at most the free weights; with `of_free`,
        that fraction of the layer's free weights) of largest magnitude among the free weights, commit the mask
        "owned by tasks <= t" (the earlier union plus the kept; only the kept for the `separate` layers, see
        `start_free_training`) and move to the weight phase, which trains only the kept weights. The other free
        weights are outside the task's mask; they keep their values for the next task, or are set to 0 with
        `zero_pruned` (as PackNet's code does).

        Returns the number of weights the task owns per layer name.
        """
        if self._mask_phase_views.get(self.num_tasks - 1) is not View.COMPACT:
            raise ExssnetError("prune_and_retrain follows start_free_training")
        task = self._advance(Phase.WEIGHTS)
        owned: dict[str, int] = {}
        for name, layer in self.named_masked_layers():
            layer.end_compact()
            free = ~layer.union
            magnitude = layer.weight.detach().abs().masked_fill(~free, -1.0).reshape(-1)
            free_count = int(free.sum())
            count = min(kept_count(free_count if of_free else layer.weight.numel(), keep), free_count)
            own = torch.zeros(magnitude.numel(), dtype=torch.bool, device=magnitude.device)
            own[magnitude.topk(count).indices] = True
            own = own.view_as(free)
            if zero_pruned:
                layer.zero_entries(free & ~own)
            layer.commit_mask(task, own if name in separate else layer.union | own)
            layer.start_compact(task, own)
            owned[name] = count
        self.nested_masks = True
        self.tasks[task].phase = Phase.WEIGHTS
        self._set_trainable()
        self.set_task(task)
        return owned

    def _mask_phase_task(self, what: str) -> int:
        """The current task if it is in its mask phase with plain scores (just added), else a clear error."""
        task = self.num_tasks - 1
        if self.phase is not Phase.MASK or task in self._mask_phase_views:
            raise ExssnetError(f"only a task just added (in its mask phase) can {what}")
        return task

    def finish_task(self) -> None:
        """End the current task: its mask is frozen (committed if still in the mask phase)."""
        task = self._advance(Phase.DONE)
        if self.tasks[task].phase is Phase.MASK:
            for layer in self.masked_layers():
                layer.commit(task)
                if not self.keep_scores:
                    layer.drop_scores(task)
        for layer in self.masked_layers():
            layer.end_compact()  # the weight phase's entries are written into the shared weights
        self.tasks[task].phase = Phase.DONE
        self._set_trainable()
        self.set_task(task)

    def _check_class_count(self, num_classes: int) -> None:
        """Refuse a class count that is not a positive integer or exceeds the classifier's outputs."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ExssnetError(f"num_classes must be a positive integer, got {num_classes!r}")
        try:
            name, head = find_classifier(self.model)
        except ExssnetError:
            return  # the head cannot be told: the loss will see the width
        width = int(head.out_features)
        if num_classes > width:
            raise ExssnetError(f"a task of {num_classes} classes needs {num_classes} outputs, but the model's classifier "
                               f"{name!r} has {width}; build the model with a head of at least {num_classes} outputs")

    @property
    def phase(self) -> Phase:
        """The phase of the current (last) task; DONE when there is no task yet."""
        return self.tasks[-1].phase if self.tasks else Phase.DONE

    def _advance(self, to: Phase) -> int:
        """The one guard of the phase order: the current task's id if it may move to `to`, else a clear error."""
        current, task = self.phase, self.num_tasks - 1
        if to in NEXT_PHASES[current]:
            return task
        if to is Phase.MASK:
            raise ExssnetError(f"task {task} is not finished (phase {current.value!r}); call finish_task() before adding another")
        if current is Phase.DONE:
            raise ExssnetError(f"there is no unfinished task to move to phase {to.value!r}; call add_task() first")
        raise ExssnetError(f"task {task} cannot go from phase {current.value!r} to {to.value!r}")

    def _set_trainable(self) -> None:
        """What trains in the current phase, and nothing else: the current task's scores, its compact weights, or nothing.

        The shared weights never require grad; the weight phase's compact parameters exist only during it.
        """
        phase, task = self.phase, str(self.num_tasks - 1)
        for _, param in self.named_unmasked_parameters():
            param.requires_grad_(False)
        for layer in self.masked_layers():
            layer.weight.requires_grad_(False)
            for key, scores in layer.scores.items():
                scores.requires_grad_(phase is Phase.MASK and key == task)
        for head in self.head_layers():  # a per-task head trains in every phase of its own task
            head.set_trainable(int(task) if phase is not Phase.DONE else None)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The tensors the current phase trains (pass them to the optimizer): scores in MASK, compact weights in WEIGHTS."""
        if self.phase is Phase.MASK:
            view = self._mask_phase_views.get(self.num_tasks - 1, View.SCORES)
            scores = self.score_parameters(self.num_tasks - 1) if view is not View.COMPACT else []
            return scores + (self.compact_parameters() if view is not View.SCORES else []) + self.head_parameters()
        if self.phase is Phase.WEIGHTS:
            return self.compact_parameters() + self.head_parameters()
        return []

    def head_parameters(self, task: int | None = None) -> list[nn.Parameter]:
        """The per-task head's weight (and bias) of `task` (default: the current task); none with the masked head."""
        task = self.num_tasks - 1 if task is None else task
        return [p for head in self.head_layers() for p in head.parameters_of(task)] if task >= 0 else []

    def set_task(self, task: int) -> None:
        """Make `task` the subnetwork (mask and BatchNorm) the forward pass uses."""
        self.check_task(task)
        phase = self.tasks[task].phase
        view = {Phase.MASK: View.SCORES, Phase.WEIGHTS: View.COMPACT, Phase.DONE: View.MASK}[phase]
        if phase is Phase.MASK:
            view = self._mask_phase_views.get(task, view)
        for layer in self.masked_layers():
            layer.select(view, task)
        for norm in self.norm_layers():
            norm.select(view, task)
        for head in self.head_layers():
            head.select(view, task)
        self.active_task = task

    @contextmanager
    def scored(self, scores: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """Run as the subnetwork top-k(`scores`) (a phantom task: scores per masked layer name, BatchNorm
        on each batch's own statistics) in eval mode inside the block; the active task is selected again after.

        Nothing is added to the net: the scores are not parameters and no task id is taken.
        """
        with evaluating(self):  # selects the active task again afterwards
            try:
                for name, layer in self.named_masked_layers():
                    layer.select(View.SCORES, scores=scores[name])
                for norm in self.norm_layers():
                    norm.select(View.SUPERPOSED, tasks=[], rule="batch")
                for head in self.head_layers():  # a phantom task has no head: zero logits
                    head.select(View.SCORES)
                yield
            finally:
                if self.active_task < 0:  # no task to select again: clear the temporary view
                    self._reselect(-1)

    @contextmanager
    def superposed(self, tasks: list[int], alphas: torch.Tensor, bn: str = "batch") -> Iterator[None]:
        """Run with weights `W * sum_i alphas[i] * M_tasks[i]` in every masked layer (SupSup's task inference),
        BatchNorm by rule `bn` ("mixture" of the tasks' statistics or each "batch"'s own), in eval mode inside
        the block; gradients flow to `alphas`. The active task is selected again after."""
        for t in tasks:
            self.check_task(t)
        with evaluating(self):  # selects the active task again afterwards
            try:
                for layer in self.masked_layers():
                    layer.select(View.SUPERPOSED, tasks=tasks, alphas=alphas)
                for norm in self.norm_layers():
                    norm.select(View.SUPERPOSED, tasks=tasks, rule=bn)
                for head in self.head_layers():
                    head.select(View.SUPERPOSED, tasks=tasks, alphas=alphas)
                yield
            finally:
                if self.active_task < 0:
                    self._reselect(-1)

    def _reselect(self, task: int) -> None:
        """Select `task` again after a temporary view (nothing when no task was active)."""
        if 0 <= task < self.num_tasks:
            self.set_task(task)
        else:
            for layer in self.masked_layers():
                layer.select(View.NONE)
            for norm in self.norm_layers():
                norm.select(View.NONE)
            for head in self.head_layers():
                head.select(View.NONE)

    def alpha_linear_layers(self) -> list[MaskedLayer | TaskHeadLinear]:
        """The layers whose superposed output is linear in the task coefficients: the masked layers and the
        per-task heads (task inference differentiates through them, `layer_output`)."""
        return [*self.masked_layers(), *self.head_layers()]

    def layer_output(self, layer: MaskedLayer | TaskHeadLinear, x: torch.Tensor, task: int) -> torch.Tensor:
        """What masked `layer` computes for its input `x` under finished `task`'s mask, without its frozen bias
        (linear in the mask; the selection stays); for a per-task head, `task`'s head with its bias."""
        return layer.task_output(x, self.check_task(task))

    # ----- state dict: per-task state is ordinary PyTorch state --------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The task list: class count and phase per task (masks, scores and statistics are tensors of the layers)."""
        return {"tasks": [{"num_classes": t.num_classes, "phase": t.phase.value} for t in self.tasks]}

    def set_extra_state(self, state: Any) -> None:
        try:
            tasks = [TaskState(int(t["num_classes"]), Phase(t["phase"])) for t in state["tasks"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ExssnetError(f"the state dict's task list is malformed: {exc}") from None
        if any(t.phase is Phase.WEIGHTS for t in tasks):
            raise ExssnetError("a state dict saved during a weight phase cannot be loaded: finish the task first")
        if any(t.phase is not Phase.DONE for t in tasks[:-1]):
            raise ExssnetError("the state dict's task list has an unfinished task before the last one")
        self.tasks = tasks

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # type: ignore[no-untyped-def]
        if self.phase is Phase.WEIGHTS:
            raise ExssnetError("cannot load a state dict into a net in its weight phase: finish the task first")
        heads = any(".task_weight." in key for key in state_dict if key.startswith(prefix))
        masks = any(".masks." in key for key in state_dict if key.startswith(prefix))
        if masks and heads != bool(self._heads):
            saved, mine = ("per-task", "masked") if heads else ("masked", "per-task")
            raise ExssnetError(f"the state dict has the {saved} head, this net the {mine} head: wrap the model "
                               f"with head={saved!r} to load it")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @staticmethod
    def _after_load(net: nn.Module, incompatible: object) -> None:
        """After `load_state_dict` (of this net or a module holding it): new task slots on the net's device,
        what trains set for the loaded phase, the last task selected."""
        assert isinstance(net, SupermaskNet)
        net.model.to(net.device)  # task slots created by the load sit on the CPU
        net._set_trainable()
        net._reselect(net.num_tasks - 1)

    # ----- parameters per phase ---------------------------------------------------
    def named_unmasked_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of every parameter of the model outside the supermask machinery (masked weights,
        scores, compact weights, per-task heads): biases, BatchNorm affine values, other norms, PReLU, a custom module's raw
        parameters. They are frozen (never require grad) and shared by every task."""
        machinery: set[int] = set()
        for layer in self.masked_layers():
            machinery.add(id(layer.weight))
            machinery.update(id(p) for p in layer.scores.values())
            if layer.compact_weight is not None:
                machinery.add(id(layer.compact_weight))
        for head in self.head_layers():
            machinery.update(id(p) for p in head.parameters())
        return [(name, p) for name, p in self.model.named_parameters() if id(p) not in machinery]

    def unmasked_parameters(self) -> list[nn.Parameter]:
        """The frozen parameters of `named_unmasked_parameters`."""
        return [p for _, p in self.named_unmasked_parameters()]

    def score_parameters(self, task: int) -> list[nn.Parameter]:
        return [layer.scores[str(task)] for layer in self.masked_layers()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The shared weights (never trainable themselves: the weight phase trains compact copies)."""
        return [layer.weight for layer in self.masked_layers()]

    def compact_parameters(self) -> list[nn.Parameter]:
        """The weight phase's 1-D parameters, one per layer with at least one trainable entry."""
        return [layer.compact_weight for layer in self.masked_layers()
                if layer.compact_weight is not None and layer.compact_weight.requires_grad]

    def task_scores(self, task: int) -> dict[str, torch.Tensor] | None:
        """Float scores of `task` per layer name, or None if they were not kept."""
        out = {}
        for name, layer in self.named_masked_layers():
            scores = layer.task_scores(task)
            if scores is None:
                return None
            out[name] = scores
        return out

    def task_masks(self, task: int) -> dict[str, torch.Tensor]:
        """Boolean mask of a committed task per layer name."""
        self.check_task(task)
        return {name: layer.mask_of(task) for name, layer in self.named_masked_layers()}

    def num_maskable(self) -> int:
        return sum(layer.weight.numel() for layer in self.masked_layers())

    # ----- forward -----------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self._weight_use_checked:
            return self.model(*inputs)
        output = self._checked_forward(*inputs)
        self._weight_use_checked = True
        return output

    def _checked_forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """One forward pass that refuses a masked weight used outside its layer (see `_WeightUseProbe`)."""
        probe = _WeightUseProbe({id(layer.weight): (layer.weight, name) for name, layer in self._named_masked},
                                self._replaced)

        def enter(module: nn.Module, args: object) -> None:
            probe.depth += 1

        def leave(module: nn.Module, args: object, output: object) -> None:
            probe.depth -= 1

        with ExitStack() as stack:
            for layer in self.masked_layers():
                stack.callback(layer.register_forward_pre_hook(enter).remove)
                stack.callback(layer.register_forward_hook(leave, always_call=True).remove)
            stack.enter_context(probe)
            return self.model(*inputs)

    def logits(self, inputs: torch.Tensor | tuple[torch.Tensor, ...], task: int) -> torch.Tensor:
        """Logits of `task`'s classes (the head is sliced to the task's class count)."""
        self.set_task(self.check_task(task))
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        return self(*args)[:, : self.tasks[task].num_classes]

    def export_task(self, task: int) -> nn.Module:
        """Finished `task` as a plain model of the user's own class (see `exssnet.export.export_task`)."""
        from exssnet.export import export_task

        return export_task(self, task)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor | tuple[torch.Tensor, ...], task: int) -> torch.Tensor:
        """Class predictions (0..C_t-1) of `task`'s subnetwork in eval mode."""
        with evaluating(self):
            return self.logits(inputs, task).argmax(dim=1)


def to_supermask(model: nn.Module, density: float, keep_scores: bool = False, init: str | None = None,
                 head: str = "masked") -> SupermaskNet:
    """Wrap any torch model as a supermask model (modules are replaced in place).

    `init` chooses the shared weights of the masked layers: "signed-constant" (the paper's draw:
    +-sqrt(2 / fan_in) with random signs; the built-in models and presets use it) or "keep" (the
    model's own weights, e.g. a pretrained backbone, as Piggyback masks it). Left out, it is
    "signed-constant" and the wrap says so in a `WrapWarning`. Biases are kept either way; BatchNorm
    affine values with "keep" (with "signed-constant" the paper's non-affine BatchNorm runs, and the
    warning names any BatchNorm whose affine values were not the identity). What is kept and every
    other parameter that is not masked (other norms, PReLU, a custom module's raw parameters) stays
    frozen and shared by every task: `net.named_unmasked_parameters()` lists them and the wrap
    names their modules in the same single `WrapWarning`. The choice is `net.init` (checkpoints
    record it; wrap with the same `init` to `load_state_dict`).

    `head` chooses the classifier (the module `exssnet.models.contract.find_classifier` names):
    "masked" like every other layer (the ExSSNeT paper's network: each task's head is its mask over
    the shared classifier), or "per-task": each task gets a dense head of its own (`TaskHeadLinear`),
    trained with its mask and frozen when the task ends (WSN's network). A per-task head starts from
    torch's default Linear draw, or with init="keep" from the model's own classifier. `net.head`
    records it (checkpoints too).

    The net starts without tasks; `load_state_dict` of a trained net's state dict creates its tasks
    (masks, scores, BatchNorm statistics, class counts and phases), bit for bit.
    """
    density = check_density(density)
    if isinstance(model, SupermaskNet):
        raise ExssnetError("the model is already a SupermaskNet: pass the plain torch model to wrap")
    notes = []
    dropped = [] if init == "keep" else _affine_batchnorms(model)
    if dropped:
        notes.append("init='signed-constant' uses the paper's non-affine per-task BatchNorm, so the affine values of "
                     f"{', '.join(dropped)} are dropped; pass init='keep' to keep them (frozen)")
    if init is None:
        init = "signed-constant"
        notes.append("the masked layers' weights are redrawn as the paper's signed constants (init='signed-constant'); "
                     "pass init='keep' to keep the model's own (e.g. pretrained) weights, or pass init explicitly "
                     "to silence this")
    if head not in HEADS:
        raise ExssnetError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
    replaced: dict[int, weakref.ref] = {}
    if head == "per-task":
        check_wrappable(model)  # before the classifier is replaced: a tied classifier weight is refused
        install_task_heads(model, keep=init == "keep", replaced=replaced)
    model = inject_supermask_layers(model, density, replaced, init=init)
    net = SupermaskNet(model, density, keep_scores=keep_scores, replaced=replaced)
    net.init = init
    frozen = _frozen_modules(net)
    if frozen:
        notes.append("these parameters are not masked and stay frozen, shared by every task: " + "; ".join(frozen))
    if notes:
        warnings.warn("to_supermask: " + " | ".join(notes), WrapWarning, stacklevel=2)
    return net


def install_task_heads(model: nn.Module, keep: bool, replaced: dict[int, weakref.ref]) -> None:
    """Replace `model`'s classifier (under every name it has) by a `TaskHeadLinear` of its shape, in place;
    `keep`: every task's head starts from the classifier's own values. A model that is only a Linear is refused."""
    if isinstance(model, nn.Linear):
        raise ExssnetError("head='per-task' needs a model with layers before its classifier; this model is one Linear")
    _, classifier = find_classifier(model)
    if isinstance(classifier, TaskHeadLinear):
        return
    heads = TaskHeadLinear(classifier.in_features, classifier.out_features, bias=classifier.bias is not None,
                           start=classifier if keep else None)
    for path in [path for path, module in model.named_modules(remove_duplicate=False) if module is classifier]:
        parent, _, leaf = path.rpartition(".")
        setattr(model.get_submodule(parent), leaf, heads)
    for param in classifier.parameters(recurse=False):
        replaced[id(param)] = weakref.ref(param)


def _affine_batchnorms(model: nn.Module) -> list[str]:
    """Paths of the BatchNorms (to be replaced) whose affine values are not the identity (ones and zeros)."""
    found = []
    for path, module in _walk(model):
        if _batchnorm_dims(module) is not None and module.weight is not None and module.bias is not None:
            if not (bool((module.weight == 1).all()) and bool((module.bias == 0).all())):
                found.append(path or "(the model)")
    return found


def _frozen_modules(net: SupermaskNet) -> list[str]:
    """'path (Type: names)' for each module holding frozen unmasked parameters."""
    by_module: dict[str, list[str]] = {}
    for name, _ in net.named_unmasked_parameters():
        path, _, pname = name.rpartition(".")
        by_module.setdefault(path, []).append(pname)
    return [f"{path or '(the model)'} ({type(net.model.get_submodule(path)).__name__}: {', '.join(names)})"
            for path, names in by_module.items()]
