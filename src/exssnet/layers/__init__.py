"""Reusable supermask building blocks: top-k masks, masked layers, per-task BatchNorm."""

from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear
from exssnet.layers.topk import pack_mask, topk_mask, unpack_mask

__all__ = [
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "MultitaskBatchNorm",
    "pack_mask",
    "topk_mask",
    "unpack_mask",
]
