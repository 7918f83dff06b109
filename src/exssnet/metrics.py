"""Continual-learning metrics as pure functions (paper definitions).

`acc[i][j]` is the accuracy (percent) on task j after learning task i; entries with j > i are None.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

AccMatrix = Sequence[Sequence[float | None]]


def _check_square(acc: AccMatrix) -> int:
    n = len(acc)
    if n == 0 or any(len(row) != n for row in acc):
        raise ValueError("accuracy matrix must be a non-empty N x N list of rows")
    for i, row in enumerate(acc):
        if any(row[j] is None for j in range(i + 1)):
            raise ValueError(f"row {i} of the accuracy matrix lacks an entry for a learned task")
    return n


def average_accuracy(acc: AccMatrix) -> float:
    """Mean over tasks of the final row: mean_j A[N][j]."""
    n = _check_square(acc)
    return float(sum(acc[n - 1][j] for j in range(n)) / n)  # type: ignore[misc]


def forgetting_per_task(acc: AccMatrix) -> list[float]:
    """For each t < N: max_{k<N} A[k][t] - A[N][t] (the best accuracy before the end minus the final one)."""
    n = _check_square(acc)
    return [
        float(max(acc[k][t] for k in range(t, n - 1)) - acc[n - 1][t])  # type: ignore[type-var, operator]
        for t in range(n - 1)
    ]


def forgetting(acc: AccMatrix) -> float:
    """Mean forgetting over all tasks but the last (0.0 for a single task)."""
    per_task = forgetting_per_task(acc)
    return float(sum(per_task) / len(per_task)) if per_task else 0.0


def average_accuracy_curve(acc: AccMatrix) -> list[float]:
    """Average accuracy over the tasks seen so far, after each task (paper Fig. 6)."""
    n = _check_square(acc)
    return [float(sum(acc[i][j] for j in range(i + 1)) / (i + 1)) for i in range(n)]  # type: ignore[misc]


def sparse_overlap(masks: Sequence[Mapping[str, torch.Tensor]]) -> list[float]:
    """Per task i: (|M_i| - |M_i AND NOT union_{j<i} M_j|) / |M_i|, counted over all layers."""
    union: dict[str, torch.Tensor] = {}
    overlaps = []
    for task_masks in masks:
        kept = shared = 0
        for name, mask in task_masks.items():
            mask = mask.bool()
            previous = union.get(name, torch.zeros_like(mask))
            kept += int(mask.sum())
            shared += int((mask & previous).sum())
            union[name] = previous | mask
        overlaps.append(shared / kept if kept else 0.0)
    return overlaps


# --- storage (WSN's CAP, Kang et al. 2022) -------------------------------------------------------------
FLOAT_BITS = 32


def union_density(masks: Sequence[Mapping[str, torch.Tensor]]) -> float:
    """Fraction of the masked weights that at least one task's mask keeps (1 - sparsity of the union)."""
    union: dict[str, torch.Tensor] = {}
    for task_masks in masks:
        for name, mask in task_masks.items():
            union[name] = union.get(name, torch.zeros_like(mask, dtype=torch.bool)) | mask.bool()
    total = sum(m.numel() for m in union.values())
    return sum(int(m.sum()) for m in union.values()) / total if total else 0.0


def storage(weight_fraction: float, mask_bits_per_param_per_task: float, tasks: int) -> dict:
    """Storage of a model for all `tasks`, per parameter of one dense model.

    `weight_fraction`: float32 weights stored, in dense-model copies (the union density for a mask method,
    1 for one shared model, T for one model per task); masks add `mask_bits_per_param_per_task` per task.
    `capacity` is WSN's CAP in percent of one dense model, (weights + mask bits * T / 32) * 100;
    `bits_per_param_per_task` is the same storage in bits per parameter, divided over the tasks.
    """
    if tasks < 1:
        raise ValueError("storage needs at least one task")
    bits = FLOAT_BITS * weight_fraction + mask_bits_per_param_per_task * tasks
    return {"capacity": 100.0 * bits / FLOAT_BITS, "bits_per_param_per_task": bits / tasks}
