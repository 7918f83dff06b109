"""KKT: KNN-based knowledge transfer between supermask tasks (ExSSNeT paper, Sec. 3.3).

Before the mask phase of a new task, a few batches of its training data are embedded by every
earlier task's subnetwork (that task's mask and BatchNorm, eval mode, no gradient) at the
penultimate layer: the input of the last masked layer the forward pass runs. A K-nearest-neighbour
classifier per earlier task is fit on about 2/3 of the examples and scored on the rest. If the best
accuracy beats chance (1/C), the new task starts from a clone of that task's scores; else from
fresh random scores.

When old tasks keep only binary masks (`keep_scores=False`), the source scores are rebuilt from the
mask: |fresh random scores| plus a margin of the init bound on kept entries, so that top-k of the
rebuilt scores is exactly the source mask (see `scores_from_mask`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from exssnet.data.tasks import Inputs, TaskData, num_examples, take
from exssnet.models.contract import find_classifier
from exssnet.modes import evaluating
from exssnet.supermask import SupermaskNet

TRAIN_SHARE = 2 / 3


@dataclass
class KKTSettings:
    """How many neighbours, and how many batches of which size of the new task's data to use."""

    k: int = 10
    batches: int = 10
    batch_size: int = 64
    head: str = "copy"  # "copy": the classifier's scores come from the source too; "fresh": random


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

    def to_dict(self) -> dict:
        return {"source": self.source, "knn_acc": self.knn_acc, "chance": self.chance,
                "knn_train": self.examples[0], "knn_test": self.examples[1], "init": self.init,
                "classifier": self.classifier, "seconds": self.seconds}


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


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int, num_classes: int) -> float:
    """Percent of the test points whose KNN vote is their label."""
    predicted = knn_predict(train_x, train_y, test_x, k, num_classes)
    return 100.0 * int((predicted == test_y).sum()) / max(1, test_y.shape[0])


def choose_source(knn_acc: list[float], chance: float) -> int | None:
    """The earlier task with the best accuracy (the lowest id among equals) if it beats chance, else None."""
    if not knn_acc:
        return None
    best = max(range(len(knn_acc)), key=lambda j: (knn_acc[j], -j))
    return best if knn_acc[best] > chance else None


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
    name, classifier = find_classifier(net.model)
    captured: list = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        captured[:] = [args[0]]

    handles = [classifier.register_forward_pre_hook(hook)]
    try:
        with evaluating(net):
            net.set_task(task)
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
                  generator: torch.Generator) -> KKTChoice:
    """Score every earlier task 0..earlier-1 by KNN on its penultimate features and pick the source."""
    chance = 100.0 / task.num_classes
    if earlier == 0:
        return KKTChoice(source=None, chance=chance)
    x, y = sample_examples(task, settings, generator)
    n_train = min(len(y) - 1, max(1, round(len(y) * TRAIN_SHARE)))
    if n_train < 1:
        return KKTChoice(source=None, chance=chance)
    accs = []
    for j in range(earlier):
        features, classifier = classifier_inputs(net, x, j)
        accs.append(knn_accuracy(features[:n_train], y[:n_train], features[n_train:], y[n_train:],
                                 settings.k, task.num_classes))
    return KKTChoice(source=choose_source(accs, chance), knn_acc=accs, chance=chance,
                     examples=(n_train, len(y) - n_train), classifier=classifier)


def source_scores(net: SupermaskNet, source: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], str]:
    """A clone of `source`'s float scores, or scores rebuilt from its mask when they were dropped."""
    kept = net.task_scores(source)
    if kept is not None:
        return {name: scores.detach().clone() for name, scores in kept.items()}, "scores"
    masks = net.task_masks(source)
    return {name: scores_from_mask(mask, generator) for name, mask in masks.items()}, "mask"


def kkt_initial_scores(net: SupermaskNet, task: TaskData, task_id: int, settings: KKTSettings,
                       generator: torch.Generator) -> tuple[dict[str, torch.Tensor] | None, KKTChoice]:
    """Initial scores for `task_id` (None: random) and the record of the choice.

    `generator` drives every random draw, so the result depends only on it, not on global RNG state.
    """
    start = time.perf_counter()
    choice = select_source(net, task, task_id, settings, generator)
    scores = None
    if choice.source is not None:
        scores, choice.init = source_scores(net, choice.source, generator)
        if settings.head == "fresh":
            del scores[choice.classifier]  # a layer without initial scores starts from a fresh draw
    choice.seconds = time.perf_counter() - start
    return scores, choice
