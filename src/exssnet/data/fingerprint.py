"""A short fingerprint of a dataset's content: runs on the same data share it, whatever folder it was read from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import torch

from exssnet.data.tasks import Split

DIGEST_BYTES = 12


def _parts(split: Split) -> Iterable[object]:
    yield from split.x if isinstance(split.x, tuple) else (split.x,)
    yield split.y


def data_fingerprint(*splits: Split) -> str:
    """Hex digest of every tensor's dtype, shape and bytes, in order (the whole dataset, before any task split).

    Inputs streamed from image files (an `x` whose `dataset.files` lists them) count by file name and size.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for split in splits:
        for part in _parts(split):
            if isinstance(part, torch.Tensor):
                flat = part.detach().cpu().contiguous()
                digest.update(f"{flat.dtype}{tuple(flat.shape)}".encode())
                digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
                continue
            for path in getattr(getattr(part, "dataset", None), "files", None) or ():
                digest.update(f"{Path(path).name}:{Path(path).stat().st_size};".encode())
            digest.update(f"{type(part).__name__}{tuple(getattr(part, 'shape', ()))}".encode())
    return digest.hexdigest()


def combine(fingerprints: Iterable[str]) -> str:
    """One fingerprint for several parts, independent of their order."""
    return hashlib.blake2b("".join(sorted(fingerprints)).encode(), digest_size=DIGEST_BYTES).hexdigest()
