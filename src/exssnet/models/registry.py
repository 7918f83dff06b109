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
FamilyResolver = Callable[[str], tuple[ModelBuilder, dict]]
MODELS: Registry[ModelBuilder] = Registry("model")
FAMILIES: dict[str, tuple[FamilyResolver, dict[str, Any]]] = {}  # prefix -> (resolver of the name's tail, metadata)
model_names = MODELS.names


def register_model(name: str, input_kind: str | None = None, classifier: str | None = None,
                   **metadata: Any) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model builder under `name` with what it reads and (optionally) its classifier's module name."""
    return MODELS.register(name, input_kind=input_kind, classifier=classifier, **metadata)


def register_model_family(prefix: str, **metadata: Any) -> Callable[[FamilyResolver], FamilyResolver]:
    """Register parametrised names `<prefix>-<tail>` (e.g. `mlp-100-100`): the resolver turns the tail into a
    builder and extra metadata (it raises ExssnetError for a tail it cannot read)."""

    def decorate(resolve: FamilyResolver) -> FamilyResolver:
        if prefix in FAMILIES:
            raise ValueError(f"model family {prefix!r} is registered twice")
        FAMILIES[prefix] = (resolve, dict(metadata))
        return resolve

    return decorate


def lookup_model(name: str) -> tuple[ModelBuilder, dict[str, Any]]:
    """(builder, metadata) of a registered name or of a family's parametrised name; unknown names: clear error."""
    if name not in MODELS.names():
        for prefix, (resolve, metadata) in FAMILIES.items():
            if name.startswith(prefix + "-"):
                builder, extra = resolve(name[len(prefix) + 1:])
                return builder, {**metadata, **extra}
    return MODELS.get(name), MODELS.metadata(name)


def model_input_kind(name: str) -> str | None:
    """"image", "tokens", or None when the registration did not say."""
    return lookup_model(name)[1].get("input_kind")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A dense model by registered (or family) name, for inputs of `input_shape` (no batch dim)."""
    builder, metadata = lookup_model(name)
    model = builder(tuple(input_shape), num_classes)
    classifier = metadata.get("classifier")
    if classifier is not None and not callable(getattr(model, "get_classifier", None)):
        model.classifier_name = classifier
    return model
