"""Full-data accuracy runs (minutes): `make test-slow` or `pytest -m slow`."""

import pytest

from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment


@pytest.mark.slow
@pytest.mark.parametrize("method", ["supsup", "exssnet"])
def test_split_mnist_reaches_paper_accuracy_without_forgetting(method):
    results = run_experiment(RunConfig(benchmark="split-mnist", method=method, density=0.1, seed=0), progress=False)
    assert results["avg_acc"] >= 99.0
    assert results["forgetting"] == 0.0


@pytest.mark.slow
def test_split_fashion_mnist_exssnet_does_not_forget():
    results = run_experiment(RunConfig(benchmark="split-fashion-mnist", method="exssnet", density=0.1, seed=0),
                             progress=False)
    assert results["avg_acc"] >= 95.0
    assert results["forgetting"] == 0.0
