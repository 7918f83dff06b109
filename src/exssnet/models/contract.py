"""The feature/classifier contract every model follows (timm's `forward_features` / `forward_head` / `get_classifier`).

KKT (features that feed the classifier), the multi-head baselines (the classifier they replace by per-task heads)
and checkpoints (the head width) all ask `find_classifier`, so the classifier is found one way:

1. the model's own `get_classifier()` (the registered ResNets and Kim CNN define it);
2. else a module named by the model's `classifier_name` attribute (a user model can name its classifier);
3. else the last Linear of an `nn.Sequential` (definition order is call order there);
4. else the model's only Linear.

Anything else is a clear ExssnetError instead of a guess.
"""

from __future__ import annotations

from torch import nn

from exssnet.errors import ExssnetError


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """(name within `model`, module) of the model's classifier, or a clear error when it cannot be determined."""
    names = {id(module): name for name, module in model.named_modules()}
    if callable(getattr(model, "get_classifier", None)):
        module = model.get_classifier()
        if id(module) not in names or not isinstance(module, nn.Linear):
            raise ExssnetError(f"{type(model).__name__}.get_classifier() must return one of its own nn.Linear modules")
        return names[id(module)], module
    named = getattr(model, "classifier_name", None)
    if named is not None:
        try:
            module = model.get_submodule(named)
        except AttributeError:
            raise ExssnetError(f"{type(model).__name__}.classifier_name {named!r} names no module of the model") from None
        if not isinstance(module, nn.Linear):
            raise ExssnetError(f"{type(model).__name__}.classifier_name {named!r} is a {type(module).__name__}, not an nn.Linear")
        return named, module
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ExssnetError(f"{type(model).__name__} has no nn.Linear classifier")
    if isinstance(model, nn.Sequential) or len(linears) == 1:
        return linears[-1]
    raise ExssnetError(
        f"cannot tell which of the {len(linears)} Linear layers of {type(model).__name__} is its classifier; "
        "define get_classifier() or set classifier_name = '<module name>' on the model"
    )
