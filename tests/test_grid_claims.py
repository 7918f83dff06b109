"""benchmarks/grid_claims.py: workers sharing a grid take each row once; a dead worker's claim is taken over."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def claims():
    return load_benchmark_script("grid_claims")


@pytest.fixture
def other_worker():
    """A live process other than this one (a second grid worker)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_row_is_held_by_one_worker_until_released(claims, tmp_path, other_worker):
    assert claims.claim(tmp_path, "mpnet-base/exssnet (density 0.4)/seed0")
    assert not claims.claim(tmp_path, "mpnet-base/exssnet (density 0.4)/seed0")  # held (here: by this very process)
    assert claims.claim(tmp_path, "minilm/ft/seed0")  # another row is free
    path = claims.claim_path(tmp_path, "minilm/ft/seed1")
    path.write_text(claims.process_tag(other_worker.pid))
    assert not claims.claim(tmp_path, "minilm/ft/seed1")
    claims.release(tmp_path, "minilm/ft/seed1")  # not ours: left alone
    assert path.exists()
    claims.release(tmp_path, "minilm/ft/seed0")
    assert not claims.claim_path(tmp_path, "minilm/ft/seed0").exists() and claims.claim(tmp_path, "minilm/ft/seed0")


def test_the_claim_of_a_worker_that_is_gone_is_taken_over(claims, tmp_path, other_worker):
    path = claims.claim_path(tmp_path, "row")
    other_worker.kill()
    other_worker.wait()
    path.write_text(claims.process_tag(other_worker.pid))
    assert claims.claim(tmp_path, "row") and path.read_text() == claims.process_tag(claims.os.getpid())
    # a live pid with another start time is a reused pid, not the worker that wrote the claim
    (tmp_path / "reused.claim").write_text(f"{claims.os.getpid()} 1")
    assert claims.claim(tmp_path, "reused")


def test_a_wsn_grid_row_another_worker_holds_is_skipped(tmp_path, monkeypatch, other_worker):
    grid = load_benchmark_script("wsn_pmnist")
    held = load_benchmark_script("grid_claims").claim_path(tmp_path / ".claims", "naive/seed0")
    held.parent.mkdir()
    held.write_text(load_benchmark_script("grid_claims").process_tag(other_worker.pid))
    calls = []

    def fake_run(name, seed, threads, out, short):
        calls.append((name, seed))
        return {"preset": name, "seed": seed, "avg_acc": 96.0, "diagonal_acc": 96.0, "forgetting": 0.0,
                "capacity": 150.0, "bits_per_param_per_task": 4.0, "seconds": 60.0, "tasks": 10, "short": short,
                "settings": grid.preset_settings(name)}

    monkeypatch.setattr(grid, "run_one", fake_run)
    results = tmp_path / "rows.jsonl"
    assert grid.main(["--presets", "naive", "supsup", "--seeds", "0", "--results", str(results), "--out", str(tmp_path)]) == 0
    assert calls == [("supsup", 0)] and [json.loads(x)["preset"] for x in results.read_text().splitlines()] == ["supsup"]
    assert held.exists() and not (tmp_path / ".claims" / "supsup_seed0.claim").exists()
