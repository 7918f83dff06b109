"""Conditional channel gating (Abati et al. 2020): per-task gating modules over a shared layer.

`GatedLayer` wraps a Linear / Conv1d / Conv2d. For the active task, a small gating module
(global average pool of the layer's input -> Linear(in, hidden) -> ReLU -> Linear(hidden, out))
decides, per example, which output channels run: during training a straight-through Gumbel
(logistic-noise) sigmoid gives hard 0/1 gates with soft gradients; in evaluation a channel runs when
its gate logit is positive AND the channel is in the task's `relevant` set (the channels whose gates
fire on more than a threshold fraction of the task's validation examples, as Abati et al. 2020),
so a finished task only ever reads channels whose filters are frozen.
`PerTaskBatchNorm` gives every task its own affine BatchNorm (statistics and scale/shift).
"""

from __future__ import annotations

import torch
from torch import nn

GATED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def pooled(x: torch.Tensor) -> torch.Tensor:
    """(B, C) summary of a layer input: itself for (B, C), the mean over positions for (B, C, ...)."""
    return x if x.dim() == 2 else x.flatten(2).mean(dim=2)


class GateModule(nn.Module):
    """Gate logits (B, out) from a layer input; the last bias starts open (gates fire at first)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 16, open_bias: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, out_channels))
        nn.init.constant_(self.net[2].bias, open_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pooled(x))


class GatedLayer(nn.Module):
    """A shared layer whose output channels are switched per example by the active task's gates."""

    def __init__(self, layer: nn.Module, hidden: int = 16, temperature: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.layer = layer
        self.in_channels = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
        self.out_channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        self.hidden, self.temperature = hidden, temperature
        self.gates = nn.ModuleList()
        self.register_buffer("frozen", torch.zeros(self.out_channels, dtype=torch.bool))
        self.relevant: list[torch.Tensor] = []  # per finished task: the channels it may use
        self.task = 0
        self.last_soft: torch.Tensor | None = None  # soft gates of the last training forward (sparsity loss)
        self.fired: torch.Tensor | None = None  # when counting: per channel, how many examples fired it so far
        self.seen = 0  # when counting: examples seen so far

    def add_task(self) -> None:
        device = self.layer.weight.device
        self.gates.append(GateModule(self.in_channels, self.out_channels, self.hidden).to(device))

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gates[self.task](x)
        if self.training:
            u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
            self.last_soft = soft
            return (soft > 0.5).to(soft.dtype) + soft - soft.detach()  # straight-through
        gates = logits > 0
        if self.task < len(self.relevant):
            gates = gates & self.relevant[self.task]
        if self.fired is not None:
            self.fired += gates.sum(dim=0)
            self.seen += gates.shape[0]
        return gates.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        gates = self.gate_values(x)
        return out * gates.view(*gates.shape, *([1] * (out.dim() - 2)))

    def start_counting(self) -> None:
        """Count, per channel, the examples whose (evaluation-mode) gate fires, until `firing_probability`."""
        self.fired = torch.zeros(self.out_channels, dtype=torch.long, device=self.layer.weight.device)
        self.seen = 0

    def firing_probability(self) -> torch.Tensor:
        """Fraction of the counted examples that fired each channel; stops counting."""
        if self.fired is None or self.seen == 0:
            raise ValueError("firing_probability needs start_counting and at least one forward in eval mode")
        probability = self.fired.double() / self.seen
        self.fired, self.seen = None, 0
        return probability

    def finish_task(self, relevant: torch.Tensor) -> None:
        """Record the finished task's channels and freeze their filters for every later task."""
        self.relevant.append(relevant.clone())
        self.frozen |= relevant


class PerTaskBatchNorm(nn.Module):
    """One affine BatchNorm{1,2}d per task; `task` selects which one runs."""

    def __init__(self, template: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.kind, self.num_features = type(template), template.num_features
        self.eps, self.momentum = template.eps, template.momentum
        self.norms = nn.ModuleList()
        self.task = 0

    def add_task(self, device: torch.device) -> None:
        self.norms.append(self.kind(self.num_features, eps=self.eps, momentum=self.momentum).to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[self.task](x)


def inject_gates(model: nn.Module, hidden: int = 16) -> nn.Module:
    """Wrap every Linear/Conv of `model` in a GatedLayer and make every BatchNorm per task, in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, GATED_TYPES):
            setattr(model, name, GatedLayer(child, hidden))
        elif isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(model, name, PerTaskBatchNorm(child))
        else:
            inject_gates(child, hidden)
    return model
