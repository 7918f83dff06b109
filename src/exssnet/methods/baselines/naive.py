"""Naive fine-tuning: train the shared trunk on each task in turn, nothing against forgetting (lower bound)."""

from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import BaselineSettings, DenseMethod


@register_method("naive", settings=BaselineSettings)
class Naive(DenseMethod):
    """Plain cross-entropy on the current task's head."""

