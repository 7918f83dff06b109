"""docs/extending.md's worked examples (a benchmark, a model, a method) are run as written."""

import re
from pathlib import Path

import pytest

from exssnet.config import RunConfig
from exssnet.data.benchmarks import BENCHMARKS
from exssnet.methods.base import METHODS
from exssnet.models.contract import find_classifier
from exssnet.models.registry import MODELS
from exssnet.run.runner import run_experiment

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
NAMES = ((BENCHMARKS, "toy-blobs"), (MODELS, "tiny-mlp"), (METHODS, "nearest-mean"))


@pytest.fixture
def registered():
    """Run the page's code blocks in one namespace; unregister its names afterwards."""
    namespace: dict = {}
    try:
        for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
            exec(compile(block, str(DOC), "exec"), namespace)
        yield namespace
    finally:
        for registry, name in NAMES:
            registry._items.pop(name, None)


def test_doc_examples_register_and_run(registered):
    results = registered["results"]
    assert results["method"] == "nearest-mean" and results["benchmark"] == "toy-blobs"
    assert registered["NearestMean"].name == "nearest-mean"  # the registered name, written once
    assert len(results["acc_matrix"]) == 3 and results["avg_acc"] > 90
    assert [t["train_examples"] for t in results["tasks"]] == [108, 108, 108]  # 120 drawn, 10% carved off


def test_doc_model_follows_the_contract_and_trains_with_a_supermask_method(registered, tmp_path):
    model = registered["tiny_mlp"]((8,), 2)
    assert find_classifier(model) == ("classifier", model.classifier)
    config = RunConfig(benchmark="toy-blobs", model="tiny-mlp", method="exssnet", num_tasks=2, mask_epochs=1,
                       weight_epochs=1, kkt=True)
    results = run_experiment(config, out=tmp_path, progress=False)
    assert results["tasks"][1]["kkt"]["classifier"] == "classifier"
    assert (tmp_path / "checkpoints").is_dir()
