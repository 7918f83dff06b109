"""Which methods read which config key, derived from the method registry (used by `exssnet run --help` and reports).

A key of a registered settings class is read by exactly the methods registered with a class that declares it.
A core key is read by every method, except those below: the mask keys only by supermask methods (methods over
one SupermaskNet, whose settings class derives from MaskNetSettings: supsup, ssnet, exssnet, wsn, packnet), `model`
not by methods that fine-tune a text encoder, and no core key by a method that names it in its `ignored_core_keys`
(SupSup has no weight phase).
A field may also name its readers itself in its metadata (`metadata["methods"]`), which then wins.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from exssnet.methods import method_names, method_settings_class, settings_classes
from exssnet.methods.base import method_ignored_core_keys, method_text_inputs
from exssnet.methods.supermask_methods import MaskNetSettings
from exssnet.settings import CoreSettings

SUPERMASK_CORE_KEYS = frozenset({"density", "keep_scores", "mask_lr", "weight_lr"})  # what dense methods never read
MODEL_KEYS = frozenset({"model"})  # token methods build their net over `encoder` instead


def supermask_methods() -> list[str]:
    return [m for m in method_names() if issubclass(method_settings_class(m), MaskNetSettings)]


def token_methods() -> list[str]:
    """Methods that fine-tune the text encoder on raw tokens (the language baselines)."""
    return [m for m in method_names() if method_text_inputs(m) == "tokens"]


@lru_cache(maxsize=None)
def _core_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(CoreSettings)}


def _declared(field: dataclasses.Field) -> list[str] | None:
    """Readers a field names in its own metadata (read defensively: most fields do not)."""
    named = field.metadata.get("methods") if field.metadata else None
    if isinstance(named, (list, tuple, set, frozenset)):
        return sorted(str(m) for m in named)
    return None


def readers(key: str) -> list[str] | None:
    """The methods that read `key`, sorted; None when every method reads it (or the key is not known here)."""
    core = _core_fields().get(key)
    if core is not None:
        declared = _declared(core)
        if declared is not None:
            return declared
        if key in SUPERMASK_CORE_KEYS:
            among = supermask_methods()
        elif key in MODEL_KEYS:
            tokens = set(token_methods())
            among = [m for m in method_names() if m not in tokens]
        else:
            among = method_names()
        who = sorted(m for m in among if key not in method_ignored_core_keys(m))
        return None if len(who) == len(method_names()) else who
    found: set[str] = set()
    for cls, methods in settings_classes().items():
        for f in dataclasses.fields(cls):
            if f.name == key:
                declared = _declared(f)
                found.update(declared if declared is not None else methods)
    return sorted(found) if found else None


def reads(method: str, key: str) -> bool:
    """Whether `method` reads `key` (True for a method or key this registry does not know: nothing is hidden)."""
    if method not in method_names():
        return True
    who = readers(key)
    return who is None or method in who
