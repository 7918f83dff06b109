"""FT: fine-tune the whole encoder (and the task's head) on each task in turn; nothing protects old tasks."""

from __future__ import annotations

from exssnet.methods.base import register_method
from exssnet.methods.language.base import LanguageMethod, LanguageSettings


@register_method("ft", settings=LanguageSettings)
class FineTune(LanguageMethod):
    """Cross-entropy on the current task's head; encoder at lm_lr, head at lm_new_lr."""

