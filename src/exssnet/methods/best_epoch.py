"""Keep the epoch with the best validation loss of a training phase and restore it at the end (WSN's protocol).

Kang et al. 2022's code evaluates the validation loss after every epoch, keeps a copy of the model whenever it
is the lowest so far and loads that copy back when the task's epochs are done. `BestEpoch` does this for one
phase of `loops.train_phase` (option `keep_best_epoch`): the copy is the module's whole state (parameters and
buffers: scores, weights, a weight phase's compact parameters, BatchNorm statistics), taken on the module's own device.
Only the module is restored: a method's own bookkeeping during the phase (SI's path integral, replay buffers)
stays as the last epoch left it, as in WSN's code.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from exssnet import distributed
from exssnet.data.tasks import Inputs, Split

LossFn = Callable[[Inputs, torch.Tensor], torch.Tensor]


@torch.no_grad()
def validation_loss(logits_fn: Callable[[Inputs], torch.Tensor], split: Split, batch_size: int,
                    loss_fn: LossFn | None = None) -> float:
    """Mean cross-entropy of `logits_fn` over `split` (caller sets eval mode); summed over data-parallel ranks.

    `loss_fn(x, y)`, when given, is a batch's mean loss instead (e.g. joint training's labels that pick each
    example's own head)."""
    total, count = 0.0, 0
    for x, y in split.batches(batch_size, shard=distributed.shard()):
        if len(y):
            if loss_fn is None:
                total += float(F.cross_entropy(logits_fn(x), y, reduction="sum"))
            else:
                total += float(loss_fn(x, y)) * int(y.shape[0])
            count += int(y.shape[0])
    total, count = distributed.all_sum(total, count)
    return total / count if count else math.inf


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of `module` by name (a weight phase's compact parameters included; no extra state)."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


class BestEpoch:
    """After each epoch `update()` scores the validation loss and keeps the state when it is the best so far;
    `restore()` loads the kept state back (nothing happens when no epoch was scored)."""

    def __init__(self, module: torch.nn.Module, logits_fn: Callable[[Inputs], torch.Tensor], split: Split,
                 batch_size: int, loss_fn: LossFn | None = None) -> None:
        self.module, self.logits_fn, self.split, self.batch_size = module, logits_fn, split, batch_size
        self.loss_fn = loss_fn
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.losses: list[float] = []

    def update(self, epoch: int) -> float:
        """Score epoch `epoch` (1-based; module in eval mode); keep a copy of the state when it is the best."""
        loss = validation_loss(self.logits_fn, self.split, self.batch_size, self.loss_fn)
        self.losses.append(loss)
        if loss < self.best_loss:  # ties keep the earlier epoch, as a strict `<` does in WSN's code
            self.best_loss, self.best_epoch = loss, epoch
            self.state = {k: v.detach().clone() for k, v in _tensors(self.module).items()}
        return loss

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the kept state back into the module's own tensors (in place: optimisers and views stay valid)."""
        if self.state is None:
            return
        current = _tensors(self.module)
        for key, value in self.state.items():
            current[key].copy_(value)

    def to_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "val_loss": self.losses}
