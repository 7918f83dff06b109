"""SupSup one-shot task inference: which learned task's subnetwork does an input belong to?

Every masked layer runs with the superposed weight `W * sum_i alpha_i M_i`, alpha_i = 1/T over the
T candidate tasks (finished tasks only). The gradient of the output entropy w.r.t. alpha says which
mask, given more weight, makes the network most confident; the inferred task is its argmin.

Two granularities:
- "batch": the whole batch is assumed to come from one task (as in SupSup); one id for all of it.
- "example": one id per example, the honest class-incremental setting. The per-example gradients
  come from one forward/backward: a layer's output is linear in alpha, so example b's gradient is
  sum over layers of <dH_b/dy_b, op(x_b, W * M_i)> (exact as long as examples do not interact).

BatchNorm during superposition (per-task statistics make it ambiguous), see `MultitaskBatchNorm.superpose`:
- "batch" (default): the batch's own statistics, as constants (no gradient through them, so the
  per-example gradients stay exact). Evaluate per example on batches that mix tasks.
- "mixture": the equal-weight mixture of the candidates' running statistics (needs no other example).
No running statistic, mask or score is changed by inference.

`rule="binary"` is SupSup's iterative variant (per batch): superpose the remaining candidates
uniformly, keep the half with the lowest gradient, repeat until one is left (ceil(log2 T) rounds).

`rule="min-entropy"` is the brute-force reference: run every candidate's own
subnetwork (its mask and its BatchNorm statistics, eval mode) and pick the lowest output entropy
(normalised by log of the task's class count). T forward passes, no superposition, no BN ambiguity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from exssnet.data.tasks import Inputs, num_examples, take
from exssnet.errors import ExssnetError
from exssnet.layers import MaskedLayer
from exssnet.modes import evaluating
from exssnet.supermask import Phase, SupermaskNet

INFERENCE_MODES = ("example", "batch")
BN_RULES = ("mixture", "batch")
INFERENCE_RULES = ("one-shot", "binary", "min-entropy")


def learned_tasks(net: SupermaskNet) -> list[int]:
    """Ids of finished tasks: the only candidates task inference may choose."""
    return [t for t, state in enumerate(net.tasks) if state.phase is Phase.DONE]


def candidate_tasks(net: SupermaskNet, tasks: list[int] | None) -> list[int]:
    """`tasks` checked to be finished tasks (all finished tasks when None)."""
    learned = learned_tasks(net)
    if tasks is None:
        tasks = learned
    unknown = [t for t in tasks if t not in learned]
    if unknown:
        raise ExssnetError(f"task inference can only choose finished tasks; not finished or unknown: {unknown}")
    if not tasks:
        raise ExssnetError("task inference needs at least one finished task")
    return list(tasks)


def check_settings(mode: str, bn: str, rule: str = "one-shot") -> None:
    """Refuse unknown settings and combinations with a clear message."""
    if mode not in INFERENCE_MODES:
        raise ExssnetError(f"task inference mode must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
    if bn not in BN_RULES:
        raise ExssnetError(f"task inference BatchNorm rule must be one of {', '.join(BN_RULES)}, got {bn!r}")
    if rule not in INFERENCE_RULES:
        raise ExssnetError(f"task inference rule must be one of {', '.join(INFERENCE_RULES)}, got {rule!r}")
    if rule == "binary" and mode != "batch":
        raise ExssnetError("task inference rule 'binary' works per batch: use mode 'batch'")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-row entropy of softmax(logits)."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def entropy_gradients(
    net: SupermaskNet, x: Inputs, tasks: list[int] | None = None, mode: str = "example", bn: str = "batch"
) -> torch.Tensor:
    """d entropy / d alpha at alpha = 1/T: shape (B, T) for mode "example", (T,) for "batch" (batch mean)."""
    check_settings(mode, bn)
    tasks = candidate_tasks(net, tasks)
    width = max(net.tasks[t].num_classes for t in tasks)
    alphas = torch.full((len(tasks),), 1.0 / len(tasks), device=net.device, requires_grad=True)
    calls: list[tuple[MaskedLayer, torch.Tensor, torch.Tensor]] = []

    def record(layer, inputs, output):
        calls.append((layer, inputs[0].detach(), output))

    handles = [layer.register_forward_hook(record) for layer in net.alpha_linear_layers()] if mode == "example" else []
    try:
        with torch.enable_grad(), net.superposed(tasks, alphas, bn):
            h = entropy(net(*(x if isinstance(x, tuple) else (x,)))[:, :width])
            if mode == "batch":
                (grad,) = torch.autograd.grad(h.mean(), [alphas])
                return grad
            out_grads = torch.autograd.grad(h.sum(), [y for _, _, y in calls], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    per_example = torch.zeros(h.shape[0], len(tasks), device=h.device)
    with torch.no_grad():
        for (layer, inputs, _), g in zip(calls, out_grads):
            if g is None:  # this layer's output does not reach the logits
                continue
            for i, t in enumerate(tasks):
                y_t = net.layer_output(layer, inputs, t)
                per_example[:, i] += (g * y_t).flatten(1).sum(dim=1)
    return per_example


@torch.no_grad()
def task_entropies(net: SupermaskNet, x: Inputs, tasks: list[int] | None = None) -> torch.Tensor:
    """(B, T) output entropy of each candidate's own subnetwork, divided by log(its class count)."""
    tasks = candidate_tasks(net, tasks)
    columns = []
    with evaluating(net):
        for t in tasks:
            classes = net.tasks[t].num_classes
            h = entropy(net.logits(x, t))
            columns.append(h / math.log(classes) if classes > 1 else torch.zeros_like(h))
    return torch.stack(columns, dim=1)


def infer_task(
    net: SupermaskNet, x: Inputs, tasks: list[int] | None = None, mode: str = "example", bn: str = "batch",
    rule: str = "one-shot",
) -> torch.Tensor:
    """Inferred task id per example (LongTensor of shape (B,)); in mode "batch" all entries are equal.

    rule "one-shot": argmin of d entropy / d alpha under superposition (SupSup); "binary": SupSup's
    iterative halving by that gradient (mode "batch"); "min-entropy": argmin of each candidate
    subnetwork's own (normalised) output entropy.
    """
    check_settings(mode, bn, rule)
    tasks = candidate_tasks(net, tasks)
    n = num_examples(x)
    device = net.device
    if len(tasks) == 1:
        return torch.full((n,), tasks[0], dtype=torch.long, device=device)
    if rule == "binary":
        while len(tasks) > 1:
            keep = entropy_gradients(net, x, tasks, mode, bn).argsort()[: math.ceil(len(tasks) / 2)]
            tasks = sorted(tasks[i] for i in keep.tolist())
        return torch.full((n,), tasks[0], dtype=torch.long, device=device)
    if rule == "one-shot":
        scores = entropy_gradients(net, x, tasks, mode, bn)
    else:
        scores = task_entropies(net, x, tasks)
        scores = scores.mean(dim=0) if mode == "batch" else scores
    ids = torch.tensor(tasks, dtype=torch.long, device=device)
    if mode == "batch":
        return ids[scores.argmin()].expand(n).clone()
    return ids[scores.argmin(dim=1)]


@torch.no_grad()
def predict_with_inferred_task(
    net: SupermaskNet, x: Inputs, inferred: torch.Tensor
) -> torch.Tensor:
    """Class predictions (within the inferred task) using each example's inferred task's subnetwork."""
    predictions = torch.zeros_like(inferred)
    with evaluating(net):
        for t in inferred.unique().tolist():
            index = (inferred == t).nonzero().flatten()
            predictions[index] = net.logits(take(x, index), t).argmax(dim=1)
    return predictions
