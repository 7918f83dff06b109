"""benchmarks/wsn_pmnist.py: shortened presets, skipping finished rows, and the table beside WSN's numbers."""

from __future__ import annotations

import json

import pytest
from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def grid():
    return load_benchmark_script("wsn_pmnist")


def test_presets_are_found_and_shortened(grid):
    assert {"naive", "supsup", "exssnet", "ewc"} <= set(grid.presets())
    assert grid.shortened({"baseline_epochs": 5, "num_tasks": 10}, 1, 2) == {"baseline_epochs": 2, "num_tasks": 1}
    assert grid.shortened({"mask_epochs": 3, "weight_epochs": 2}, None, 1) == {"mask_epochs": 1, "weight_epochs": 0}
    assert grid.shortened({"mask_epochs": 5, "weight_epochs": 0}, None, 2) == {"mask_epochs": 2, "weight_epochs": 0}
    assert grid.shortened({"mask_epochs": 0, "weight_epochs": 5}, None, 1) == {"mask_epochs": 0, "weight_epochs": 1}  # packnet


def test_diagonal_mean_is_wsns_printed_average(grid):
    assert grid.diagonal_mean([[90.0, None], [80.0, 70.0]]) == 80.0


def test_grid_appends_one_row_per_run_and_skips_rows_it_has(grid, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(name, seed, threads, out, short):
        calls.append((name, seed))
        return {"preset": name, "seed": seed, "avg_acc": 96.0 + seed, "diagonal_acc": 96.0, "forgetting": 0.0,
                "capacity": 150.0, "bits_per_param_per_task": 4.0, "seconds": 60.0, "tasks": 10, "short": short,
                "settings": grid.preset_settings(name)}

    monkeypatch.setattr(grid, "run_one", fake_run)
    results = tmp_path / "rows.jsonl"
    # a row of earlier settings (before the preset took per-task heads) is run again and shown apart
    earlier = {k: v for k, v in grid.preset_settings("supsup").items() if k != "head"}
    results.write_text(json.dumps({"preset": "supsup", "seed": 0, "avg_acc": 93.0, "diagonal_acc": 93.0,
                                   "forgetting": 0.0, "capacity": 130.0, "bits_per_param_per_task": 4.2,
                                   "seconds": 60.0, "tasks": 10, "short": None, "settings": earlier}) + "\n")
    args = ["--presets", "supsup", "naive", "--seeds", "0", "1", "--results", str(results), "--out", str(tmp_path)]
    assert grid.main(args) == 0
    assert calls == [("supsup", 0), ("naive", 0), ("supsup", 1), ("naive", 1)]
    assert len(results.read_text().splitlines()) == 5
    assert grid.main(args) == 0
    assert len(calls) == 4  # nothing run twice
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| supsup | per-task "))
    assert "96.50 ± 0.71" in row and "SupSup" in row and "96.31 ± 0.09" in row and "+0.19" in row
    shown = table[table.rindex("Rows run with earlier settings"):]
    assert "| supsup | head masked (now per-task) | 93.00 |" in shown and "naive" not in shown
    assert json.loads(results.read_text().splitlines()[1])["preset"] == "supsup"
    doc = tmp_path / "wsn.md"
    doc.write_text("intro\n<!-- wsn_pmnist:begin -->\nold\n<!-- wsn_pmnist:end -->\noutro\n")
    assert grid.main([*args, "--table-only", "--docs", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text and row in text


def test_unknown_preset_is_refused(grid, capsys):
    assert grid.main(["--presets", "nope", "--table-only"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_a_failed_run_is_reported_and_the_grid_goes_on(grid, tmp_path, monkeypatch, capsys):
    from exssnet.errors import ExssnetError

    def fake_run(name, seed, threads, out, short):
        if name == "ewc":
            raise ExssnetError("loss became inf in task9 train phase")
        return {"preset": name, "seed": seed, "avg_acc": 96.0, "diagonal_acc": 96.0, "forgetting": 0.0,
                "capacity": 100.0, "bits_per_param_per_task": 3.2, "seconds": 60.0, "tasks": 10, "short": short}

    monkeypatch.setattr(grid, "run_one", fake_run)
    results = tmp_path / "rows.jsonl"
    assert grid.main(["--presets", "ewc", "naive", "--seeds", "0", "--results", str(results), "--out", str(tmp_path)]) == 0
    assert [json.loads(line)["preset"] for line in results.read_text().splitlines()] == ["naive"]
    assert "ewc seed 0: FAILED: loss became inf" in capsys.readouterr().out
