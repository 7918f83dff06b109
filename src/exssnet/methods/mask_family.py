"""WSN and PackNet on the supermask engine: zero forgetting by construction, per-task BatchNorm, resumable.

- wsn (Kang et al., ICML 2022, "Forget-free Continual Learning with Winning Subnetworks"): one score tensor per
  layer for the whole run (each task starts from the scores the previous task ended with), each step's mask is
  the top-`density` of |scores| per layer, and in one phase the scores train by straight-through while the
  weights train only where no earlier task's mask is set; after the task its top-k mask is committed.
- packnet (Mallya & Lazebnik, CVPR 2018): per task, train every free weight (earlier tasks' weights used frozen),
  keep the `packnet_keep` fraction of each layer of largest magnitude among the free weights, zero the rest of the
  free weights, retrain the kept ones, freeze them. Task t's mask is every weight owned by tasks <= t.

Heads (docs/wsn.md, "Heads"): with `head: per-task` every task has a dense head of its own outside the masks (WSN's
network; `TaskHeadLinear`), trained in the task's phases and frozen after. With the default `head: masked` each
task's head is its mask over one shared bias-free classifier `Linear`: WSN masks it by top-c like every layer (a
task picks its head's weights among all, so earlier tasks' weights there are offered for reuse as elsewhere).
PackNet prunes it like every layer, but a task's head is only its own weights (its mask there does not hold the
earlier tasks'): PackNet's heads are per task, and earlier tasks' head weights used frozen would add their classes'
logits to the new task's.
Both keep each finished task's mask in `masks.<t>`, so the MASK / SUPERPOSED views, the state dict round trip and
the checkpoint codec are those of the other supermask methods. WSN's checkpoints add the scores to continue from
(`wsn_scores.safetensors` beside the model file); PackNet's config marks its masks as nested (their count is not
the density's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.errors import ExssnetError
from exssnet.methods.base import register_method
from exssnet.methods.loops import EpochCallback, PhaseSpec, train_phase
from exssnet.methods.supermask_methods import MaskNetSettings, SupermaskNetMethod
from exssnet.models.contract import find_classifier
from exssnet.seeds import TaskStream, task_generator
from exssnet.settings import CoreSettings, Settings, setting
from exssnet.supermask import SupermaskNet

WSN_SCORES_FILE = "wsn_scores.safetensors"


@dataclass
class WSNSettings(MaskNetSettings):
    """Settings of wsn (its phase runs `mask_epochs` epochs; the scores train at `mask_lr`)."""

    wsn_weight_lr: float = setting(0.0, "wsn: Adam learning rate of the free weights in the joint phase; 0: mask_lr "
                                        "(WSN's code trains scores and weights at one rate)")

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.wsn_weight_lr < math.inf:
            raise ExssnetError(f"wsn_weight_lr must be a finite number >= 0, got {self.wsn_weight_lr}")


PACKNET_SHARES = ("layer", "free")


@dataclass
class PackNetSettings(MaskNetSettings):
    """Settings of packnet (it trains the free weights for `weight_epochs` at `weight_lr`, then prunes and retrains)."""

    packnet_keep: float = setting(0.0, "packnet: fraction a task keeps after pruning (of each layer, or of its free "
                                       "weights with packnet_share free), chosen among the free weights by "
                                       "magnitude; 0: 1 / the number of tasks")
    packnet_share: str = setting("layer", "packnet: what packnet_keep is a fraction of: 'layer' (every task owns "
                                          "the same share of each layer) or 'free' (of the weights still free, as "
                                          "PackNet's paper prunes: earlier tasks own more)")
    packnet_retrain_epochs: int = setting(-1, "packnet: epochs retraining the kept weights after pruning; "
                                              "-1: half of weight_epochs (rounded down, at least 1)")
    packnet_reuse: bool = setting(True, "packnet: a task also uses the weights earlier tasks own, frozen (PackNet); "
                                        "false: only its own weights (each task a disjoint subnetwork)")
    packnet_zero_pruned: bool = setting(False, "packnet: set the pruned weights to 0 (PackNet's code) instead of "
                                               "leaving the next task to start from their trained values")

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.packnet_keep <= 1.0:
            raise ExssnetError(f"packnet_keep must be in (0, 1] (or 0: 1 / num_tasks), got {self.packnet_keep}")
        if self.packnet_share not in PACKNET_SHARES:
            raise ExssnetError(f"packnet_share must be one of {', '.join(PACKNET_SHARES)}, got {self.packnet_share!r}")
        if self.packnet_retrain_epochs < -1:
            raise ExssnetError(f"packnet_retrain_epochs must be >= 0 (or -1: half of weight_epochs), "
                               f"got {self.packnet_retrain_epochs}")


class MaskFamilyMethod(SupermaskNetMethod):
    """What wsn and packnet share beyond `SupermaskNetMethod`: one training phase helper."""

    def logits_fn(self, num_classes: int):
        def logits(x: Inputs) -> torch.Tensor:
            return self.net(*(x if isinstance(x, tuple) else (x,)))[:, :num_classes]

        return logits

    def phase(self, name: str, params: list, task_id: int, task: TaskData, epochs: int, lr: float,
              stream: TaskStream, progress: bool, on_epoch: EpochCallback | None) -> dict:
        cfg = self.config
        spec = PhaseSpec.of(cfg, name, epochs, lr, task_generator(cfg.seed, task_id, stream))
        return train_phase(spec, self.net, self.logits_fn(task.num_classes), params, task, progress, on_epoch).to_dict()


@register_method("wsn", settings=WSNSettings, resumable=True)
class WSN(MaskFamilyMethod):
    """Winning SubNetworks: scores kept across tasks, weights trained jointly on the free entries."""

    settings: WSNSettings
    # its one phase (mask_epochs) trains scores and weights together, the weights at wsn_weight_lr or mask_lr
    ignored_core_keys = ("weight_epochs", "weight_lr")

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.scores: dict[str, torch.Tensor] | None = None  # per layer: where the next task's scores start

    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        cfg, net = self.config, self.net
        net.add_task(task.num_classes, initial_scores=self.scores)
        net.start_joint_training()
        weights = net.compact_parameters() + net.head_parameters()  # a per-task head trains at the weights' rate
        groups: list = [{"params": net.score_parameters(task_id), "lr": cfg.mask_lr}]
        if weights:
            groups.append({"params": weights, "lr": self.settings.wsn_weight_lr or cfg.mask_lr})
        info = {"joint_phase": self.phase("joint", groups, task_id, task, cfg.mask_epochs, cfg.mask_lr,
                                          TaskStream.MASK_PHASE, progress, on_epoch)}
        scores = net.task_scores(task_id)
        assert scores is not None
        self.scores = {name: s.clone() for name, s in scores.items()}
        net.finish_task()
        info["reused"] = reused_fraction(net, task_id)
        self.num_learned += 1
        return info

    def save_checkpoint(self, directory: Path, metadata: dict) -> None:
        super().save_checkpoint(directory, metadata)
        if self.scores is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.scores.items()},
                      str(directory / WSN_SCORES_FILE))

    def load_checkpoint(self, directory: Path) -> None:
        super().load_checkpoint(directory)
        path = directory / WSN_SCORES_FILE
        try:
            scores = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise ExssnetError(f"checkpoint {directory}: cannot read WSN's scores {path.name}: {exc}") from None
        layers = dict(self.net.named_masked_layers())
        if set(scores) != set(layers) or any(scores[k].shape != layers[k].weight.shape for k in layers):
            raise ExssnetError(f"checkpoint {directory}: {path.name} does not match the model's masked layers")
        self.scores = {k: v.to(self.device) for k, v in scores.items()}


def reused_fraction(net: SupermaskNet, task: int) -> float | None:
    """Of `task`'s mask, the fraction inside the union of the earlier tasks' masks (None for task 0)."""
    if task == 0:
        return None
    inside = kept = 0
    for layer in net.masked_layers():
        mask = layer.mask_of(task)
        earlier = torch.zeros_like(mask)
        for t in range(task):
            earlier |= layer.mask_of(t)
        inside += int((mask & earlier).sum())
        kept += int(mask.sum())
    return inside / max(kept, 1)


@register_method("packnet", settings=PackNetSettings, resumable=True)
class PackNet(MaskFamilyMethod):
    """PackNet: train the free weights, prune each layer to its share by magnitude, retrain the kept, freeze."""

    settings: PackNetSettings
    ignored_core_keys = ("mask_epochs", "mask_lr", "density")  # no scores: it prunes by magnitude to packnet_keep

    def keep(self) -> float:
        return self.settings.packnet_keep or 1.0 / len(self.benchmark.tasks)  # the benchmark's tasks: num_tasks may be unset

    def retrain_epochs(self) -> int:
        epochs = self.settings.packnet_retrain_epochs
        return max(1, self.config.weight_epochs // 2) if epochs < 0 else epochs

    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        cfg, net = self.config, self.net
        # layers where a task uses only its own weights: its head (PackNet is multi-head), or every layer without reuse
        own_only = {name for name, _ in net.named_masked_layers()} if not self.settings.packnet_reuse else \
            {find_classifier(net.model)[0]}
        net.add_task(task.num_classes)
        net.start_free_training(separate=own_only)
        info = {"weight_phase": self.phase("weights", net.trainable_parameters(), task_id, task, cfg.weight_epochs,
                                           cfg.weight_lr, TaskStream.WEIGHT_PHASE, progress, on_epoch)}
        info["owned"] = net.prune_and_retrain(self.keep(), separate=own_only, zero_pruned=self.settings.packnet_zero_pruned,
                                                of_free=self.settings.packnet_share == "free")
        info["retrain_phase"] = self.phase("retrain", net.trainable_parameters(), task_id, task, self.retrain_epochs(),
                                           cfg.weight_lr, TaskStream.MASK_PHASE, progress, on_epoch)
        net.finish_task()
        self.num_learned += 1
        return info

    def load_checkpoint(self, directory: Path) -> None:
        super().load_checkpoint(directory)
        if self.net.num_tasks and not self.net.nested_masks:
            raise ExssnetError(f"checkpoint {directory} was not written by packnet (its masks are not nested)")
