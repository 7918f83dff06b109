"""Replay: fine-tune the encoder with experience replay (the reservoir buffer of the dense `er` baseline)."""

from __future__ import annotations

from exssnet.methods.base import register_method
from exssnet.methods.baselines.er import ER
from exssnet.methods.language.base import LanguageMethod, LanguageReplaySettings


@register_method("replay", settings=LanguageReplaySettings)
class Replay(LanguageMethod, ER):
    """Each step: the current batch plus replay_batch_size stored examples, each on its own task's head."""

