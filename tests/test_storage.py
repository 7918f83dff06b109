"""WSN's CAP and bits per parameter per task: the pure formulas and what results.json reports."""

from __future__ import annotations

import pytest
import torch
from conftest import own_keys

from exssnet.layers.maskcode import encode_mask
from exssnet.metrics import storage, union_density
from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

TINY = dict(benchmark="split-digits", num_tasks=3, baseline_epochs=1, mask_epochs=1, weight_epochs=1, batch_size=64,
            seed=0, density=0.1)


def test_union_density_counts_weights_any_task_keeps():
    a = {"w": torch.tensor([1, 1, 0, 0], dtype=torch.bool)}
    b = {"w": torch.tensor([0, 1, 1, 0], dtype=torch.bool)}
    assert union_density([a]) == 0.5
    assert union_density([a, b]) == 0.75
    assert union_density([a, b, {"w": torch.ones(4, dtype=torch.bool)}]) == 1.0


def test_storage_matches_wsn_cap_formula():
    # WSN: CAP = (1 - sparsity of the union) + mask bits * T / 32, in percent of one dense model
    out = storage(0.3, 0.5, 10)
    assert out["capacity"] == pytest.approx(100 * (0.3 + 0.5 * 10 / 32))
    assert out["bits_per_param_per_task"] == pytest.approx((32 * 0.3 + 0.5 * 10) / 10)
    assert storage(1.0, 0.0, 4) == {"capacity": 100.0, "bits_per_param_per_task": 8.0}  # one dense model, 4 tasks
    assert storage(4.0, 0.0, 4)["bits_per_param_per_task"] == 32.0  # a model per task
    with pytest.raises(ValueError):
        storage(1.0, 0.0, 0)


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    torch.set_num_threads(1)
    return {m: run_experiment(RunConfig.from_dict(own_keys(m, dict(method=m, **TINY))), progress=False)
            for m in ("supsup", "naive", "individual")}


def test_dense_baselines_report_their_copies(runs):
    assert runs["naive"]["capacity"] == 100.0 and runs["naive"]["bits_per_param_per_task"] == pytest.approx(32 / 3)
    assert runs["individual"]["capacity"] == 300.0 and runs["individual"]["bits_per_param_per_task"] == 32.0


def test_mask_method_reports_union_plus_coded_masks(runs):
    r = runs["supsup"]
    assert r["sparse_overlap"] is not None
    # at density 0.1, three masks: the union holds at most 30% of the weights, each coded mask well under 1 bit
    assert 0.0 < r["mask_bits_per_param_per_task"] < 1.0
    weights = r["capacity"] / 100 - r["mask_bits_per_param_per_task"] * 3 / 32
    assert 0.1 <= weights <= 0.3 + 1e-9
    assert r["bits_per_param_per_task"] == pytest.approx((32 * weights + 3 * r["mask_bits_per_param_per_task"]) / 3)


def test_coded_bits_are_the_checkpoint_codes_size():
    from exssnet.run.storage import coded_mask_bits

    g = torch.Generator().manual_seed(0)
    masks = [{"a": torch.rand(50, 40, generator=g) < 0.1, "b": torch.rand(30, generator=g) < 0.5} for _ in range(2)]
    expected = sum(8 * encode_mask(m).numel() for task in masks for m in task.values())
    assert coded_mask_bits(masks) == expected
    assert expected < 2 * (50 * 40 + 30)  # coded below one bit per weight
