"""LeNet for SplitMNIST as SupSup and the paper use it: an MLP 784-300-100-C (no BatchNorm, no bias).

`lenet-bn` is the same MLP with BatchNorm after each hidden layer (per-task non-affine statistics
once it becomes a supermask model); it is not the paper's model.
"""

from __future__ import annotations

import math

from torch import nn

from exssnet.models.registry import register_model


def _mlp(in_features: int, hidden: tuple[int, int], num_classes: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size, bias=False))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        width = size
    layers.append(nn.Linear(width, num_classes, bias=False))
    return nn.Sequential(*layers)


@register_model("lenet", input_kind="image")
def lenet(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, int] = (300, 100)) -> nn.Module:
    """The paper's (SupSup's) LeNet 300-100: Flatten -> Linear-ReLU x2 -> Linear head, all bias-free."""
    return _mlp(math.prod(input_shape), hidden, num_classes, batchnorm=False)


@register_model("lenet-bn", input_kind="image")
def lenet_bn(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, int] = (300, 100)) -> nn.Module:
    """LeNet 300-100 with BatchNorm after each hidden Linear (not in the paper)."""
    return _mlp(math.prod(input_shape), hidden, num_classes, batchnorm=True)
