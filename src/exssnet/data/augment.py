"""Batch augmentations on image tensors (B, C, H, W), deterministic given a torch.Generator.

They run on already normalised float batches; random numbers are drawn on the CPU generator and
moved to the batch's device, so a run is reproducible on any device.
"""

from __future__ import annotations

from typing import Sequence

import torch


def _flip_rows(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


class RandomFlip:
    """Horizontal flip with probability 1/2 (the TinyImageNet augmentation)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _flip_rows(x, generator)

    def __repr__(self) -> str:
        return "RandomFlip()"


class RandomCropFlip:
    """Random crop of the original size from the image padded by `padding` pixels, then a random flip.

    `fill` is the per-channel value the padding takes (for normalised inputs, the normalised value of
    a black pixel, so padding looks the same as zero-padding the raw image).
    """

    def __init__(self, padding: int = 4, fill: Sequence[float] | None = None) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self.fill = None if fill is None else torch.tensor(list(fill), dtype=torch.float32)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, channels, height, width = x.shape
        p = self.padding
        padded = x.new_zeros(batch, channels, height + 2 * p, width + 2 * p)
        if self.fill is not None:
            padded += self.fill.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        padded[:, :, p : p + height, p : p + width] = x
        dy = torch.randint(0, 2 * p + 1, (batch,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (batch,), generator=generator).to(x.device)
        windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (B, C, 2p+1, 2p+1, H, W), a view
        cropped = windows[torch.arange(batch, device=x.device), :, dy, dx]  # (B, C, H, W)
        return _flip_rows(cropped, generator)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding})"
