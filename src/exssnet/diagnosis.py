"""Flag a task that ends at chance accuracy, with the likely cause (results.json and the summary show it)."""

from __future__ import annotations

import math

from exssnet.errors import ExssnetError
from exssnet.models.contract import find_classifier
from exssnet.supermask import Phase, SupermaskNet

# a task is at chance when its accuracy is within this many binomial standard errors of 100 / classes
STANDARD_ERRORS = 2.0
MIN_MARGIN = 1.0  # percentage points, for large test sets


def chance_threshold(num_classes: int, num_test: int) -> tuple[float, float]:
    """(chance accuracy, highest accuracy still flagged), percent."""
    p = 1.0 / num_classes
    margin = max(MIN_MARGIN, STANDARD_ERRORS * 100.0 * math.sqrt(p * (1 - p) / max(1, num_test)))
    return 100.0 * p, 100.0 * p + margin


def at_chance(acc: float, num_classes: int, num_test: int) -> bool:
    """True when `acc` (percent) is no better than guessing among `num_classes` on `num_test` examples."""
    return num_classes > 1 and acc <= chance_threshold(num_classes, num_test)[1]


def likely_cause(net: SupermaskNet | None, task: int, num_classes: int, lrs: dict[str, float]) -> str:
    """The most likely reason a task stayed at chance: an empty head row, a too sparse layer, or the optimisation."""
    if net is not None and task < net.num_tasks and net.tasks[task].phase is not Phase.MASK:
        try:
            head_name, head = find_classifier(net.model)  # the model's classifier, as KKT and checkpoints find it
        except ExssnetError:  # a model that does not name its classifier: only the per-layer check below applies
            head_name, head = None, None
        # PackNet's (nested) masks are what earlier tasks left free, not the density's share
        where, fix = ("after the earlier tasks' shares", "lower --packnet-keep") if net.nested_masks else \
            (f"at density {net.density:g}", "raise --density")
        if head is not None and callable(getattr(head, "mask_of", None)):  # a masked head (not per-task heads)
            rows = head.mask_of(task)[:num_classes].flatten(1).sum(dim=1)
            empty = [c for c, kept in enumerate(rows.tolist()) if kept == 0]
            if empty:
                return (f"{where} the classifier {head_name!r} keeps {int(rows.sum())} weight(s) for the "
                        f"task's {num_classes} classes and none for class(es) {empty}: {fix}")
        for name, layer in net.named_masked_layers():
            kept, outputs = int(layer.mask_of(task).sum()), layer.weight.shape[0]
            if kept < outputs:
                return (f"{where} layer {name!r} keeps {kept} of {layer.weight.numel()} weights, "
                        f"fewer than its {outputs} outputs: {fix}")
    settings = ", ".join(f"{k} {v:g}" for k, v in lrs.items())
    return f"the optimisation did not learn it: check the learning rates ({settings}) and the epochs"
