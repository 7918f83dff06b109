"""Turn any torch model into a supermask model and drive its per-task phases.

`to_supermask(model, density)` replaces every Linear/Conv1d/Conv2d with a masked layer (shared
signed-constant weight, no bias) and every BatchNorm1d/2d with a per-task non-affine BatchNorm,
the way PEFT injects adapters. `SupermaskNet` is the one place that knows the phase order:

    add_task -> Phase.MASK -> [start_weight_phase -> Phase.WEIGHTS] -> finish_task -> Phase.DONE   (then the next add_task)

It alone decides what trains: every transition goes through one guard (`_advance`), which refuses an
illegal one with an ExssnetError and then sets `requires_grad` for the new phase; trainers take
`trainable_parameters()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterator

import torch
from torch import nn

from exssnet.errors import ExssnetError, check_density
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear
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


def _replacement(module: nn.Module, density: float) -> nn.Module | None:
    """The supermask version of `module`, or None if it is kept as is."""
    if isinstance(module, (MaskedLayer, MultitaskBatchNorm)):
        return None
    if isinstance(module, nn.Linear):
        return MaskedLinear(module.in_features, module.out_features, density=density)
    conv_types = ((nn.Conv2d, MaskedConv2d), (nn.Conv1d, MaskedConv1d))
    for torch_type, masked_type in conv_types:
        if isinstance(module, torch_type):
            return masked_type(
                module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                padding=module.padding, dilation=module.dilation, groups=module.groups,
                padding_mode=module.padding_mode, density=density,
            )
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        dims = 2 if isinstance(module, nn.BatchNorm2d) else 1
        return MultitaskBatchNorm(module.num_features, dims=dims, eps=module.eps, momentum=module.momentum)
    return None


def inject_supermask_layers(model: nn.Module, density: float) -> nn.Module:
    """Replace Linear/Conv/BatchNorm modules of `model` in place; returns `model`."""
    for name, child in list(model.named_children()):
        if isinstance(child, (MaskedLayer, MultitaskBatchNorm)):
            continue  # already a supermask layer: its inner BatchNorms are per-task state
        replacement = _replacement(child, density)
        if replacement is None:
            inject_supermask_layers(child, density)
        else:
            setattr(model, name, replacement)
    return model


class SupermaskNet(nn.Module):
    """A model whose masked layers hold one subnetwork per task over shared weights."""

    def __init__(self, model: nn.Module, density: float, keep_scores: bool = False) -> None:
        super().__init__()
        self.density = check_density(density)
        self.model = model
        self.keep_scores = keep_scores
        self.tasks: list[TaskState] = []
        self.active_task = -1
        self._index_layers()
        if not self.masked_layers():
            raise ExssnetError("the model has no Linear or Conv layer to mask")
        self._set_trainable()

    # ----- structure ----------------------------------------------------------------
    def _index_layers(self) -> None:
        """Find the masked layers and BatchNorms once: walking the modules grows with the task count."""
        self._named_masked: list[tuple[str, MaskedLayer]] = []
        self._norms: list[MultitaskBatchNorm] = []
        for name, module in self.model.named_modules():
            if isinstance(module, MaskedLayer):
                self._named_masked.append((name, module))
            elif isinstance(module, MultitaskBatchNorm):
                self._norms.append(module)

    def masked_layers(self) -> list[MaskedLayer]:
        return [layer for _, layer in self._named_masked]

    def named_masked_layers(self) -> Iterator[tuple[str, MaskedLayer]]:
        return iter(self._named_masked)

    def norm_layers(self) -> list[MultitaskBatchNorm]:
        return list(self._norms)

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
        """Start a new task in its mask phase; optional initial scores per masked layer name (others start fresh)."""
        self._advance(Phase.MASK)
        task = self.num_tasks
        for name, layer in self.named_masked_layers():
            layer.add_task(task, None if initial_scores is None else initial_scores.get(name))
        for norm in self.norm_layers():
            norm.add_task(task)
        self.model.to(self.device)
        self.tasks.append(TaskState(num_classes=num_classes))
        self._set_trainable()
        self.set_task(task)
        return task

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
        for layer in self.masked_layers():
            layer.weight.requires_grad_(False)
            for key, scores in layer.scores.items():
                scores.requires_grad_(phase is Phase.MASK and key == task)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The tensors the current phase trains (pass them to the optimizer): scores in MASK, compact weights in WEIGHTS."""
        if self.phase is Phase.MASK:
            return self.score_parameters(self.num_tasks - 1)
        if self.phase is Phase.WEIGHTS:
            return self.compact_parameters()
        return []

    def set_task(self, task: int) -> None:
        """Make `task` the subnetwork (mask and BatchNorm) the forward pass uses."""
        self.check_task(task)
        phase = self.tasks[task].phase
        for layer in self.masked_layers():
            if phase is Phase.MASK:
                layer.use_scores(task)
            elif phase is Phase.WEIGHTS:
                layer.use_compact()
            else:
                layer.use_mask(task)
        for norm in self.norm_layers():
            norm.set_task(task)
        self.active_task = task

    # ----- parameters per phase ---------------------------------------------------
    def score_parameters(self, task: int) -> list[nn.Parameter]:
        return [layer.scores[str(task)] for layer in self.masked_layers()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The shared weights (never trainable themselves: the weight phase trains compact copies)."""
        return [layer.weight for layer in self.masked_layers()]

    def compact_parameters(self) -> list[nn.Parameter]:
        """The weight phase's 1-D parameters, one per layer with at least one trainable entry."""
        return [layer.compact_weight for layer in self.masked_layers()
                if layer.compact_weight is not None and layer.compact_weight.requires_grad]

    def write_back(self) -> None:
        """Copy the weight phase's trained entries into the shared weights now (done at finish_task anyway)."""
        for layer in self.masked_layers():
            layer.write_back()

    def task_scores(self, task: int) -> dict[str, torch.Tensor] | None:
        """Float scores of `task` per layer name, or None if they were not kept."""
        out = {}
        for name, layer in self.named_masked_layers():
            if str(task) not in layer.scores:
                return None
            out[name] = layer.scores[str(task)].detach()
        return out

    def task_masks(self, task: int) -> dict[str, torch.Tensor]:
        """Boolean mask of a committed task per layer name."""
        self.check_task(task)
        return {name: layer.mask_of(task) for name, layer in self.named_masked_layers()}

    def num_maskable(self) -> int:
        return sum(layer.weight.numel() for layer in self.masked_layers())

    # ----- forward -----------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs)

    def logits(self, inputs: torch.Tensor | tuple[torch.Tensor, ...], task: int) -> torch.Tensor:
        """Logits of `task`'s classes (the head is sliced to the task's class count)."""
        self.set_task(self.check_task(task))
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        return self(*args)[:, : self.tasks[task].num_classes]

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor | tuple[torch.Tensor, ...], task: int) -> torch.Tensor:
        """Class predictions (0..C_t-1) of `task`'s subnetwork in eval mode."""
        with evaluating(self):
            return self.logits(inputs, task).argmax(dim=1)


def to_supermask(model: nn.Module, density: float, keep_scores: bool = False) -> SupermaskNet:
    """Wrap any torch model as a supermask model (modules are replaced in place)."""
    density = check_density(density)
    return SupermaskNet(inject_supermask_layers(model, density), density, keep_scores=keep_scores)
