"""Houlsby bottleneck adapters injected into a BERT-like encoder, one or several (per task) per site.

Why by hand: the `adapters` library (1.3) requires transformers ~=4.57 while this project pins 5.x, and
moving the whole text stack to an older transformers for one building block is not worth it. The
adapter is small: down-projection, GELU, zero-initialised up-projection and a residual, placed (as in
Houlsby et al. 2019) on the output of every attention-output and feed-forward-output projection, before
their residual LayerNorm. Sites are found the way supermask layers are injected: any module with a
Linear `dense` and a `LayerNorm` (BertSelfOutput / BertOutput and their look-alikes).
"""

from __future__ import annotations

import torch
from torch import nn


class Adapter(nn.Module):
    """x + up(gelu(down(x))); starts as the identity (up is zero)."""

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(nn.functional.gelu(self.down(x)))


class AdaptedDense(nn.Module):
    """A frozen projection followed by the active adapter of a bank (one adapter per slot)."""

    def __init__(self, dense: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.dense, self.bottleneck = dense, bottleneck
        self.adapters = nn.ModuleList()
        self.active = 0

    def add_adapter(self) -> Adapter:
        adapter = Adapter(self.dense.out_features, self.bottleneck).to(self.dense.weight.device)
        self.adapters.append(adapter)
        return adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapters[self.active](self.dense(x))


def inject_adapters(model: nn.Module, bottleneck: int) -> list[AdaptedDense]:
    """Wrap every adapter site's `dense` of `model` in place; returns the sites (each with no adapter yet)."""
    sites = []
    for module in list(model.modules()):
        dense = getattr(module, "dense", None)
        if isinstance(dense, nn.Linear) and isinstance(getattr(module, "LayerNorm", None), nn.LayerNorm):
            site = AdaptedDense(dense, bottleneck)
            module.dense = site
            sites.append(site)
    return sites
