"""The paper's LeNet for SplitMNIST: an MLP 784-300-100-C with BatchNorm after each hidden layer."""

from __future__ import annotations

import math

from torch import nn

from exssnet.models.registry import register_model


@register_model("lenet", input_kind="image")
def lenet(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, int] = (300, 100)) -> nn.Module:
    """Flatten -> Linear-BN-ReLU x2 -> Linear head (all Linear layers become masked, no bias)."""
    in_features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden[0], bias=False),
        nn.BatchNorm1d(hidden[0]),
        nn.ReLU(),
        nn.Linear(hidden[0], hidden[1], bias=False),
        nn.BatchNorm1d(hidden[1]),
        nn.ReLU(),
        nn.Linear(hidden[1], num_classes, bias=False),
    )
