"""Prompt tuning (Lester et al. 2021) per task with PEFT: the encoder is frozen; task t learns only its own
`prompt_tokens` soft prompt embeddings (PEFT adapter "task<t>", prepended to the input) and its head.
Earlier tasks' prompts are never updated, so their outputs never change.
"""

from __future__ import annotations

import torch
from torch import nn

from exssnet.data.tasks import Inputs
from exssnet.errors import ExssnetError
from exssnet.methods.base import register_method
from exssnet.methods.language.base import LanguageMethod, PromptSettings, freeze


def prompt_config(tokens: int):  # noqa: ANN201 - a peft config
    try:
        from peft import PromptTuningConfig
    except ImportError:
        raise ExssnetError("prompt-tuning needs `pip install peft==0.21.2` (or run `make setup`)") from None
    return PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=tokens)


@register_method("prompt-tuning", settings=PromptSettings)
class PromptTuning(LanguageMethod):
    """Per-task soft prompts (PEFT) over a frozen encoder."""

    def encoder_parameters(self) -> list[nn.Parameter]:
        return []

    def grow(self, task_id: int) -> None:
        super().grow(task_id)
        trunk = self.net.trunk
        config = prompt_config(self.settings.prompt_tokens)
        if task_id == 0:
            from peft import get_peft_model

            positions = getattr(trunk.model.config, "max_position_embeddings", None)
            if positions is not None and self.settings.prompt_tokens + self.config.max_length > positions:
                raise ExssnetError(f"prompt_tokens + max_length ({self.settings.prompt_tokens} + {self.config.max_length}) "
                                   f"exceeds the encoder's {positions} positions; lower one of them")
            freeze(trunk.model)
            trunk.model = get_peft_model(trunk.model, config, adapter_name="task0")
        else:
            trunk.model.add_adapter(f"task{task_id}", config)
        trunk.model.to(self.device)

    def prompt_parameters(self, task_id: int) -> list[nn.Parameter]:
        return list(self.net.trunk.model.prompt_encoder[f"task{task_id}"].parameters())

    def new_parameters(self, task_id: int) -> list[nn.Parameter]:
        return [*self.prompt_parameters(task_id), *self.net.heads[task_id].parameters()]

    def task_logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        self.net.trunk.model.set_adapter(f"task{task_id}")
        return self.net(x, task_id)
