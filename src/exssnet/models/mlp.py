"""A plain ReLU MLP with settable hidden sizes; `mlp` is WSN's Permuted-MNIST network (784-100-100-10).

Names: `mlp` (hidden 100, 100: Kang et al. 2022's PMNIST model) or `mlp-H1-H2-...` for any hidden sizes
(`mlp-300-100` has LeNet's shape). Flatten -> (Linear -> ReLU) per hidden size -> Linear classifier, every
Linear bias-free like this project's `lenet`, so it works under `to_supermask` (whose masked layers carry no
bias) and under the dense baselines, which replace the classifier by per-task heads (those have a bias).
"""

from __future__ import annotations

import math

from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models.registry import ModelBuilder, register_model, register_model_family

WSN_PMNIST_HIDDEN = (100, 100)


def mlp_network(in_features: int, hidden: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Flatten, then Linear-ReLU for each hidden size, then the Linear classifier (all without bias)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size, bias=False), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_classes, bias=False))
    return nn.Sequential(*layers)


def mlp_builder(hidden: tuple[int, ...]) -> ModelBuilder:
    """A registry builder for an MLP with these hidden sizes."""

    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return mlp_network(math.prod(input_shape), hidden, num_classes)

    return build


def parse_hidden(text: str) -> tuple[int, ...]:
    """Hidden sizes from `100-100` (a model name's tail) or `100,100`; a clear error for anything else."""
    parts = text.replace(",", "-").split("-")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise ExssnetError(f"mlp hidden sizes must be positive integers like mlp-100-100, got {text!r}")
    return sizes


@register_model("mlp", input_kind="image", hidden=WSN_PMNIST_HIDDEN)
def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """WSN's PMNIST MLP: hidden 100, 100, ReLU."""
    return mlp_builder(WSN_PMNIST_HIDDEN)(input_shape, num_classes)


@register_model_family("mlp", input_kind="image")
def mlp_family(tail: str) -> tuple[ModelBuilder, dict]:
    """`mlp-H1-H2-...`: an MLP with those hidden sizes."""
    hidden = parse_hidden(tail)
    return mlp_builder(hidden), {"hidden": hidden}
