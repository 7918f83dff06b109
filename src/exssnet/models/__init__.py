"""Model zoo: dense builders by name (each module registers itself on import)."""

# register "kim-cnn", "lenet", "mlp" (and mlp-H1-H2-...), "resnet18-reduced", "resnet50", "cnn-small"
from exssnet.models import kim_cnn, lenet, mlp, resnet, small_cnn  # noqa: F401
from exssnet.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
