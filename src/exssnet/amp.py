"""Automatic mixed precision (`--amp bf16|fp16`): an autocast context for a run and the loss scaler a phase needs.

The runner wraps learning and evaluation in `autocast`; the training loop asks `grad_scaler` for a
GradScaler, which is active only under fp16 autocast (bf16 keeps float32's exponent range and needs none).
Scores, masks, optimizer states and BatchNorm statistics stay float32; matmuls and convolutions run in the
lower precision. Works on CUDA, and on the CPU (slowly) so it can be tested without a GPU.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

from exssnet.errors import check_amp

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """The autocast dtype of a precision setting, None for float32."""
    return None if check_amp(amp) is None else AMP_DTYPES[amp]


@contextlib.contextmanager
def autocast(amp: str | None, device: str | torch.device) -> Iterator[None]:
    """Run the block in mixed precision `amp` on `device` (nothing changes when amp is None)."""
    dtype = amp_dtype(amp)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


@contextlib.contextmanager
def outside_autocast(device: str | torch.device) -> Iterator[None]:
    """Leave any autocast on `device` for the block: optimizer steps keep float32 math (torch's advice is to wrap
    only forward passes; SmolLM2's Adam steps taken under CPU bf16 autocast left an LM that wrote empty texts)."""
    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        yield


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only under float16 autocast on `device`; disabled it passes everything through."""
    on = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=on)


def step_schedule(schedule: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler) -> None:
    """`schedule.step()` after every batch. Under loss scaling the first optimizer steps may be skipped (inf
    gradients while the scale settles); the schedule still follows the batches, so torch's warning about a
    scheduler step before any optimizer step is expected then and muted."""
    if not scaler.is_enabled():
        schedule.step()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
        schedule.step()
