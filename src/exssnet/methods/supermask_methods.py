"""SupSup, SSNeT and ExSSNeT: one base class, three named subclasses that differ in their weight-phase rule.

- supsup:  mask phase only; the shared weights never change.
- ssnet:   mask phase, then train every weight inside the task's mask (may forget).
- exssnet: mask phase, then train only free weights (mask AND NOT earlier masks): no forgetting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from exssnet import distributed
from exssnet.checkpoint import load_compatible, save_pretrained
from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.diagnosis import at_chance
from exssnet.errors import ExssnetError
from exssnet.kkt import HEADS, RULES, KKTChoice, KKTSettings, kkt_initial_scores, rescue_scores
from exssnet.methods.base import ContinualMethod, register_method
from exssnet.methods.loops import EpochCallback, PhaseHistory, PhaseSpec, train_phase
from exssnet.metrics import sparse_overlap
from exssnet.models import build_model
from exssnet.seeds import TaskStream, task_generator
from exssnet.settings import CoreSettings, Settings, at_least_one, setting
from exssnet.supermask import HEADS as HEAD_KINDS
from exssnet.supermask import INITS, SupermaskNet, WeightRule, to_supermask


@dataclass
class MaskNetSettings(Settings):
    """What every method over one `SupermaskNet` reads: the kind of classifier."""

    head: str = setting("masked", "classifier of the supermask methods: 'masked' like every layer (the paper's network: "
                                  "each task's head is its mask over one shared classifier) or 'per-task' (each task "
                                  "its own dense head, trained with its mask and frozen after it: WSN's network)")

    weight_init: str = setting("signed-constant", "shared weights of the masked layers: 'signed-constant' (the paper's "
                                                  "+-sqrt(2/fan_in)) or 'keep' (the model as built: torch's default "
                                                  "draw for the built-in models, WSN's start)")

    def check(self) -> None:
        if self.head not in HEAD_KINDS:
            raise ExssnetError(f"head must be {' or '.join(map(repr, HEAD_KINDS))}, got {self.head!r}")
        if self.weight_init not in INITS:
            raise ExssnetError(f"weight_init must be {' or '.join(map(repr, INITS))}, got {self.weight_init!r}")


@dataclass
class SupermaskSettings(MaskNetSettings):
    """Settings of supsup, ssnet and exssnet: KKT (KNN-based knowledge transfer, docs/kkt.md)."""

    kkt: bool = setting(False, "KKT: start each task's scores from the earlier task whose features best KNN-classify it")
    kkt_k: int = setting(10, "KKT: neighbours of the KNN vote")
    kkt_batches: int = setting(10, "KKT: batches of the new task's training data to embed (2/3 fit, 1/3 scored)")
    kkt_batch_size: int = setting(64, "KKT: examples per batch")
    kkt_head: str = setting("fresh", "KKT: classifier scores from the fresh random draw ('fresh') or 'copy' the source's (the paper)")
    kkt_rule: str = setting("paired", "KKT: transfer when the best earlier task beats 'chance' (the paper) or, 'paired', a fresh random subnetwork (McNemar)")
    kkt_alpha: float = setting(0.05, "KKT rule 'paired': significance level, divided by the number of earlier tasks")
    kkt_blend: float = setting(1.0, "KKT: weight of the source's scores in the start, in (0, 1]; the rest is the fresh random draw")
    kkt_rescue: bool = setting(True, "KKT: a task whose mask phase ends at chance on validation runs it once more from the other "
                                     "start (fresh draw <-> best earlier task) and keeps the better")

    def check(self) -> None:
        super().check()
        at_least_one(self, "kkt_k", "kkt_batches", "kkt_batch_size")
        for name, allowed in (("kkt_head", HEADS), ("kkt_rule", RULES)):
            if getattr(self, name) not in allowed:
                raise ExssnetError(f"{name} must be {' or '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if not 0.0 < self.kkt_alpha < 1.0:
            raise ExssnetError(f"kkt_alpha must be in (0, 1), got {self.kkt_alpha}")
        if not 0.0 < self.kkt_blend <= 1.0:
            raise ExssnetError(f"kkt_blend must be in (0, 1], got {self.kkt_blend}")
        if self.kkt and self.kkt_head == "copy" and self.head == "per-task":
            raise ExssnetError("kkt_head 'copy' starts a task from the source's classifier scores, which head 'per-task' "
                               "does not have (every task's dense head starts fresh); use kkt_head 'fresh'")

    def to_kkt(self) -> KKTSettings:
        return KKTSettings(k=self.kkt_k, batches=self.kkt_batches, batch_size=self.kkt_batch_size, head=self.kkt_head,
                           rule=self.kkt_rule, alpha=self.kkt_alpha, blend=self.kkt_blend)


@dataclass
class TaskStart:
    """Where a task's mask phase starts: its scores (None: a fresh random draw), its KKT record for results.json,
    and rank 0's full KKT choice (with the fresh draw it passed over), which a rescue reads."""

    scores: dict[str, torch.Tensor] | None = None
    record: dict | None = None
    choice: KKTChoice | None = None


class SupermaskNetMethod(ContinualMethod):
    """What every method over one `SupermaskNet` shares: the wrapped net, task-given logits, eval mode, checkpoints
    of the finished tasks and their sparse overlap."""

    net: SupermaskNet
    settings: MaskNetSettings
    resumable = True

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.net = self.new_net()

    def new_net(self) -> SupermaskNet:
        """`config.model` wrapped as the settings say: `weight_init` (the paper's signed constants by default; WSN's
        code keeps torch's draw, `keep`) and `head`."""
        dense = build_model(self.config.model, self.benchmark.input_shape, self.benchmark.max_classes)
        return to_supermask(dense, self.config.density, keep_scores=self.config.keep_scores,
                            init=self.settings.weight_init, head=self.settings.head).to(self.device)

    def logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        return self.net.logits(x, self.check_task(task_id))

    def eval_mode(self) -> None:
        self.net.eval()

    def save_checkpoint(self, directory: Path, metadata: dict) -> None:
        save_pretrained(self.net, directory, self.config.model, self.benchmark.input_shape,
                        save_scores=self.net.keep_scores, metadata=metadata)

    def load_checkpoint(self, directory: Path) -> None:
        self.net = load_compatible(directory, self.benchmark, model=self.config.model, density=self.config.density,
                                   keep_scores=self.config.keep_scores, head=self.settings.head,
                                   init=self.settings.weight_init).to(self.device)
        self.num_learned = self.net.num_tasks

    def summary(self) -> dict:
        masks = [self.net.task_masks(t) for t in range(self.net.num_tasks)]
        return {"sparse_overlap": sparse_overlap(masks)}


class SupermaskMethod(SupermaskNetMethod):
    """A supermask network learning each task as mask phase + optional weight phase (`weight_rule`)."""

    settings: SupermaskSettings
    weight_rule: WeightRule | None = None  # None: no weight phase (SupSup)

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: SupermaskSettings | None = None) -> None:
        super().__init__(config, benchmark, settings if settings is not None else SupermaskSettings())

    def initial_scores(self, task_id: int, task: TaskData) -> TaskStart:
        """Where to start `task`: fresh random scores, or with `kkt` on the scores KKT picks (exssnet.kkt: an
        earlier task by KNN on its penultimate features; `record` is its results.json entry)."""
        if not self.settings.kkt:
            return TaskStart()
        seed = self.config.seed
        full: list[KKTChoice] = []  # rank 0's choice with its fresh draw (not broadcast)

        def decide() -> tuple[dict[str, torch.Tensor] | None, KKTChoice]:
            scores, choice = kkt_initial_scores(self.net, task, task_id, self.settings.to_kkt(),
                                                task_generator(seed, task_id, TaskStream.KKT))
            full.append(choice)
            return scores, replace(choice, fresh=None)

        scores, choice = distributed.decide_on_main(decide, self.device)  # data parallel: rank 0 decides, every rank gets it
        return TaskStart(scores, choice.to_dict(), full[0] if full else None)

    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        cfg = self.config
        start = self.initial_scores(task_id, task)
        info: dict = {} if start.record is None else {"kkt": start.record}
        self.net.add_task(task.num_classes, initial_scores=start.scores)
        logits_fn = self.net_logits_fn(task.num_classes)
        train_mask = lambda: train_phase(  # noqa: E731
            PhaseSpec.of(cfg, "mask", cfg.mask_epochs, cfg.mask_lr, task_generator(cfg.seed, task_id, TaskStream.MASK_PHASE)),
            self.net, logits_fn, self.net.trainable_parameters(), task, progress, on_epoch,
        )
        mask_history = train_mask()
        if self.settings.kkt and self.settings.kkt_rescue:
            mask_history, rescue = self.rescue_at_chance(task_id, task, mask_history, train_mask, start.choice)
            if rescue is not None:
                info["kkt"] = {**info["kkt"], "rescue": rescue}
        info["mask_phase"] = mask_history.to_dict()
        if self.weight_rule is not None:
            self.net.start_weight_phase(self.weight_rule)
            weight_history = train_phase(
                PhaseSpec.of(cfg, "weights", cfg.weight_epochs, cfg.weight_lr,
                             task_generator(cfg.seed, task_id, TaskStream.WEIGHT_PHASE)),
                self.net, logits_fn, self.net.trainable_parameters(), task, progress, on_epoch,
            )
            info["weight_phase"] = weight_history.to_dict()
        self.net.finish_task()
        self.num_learned += 1
        distributed.check_identical({k: v for k, v in self.net.state_dict().items() if isinstance(v, torch.Tensor)},
                                    f"the model after task {task_id} (masks, weights, BN)")
        return info

    def rescue_at_chance(self, task_id: int, task: TaskData, first: PhaseHistory, train_mask: Callable[[], PhaseHistory],
                         choice: KKTChoice | None) -> tuple[PhaseHistory, dict | None]:
        """KKT rescue: a mask phase that ended at chance on validation runs once more from the other start
        (`kkt.rescue_scores`, from rank 0's `choice`); the one with the higher final validation accuracy stays
        (the first on ties). Returns the kept history and the rescue's record (None: no rescue was needed).
        """
        if not first.val_acc or not at_chance(first.val_acc[-1], task.num_classes, len(task.val)):
            return first, None
        scores, start = distributed.decide_on_main(
            lambda: rescue_scores(self.net, choice, task_generator(self.config.seed, task_id, TaskStream.KKT)), self.device)
        record = {"first_val_acc": first.val_acc[-1], "start": start or None}
        if scores is None:
            return first, record
        kept = self.net.mask_phase_state()
        self.net.restart_task(scores)
        second = train_mask()
        better = second.val_acc[-1] > first.val_acc[-1]
        if not better:
            self.net.restart_task(*kept)
        record.update(val_acc=second.val_acc[-1], kept="rescue" if better else "first",
                      other_phase=(first if better else second).to_dict())
        return (second if better else first), record

    def net_logits_fn(self, num_classes: int):
        def logits_fn(x: Inputs) -> torch.Tensor:
            return self.net(*(x if isinstance(x, tuple) else (x,)))[:, :num_classes]

        return logits_fn

@register_method("supsup", settings=SupermaskSettings)
class SupSup(SupermaskMethod):
    """SupSup: a mask per task over fixed random weights; the weights never change."""

    weight_rule = None
    ignored_core_keys = ("weight_epochs", "weight_lr")  # no weight phase


@register_method("ssnet", settings=SupermaskSettings)
class SSNeT(SupermaskMethod):
    """SSNeT: SupSup's mask phase, then every weight inside the task's mask trains (earlier tasks may forget)."""

    weight_rule = WeightRule.ALL


@register_method("exssnet", settings=SupermaskSettings)
class ExSSNeT(SupermaskMethod):
    """ExSSNeT: SupSup's mask phase, then only free weights (in the mask, in no earlier mask) train: no forgetting."""

    weight_rule = WeightRule.EXCLUSIVE
