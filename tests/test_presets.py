"""Every preset in configs/ parses, names its paper table, and is a valid config of this library."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from exssnet.cli import main
from exssnet.config import RunConfig, load_yaml
from exssnet.data import benchmark_names
from exssnet.methods import method_names
from exssnet.models import model_names

CONFIGS = Path(__file__).parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
NEEDS_DATA_DIR = {"split-cifar100", "split-tinyimagenet", "webnlp", "glue", "imagenet"}


def leading_comment(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, text in enumerate(lines) if not text.startswith("#"))])


def unknown_names(values: dict) -> list[str]:
    """Config keys, benchmark, model or method names of a preset that the library does not know."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    missing = [f"key {k}" for k in values if k not in known]
    for kind, names in (("benchmark", benchmark_names()), ("model", model_names()), ("method", method_names())):
        if kind in values and values[kind] not in names:
            missing.append(f"{kind} {values[kind]}")
    return missing


def test_presets_cover_the_paper_tables():
    tables = {int(n) for p in PRESETS for n in re.findall(r"Paper: Table (\d+)", leading_comment(p))}
    assert tables == {1, 2, 3, 4, 5, 8, 9, 10, 11, 12}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_parses_and_names_its_table(preset):
    values = yaml.safe_load(preset.read_text())
    assert isinstance(values, dict) and values
    assert re.search(r"^# Paper: (Table \d+|Fig\. \d+)", leading_comment(preset), re.M), "first lines must name the paper table"
    assert preset.stem.startswith("table" + re.search(r"Paper: Table (\d+)", leading_comment(preset)).group(1) + "-")
    assert not unknown_names(values)
    if "exssnet sweep" in leading_comment(preset) or "exssnet run" in leading_comment(preset):
        assert f"configs/{preset.name}" in leading_comment(preset)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_is_a_valid_config(preset):
    values = load_yaml(preset)
    assert not unknown_names(values)
    config = RunConfig.from_dict(values)
    assert config.density == values["density"] and config.method == values["method"]


@pytest.mark.parametrize("preset", [p for p in PRESETS if yaml.safe_load(p.read_text())["benchmark"] in NEEDS_DATA_DIR],
                         ids=lambda p: p.stem)
def test_preset_without_its_data_is_a_clear_error(preset, tmp_path, capsys):
    code = main(["run", "--config", str(preset), "--data-dir", str(tmp_path), "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("exssnet: error:") and "Traceback" not in err


def test_splitmnist_preset_runs(tmp_path):
    """The Table 2 SplitMNIST preset as written, shortened to one task and one epoch per phase."""
    preset = CONFIGS / "table2-splitmnist-exssnet.yaml"
    args = ["run", "--config", str(preset), "--num-tasks", "1", "--mask-epochs", "1", "--weight-epochs", "1",
            "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    config = results["config"]
    assert (config["benchmark"], config["model"], config["density"], config["mask_lr"], config["weight_lr"]) == (
        "split-mnist", "lenet", 0.1, 0.01, 0.001)
    assert results["avg_acc"] > 90.0
