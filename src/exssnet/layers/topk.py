"""Top-k masks with a straight-through gradient, and 1-bit packing of finished masks."""

from __future__ import annotations

import math

import torch


def kept_count(numel: int, density: float) -> int:
    """Number of entries a layer keeps: ceil(density * numel), at least one."""
    return max(1, min(numel, math.ceil(density * numel)))


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the `ceil(density * numel)` largest entries of `|scores|`."""
    flat = scores.detach().abs().flatten()
    k = kept_count(flat.numel(), density)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k == flat.numel():
        mask.fill_(True)
    else:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view_as(scores)


class _StraightThroughTopK(torch.autograd.Function):
    """Forward: 0/1 top-k mask of the input; backward: pass the gradient through unchanged."""

    @staticmethod
    def forward(ctx, magnitudes: torch.Tensor, density: float) -> torch.Tensor:  # type: ignore[override]
        return topk_mask(magnitudes, density).to(magnitudes.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        return grad_output, None


def straight_through_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Float 0/1 mask of top-k |scores|, differentiable w.r.t. `scores` by straight-through."""
    return _StraightThroughTopK.apply(scores.abs(), density)


class _GradMaskedProduct(torch.autograd.Function):
    """`weight * mask` whose weight gradient is `grad * grad_mask` (exactly zero outside it)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor, grad_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(grad_mask)
        return weight * mask

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (grad_mask,) = ctx.saved_tensors
        return grad_output * grad_mask, None, None


def masked_weight_with_grad_mask(
    weight: torch.Tensor, mask: torch.Tensor, grad_mask: torch.Tensor
) -> torch.Tensor:
    """Effective weight `weight * mask`; only entries of `grad_mask` receive gradient."""
    return _GradMaskedProduct.apply(weight, mask, grad_mask)


_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean mask into uint8, 1 bit per entry, most significant bit first (numpy.packbits order)."""
    flat = mask.detach().flatten().to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=flat.device)
    return (flat.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def unpack_mask(packed: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of `pack_mask`: a boolean tensor of `shape` on the device of `packed`."""
    numel = math.prod(shape)
    if packed.numel() != (numel + 7) // 8:
        raise ValueError(f"packed mask has {packed.numel()} bytes, expected {(numel + 7) // 8} for shape {tuple(shape)}")
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.to(torch.uint8).unsqueeze(1) >> shifts) & 1
    return bits.flatten()[:numel].view(*shape).bool()


class _SuperposedMask(torch.autograd.Function):
    """`sum_i alphas[i] * M_i` from 1-bit packed masks; the backward unpacks one mask at a time.

    Memory stays O(|W|) floats plus the packed bits, whatever the number of masks.
    """

    @staticmethod
    def forward(ctx, alphas: torch.Tensor, shape: torch.Size, dtype: torch.dtype, *packed: torch.Tensor):  # type: ignore[override]
        ctx.shape, ctx.dtype = shape, dtype
        ctx.save_for_backward(*packed)
        mixed = torch.zeros(shape, dtype=dtype, device=alphas.device)
        for alpha, bits in zip(alphas.to(dtype), packed):
            mixed.add_(unpack_mask(bits, shape).to(dtype) * alpha)
        return mixed

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        grads = [
            (grad_output * unpack_mask(bits, ctx.shape).to(grad_output.dtype)).sum() for bits in ctx.saved_tensors
        ]
        return (torch.stack(grads), None, None, *([None] * len(ctx.saved_tensors)))


def superposed_mask(
    alphas: torch.Tensor, packed: list[torch.Tensor], shape: torch.Size, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Float mask `sum_i alphas[i] * unpack(packed[i])`, differentiable w.r.t. `alphas`."""
    if alphas.shape != (len(packed),):
        raise ValueError(f"alphas has shape {tuple(alphas.shape)}, expected ({len(packed)},)")
    return _SuperposedMask.apply(alphas, torch.Size(shape), dtype, *packed)
