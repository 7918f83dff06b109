"""Model zoo: dense builders by name (each module registers itself on import)."""

from exssnet.models import lenet  # noqa: F401  (registers "lenet")
from exssnet.models import kim_cnn, resnet, small_cnn  # noqa: F401  (register "kim-cnn", "resnet18-reduced", "resnet50", "cnn-small")
from exssnet.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
