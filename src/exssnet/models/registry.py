"""A name registry of dense model builders; any of them becomes a supermask model via `to_supermask`."""

from __future__ import annotations

from typing import Callable

from torch import nn

from exssnet.registry import Registry

ModelBuilder = Callable[[tuple[int, ...], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
register_model = MODELS.register
model_names = MODELS.names


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A dense model by registered name, for inputs of `input_shape` (no batch dim)."""
    return MODELS.get(name)(tuple(input_shape), num_classes)
