"""Model zoo: dense builders by name (each module registers itself on import)."""

from exssnet.models import lenet  # noqa: F401  (registers "lenet")
from exssnet.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
