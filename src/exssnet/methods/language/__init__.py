"""Language baselines of the paper's Table 1: methods that fine-tune or adapt the text encoder on raw text."""

from exssnet.methods.base import method_names, method_text_inputs
from exssnet.methods.language import (  # noqa: F401  (register the language methods)
    adaptbert,
    ft,
    idbr,
    lamol,
    mbpa,
    multiadaptbert,
    prompt_tuning,
    regularization,
    replay,
)

# the registered methods that train the encoder on raw text: these language baselines
LANGUAGE_METHODS = tuple(m for m in method_names() if method_text_inputs(m) == "tokens")

__all__ = ["LANGUAGE_METHODS"]
