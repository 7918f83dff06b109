"""The two loops every method shares: train one phase with a fresh Adam + cosine schedule, and evaluate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from exssnet import amp, distributed
from exssnet.data.tasks import Inputs, Split, TaskData
from exssnet.errors import ExssnetError
from exssnet.methods.best_epoch import BestEpoch
from exssnet.settings import CoreSettings

LogitsFn = Callable[[Inputs], torch.Tensor]
EpochCallback = Callable[[dict], None]


@dataclass
class Step:
    """What one training step computed: the loss to minimise and, when a hook needs them, the batch's own logits.

    `logits` are the current batch's logits on its own task (detached), e.g. what DER stores with the batch.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None = None


@dataclass
class StepHooks:
    """Optional changes to a phase's steps (the dense baselines use them; supermask phases need none)."""

    batch_loss: Callable[[Inputs, torch.Tensor], torch.Tensor | Step] | None = None  # default: cross-entropy of logits_fn
    after_backward: Callable[[], None] | None = None  # e.g. project the gradients (A-GEM)
    after_step: Callable[[Inputs, torch.Tensor, Step], None] | None = None  # sees the batch before augmentation
    validation_loss: Callable[[Inputs, torch.Tensor], torch.Tensor] | None = None  # a batch's mean loss for keep_best
    validate: Callable[[], float] | None = None  # default: accuracy of logits_fn on the task's validation split


@dataclass(frozen=True)
class PhaseSpec:
    """One training phase: its name, how long, how fast, in what batches, and the generator of its data order."""

    name: str
    epochs: int
    lr: float
    batch_size: int
    generator: torch.Generator
    eval_batch_size: int = 1024
    keep_best: bool = False  # end with the epoch of lowest validation loss (exssnet.methods.best_epoch)
    schedule: str = "cosine"  # the learning rate per step: "cosine" decay to 0 over the phase, or "constant"
    optimizer: str = "adam"  # "adam" (weight decay 0), or "sgd" (plain: no momentum, no weight decay)

    @classmethod
    def of(cls, config: CoreSettings, name: str, epochs: int, lr: float, generator: torch.Generator,
           optimizer: str = "adam") -> "PhaseSpec":
        """A phase of a run with `config`: its batch sizes, best-epoch rule and learning-rate schedule."""
        return cls(name, epochs, lr, config.batch_size, generator, config.eval_batch_size,
                   keep_best=config.keep_best_epoch, schedule=config.lr_schedule, optimizer=optimizer)


@dataclass
class PhaseHistory:
    """Per-epoch mean training loss and validation accuracy (percent) of one phase."""

    name: str
    loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: dict | None = None  # with keep_best: the restored epoch and each epoch's validation loss

    def to_dict(self) -> dict:
        best = {} if self.best_epoch is None else {"keep_best_epoch": self.best_epoch}
        return {"loss": self.loss, "val_acc": self.val_acc, "seconds": self.seconds, **best}


@torch.no_grad()
def accuracy(logits_fn: LogitsFn, split: Split, batch_size: int) -> float:
    """Percent of `split` that `logits_fn` classifies correctly (caller sets eval mode).

    Data parallel: each rank scores its rows of every batch and the counts are summed over ranks.
    """
    if len(split) == 0:
        raise ExssnetError("cannot evaluate on an empty split")
    correct = 0
    for x, y in split.batches(batch_size, shard=distributed.shard()):
        if len(y):
            correct += int((logits_fn(x).argmax(dim=1) == y).sum())
    correct = round(distributed.all_sum(correct)[0])
    return 100.0 * correct / len(split)


def batchnorm_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The BatchNorm layers inside `module` (they need more than 1 row per batch to train)."""
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def merged_groups(params: list, lr: float) -> list:
    """`params` with the parameter groups whose settings are equal (a group's rate defaulting to `lr`) joined, in
    order of first appearance. The result per parameter is the same; a fused optimizer runs once per distinct
    setting instead of once per group (WSN's scores and weights at one rate: about 2.5% of its LeNet step)."""
    if not params or not all(isinstance(p, dict) for p in params):
        return params
    merged: dict[tuple, dict] = {}
    for group in params:
        options = {"lr": lr, **{k: v for k, v in group.items() if k != "params"}}
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        tensors = group["params"]
        tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        if key in merged:
            merged[key]["params"] += tensors
        else:
            merged[key] = {**options, "params": tensors}
    return list(merged.values())


def phase_optimizer(params: Iterable[torch.nn.Parameter | dict], lr: float, kind: str = "adam") -> torch.optim.Optimizer:
    """A fresh optimizer for one phase: Adam (weight decay 0), or plain SGD when `kind` is "sgd". Torch's fused
    kernel when every parameter allows it (floating point, on the CPU or CUDA): for Adam a third faster per small
    step than the per-tensor loop (benchmarks/step_ratio.py) and equal to it up to float rounding. Parameter groups
    with equal settings are joined (`merged_groups`)."""
    params = merged_groups(list(params), lr)
    flat = [q for p in params for q in (p["params"] if isinstance(p, dict) else [p])]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in flat) or None
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=0.0, fused=fused)
    if kind != "adam":
        raise ValueError(f"unknown optimizer {kind!r}")
    return torch.optim.Adam(params, lr=lr, weight_decay=0.0, fused=fused)


def train_phase(
    spec: PhaseSpec,
    module: torch.nn.Module,
    logits_fn: LogitsFn,
    params: Iterable[torch.nn.Parameter | dict],
    task: TaskData,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
    hooks: StepHooks | None = None,
) -> PhaseHistory:
    """Train `params` for `spec.epochs` with a fresh Adam (weight decay 0; or SGD, `spec.optimizer`) and a per-step
    cosine schedule (or a constant rate, `spec.schedule`).

    `module` is put in train mode for steps and eval mode for the per-epoch validation.
    When `module` has BatchNorm layers, a last training batch of 1 row (the train split's size leaves
    remainder 1) is dropped each epoch: BatchNorm cannot train on one row.
    A NaN or infinite loss stops the run with a clear error.
    `spec.keep_best` (and a validation split): end with the state of the epoch of lowest validation loss
    (exssnet.methods.best_epoch).
    """
    name, epochs, lr, batch_size, generator = spec.name, spec.epochs, spec.lr, spec.batch_size, spec.generator
    hooks = hooks or StepHooks()
    batch_loss = hooks.batch_loss or (lambda x, y: F.cross_entropy(logits_fn(x), y))
    validate = hooks.validate or (lambda: accuracy(logits_fn, task.val, spec.eval_batch_size))
    history = PhaseHistory(name)
    params = [p for p in params]  # parameters, or Adam parameter groups ({"params": [...], "lr": ...})
    flat = [q for p in params for q in (p["params"] if isinstance(p, dict) else [p])]
    if epochs == 0 or not flat:
        return history
    start = time.perf_counter()
    sync = distributed.DataParallel(module, flat)  # no-op in one process
    scaler = amp.grad_scaler(flat[0].device)  # loss scaling under --amp fp16, else a pass-through
    augment_generator = sync.augment_generator(generator)  # `generator` itself in one process
    optimizer = phase_optimizer(params, lr, spec.optimizer)
    # BatchNorm cannot train on 1 row: in one process such a last batch is dropped (torchrun: Split.batches drops it)
    norms = batchnorm_layers(module)
    drop_single = bool(norms) and sync.shard is None and len(task.train) % batch_size == 1
    steps = epochs * (len(task.train) // batch_size if drop_single else math.ceil(len(task.train) / batch_size))
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if spec.schedule == "cosine"
                else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0))
    best = (BestEpoch(module, logits_fn, task.val, spec.eval_batch_size, hooks.validation_loss)
            if spec.keep_best and len(task.val) else None)
    bar = tqdm(range(epochs), desc=f"  {task.name} {name}", leave=False, disable=not progress, unit="ep")
    for epoch in bar:
        module.train()
        total, count = 0.0, 0
        for x, y in task.train.batches(batch_size, shuffle=True, generator=generator, shard=sync.shard):
            if drop_single and y.shape[0] == 1 and any(norm.training for norm in norms):
                continue
            seen = task.augment(x, augment_generator) if task.augment is not None else x
            out = batch_loss(seen, y)
            step = out if isinstance(out, Step) else Step(out)
            loss = step.loss
            value = float(loss.detach())  # one read of the loss per step: the check and the epoch's mean
            if not math.isfinite(value):
                raise ExssnetError(
                    f"loss became {value} in {task.name} {name} phase, epoch {epoch + 1}; "
                    "lower the learning rate (or a method's penalty weights) or check the input data"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if hooks.after_backward is not None:
                hooks.after_backward()
            sync.average_gradients(y.shape[0])  # of the scaled gradients: every rank then skips or steps alike
            with amp.outside_autocast(flat[0].device):
                scaler.step(optimizer)
            scaler.update()
            amp.step_schedule(schedule, scaler)
            if hooks.after_step is not None:
                hooks.after_step(x, y, step)
            total += value * y.shape[0]
            count += y.shape[0]
        total, count = sync.sum(total, count)
        history.loss.append(total / max(count, 1))
        sync.average_batchnorm()
        module.eval()
        if len(task.val):
            history.val_acc.append(validate())
        if best is not None:
            best.update(epoch + 1)
        bar.set_postfix(loss=f"{history.loss[-1]:.4f}", val=f"{history.val_acc[-1]:.2f}" if history.val_acc else "-")
        if on_epoch is not None:
            on_epoch({"phase": name, "epoch": epoch + 1, "loss": history.loss[-1],
                      "val_acc": history.val_acc[-1] if history.val_acc else None})
    if best is not None:
        best.restore()
        history.best_epoch = best.to_dict()
    history.seconds = time.perf_counter() - start
    return history
