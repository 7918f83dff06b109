"""Continual-learning methods by name (each module registers itself on import)."""

# registers the dense baselines, supsup, ssnet, exssnet, wsn, packnet and the language baselines
from exssnet.methods import baselines, language, mask_family, supermask_methods  # noqa: F401
from exssnet.methods.base import (
    ContinualMethod,
    build_method,
    method_names,
    method_settings_class,
    method_supports_resume,
    register_method,
    settings_classes,
)

__all__ = ["ContinualMethod", "build_method", "method_names", "method_settings_class", "method_supports_resume",
           "register_method", "settings_classes"]
