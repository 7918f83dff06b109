"""docs/extending.md's worked examples (a benchmark, a model, a method) are run as written."""

import re
from pathlib import Path

import pytest

from exssnet.data.benchmarks import BENCHMARKS
from exssnet.methods.base import METHODS
from exssnet.models.contract import find_classifier
from exssnet.models.registry import MODELS
from exssnet.run.config import RunConfig
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
            if name in registry.names():
                registry.unregister(name)


def test_doc_examples_register_and_run(registered):
    results = registered["results"]
    assert results["method"] == "nearest-mean" and results["benchmark"] == "toy-blobs"
    assert registered["NearestMean"].name == "nearest-mean"  # the registered name, written once
    assert len(results["acc_matrix"]) == 3 and results["avg_acc"] > 90
    assert [t["train_examples"] for t in results["tasks"]] == [108, 108, 108]  # 120 drawn, 10% carved off
    assert results["config"]["nm_temperature"] == 2.0


def test_doc_method_settings_are_config_keys_flags_and_checked(registered, capsys):
    from exssnet.cli import main
    from exssnet.errors import ExssnetError

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "[nearest-mean] divide the negative squared distances" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(ExssnetError, match="nm_temperature must be > 0, got 0.0"):
        RunConfig.from_dict({"method": "nearest-mean", "nm_temperature": 0})
    assert main(["run", "--method", "nearest-mean", "--nm-temperature", "-1"]) == 2
    assert capsys.readouterr().err.startswith("exssnet: error: nm_temperature must be > 0")
    method = RunConfig.from_dict({"method": "nearest-mean", "nm_temperature": 3})
    assert method.settings_of().nm_temperature == 3.0  # ints are accepted where a float is declared


def test_unregistered_settings_keys_are_refused(registered):
    from exssnet.errors import ExssnetError

    RunConfig.from_dict({"method": "nearest-mean", "nm_temperature": 2.0})
    with pytest.raises(ExssnetError, match="method 'exssnet' does not read --nm-temperature 2.0 .read by nearest-mean"):
        RunConfig.from_dict({"nm_temperature": 2.0})
    entry, settings = METHODS.get("nearest-mean"), METHODS.metadata("nearest-mean")
    METHODS.unregister("nearest-mean")
    try:
        with pytest.raises(ExssnetError, match="unknown config key"):
            RunConfig.from_dict({"method": "nearest-mean", "nm_temperature": 2.0})
    finally:
        METHODS.register("nearest-mean", **settings)(entry)


def test_doc_model_follows_the_contract_and_trains_with_a_supermask_method(registered, tmp_path):
    model = registered["tiny_mlp"]((8,), 2)
    assert find_classifier(model) == ("classifier", model.classifier)
    config = RunConfig.from_dict(dict(benchmark="toy-blobs", model="tiny-mlp", method="exssnet", num_tasks=2,
                                      mask_epochs=1, weight_epochs=1, kkt=True))
    results = run_experiment(config, out=tmp_path, progress=False)
    assert results["tasks"][1]["kkt"]["classifier"] == "classifier"
    assert (tmp_path / "checkpoints").is_dir()
