"""Every preset in configs/ matches its row of configs/paper_table.csv (the paper's settings) and is a valid config."""

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from exssnet.cli import main
from exssnet.data import benchmark_names
from exssnet.data.text_benchmarks import task_order
from exssnet.errors import ExssnetError
from exssnet.methods import method_names
from exssnet.models import model_names
from exssnet.run.config import RunConfig, load_yaml

CONFIGS = Path(__file__).parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
NEEDS_DATA_DIR = {"split-cifar100", "split-tinyimagenet", "webnlp", "glue", "imagenet"}
TABLE = {row["preset"]: row for row in csv.DictReader((CONFIGS / "paper_table.csv").open())}
NOT_CONFIG = {"preset", "paper", "task_order", "paper_epochs"}
# The paper's Table 6, verbatim.
TABLE6 = {"S1": "mnli qqp qnli sst2 cola", "S2": "ag yelp amazon yahoo dbpedia", "S3": "yelp yahoo amazon dbpedia ag",
          "S4": "dbpedia yahoo ag amazon yelp", "S5": "yelp ag dbpedia amazon yahoo", "S6": "ag yelp yahoo",
          "S7": "yelp yahoo ag", "S8": "yahoo ag yelp"}
# App. A.3: epochs per task on each vision dataset; the paper's main tables use five tasks of a random split.
PAPER_EPOCHS = {"split-mnist": 30, "split-cifar100": 100, "split-tinyimagenet": 30}


def leading_comment(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, text in enumerate(lines) if not text.startswith("#"))])


def unknown_names(values: dict) -> list[str]:
    """Config keys (as RunConfig.from_dict judges them), benchmark, model or method names the library does not know."""
    missing = []
    try:
        RunConfig.from_dict({k.replace("-", "_"): v for k, v in values.items()})
    except ExssnetError as exc:
        missing.append(str(exc))
    for kind, names in (("benchmark", benchmark_names()), ("model", model_names()), ("method", method_names())):
        if kind in values and values[kind] not in names:
            missing.append(f"{kind} {values[kind]}")
    return missing
def typed(text: str, like):
    """A CSV cell converted to the type of the config value it is compared with."""
    if isinstance(like, bool):
        return text == "true"
    return type(like)(text) if like is not None else text


def test_every_preset_has_a_table_row_and_back():
    assert {p.stem for p in PRESETS} == set(TABLE)


def test_presets_cover_the_papers_experiments():
    papers = {row["paper"] for row in TABLE.values()}
    for name in ["Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 9", "Table 10", "Table 12", "Table 15",
                 "Fig. 2", "Fig. 3", "Fig. 5"]:
        assert name in papers
    orders = {row["text_order"] for row in TABLE.values() if row["text_order"]}
    assert orders == set(TABLE6)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_matches_its_table_row(preset):
    row = TABLE[preset.stem]
    values = load_yaml(preset)
    config = RunConfig.from_dict(values)
    flat = config.to_dict()
    for key, cell in row.items():
        if key in NOT_CONFIG or cell == "":
            continue
        assert key in values, f"{preset.name} does not set {key} (table: {cell})"
        assert flat[key] == typed(cell, flat[key]), f"{preset.name}: {key}"
    set_keys = {k for k in values if k not in ("seed", "classil_mode")}
    assert set_keys <= {k for k, cell in row.items() if cell != ""}, "a preset value missing from the table"
    if row["text_order"]:
        assert row["task_order"] == TABLE6[row["text_order"]]
        assert task_order(config.benchmark, config.text_order) == row["task_order"].split()
        assert config.num_tasks == len(row["task_order"].split())
    if config.benchmark in PAPER_EPOCHS and not row["paper"].startswith("WSN"):  # WSN's own protocols: test_wsn_t2
        assert config.mask_epochs + config.weight_epochs == PAPER_EPOCHS[config.benchmark] == int(row["paper_epochs"])
        assert config.class_order == "seeded" and config.density in (0.1, 0.02)
    if config.benchmark in ("webnlp", "glue"):
        assert config.max_length == 256 and config.model == "kim-cnn" and config.encoder in ("bert-base-uncased", "glove-6b-50d")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_names_its_table_and_known_names(preset):
    values = yaml.safe_load(preset.read_text())
    paper = TABLE[preset.stem]["paper"]
    assert f"# Paper: {paper}" in leading_comment(preset)
    match = re.match(r"(Table|Fig\.) (\d+)", paper)
    if match:
        assert preset.stem.startswith(("table" if match.group(1) == "Table" else "fig") + match.group(2) + "-")
    assert unknown_names(values) == []
    if "exssnet sweep" in leading_comment(preset) or "exssnet run" in leading_comment(preset):
        assert f"configs/{preset.name}" in leading_comment(preset)


@pytest.mark.parametrize("preset", [p for p in PRESETS if yaml.safe_load(p.read_text())["benchmark"] in NEEDS_DATA_DIR],
                         ids=lambda p: p.stem)
def test_preset_without_its_data_is_a_clear_error(preset, tmp_path, capsys):
    code = main(["run", "--config", str(preset), "--data-dir", str(tmp_path), "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("exssnet: error:") and "Traceback" not in err


def test_splitmnist_preset_runs(tmp_path):
    """The Table 2 SplitMNIST preset as written, shortened to one task and one epoch per phase."""
    preset = CONFIGS / "table2-splitmnist.yaml"
    args = ["run", "--config", str(preset), "--num-tasks", "1", "--mask-epochs", "1", "--weight-epochs", "1",
            "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    config = results["config"]
    assert (config["benchmark"], config["model"], config["density"], config["mask_lr"], config["weight_lr"]) == (
        "split-mnist", "lenet", 0.1, 0.01, 0.001)
    assert results["avg_acc"] > 90.0


def test_preset_method_settings_reach_the_method():
    """A preset's method-specific keys end up in the settings object its method is built with."""
    values = {"method": "ewc", "ewc_lambda": 7.0, "baseline_epochs": 2}
    config = RunConfig.from_dict(values)
    assert config.settings_of().ewc_lambda == 7.0 and config.settings_of().baseline_epochs == 2
    assert {k: config.to_dict()[k] for k in values} == values  # results.json's flat config keeps them
    assert "kkt_k" not in config.to_dict() and "buffer_size" not in config.to_dict()  # only the method's own
    for other in ({"buffer_size": 9}, {"kkt_k": 3}):  # a setting only other methods read is refused, naming them
        with pytest.raises(ExssnetError, match=f"does not read --{next(iter(other)).replace('_', '-')}.*read by"):
            RunConfig.from_dict({**values, **other})
    with pytest.raises(ExssnetError, match="unknown config key.*ewc_lamda"):
        RunConfig.from_dict({"method": "ewc", "ewc_lamda": 7.0})
