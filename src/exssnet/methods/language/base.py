"""What every language baseline shares: raw-text inputs, a trainable encoder with per-task heads, two lrs.

A language method is a dense baseline (exssnet.methods.baselines.dense) whose model is an `EncoderNet`
over `config.encoder` instead of `config.model`, whose benchmark gives (input_ids, attention_mask)
(`text_inputs = "tokens"`), and whose optimizer has two groups: the pretrained encoder's weights at
`lm_lr` and every newly created parameter (heads, adapters, prompts, projections) at `lm_new_lr`.
"""

from __future__ import annotations

import torch
from torch import nn

from exssnet.config import RunConfig
from exssnet.data.tasks import Benchmark
from exssnet.errors import ExssnetError
from exssnet.methods.baselines.dense import DenseMethod
from exssnet.methods.language.encoder_net import EncoderNet, PooledEncoder, load_encoder

LANGUAGE_METHODS = ("ft", "replay", "regularization", "adaptbert-ft", "adaptbert-replay", "multiadaptbert",
                    "prompt-tuning", "mbpa", "lamol", "idbr")


class LanguageMethod(DenseMethod):
    """Mixin-style base: put it first in the bases, before the dense method whose loss it reuses."""

    text_inputs = "tokens"

    def __init__(self, config: RunConfig, benchmark: Benchmark) -> None:
        if benchmark.info.get("inputs") != "tokens":
            raise ExssnetError(f"method {config.method!r} fine-tunes a text encoder: use it with a text benchmark "
                               "(text-offline, webnlp, glue)")
        super().__init__(config, benchmark)

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
        groups = [{"params": self.encoder_parameters(), "lr": self.config.lm_lr},
                  {"params": self.new_parameters(task_id), "lr": self.config.lm_new_lr}]
        return [g for g in groups if g["params"]]

    def learning_rate(self) -> float:
        return self.config.lm_new_lr


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def trainable(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]
