"""What every language baseline shares: raw-text inputs, a trainable encoder with per-task heads, two lrs.

A language method is a dense baseline (exssnet.methods.baselines.dense) whose model is an `EncoderNet`
over `config.encoder` instead of `config.model`, whose benchmark gives (input_ids, attention_mask)
(`text_inputs = "tokens"`), and whose optimizer has two groups: the pretrained encoder's weights at
`lm_lr` and every newly created parameter (heads, adapters, prompts, projections) at `lm_new_lr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from exssnet.data.tasks import Benchmark
from exssnet.errors import ExssnetError, check_amp
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod
from exssnet.methods.baselines.er import ReplaySettings
from exssnet.methods.language.encoder_net import EncoderNet, PooledEncoder, load_encoder
from exssnet.settings import CoreSettings, Settings, at_least_one, finite_positive, loss_weight, setting


@dataclass
class LanguageSettings(BaselineSettings):
    """Settings every language baseline reads (ft reads only these): the two learning rates."""

    lm_lr: float = setting(3e-5, "Adam learning rate of the pretrained encoder's weights")
    lm_new_lr: float = setting(1e-3, "Adam learning rate of new parameters (heads, adapters, prompts)")

    def check(self) -> None:
        super().check()
        finite_positive(self, "lm_lr", "lm_new_lr")
        if self.baseline_head != "per-task":
            raise ExssnetError("baseline_head 'shared' is for the dense baselines; the language methods keep one "
                               "head per task")


@dataclass
class LanguageReplaySettings(LanguageSettings, ReplaySettings):
    """Settings of the language methods that replay the reservoir buffer (replay and the ones built on it)."""


@dataclass
class AdapterSettings(LanguageSettings):
    """Settings of adaptbert-ft and multiadaptbert."""

    adapter_size: int = setting(64, "Houlsby adapter bottleneck width")

    def check(self) -> None:
        super().check()
        at_least_one(self, "adapter_size")


@dataclass
class AdapterReplaySettings(AdapterSettings, LanguageReplaySettings):
    """Settings of adaptbert-replay: adapters and the replay buffer."""


@dataclass
class PromptSettings(LanguageSettings):
    """Settings of prompt-tuning."""

    prompt_tokens: int = setting(50, "soft prompt tokens per task")

    def check(self) -> None:
        super().check()
        at_least_one(self, "prompt_tokens")


@dataclass
class RegularizationSettings(LanguageReplaySettings):
    """Settings of regularization: replay plus the L2 between current and previous hidden features."""

    lm_reg_lambda: float = setting(1.0, "weight of the L2 between current and previous hidden features")

    def check(self) -> None:
        super().check()
        loss_weight(self, "lm_reg_lambda")


@dataclass
class IDBRSettings(RegularizationSettings):
    """Settings of idbr: regularization's L2 plus the task-id loss."""

    idbr_task_lambda: float = setting(0.5, "weight of the task-id loss on the task-specific space")

    def check(self) -> None:
        super().check()
        loss_weight(self, "idbr_task_lambda")


@dataclass
class MbPASettings(LanguageReplaySettings):
    """Settings of mbpa: sparse replay and local adaptation at test time."""

    mbpa_neighbours: int = setting(32, "memory neighbours retrieved per test example for local adaptation")
    mbpa_steps: int = setting(5, "local adaptation steps per test batch (0: no local adaptation)")
    mbpa_lr: float = setting(1e-3, "SGD learning rate of local adaptation")
    mbpa_lambda: float = setting(1e-3, "weight of the L2 pull towards the base weights during local adaptation")
    mbpa_test_batch: int = setting(16, "test examples that share one local adaptation")
    mbpa_replay_every: int = setting(10, "sparse replay, one buffer batch every N training steps")

    def check(self) -> None:
        super().check()
        at_least_one(self, "mbpa_neighbours", "mbpa_test_batch", "mbpa_replay_every")
        finite_positive(self, "mbpa_lr")
        loss_weight(self, "mbpa_lambda")
        if self.mbpa_steps < 0:
            raise ExssnetError(f"mbpa_steps must be >= 0, got {self.mbpa_steps}")


@dataclass
class LamolSettings(LanguageSettings):
    """Settings of lamol: the pseudo-sample generator and how many of its samples are replayed."""

    replay_batch_size: int = setting(64, "buffer examples replayed per step")
    lamol_lm: str | None = setting(None, "Hugging Face causal language model name or folder (pseudo-sample generator)")
    lamol_gamma: float = setting(0.2, "pseudo samples per earlier task, as a fraction of the new task's training size")
    lamol_lm_amp: str | None = setting(None, "mixed precision of the language model's training and generation: 'bf16' or "
                                             "'fp16' (LAMOL's reference code trains in fp16); unset: as the run "
                                             "(--amp; float32 by default). The classifier follows --amp")

    def check(self) -> None:
        super().check()
        at_least_one(self, "replay_batch_size")
        loss_weight(self, "lamol_gamma")
        check_amp(self.lamol_lm_amp, "lamol_lm_amp")

    def check_run(self) -> None:
        if not self.lamol_lm:
            raise ExssnetError("lamol needs a causal language model: pass --lamol-lm smollm2-135m (after "
                               "`make setup-text-large`) or a model folder")


class LanguageMethod(DenseMethod):
    """Mixin-style base: put it first in the bases, before the dense method whose loss it reuses."""

    text_inputs = "tokens"

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        if benchmark.info.get("inputs") != "tokens":
            raise ExssnetError(f"method {config.method!r} fine-tunes a text encoder: use it with a text benchmark "
                               "(text-offline, webnlp, glue)")
        super().__init__(config, benchmark, settings)

    def new_net(self) -> EncoderNet:
        trunk = self.build_trunk(load_encoder(self.config.encoder))
        return EncoderNet(trunk, trunk.width).to(self.device)

    def build_trunk(self, model: nn.Module) -> PooledEncoder:
        """The trunk over the loaded encoder (adapter and prompt methods change it here)."""
        return PooledEncoder(model)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Pretrained weights this method trains (default: all of the encoder)."""
        return list(self.net.trunk.model.parameters())

    def new_parameters(self, task_id: int) -> list[nn.Parameter]:
        """Parameters created by the method that task `task_id` trains (default: its head)."""
        return list(self.net.heads[task_id].parameters())

    def trainable_parameters(self, task_id: int) -> list:  # type: ignore[override]
        groups = [{"params": self.encoder_parameters(), "lr": self.settings.lm_lr},
                  {"params": self.new_parameters(task_id), "lr": self.settings.lm_new_lr}]
        return [g for g in groups if g["params"]]

    def learning_rate(self) -> float:
        return self.settings.lm_new_lr


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def trainable(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]
