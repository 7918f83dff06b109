"""One finished task of a supermask model as a plain model of the user's own class (PEFT's `merge_and_unload`).

    model = net.export_task(2)            # the user's model class, plain torch layers, eval mode
    model(x)                              # == net.logits(x, 2)
    fresh = build_model("lenet", (1, 28, 28), net.tasks[2].num_classes)
    fresh.load_state_dict(model.state_dict())

Every supermask layer is replaced by its `plain_module(task)` (a masked layer by the torch layer it
extends with weight = weight * mask, weight-phase entries included; a per-task BatchNorm by a plain
BatchNorm with the task's statistics), the classifier head is sliced to the task's classes, and the
rest of the model is copied as it is (`copy.deepcopy` with the plain layers pre-seeded, so a module
reused under several names stays one shared module). Nothing of exssnet is left in the result.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from exssnet.errors import ExssnetError
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedLayer
from exssnet.models.contract import find_classifier

_SUPERMASK_PACKAGE = "exssnet.layers"  # no module of this package may be left in an export


def export_task(net: Any, task: int) -> nn.Module:
    """The model of finished `task` of SupermaskNet `net` as the user's own model class with plain torch layers, in eval mode.

    Its outputs (eval mode) are `net.logits(x, task)`: the head has the task's class count. It shares
    no tensor with `net`. Refused: a task not finished, a supermask layer without `plain_module`, a model
    whose classifier cannot be told (define `get_classifier()` or set `classifier_name`).
    """
    net.check_task(task)
    phase = net.tasks[task].phase  # a Phase (a str enum): this module is below supermask.py, which calls it
    if phase != "done":
        raise ExssnetError(f"task {task} is not finished (phase {phase.value!r}): call finish_task() before exporting it")
    head_name, head = find_classifier(net.model)
    plain: dict[int, nn.Module] = {}
    for name, module in net.model.named_modules():
        if isinstance(module, (MaskedLayer, MultitaskBatchNorm)) or callable(getattr(module, "plain_module", None)):
            if not callable(getattr(module, "plain_module", None)):
                raise ExssnetError(f"module {name!r} ({type(module).__name__}) has no plain_module(task): it cannot be exported")
            plain[id(module)] = module.plain_module(task)
    width = net.tasks[task].num_classes
    plain_head = plain.get(id(head))
    plain[id(head)] = sliced_head(copy.deepcopy(head) if plain_head is None else plain_head, width, head_name)
    exported = copy.deepcopy(net.model, memo=dict(plain))  # pre-seeded: these modules are used, not copied
    for name, module in exported.named_modules():
        if type(module).__module__.startswith(_SUPERMASK_PACKAGE):
            raise ExssnetError(f"module {name!r} ({type(module).__name__}) is an exssnet layer without plain_module(task): "
                               "it cannot be exported")
    return exported.eval()


def sliced_head(head: nn.Module, num_classes: int, name: str) -> nn.Linear:
    """A copy of Linear `head` keeping its first `num_classes` outputs (the head itself when it has exactly that many)."""
    if not isinstance(head, nn.Linear):
        raise ExssnetError(f"the classifier {name!r} exports as a {type(head).__name__}, not an nn.Linear: it cannot be sliced")
    if num_classes > head.out_features:
        raise ExssnetError(f"the task has {num_classes} classes but the classifier {name!r} only {head.out_features} outputs")
    if num_classes == head.out_features:
        return head
    sliced = nn.Linear(head.in_features, num_classes, bias=head.bias is not None, device="meta")
    sliced.weight = nn.Parameter(head.weight.detach()[:num_classes].clone())
    if head.bias is not None:
        sliced.bias = nn.Parameter(head.bias.detach()[:num_classes].clone())
    return sliced
