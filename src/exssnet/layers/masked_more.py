"""More masked layers: Embedding, Conv3d and the transposed convolutions (the same `weight * mask` math).

Each keeps the constructor arguments of the torch module it extends (they are the torch module's own
attributes), so `plain_module(task)` rebuilds that plain torch module carrying one finished task's
effective weight (`weight * mask`) and the frozen bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exssnet.layers.masked import MaskedLayer, _MaskedConv, signed_kaiming_constant_


def _plain_copy(layer: MaskedLayer, plain: nn.Module, task: int) -> nn.Module:
    """`plain` with `layer`'s effective weight of finished `task` and its bias copied in."""
    with torch.no_grad():
        plain.weight.copy_(layer.weight.detach() * layer.mask_of(task).to(layer.weight.dtype))
        if getattr(layer, "bias", None) is not None:
            plain.bias.copy_(layer.bias.detach())
    return plain.to(layer.weight.device)


class _PlainConv:
    """`plain_module` for the masked convolutions: the torch convolution with the same arguments."""

    def plain_module(self, task: int) -> nn.Module:
        conv = self
        kwargs = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                      bias=conv.bias is not None, padding_mode=conv.padding_mode)
        if conv.transposed:
            kwargs["output_padding"] = conv.output_padding
        plain = conv._torch_conv(conv.in_channels, conv.out_channels, conv.kernel_size, **kwargs)
        return _plain_copy(conv, plain, task)  # type: ignore[arg-type]


class MaskedConv3d(_PlainConv, _MaskedConv, nn.Conv3d):
    """`nn.Conv3d` whose weight is masked per task."""

    _torch_conv = nn.Conv3d


class _MaskedConvTranspose(_PlainConv, _MaskedConv):
    """Shared body of the masked transposed convolutions (`forward(x, output_size=None)` as in torch)."""

    _transpose_op = staticmethod(F.conv_transpose2d)
    _spatial_dims = 2

    def _transpose(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   output_size: list[int] | None) -> torch.Tensor:
        output_padding = self._output_padding(  # type: ignore[attr-defined]
            x, output_size, self.stride, self.padding, self.kernel_size, self._spatial_dims, self.dilation)
        return self._transpose_op(x, weight, bias, self.stride, self.padding, output_padding,  # type: ignore[attr-defined]
                                  self.groups, self.dilation)

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._transpose(x, weight, None, None)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # type: ignore[override]
        return self._transpose(x, self.effective_weight(), self.bias, output_size)


class MaskedConvTranspose1d(_MaskedConvTranspose, nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` whose weight is masked per task."""

    _torch_conv = nn.ConvTranspose1d
    _transpose_op = staticmethod(F.conv_transpose1d)
    _spatial_dims = 1


class MaskedConvTranspose2d(_MaskedConvTranspose, nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` whose weight is masked per task."""

    _torch_conv = nn.ConvTranspose2d
    _transpose_op = staticmethod(F.conv_transpose2d)
    _spatial_dims = 2


class MaskedConvTranspose3d(_MaskedConvTranspose, nn.ConvTranspose3d):
    """`nn.ConvTranspose3d` whose weight is masked per task."""

    _torch_conv = nn.ConvTranspose3d
    _transpose_op = staticmethod(F.conv_transpose3d)
    _spatial_dims = 3


class MaskedEmbedding(MaskedLayer, nn.Embedding):
    """`nn.Embedding` whose table is masked per task (row lookup of `weight * mask`).

    `max_norm` is not supported (it rescales the table in place); `sparse` gradients are not used
    (the table never trains itself).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, density: float, padding_idx: int | None = None,
                 scale_grad_by_freq: bool = False) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim, padding_idx=padding_idx,
                              scale_grad_by_freq=scale_grad_by_freq)
        signed_kaiming_constant_(self.weight)
        self._init_supermask(density)

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.embedding(x, weight, self.padding_idx, None, 2.0, self.scale_grad_by_freq, False)

    def plain_module(self, task: int) -> nn.Module:
        plain = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx,
                             scale_grad_by_freq=self.scale_grad_by_freq)
        return _plain_copy(self, plain, task)
