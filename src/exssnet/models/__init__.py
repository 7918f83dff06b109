"""Model zoo: dense builders by name (each module registers itself on import)."""

# register "kim-cnn", "lenet", "resnet18-reduced", "resnet50", "cnn-small"
from exssnet.models import kim_cnn, lenet, resnet, small_cnn  # noqa: F401
from exssnet.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
