"""Named random streams: the seeds the library derives from a run's seed for tasks, buffers and benchmarks.

Each stream is a pure function of the run seed (and the task), so a task can be replayed alone and two
streams never share draws by accident. The formulas are part of what makes results reproducible: changing
one changes every result that uses it. Not every derived seed is named here: the text, transformed-MNIST
and ImageNet builders write `seed + 1` (split_seed's formula) themselves, the runner seeds torch with the
run seed before the model is built, and data-parallel augmentation adds the rank (exssnet.distributed).
"""

from __future__ import annotations

from enum import IntEnum

import torch


class TaskStream(IntEnum):
    """The per-task generators of `task_generator` (its `stream` argument)."""

    MASK_PHASE = 0  # batch order of the supermask (mask) phase
    WEIGHT_PHASE = 1  # batch order of the weight phase (SSNeT / ExSSNeT)
    KKT = 2  # KKT's draws (which examples, which earlier task's scores)
    DENSE = 7  # batch order of the dense baselines


class BufferStream(IntEnum):
    """The reservoir buffers of the replay baselines (`buffer_seed`)."""

    ER = 1  # ER and DER
    AGEM = 2
    LAMOL = 3  # LAMOL's pseudo-sample draws and its language model's text order


def task_generator(seed: int, task_id: int, stream: TaskStream | int) -> torch.Generator:
    """A generator that depends only on (seed, task, stream), so any task can be replayed alone."""
    return torch.Generator().manual_seed(seed * 1_000_003 + task_id * 101 + int(stream))


def task_seed(seed: int, task_id: int) -> int:
    """The global torch seed set before a task is learned (model init of new heads, dropout, ...)."""
    return seed * 7919 + task_id


def buffer_seed(seed: int, stream: BufferStream) -> int:
    """The seed of a replay baseline's reservoir buffer."""
    return seed * 7 + int(stream)


def class_order_seed(seed: int) -> int:
    """The seed of a benchmark's class order (and of the pairs benchmark's choice of pairs)."""
    return seed


def split_seed(seed: int) -> int:
    """The seed of a benchmark's validation carve-out and per-class sampling."""
    return seed + 1


def class_il_seed(seed: int) -> int:
    """The seed of the shuffled pooled test set of class-incremental evaluation."""
    return seed
