"""Save and restore a model's train/eval mode and, for a supermask model, its active task."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards the train/eval mode and the active task (if any) as before.

    Works for any module; a module with `active_task` and `set_task` (a SupermaskNet) also gets its active task
    (its layers' views) back, so a caller may switch tasks inside the block.
    """
    was_training = net.training
    active = getattr(net, "active_task", -1)
    net.eval()
    try:
        yield
    finally:
        if active >= 0:
            net.set_task(active)  # type: ignore[operator]
        net.train(was_training)
