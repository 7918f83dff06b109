"""MultiAdaptBERT: a frozen encoder with one fresh set of Houlsby adapters per task (and a head per task).

Task t trains only its own adapters and head; evaluation of task j switches to adapters j, so earlier
tasks' adapters and outputs never change (forgetting 0 by construction).
"""

from __future__ import annotations

from exssnet.methods.base import register_method
from exssnet.methods.language.adaptbert import AdapterMethod
from exssnet.methods.language.base import AdapterSettings


@register_method("multiadaptbert", settings=AdapterSettings)
class MultiAdaptBert(AdapterMethod):
    """One fresh adapter set per task over a frozen encoder."""

    per_task_adapters = True

    def grow(self, task_id: int) -> None:
        super().grow(task_id)
        for site in self.sites:
            site.add_adapter()
