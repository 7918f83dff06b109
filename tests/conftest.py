"""Shared fixtures: tiny models and a fast benchmark."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from exssnet.methods import method_settings_class
from exssnet.run.config import RunConfig, core_keys


def own_keys(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the settings `method` does not read (a run refuses another method's setting)."""
    own = core_keys() | {f.name for f in dataclasses.fields(method_settings_class(method))}
    return {k: v for k, v in values.items() if k in own}


def own_flags(method: str, values: dict[str, Any]) -> list[str]:
    """`--key value` arguments for the settings in `values` that `method` reads."""
    return [arg for key, value in own_keys(method, values).items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def assert_accuracy_matrix(results: dict, num_tasks: int) -> None:
    """A finished run's matrix: row t holds t + 1 accuracies in [0, 100] (then None), and avg_acc is the last row's mean."""
    matrix = results["acc_matrix"]
    assert [sum(v is not None for v in row) for row in matrix] == list(range(1, num_tasks + 1))
    assert all(row[t + 1 :] == [None] * (num_tasks - t - 1) for t, row in enumerate(matrix))
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for t, row in enumerate(matrix) for v in row[: t + 1])
    assert abs(results["avg_acc"] - sum(matrix[-1]) / num_tasks) < 1e-9


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def digits_config() -> RunConfig:
    """A few-second run on scikit-learn digits."""
    return RunConfig(benchmark="split-digits", method="exssnet", density=0.2, mask_epochs=2, weight_epochs=2,
                     batch_size=64, seed=0)
