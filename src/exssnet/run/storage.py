"""What a finished run stores per parameter (WSN's CAP), for results.json: `storage_summary(method)`.

Mask methods (a SupermaskNet): the weights inside the union of the tasks' masks (float32) plus every task's
mask at its actual coded size (the checkpoint's Golomb code, `encode_mask`), over the masked layers.
Dense baselines: float32 copies of the model needed to evaluate every task (one; `individual` keeps one per
task); gates, BatchNorms and heads are not counted, nor training-only state (Fisher, replay buffers).
Other methods (text): None.
"""

from __future__ import annotations

from exssnet.layers.maskcode import encode_mask
from exssnet.methods.base import ContinualMethod
from exssnet.methods.baselines.dense import DenseMethod
from exssnet.metrics import storage, union_density
from exssnet.supermask import SupermaskNet


def coded_mask_bits(masks: list[dict]) -> int:
    """Bits of every task's mask of every layer as the checkpoint codes them."""
    return sum(8 * encode_mask(mask).numel() for task_masks in masks for mask in task_masks.values())


def storage_summary(method: ContinualMethod) -> dict:
    """{"capacity": percent of one dense model, "bits_per_param_per_task": ...} (None for other methods)."""
    tasks = method.num_learned
    net = getattr(method, "net", None)
    if tasks < 1 or not isinstance(net, SupermaskNet) and not isinstance(method, DenseMethod):
        return {"capacity": None, "bits_per_param_per_task": None}
    if isinstance(net, SupermaskNet):
        masks = [net.task_masks(t) for t in range(tasks)]
        mask_bits = coded_mask_bits(masks) / sum(m.numel() for m in masks[0].values()) / tasks
        return {**storage(union_density(masks), mask_bits, tasks), "mask_bits_per_param_per_task": mask_bits}
    copies = len(getattr(method, "nets", None) or [net])
    return storage(float(copies), 0.0, tasks)
