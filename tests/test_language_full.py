"""benchmarks/language_full.py: the grid covers every row, skips what its JSONL holds, and writes one row per run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def grid_module():
    return load_benchmark_script("language_full")


def fake_exssnet(grid_module, root: Path, monkeypatch) -> list[list[str]]:
    """Stand in for `exssnet run` under `root`: each call writes a results.json (the method named by --method, "ft"
    for a resumed run) and is recorded in the returned list."""
    calls: list[list[str]] = []

    def fake_run(argv, cwd, **kwargs):
        calls.append(argv)
        config = {"text_max_train": 200, "text_max_test": 100, "max_length": 128}
        written = Path(cwd) / argv[argv.index("--out") + 1]
        written.mkdir(parents=True, exist_ok=True)
        method = argv[argv.index("--method") + 1] if "--method" in argv else "ft"
        (written / "results.json").write_text(json.dumps({
            "method": method, "acc_matrix": [[80.0, None], [70.0, 90.0]], "task_names": ["a", "b"], "avg_acc": 80.0,
            "forgetting": 10.0, "config": config, "task_time_s": [1000.0, 5.0]}))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(grid_module, "ROOT", root)
    monkeypatch.setattr(grid_module.subprocess, "run", fake_run)
    return calls


def test_grid_has_every_row_three_minilm_seeds_and_one_mpnet_seed(grid_module):
    order = grid_module.grid()
    assert len(order) == len(set(order))
    for row in grid_module.ROWS:
        assert {s for r, e, s in order if r == row and e == "minilm"} == {0, 1, 2}
        assert 0 in {s for r, e, s in order if r == row and e == "mpnet-base"}
    for row in grid_module.KEY_ROWS:
        assert {s for r, e, s in order if r == row and e == "mpnet-base"} == {0, 1, 2}
    assert order[0] == ("supsup", "minilm", 0)
    lamol = grid_module.command("lamol", "minilm", 0, Path("o"))
    assert lamol[lamol.index("--lamol-lm") + 1] == "smollm2-135m" and lamol[lamol.index("--threads") + 1] == "1"
    assert lamol[lamol.index("--lamol-lm-amp") + 1] == "bf16" and "--lamol-lm-amp" not in grid_module.command("ft", "minilm", 0, Path("o"))
    two = grid_module.command("lamol", "minilm", 0, Path("o"), threads=2)
    assert two[two.index("--threads") + 1] == "2"


def test_finished_rows_are_skipped_and_each_run_appends_one_line(grid_module, tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"
    done = [("supsup", "minilm", 0), ("ssnet", "minilm", 0)]
    out.write_text("".join(json.dumps({"row": r, "encoder": e, "seed": s, "avg_acc": 50.0}) + "\n" for r, e, s in done))
    calls = fake_exssnet(grid_module, tmp_path, monkeypatch)
    args = type("Args", (), {"out": out, "runs": Path("runs"), "encoders": ["minilm"], "rows": ["supsup", "ssnet", "exssnet"]})
    grid_module.run_grid(args)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    new = [(r["row"], r["encoder"], r["seed"]) for r in lines[2:]]
    assert new == [("exssnet", "minilm", 0), ("supsup", "minilm", 1), ("ssnet", "minilm", 1), ("exssnet", "minilm", 1),
                   ("supsup", "minilm", 2), ("ssnet", "minilm", 2), ("exssnet", "minilm", 2)]
    assert len(calls) == 7 and lines[2]["final_acc"] == {"a": 70.0, "b": 90.0} and lines[2]["text_max_train"] == 200
    assert "--encoder minilm" in lines[2]["command"] and lines[2]["wall_s"] >= 0
    grid_module.run_grid(args)
    assert len(calls) == 7  # everything is in the file now: nothing runs again


def test_a_run_cut_short_is_resumed_and_its_earlier_tasks_time_counted(grid_module, tmp_path, monkeypatch):
    folder = grid_module.run_folder(Path("runs"), "minilm", "ft", 0)
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "run_state.json").write_text(json.dumps({"acc_rows": [[80.0]]}))  # task 0 finished
    calls = fake_exssnet(grid_module, tmp_path, monkeypatch)
    out = tmp_path / "rows.jsonl"
    grid_module.run_grid(type("Args", (), {"out": out, "runs": Path("runs"), "encoders": ["minilm"], "rows": ["ft"],
                                           "threads": 2}))
    assert calls[0][1:] == ["run", "--out", str(folder), "--resume", "--threads", "2", "--quiet"]  # threads may change
    assert all("--resume" not in argv for argv in calls[1:])  # seeds 1 and 2 start afresh
    row = json.loads(out.read_text().splitlines()[0])
    assert row["resumed_at_task"] == 1 and row["wall_s"] >= 1000.0 and "--method ft" in row["command"]


def test_docs_block_is_rewritten_from_the_rows(grid_module, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- language_full:begin -->\nold\n<!-- language_full:end -->\noutro\n")
    rows = [{"row": "exssnet", "encoder": "minilm", "seed": s, "avg_acc": a, "forgetting": 0.0, "wall_s": 60.0,
             "final_acc": {"t": a}} for s, a in ((0, 80.0), (1, 82.0))]
    rows += [{"row": "er", "encoder": "minilm", "seed": 0, "avg_acc": 85.0, "forgetting": 1.0, "wall_s": 30.0,
              "final_acc": {"t": 85.0}}]
    grid_module.replace_block(doc, "language_full", grid_module.generated(rows))
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "| exssnet | 81.00 ± 1.41 |" in text and "| er | 85.00 | 1.00 | +4.00 |" in text
    assert "er by 4.00" in text


def test_validation_study_scores_the_last_phase_and_changes_one_setting_per_variant():
    study = load_benchmark_script("language_val_study")
    results = {"tasks": [{"mask_phase": {"val_acc": [50.0, 60.0]}, "weight_phase": {"val_acc": [70.0, 80.0]}},
                         {"train_phase": {"val_acc": [40.0, 45.0]}}]}
    assert study.end_of_task_validation(results) == [80.0, 45.0]  # the weight phase ends an ExSSNeT task
    base = study.command("exssnet (as in the table)", "minilm", 0, Path("o"))
    for variant in study.VARIANTS:
        argv = study.command(variant, "minilm", 0, Path("o"))
        assert argv[argv.index("--text-max-train") + 1] == "200" and argv[argv.index("--max-length") + 1] == "128"
        added = [a for a in argv if a.startswith("--") and a not in base]
        assert variant.startswith("er") or (len(added) <= 2 and argv != base) or variant == "exssnet (as in the table)"


def test_a_row_another_worker_holds_is_left_to_it(grid_module, tmp_path, monkeypatch):
    claims = load_benchmark_script("grid_claims")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held = claims.claim_path(tmp_path / "runs" / ".claims", "minilm/ft/seed1")
        held.parent.mkdir(parents=True)
        held.write_text(claims.process_tag(worker.pid))
        calls = fake_exssnet(grid_module, tmp_path, monkeypatch)
        out = tmp_path / "rows.jsonl"
        grid_module.run_grid(type("Args", (), {"out": out, "runs": Path("runs"), "encoders": ["minilm"], "rows": ["ft"]}))
    finally:
        worker.kill()
        worker.wait()
    assert [argv[argv.index("--seed") + 1] for argv in calls] == ["0", "2"]
    assert [json.loads(line)["seed"] for line in out.read_text().splitlines()] == [0, 2] and held.exists()


def test_list_keeps_to_the_filters_and_says_which_rows_run_or_can_resume(grid_module, tmp_path, monkeypatch):
    claims = load_benchmark_script("grid_claims")
    monkeypatch.setattr(grid_module, "ROOT", tmp_path)
    out = tmp_path / "rows.jsonl"
    out.write_text(json.dumps({"row": "ft", "encoder": "minilm", "seed": 0, "avg_acc": 80.0}) + "\n")
    folder = tmp_path / grid_module.run_folder(Path("runs"), "minilm", "ft", 2)
    folder.mkdir(parents=True)
    (folder / "run_state.json").write_text(json.dumps({"acc_rows": [[80.0], [70.0, 90.0]]}))  # cut short after 2 tasks
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    directory = tmp_path / "runs" / ".claims"
    directory.mkdir(parents=True)
    claims.claim_path(directory, "minilm/ft/seed2").write_text(gone.stdout.strip())  # a dead worker's claim
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claims.claim_path(directory, "minilm/ft/seed1").write_text(claims.process_tag(worker.pid))
        args = type("Args", (), {"out": out, "runs": Path("runs"), "encoders": ["minilm"], "rows": ["ft"]})
        lines = grid_module.listing(args).splitlines()
    finally:
        worker.kill()
        worker.wait()
    assert lines == ["* ft / minilm / 0", "  ft / minilm / 1  (running)",
                     "  ft / minilm / 2  (2 task(s) checkpointed)", "1 of 3 done"]
    args.encoders, args.rows = None, None
    assert grid_module.listing(args).splitlines()[-1] == f"1 of {len(grid_module.grid())} done"
