"""Language baselines of the paper's Table 1: methods that fine-tune or adapt the text encoder on raw text."""

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
from exssnet.methods.language.base import LANGUAGE_METHODS

__all__ = ["LANGUAGE_METHODS"]
