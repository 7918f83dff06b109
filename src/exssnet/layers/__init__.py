"""Reusable supermask building blocks: top-k masks, masked layers, per-task BatchNorm."""

from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear, TaskBuffers, reference_forward
from exssnet.layers.topk import pack_mask, topk_mask, unpack_mask
from exssnet.layers.view import View

__all__ = [
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "MultitaskBatchNorm",
    "TaskBuffers",
    "View",
    "pack_mask",
    "reference_forward",
    "topk_mask",
    "unpack_mask",
]
