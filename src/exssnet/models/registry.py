"""A name registry of dense model builders; any of them becomes a supermask model via `to_supermask`."""

from __future__ import annotations

from typing import Callable

from torch import nn

from exssnet.errors import ExssnetError

ModelBuilder = Callable[[tuple[int, ...], int], nn.Module]
_MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register `builder(input_shape, num_classes) -> nn.Module` under `name`."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        return builder

    return decorate


def model_names() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A dense model by registered name, for inputs of `input_shape` (no batch dim)."""
    if name not in _MODELS:
        raise ExssnetError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _MODELS[name](tuple(input_shape), num_classes)
