"""Reusable supermask building blocks: top-k masks, masked layers, per-task BatchNorm."""

from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLayer, MaskedLinear, TaskBuffers, reference_forward
from exssnet.layers.masked_more import (
    MaskedConv3d,
    MaskedConvTranspose1d,
    MaskedConvTranspose2d,
    MaskedConvTranspose3d,
    MaskedEmbedding,
)
from exssnet.layers.topk import pack_mask, topk_mask, unpack_mask
from exssnet.layers.view import View

__all__ = [
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedConv3d",
    "MaskedConvTranspose1d",
    "MaskedConvTranspose2d",
    "MaskedConvTranspose3d",
    "MaskedEmbedding",
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
