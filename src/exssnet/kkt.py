"""KKT: KNN-based knowledge transfer between supermask tasks (ExSSNeT paper, Sec. 3.3).

Before the mask phase of a new task, a few batches of its training data are embedded by every
earlier task's subnetwork (that task's mask and BatchNorm, eval mode, no gradient) at the
penultimate layer: the input of the last masked layer the forward pass runs. A K-nearest-neighbour
classifier per earlier task is fit on about 2/3 of the examples and scored on the rest. The same is
done for the fresh random subnetwork the new task would otherwise start from (the scores the next
`add_task` would draw, drawn on a forked global RNG so nothing else changes). Rules:

- "chance" (the paper): transfer if the best earlier task's accuracy beats chance (1/C).
- "paired": transfer only if the best earlier task beats the fresh subnetwork in a one-sided exact
  McNemar test over the KNN test points (paired: both are scored on the same points), at level
  `alpha / (number of earlier tasks)` (Bonferroni: the best of several candidates is tested).

The new task then starts from the source's scores (optionally its classifier from the fresh draw, or
a blend of source and fresh scores); else from the fresh draw itself (bit-identical to no KKT).

When old tasks keep only binary masks (`keep_scores=False`), the source scores are rebuilt from the
mask: |fresh random scores| plus a margin of the init bound on kept entries, so that top-k of the
rebuilt scores is exactly the source mask (see `scores_from_mask`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from exssnet.data.tasks import Inputs, TaskData, num_examples, take
from exssnet.layers.masked import init_scores
from exssnet.models.contract import find_classifier
from exssnet.modes import evaluating
from exssnet.supermask import SupermaskNet

TRAIN_SHARE = 2 / 3
RULES = ("chance", "paired")
HEADS = ("copy", "fresh")


@dataclass
class KKTSettings:
    """How many neighbours, and how many batches of which size of the new task's data to use."""

    k: int = 10
    batches: int = 10
    batch_size: int = 64
    head: str = "fresh"  # "fresh": the classifier's scores are the fresh draw's; "copy": the source's too (the paper)
    rule: str = "paired"  # "chance" (the paper) or "paired" (beat a fresh random subnetwork, see module doc)
    alpha: float = 0.05  # "paired": significance level before the Bonferroni division
    blend: float = 1.0  # weight of the source scores in the start; the rest comes from the fresh draw


@dataclass
class KKTChoice:
    """The outcome of KKT for one task (what results.json records as `tasks[t].kkt`)."""

    source: int | None  # earlier task whose scores start the new task, None for random init
    knn_acc: list[float] = field(default_factory=list)  # percent, one per earlier task 0..t-1
    chance: float = 0.0  # percent, 100 / C
    examples: tuple[int, int] = (0, 0)  # (KNN train, KNN test) example counts
    init: str = "random"  # "random", "scores" (clone of float scores) or "mask" (rebuilt from the mask)
    seconds: float = 0.0
    classifier: str | None = None  # name of the masked layer the features feed
    rule: str = "paired"
    fresh_acc: float | None = None  # percent: KNN accuracy of the fresh random subnetwork's features
    p_value: float | None = None  # "paired": one-sided McNemar p of the best earlier task against the fresh one
    decision: str = "no earlier task"  # "transfer", "no earlier task", "not above chance", "not clearly above fresh"
    fresh: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # the fresh draw (not recorded)

    def to_dict(self) -> dict:
        return {"source": self.source, "knn_acc": self.knn_acc, "chance": self.chance,
                "knn_train": self.examples[0], "knn_test": self.examples[1], "init": self.init,
                "classifier": self.classifier, "rule": self.rule, "fresh_acc": self.fresh_acc,
                "p_value": self.p_value, "decision": self.decision, "seconds": self.seconds}


# ----- pure functions -------------------------------------------------------------------
def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor, k: int,
                num_classes: int) -> torch.Tensor:
    """Majority vote of the `k` Euclidean-nearest training points for every query row.

    Distance ties go to the lower training index, vote ties to the lower class; `k` is capped at
    the number of training points.
    """
    if train_x.shape[0] == 0:
        raise ValueError("knn_predict needs at least one training point")
    k = min(k, train_x.shape[0])
    distances = torch.cdist(query_x.float(), train_x.float(), compute_mode="donot_use_mm_for_euclid_dist")
    nearest = torch.sort(distances, dim=1, stable=True).indices[:, :k]
    votes = torch.nn.functional.one_hot(train_y[nearest], num_classes).sum(dim=1)
    return votes.argmax(dim=1)


def knn_correct(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                k: int, num_classes: int) -> torch.Tensor:
    """Per test point: is its KNN vote its label (bool)."""
    return knn_predict(train_x, train_y, test_x, k, num_classes) == test_y


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int, num_classes: int) -> float:
    """Percent of the test points whose KNN vote is their label."""
    return percent(knn_correct(train_x, train_y, test_x, test_y, k, num_classes))


def percent(correct: torch.Tensor) -> float:
    return 100.0 * int(correct.sum()) / max(1, correct.shape[0])


def best_candidate(knn_acc: list[float]) -> int | None:
    """The earlier task with the best accuracy, the lowest id among equals; None without candidates."""
    return max(range(len(knn_acc)), key=lambda j: (knn_acc[j], -j)) if knn_acc else None


def choose_source(knn_acc: list[float], chance: float) -> int | None:
    """The paper's rule: the best earlier task if it beats chance, else None."""
    best = best_candidate(knn_acc)
    return best if best is not None and knn_acc[best] > chance else None


def mcnemar_p(candidate: torch.Tensor, reference: torch.Tensor) -> float:
    """One-sided exact McNemar p-value that `candidate` is right more often than `reference`.

    Over paired per-point outcomes (bool tensors of one shape): with b points only the candidate
    gets right and c only the reference gets right, p = P(Binomial(b + c, 1/2) >= b); 1.0 when no
    point differs.
    """
    b = int((candidate & ~reference).sum())
    c = int((~candidate & reference).sum())
    n = b + c
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(b, n + 1)) / 2.0**n


def paired_decision(p_value: float, alpha: float, candidates: int) -> bool:
    """Transfer when p < alpha / candidates (Bonferroni over the earlier tasks the best was picked from)."""
    return p_value < alpha / max(1, candidates)


def blend_scores(source: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """weight * source + (1 - weight) * fresh per layer (weight 1: the source, cloned)."""
    if weight == 1.0:
        return {name: s.detach().clone() for name, s in source.items()}
    return {name: weight * s.detach() + (1.0 - weight) * fresh[name] for name, s in source.items()}


def scores_from_mask(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Float scores whose top-k is `mask`: |U(-b, b)| with b = 1/sqrt(fan_in), plus b where kept.

    Kept entries land in [b, 2b], dropped ones in [0, b], so any top-k with the mask's own count
    reproduces the mask, while the magnitudes stay those of a fresh initialisation.
    """
    bound = 1.0 / math.sqrt(mask[0].numel())
    noise = torch.rand(mask.shape, generator=generator, device="cpu").to(mask.device) * bound
    return noise + bound * mask.to(noise.dtype)


# ----- features ---------------------------------------------------------------------------
@torch.no_grad()
def penultimate_features(net: SupermaskNet, x: Inputs, task: int, batch_size: int = 1024) -> torch.Tensor:
    """Inputs of the model's classifier, flattened per example, for `task`'s subnetwork.

    Works for any supermask model whose classifier can be found (exssnet.models.contract): a pre-hook on the
    classifier keeps its input. The net is put in eval mode and its mode and active task are restored afterwards.
    """
    return classifier_inputs(net, x, task, batch_size)[0]


@torch.no_grad()
def classifier_inputs(net: SupermaskNet, x: Inputs, task: int, batch_size: int = 1024) -> tuple[torch.Tensor, str]:
    """`penultimate_features` and the name of the classifier they feed."""
    return _embed(net, x, lambda: net.set_task(task), batch_size)


def fresh_scores(net: SupermaskNet) -> dict[str, torch.Tensor]:
    """The scores the next `add_task` would draw, per layer, drawn on a fork of the global RNG.

    The layers draw in `named_masked_layers` order from the global generator of their device, as
    `add_task` does, and the generator state is restored afterwards: nothing else changes.
    """
    device = net.device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return {name: init_scores(layer.weight) for name, layer in net.named_masked_layers()}


@torch.no_grad()
def fresh_features(net: SupermaskNet, x: Inputs, scores: dict[str, torch.Tensor], batch_size: int = 1024) -> torch.Tensor:
    """`penultimate_features` of the subnetwork top-k(`scores`), BatchNorm on each batch's statistics."""
    with net.scored(scores):
        return _embed(net, x, lambda: None, batch_size)[0]


def _embed(net: SupermaskNet, x: Inputs, select: Callable[[], None], batch_size: int) -> tuple[torch.Tensor, str]:
    """Inputs of the classifier (flattened, float) for the subnetwork `select()` makes active, eval mode."""
    name, classifier = find_classifier(net.model)
    captured: list = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        captured[:] = [args[0]]

    handles = [classifier.register_forward_pre_hook(hook)]
    try:
        with evaluating(net):
            select()
            chunks = []
            n = num_examples(x)
            for start in range(0, n, batch_size):
                index = torch.arange(start, min(n, start + batch_size))
                batch = take(x, index)
                net(*(batch if isinstance(batch, tuple) else (batch,)))
                chunks.append(captured[0].flatten(start_dim=1).float())
            return torch.cat(chunks), name
    finally:
        for handle in handles:
            handle.remove()


# ----- the transfer step --------------------------------------------------------------------
def sample_examples(task: TaskData, settings: KKTSettings, generator: torch.Generator) -> tuple[Inputs, torch.Tensor]:
    """`batches * batch_size` training examples of `task` drawn without replacement (all if fewer)."""
    n = len(task.train)
    count = min(n, settings.batches * settings.batch_size)
    index = torch.randperm(n, generator=generator)[:count].to(task.train.y.device)
    return take(task.train.x, index), task.train.y[index]


def select_source(net: SupermaskNet, task: TaskData, earlier: int, settings: KKTSettings,
                  generator: torch.Generator, fresh: dict[str, torch.Tensor] | None = None) -> KKTChoice:
    """Score every earlier task 0..earlier-1 (and the `fresh` scores' subnetwork) by KNN and pick the source."""
    chance = 100.0 / task.num_classes
    choice = KKTChoice(source=None, chance=chance, rule=settings.rule)
    if earlier == 0:
        return choice
    x, y = sample_examples(task, settings, generator)
    n_train = min(len(y) - 1, max(1, round(len(y) * TRAIN_SHARE)))
    if n_train < 1:
        choice.decision = "too few examples"
        return choice
    knn = lambda f: knn_correct(f[:n_train], y[:n_train], f[n_train:], y[n_train:], settings.k, task.num_classes)  # noqa: E731
    correct = []
    for j in range(earlier):
        features, choice.classifier = classifier_inputs(net, x, j)
        correct.append(knn(features))
    choice.knn_acc = [percent(c) for c in correct]
    choice.examples = (n_train, len(y) - n_train)
    best = best_candidate(choice.knn_acc)
    fresh_correct = None if fresh is None else knn(fresh_features(net, x, fresh))
    if fresh_correct is not None:
        choice.fresh_acc = percent(fresh_correct)
        choice.p_value = mcnemar_p(correct[best], fresh_correct)
    if settings.rule == "chance":
        choice.source = choose_source(choice.knn_acc, chance)
        choice.decision = "transfer" if choice.source is not None else "not above chance"
    else:
        if choice.p_value is None:
            raise ValueError("the paired rule needs the fresh scores")
        transfer = paired_decision(choice.p_value, settings.alpha, earlier)
        choice.source = best if transfer else None
        choice.decision = "transfer" if transfer else "not clearly above fresh"
    return choice


def source_scores(net: SupermaskNet, source: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], str]:
    """A clone of `source`'s float scores, or scores rebuilt from its mask when they were dropped."""
    kept = net.task_scores(source)
    if kept is not None:
        return {name: scores.detach().clone() for name, scores in kept.items()}, "scores"
    masks = net.task_masks(source)
    return {name: scores_from_mask(mask, generator) for name, mask in masks.items()}, "mask"


def kkt_initial_scores(net: SupermaskNet, task: TaskData, task_id: int, settings: KKTSettings,
                       generator: torch.Generator) -> tuple[dict[str, torch.Tensor] | None, KKTChoice]:
    """Initial scores for `task_id` (None: the fresh random draw, as without KKT) and the record of the choice.

    `generator` drives every KKT draw; the fresh scores come from a fork of the global RNG, so the
    result depends on nothing else and a run without transfer is bit-identical to one without KKT.
    `choice.fresh` keeps the fresh draw (not recorded) for `rescue_scores`.
    """
    start = time.perf_counter()
    fresh = fresh_scores(net) if task_id > 0 else None
    choice = select_source(net, task, task_id, settings, generator, fresh)
    scores = None
    if choice.source is not None:
        source, choice.init = source_scores(net, choice.source, generator)
        scores = blend_scores(source, fresh, settings.blend)
        if settings.head == "fresh" and choice.classifier in fresh:  # a per-task head is no masked layer: always fresh
            scores[choice.classifier] = fresh[choice.classifier].clone()
    choice.fresh = fresh
    choice.seconds = time.perf_counter() - start
    return scores, choice


def rescue_scores(net: SupermaskNet, choice: KKTChoice, generator: torch.Generator) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The other start for a task whose mask phase ended at chance from the start `choice` gave it.

    After a transfer: the fresh draw (the start the run without KKT uses). After the fresh draw: the
    best earlier task's scores, classifier included (the paper's start: the source's head once
    learned a task, the fresh one just failed). Returns (scores, what they are); (None, "") when
    there is no other start (no earlier task, or KKT could not score them).
    """
    if choice.source is not None:
        return ({name: s.clone() for name, s in choice.fresh.items()}, "fresh") if choice.fresh else (None, "")
    best = best_candidate(choice.knn_acc)
    if best is None:
        return None, ""
    scores, _ = source_scores(net, best, generator)
    return scores, f"task {best}"
