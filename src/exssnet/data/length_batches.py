"""Random training batches of texts of similar length, so a batch padded to its longest text carries little padding.

Every epoch still visits every text once in a random order: the texts are shuffled, cut into windows of
`window` batches, sorted by length inside each window, cut into batches, and the batches are shuffled
(the scheme of Hugging Face's `group_by_length`). On a mix of short and long texts (a task's texts next to
pseudo texts of earlier tasks) a random batch is padded to its one long text; a grouped batch is not.
"""

from __future__ import annotations

import torch


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator,
                           window: int = 64) -> list[list[int]]:
    """Indices into `lengths` in batches of at most `batch_size`, every index once, similar lengths together."""
    if batch_size < 1 or window < 1:
        raise ValueError(f"batch_size and window must be >= 1, got {batch_size} and {window}")
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * window
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        part = sorted(order[start : start + span], key=lambda i: lengths[i])  # stable: ties keep the random order
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    """Tokens the batches hold once each is padded to its longest text."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
