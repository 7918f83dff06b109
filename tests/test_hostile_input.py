"""Hostile input through the CLI: one clear error line, exit code 2, and nothing saved is lost."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_error_line
from test_data import write_idx

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig
from exssnet.run.hooks import RunHook
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment

FAST = ["--benchmark", "split-digits", "--density", "0.2", "--mask-epochs", "1", "--weight-epochs", "1",
        "--num-tasks", "2", "--quiet", "--threads", "1"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert main(["run", *FAST, "--out", str(out)]) == 0
    return out


def test_evaluate_damaged_checkpoint(finished_run, tmp_path, capsys):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run / "checkpoints" / "task-001", ckpt)
    tensors = ckpt / "model.safetensors"
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    assert "corrupted or truncated" in one_error_line(["evaluate", str(ckpt)], capsys)
    tensors.write_bytes(b"\xff" * 4096)
    assert "corrupted or truncated" in one_error_line(["evaluate", str(ckpt)], capsys)
    assert "does not exist" in one_error_line(["evaluate", str(tmp_path / "nowhere")], capsys)


def test_errors_keep_earlier_results(finished_run, capsys):
    before = snapshot(finished_run)
    assert "already exists" in one_error_line(["run", *FAST, "--out", str(finished_run)], capsys)
    assert "already complete" in one_error_line(["run", "--out", str(finished_run), "--resume"], capsys)
    assert "unfinished" not in one_error_line(["run", *FAST, "--density", "0.5", "--out", str(finished_run)], capsys)
    assert snapshot(finished_run) == before


class PoisonTask1(RunHook):
    """Makes the loss NaN in the first epoch of task 1 (after task 0 was checkpointed)."""

    def on_task_end(self, task, method, acc_row, record):
        self.method = method

    def on_epoch(self, task, info):
        if task == 1:
            with torch.no_grad():
                self.method.net.weight_parameters()[0].fill_(float("nan"))


def test_nan_loss_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(benchmark="split-digits", density=0.2, mask_epochs=2, weight_epochs=1, num_tasks=2)
    with pytest.raises(ExssnetError, match="loss became nan in task1 mask phase, epoch 2"):
        run_experiment(config, out=out, progress=False, hooks=[PoisonTask1()])
    assert not (out / "results.json").exists()
    assert json.loads((out / "run_state.json").read_text())["checkpoint"] == "task-000"
    resumed = run_experiment(config, out=out, progress=False, resume=True)
    assert comparable(resumed) == comparable(run_experiment(config, progress=False))


@pytest.mark.parametrize("content, message", [
    ("desnity: 0.1\n", "unknown config key(s) desnity"),
    ("batch_size: many\n", "'batch_size' must be int"),
    ("density: [0.1]\n", "'density' must be float"),
    ("- a\n- b\n", "must hold a mapping"),
    ("density: 0.1: x\n", "not valid YAML"),
])
def test_bad_yaml(tmp_path, content, message, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    assert message in one_error_line(["run", "--config", str(config), "--quiet"], capsys)


def test_wrong_flag_types_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--density", "dense"])
    assert exc.value.code == 2 and "invalid float value" in capsys.readouterr().err


def test_missing_data_directory(tmp_path, capsys):
    err = one_error_line(["run", "--benchmark", "split-mnist", "--data-dir", str(tmp_path / "nope"), "--quiet"], capsys)
    assert str(tmp_path / "nope") in err


def test_more_tasks_than_classes_allow(capsys):
    assert "need 12 classes, but the dataset has 10" in one_error_line(["run", *FAST, "--num-tasks", "6"], capsys)
    assert "need 15 classes" in one_error_line(["run", *FAST, "--num-tasks", "3", "--classes-per-task", "5"], capsys)


def test_empty_task_is_refused_before_training(tmp_path, capsys):
    rng = np.random.default_rng(0)
    train_labels = np.arange(80) % 8  # classes 8 and 9 have no training examples
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (80, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    out = tmp_path / "out"
    err = one_error_line(["run", "--benchmark", "split-mnist", "--data-dir", str(tmp_path), "--class-order",
                          "sequential", "--mask-epochs", "1", "--quiet", "--out", str(out)], capsys)
    assert "task 4 (task4, classes ['8', '9']) has no train examples" in err
    assert not (out / "run_state.json").exists()  # refused before any training


def test_evaluate_checkpoint_without_run_metadata(finished_run, tmp_path, capsys):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run / "checkpoints" / "task-001", ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "metadata": {}}))
    assert "pass --benchmark" in one_error_line(["evaluate", str(ckpt)], capsys)
    assert main(["evaluate", str(ckpt), "--benchmark", "split-digits", "--seed", "0"]) == 0
    accs = [float(line.rsplit(":", 1)[1]) for line in capsys.readouterr().out.splitlines() if "task" in line[:8]]
    assert accs == [round(a, 2) for a in json.loads((finished_run / "results.json").read_text())["acc_matrix"][-1]]
