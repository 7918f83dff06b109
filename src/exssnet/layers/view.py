"""`View`: which weight a supermask layer's forward pass uses; `SupermaskNet` selects one per layer."""

from __future__ import annotations

from enum import Enum


class View(str, Enum):
    """Which weight a masked layer's forward pass multiplies by.

    Each view names where the mask comes from and which tensor trains; a new mask method adds a view
    (and its branch in `MaskedLayer.effective_weight`) rather than a flag.
    """

    SCORES = "scores"  # W * topk(|scores|) of a task in training, or of given scores (straight-through gradient)
    COMPACT = "compact"  # weight phase: W * M_t with the trainable entries taken from `compact_weight`
    JOINT = "joint"  # WSN: topk(|scores|) times W with its free entries taken from `compact_weight`; both train
    MASK = "mask"  # W * M_t of a finished task (computed once, reused while W and M_t do not change)
    SUPERPOSED = "superposed"  # W * sum_i alpha_i M_{t_i} (task inference), masks stay 1-bit packed
    NONE = "none"  # nothing selected: the forward refuses to run
