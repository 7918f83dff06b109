"""Checkpoint after every task, resume after a crash / SIGKILL / Ctrl-C, and bit-identical reruns."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import Crash
from test_data import make_idx_dir

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig
from exssnet.run.files import RUN_STATE_FILE
from exssnet.run.hooks import RunHook
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment

# long enough per task (about a second) to kill a subprocess between two checkpoints
SLOW = dict(benchmark="split-digits", method="exssnet", density=0.2, mask_epochs=10, weight_epochs=10,
            batch_size=32, num_tasks=3, seed=3, threads=1)
SLOW_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in SLOW.items()]


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    run_experiment(RunConfig(**SLOW), out=out, progress=False)
    return results_of(out)


def test_identical_reruns_differ_only_in_wall_times(tmp_path):
    config = RunConfig(**{**SLOW, "mask_epochs": 2, "weight_epochs": 2})
    first = run_experiment(config, out=tmp_path / "a", progress=False)
    second = run_experiment(config, out=tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "results.json").read_bytes() != (tmp_path / "b" / "results.json").read_bytes()
    assert comparable(first) == comparable(second)
    assert first["tasks"][0]["mask_phase"]["loss"] == second["tasks"][0]["mask_phase"]["loss"]
    assert "total_time_s" not in comparable(first) and "seconds" not in comparable(first)["tasks"][0]["mask_phase"]
    other_seed = run_experiment(RunConfig(**{**SLOW, "mask_epochs": 2, "weight_epochs": 2, "seed": 4}), progress=False)
    assert comparable(other_seed)["tasks"] != comparable(first)["tasks"]


def test_resume_after_crash_in_process_is_identical(tmp_path, reference):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(RunConfig(**SLOW), out=out, progress=False, hooks=[Crash(at=1)])
    state = json.loads((out / RUN_STATE_FILE).read_text())
    assert len(state["acc_rows"]) == 1 and state["checkpoint"] == "task-000"  # the crash came before task 1's checkpoint
    with pytest.raises(ExssnetError, match="holds an unfinished run"):
        run_experiment(RunConfig(**SLOW), out=out, progress=False)
    resumed = run_experiment(RunConfig(**SLOW), out=out, progress=False, resume=True)
    assert comparable(resumed) == comparable(reference)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["task-002"]
    # the per-epoch CSV keeps task 0's rows and holds the re-learned tasks once
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    logged = [(int(r["task"]), r["phase"], float(r["loss"])) for r in rows]
    expected = [(t, phase, loss) for t, record in enumerate(reference["tasks"])
                for phase in ("mask", "weights") for loss in record[f"{'mask' if phase == 'mask' else 'weight'}_phase"]["loss"]]
    assert logged == expected
    with pytest.raises(ExssnetError, match="already complete"):
        run_experiment(RunConfig(**SLOW), out=out, progress=False, resume=True)


def _start(out: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    # SIGINT back to its default in the child: a test run started in the background (`cmd &` in a script) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so Ctrl-C would be lost
    return subprocess.Popen([sys.executable, "-m", "exssnet", "run", *flags, "--quiet", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, name: str) -> None:
    """Poll until run_state.json names checkpoint `name` (the process must still be running)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if json.loads((out / RUN_STATE_FILE).read_text())["checkpoint"] == name:
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_ctrl_c_then_sigkill_mid_task_then_resume_is_identical(tmp_path, reference):
    out = tmp_path / "run"
    # 1. Ctrl-C during task 1: exit 130 and a hint how to resume
    proc = _start(out, *SLOW_FLAGS)
    _wait_for_checkpoint(proc, out, "task-000")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"exssnet: interrupted; 1 finished task(s) are saved in {out}; continue with: exssnet run --out {out} --resume")
    assert "Traceback" not in err
    # 2. resume (the saved config is used), then SIGKILL during task 2: no handler runs
    proc = _start(out, "--resume")
    _wait_for_checkpoint(proc, out, "task-001")
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()
    # 3. resume again to the end: the same results as the uninterrupted run
    assert main(["run", *SLOW_FLAGS, "--out", str(out), "--resume", "--quiet"]) == 0
    assert comparable(results_of(out)) == comparable(reference)
    assert results_of(out)["acc_matrix"] == reference["acc_matrix"]


@pytest.fixture
def crashed_run(tmp_path) -> Path:
    out = tmp_path / "run"
    config = RunConfig(**{**SLOW, "mask_epochs": 1, "weight_epochs": 1})
    with pytest.raises(RuntimeError):
        run_experiment(config, out=out, progress=False, hooks=[Crash(at=1)])
    return out


def _error(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("exssnet: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    return err


@pytest.mark.parametrize("flags, message", [
    (["--density", "0.3"], "different config (density: 0.2 -> 0.3)"),
    (["--model", "vgg99"], "model: 'lenet' -> 'vgg99'"),
    (["--mask-epochs", "5"], "mask_epochs: 1 -> 5"),
])
def test_resume_with_another_config_is_refused(crashed_run, flags, message, capsys):
    state = (crashed_run / RUN_STATE_FILE).read_bytes()
    assert message in _error(["run", "--out", str(crashed_run), "--resume", "--quiet", *flags], capsys)
    assert (crashed_run / RUN_STATE_FILE).read_bytes() == state


class Counter(RunHook):
    """A caller's hook with state: the tasks it saw (a list and a tensor)."""

    state_key = "counter"

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.loaded: dict | None = None

    def state_dict(self) -> dict:
        return {"seen": list(self.seen), "seen_tensor": torch.tensor(self.seen, dtype=torch.float32)}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = state
        self.seen = list(state["seen"])

    def on_task_end(self, task, method, acc_row, record):
        self.seen.append(task)


def test_every_hook_gets_its_state_back_on_resume(tmp_path):
    """The runner saves each hook's state with the checkpoint and hands it back (JSON and tensors alike)."""
    config = RunConfig(**{**SLOW, "mask_epochs": 1, "weight_epochs": 1, "scenario": "class-il",
                          "classil_every_task": True})
    first = Counter()
    with pytest.raises(RuntimeError):
        run_experiment(config, out=tmp_path, progress=False, hooks=[first, Crash(at=1)])
    assert first.seen == [0, 1]  # it saw task 1, whose checkpoint the crash prevented
    state = json.loads((tmp_path / RUN_STATE_FILE).read_text())
    assert state["hooks"]["counter"] == {"seen": [0]} and set(state["hooks"]) == {"counter", "class_il", "metrics_csv", "drift"}
    assert state["hooks"]["metrics_csv"] == {"rows": 2} and state["hooks"]["class_il"]["after"] == [0]
    again = Counter()
    results = run_experiment(config, out=tmp_path, progress=False, resume=True, hooks=[again])
    assert again.loaded["seen"] == [0] and torch.equal(again.loaded["seen_tensor"], torch.tensor([0.0]))
    assert again.seen == [0, 1, 2]
    assert results["class_il"]["evaluated_after_tasks"] == [0, 1, 2]  # task 0's rows came back from the saved state
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "0", "1", "1", "2", "2"]  # task 0's rows kept once


def test_resume_with_another_world_size_is_refused(crashed_run, capsys):
    """A run whose first tasks were learned by 2 torchrun processes cannot be continued by 1 (their masks differ)."""
    path = crashed_run / RUN_STATE_FILE
    state = json.loads(path.read_text())
    assert state["world_size"] == 1  # recorded by the run
    path.write_text(json.dumps({**state, "world_size": 2}))
    before = path.read_bytes()
    err = _error(["run", "--out", str(crashed_run), "--resume", "--quiet"], capsys)
    assert "cannot resume" in err and "with 1 process(es)" in err and "learned with 2" in err
    assert path.read_bytes() == before and not (crashed_run / "results.json").exists()
    del state["world_size"]  # a state written before the world size was recorded: one process
    path.write_text(json.dumps(state))
    assert main(["run", "--out", str(crashed_run), "--resume", "--quiet"]) == 0
    assert results_of(crashed_run)["environment"]["world_size"] == 1 and "world_size" not in results_of(crashed_run)["config"]


def test_resume_with_damaged_state_is_refused(crashed_run, tmp_path, capsys):
    assert "nothing to resume" in _error(["run", "--out", str(tmp_path / "empty"), "--resume"], capsys)
    checkpoint = crashed_run / "checkpoints" / "task-000" / "model.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert "corrupted or truncated" in _error(["run", "--out", str(crashed_run), "--resume", "--quiet"], capsys)
    (crashed_run / RUN_STATE_FILE).write_text("{\"version\": 1, \"acc_rows\": [[1]]}")
    assert "not a valid exssnet run state" in _error(["run", "--out", str(crashed_run), "--resume"], capsys)
    (crashed_run / RUN_STATE_FILE).write_text("garbage")
    assert "is corrupted" in _error(["run", "--out", str(crashed_run), "--resume"], capsys)


def test_checkpoint_of_another_density_is_refused(crashed_run):
    from exssnet.checkpoint import load_compatible
    from exssnet.run.runner import load_benchmark

    config = RunConfig(**{**SLOW, "density": 0.5})
    with pytest.raises(ExssnetError, match="made with density=0.2, this run needs 0.5"):
        load_compatible(crashed_run / "checkpoints" / "task-000", load_benchmark(config), model=config.model,
                        density=config.density, keep_scores=config.keep_scores)


def test_evaluate_reproduces_the_run(reference, tmp_path, capsys):
    out = tmp_path / "run"
    run_experiment(RunConfig(**{**SLOW, "mask_epochs": 2, "weight_epochs": 2}), out=out, progress=False)
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--out", str(report)]) == 0
    evaluated = json.loads(report.read_text())
    assert evaluated["test_acc"] == results_of(out)["acc_matrix"][-1]
    assert "average accuracy" in capsys.readouterr().out
    assert "the checkpoint learned" in _error(["evaluate", str(out), "--seed", "1"], capsys)
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    assert "inputs of shape [1, 28, 28]" in _error(["evaluate", str(out), "--benchmark", "split-fashion-mnist",
                                                    "--data-dir", str(make_idx_dir(fashion))], capsys)


def test_resume_after_overwrite_of_a_finished_run(tmp_path):
    out = tmp_path / "run"
    quick = {**SLOW, "mask_epochs": 1, "weight_epochs": 1}
    run_experiment(RunConfig(**quick), out=out, progress=False)
    other = RunConfig(**{**quick, "density": 0.3})
    with pytest.raises(RuntimeError):
        run_experiment(other, out=out, progress=False, overwrite=True, hooks=[Crash(at=1)])
    assert results_of(out)["density"] == 0.2  # the old results stay until the new run ends
    resumed = run_experiment(other, out=out, progress=False, resume=True)
    assert results_of(out)["density"] == 0.3
    assert comparable(resumed) == comparable(run_experiment(other, progress=False))


@pytest.mark.parametrize("method", ["ssnet"])
def test_resume_without_kept_scores_is_identical(tmp_path, method):
    config = RunConfig(**{**SLOW, "method": method, "mask_epochs": 1, "weight_epochs": 1, "keep_scores": False})
    with pytest.raises(RuntimeError):
        run_experiment(config, out=tmp_path, progress=False, hooks=[Crash(at=1)])
    saved = json.loads((tmp_path / "checkpoints" / "task-000" / "config.json").read_text())
    assert saved["has_scores"] is False
    resumed = run_experiment(config, out=tmp_path, progress=False, resume=True)
    assert comparable(resumed) == comparable(run_experiment(config, progress=False))
