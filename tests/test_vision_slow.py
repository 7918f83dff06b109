"""Accuracy runs on the installed MNIST + Fashion-MNIST (deselected by default; `pytest -m slow`)."""

import pytest

from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment


@pytest.mark.slow
def test_gray_stream_exssnet_learns_all_twenty_classes_without_forgetting():
    config = RunConfig(benchmark="gray-stream", class_order="sequential", model="lenet", method="exssnet",
                       density=0.05, mask_epochs=1, weight_epochs=1, threads=1, seed=0)
    results = run_experiment(config, progress=False)
    assert len(results["acc_matrix"]) == 10
    assert [c for t in results["tasks"] for c in t["classes"]][:2] == ["mnist:0", "mnist:1"]
    assert results["forgetting"] == 0.0
    assert results["avg_acc"] > 93.0
    assert min(results["acc_matrix"][-1]) > 80.0
