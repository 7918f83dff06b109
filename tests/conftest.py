"""Shared fixtures: tiny models and a fast benchmark."""

from __future__ import annotations

import pytest
import torch

from exssnet.run.config import RunConfig


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def digits_config() -> RunConfig:
    """A few-second run on scikit-learn digits."""
    return RunConfig(benchmark="split-digits", method="exssnet", density=0.2, mask_epochs=2, weight_epochs=2,
                     batch_size=64, seed=0)
