"""A short fingerprint of a dataset's content: runs on the same data share it, whatever folder it was read from."""

from __future__ import annotations

import hashlib
from typing import Iterable

import torch

from exssnet.data.tasks import Split

DIGEST_BYTES = 12


def _tensors(split: Split) -> Iterable[torch.Tensor]:
    yield from split.x if isinstance(split.x, tuple) else (split.x,)
    yield split.y


def data_fingerprint(*splits: Split) -> str:
    """Hex digest of every tensor's dtype, shape and bytes, in order (the whole dataset, before any task split)."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for split in splits:
        for tensor in _tensors(split):
            flat = tensor.detach().cpu().contiguous()
            digest.update(f"{flat.dtype}{tuple(flat.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    return digest.hexdigest()


def combine(fingerprints: Iterable[str]) -> str:
    """One fingerprint for several parts, independent of their order."""
    return hashlib.blake2b("".join(sorted(fingerprints)).encode(), digest_size=DIGEST_BYTES).hexdigest()
