"""Continual-learning methods by name (each module registers itself on import)."""

from exssnet.methods import supermask_methods  # noqa: F401  (registers supsup, ssnet, exssnet)
from exssnet.methods import baselines  # noqa: F401  (registers the dense baselines)
from exssnet.methods import language  # noqa: F401  (registers the language baselines)
from exssnet.methods.base import ContinualMethod, build_method, method_names, method_supports_resume, register_method

__all__ = ["ContinualMethod", "build_method", "method_names", "method_supports_resume", "register_method"]
