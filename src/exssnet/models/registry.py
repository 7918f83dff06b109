"""A name registry of dense model builders; any of them becomes a supermask model via `to_supermask`.

A registration carries metadata (after timm's `register_model`):
- `input_kind`: what the model reads, "image" (tensors shaped like the benchmark's input) or "tokens"
  (a text benchmark's frozen-encoder token features); a benchmark registers the kind it gives.
- `classifier`: the name of the classifier module, for a builder whose model neither defines
  `get_classifier()` nor sets `classifier_name` (see models/contract.py).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from exssnet.registry import Registry

ModelBuilder = Callable[[tuple[int, ...], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
model_names = MODELS.names


def register_model(name: str, input_kind: str | None = None, classifier: str | None = None,
                   **metadata: Any) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model builder under `name` with what it reads and (optionally) its classifier's module name."""
    return MODELS.register(name, input_kind=input_kind, classifier=classifier, **metadata)


def model_input_kind(name: str) -> str | None:
    """"image", "tokens", or None when the registration did not say."""
    return MODELS.metadata(name).get("input_kind")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A dense model by registered name, for inputs of `input_shape` (no batch dim)."""
    model = MODELS.get(name)(tuple(input_shape), num_classes)
    classifier = MODELS.metadata(name).get("classifier")
    if classifier is not None and not callable(getattr(model, "get_classifier", None)):
        model.classifier_name = classifier
    return model
