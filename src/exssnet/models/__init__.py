"""Model zoo: dense builders by name (each module registers itself on import)."""

# register the built-in models (`model_names()` lists them; mlp also takes mlp-H1-H2-...)
from exssnet.models import kim_cnn, lenet, mlp, resnet, small_cnn, wsn_nets  # noqa: F401
from exssnet.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
