"""What a supermask network holds per finished task, in bytes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exssnet.supermask import SupermaskNet


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


@dataclass
class TaskFootprint:
    """Bytes one task holds: packed mask bits, BatchNorm running statistics, kept float scores, its dense
    head (`head="per-task"`)."""

    mask: int
    batchnorm: int
    scores: int
    head: int = 0

    @property
    def total(self) -> int:
        return self.mask + self.batchnorm + self.scores + self.head


def task_footprint(net: SupermaskNet, task: int) -> TaskFootprint:
    """Bytes held for `task` across every masked and BatchNorm layer of `net`."""
    net.check_task(task)
    mask = scores = 0
    for layer in net.masked_layers():
        mask += tensor_bytes(layer.packed_mask(task)) if task < layer.num_committed else 0
        kept = layer.task_scores(task)
        scores += 0 if kept is None else tensor_bytes(kept)
    batchnorm = sum(tensor_bytes(b) for norm in net.norm_layers() for b in norm.statistics(task).values())
    head = sum(tensor_bytes(p) for layer in net.head_layers() for p in layer.parameters_of(task))
    return TaskFootprint(mask, batchnorm, scores, head)


def state_bytes(net: SupermaskNet) -> int:
    """Bytes of every parameter and buffer of `net` (shared weights, union masks and all tasks)."""
    return sum(tensor_bytes(t) for t in net.state_dict().values() if isinstance(t, torch.Tensor))


def resident_bytes(net: SupermaskNet) -> int:
    """Bytes `net` keeps in memory: `state_bytes` plus the layers' speed caches (masked weight of the
    selected task, the weight phase's frozen base, the mask phase's threshold buffers)."""
    cached = sum(tensor_bytes(t) for layer in net.masked_layers() for t in layer.cached_tensors())
    return state_bytes(net) + cached


def weights_and_packed_masks_bytes(net: SupermaskNet) -> int:
    """The floor of what a model with its finished tasks needs: shared weights + 1-bit packed masks."""
    weights = sum(tensor_bytes(layer.weight) for layer in net.masked_layers())
    masks = sum(tensor_bytes(layer.packed_mask(t)) for layer in net.masked_layers()
                for t in range(layer.num_committed))
    return weights + masks
