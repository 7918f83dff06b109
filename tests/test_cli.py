import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exssnet.cli import main

FAST = ["--benchmark", "split-digits", "--density", "0.2", "--mask-epochs", "2", "--weight-epochs", "2", "--quiet"]
REQUIRED_KEYS = {"method", "benchmark", "density", "seed", "acc_matrix", "avg_acc", "forgetting",
                 "sparse_overlap", "config", "task_time_s"}


@pytest.mark.parametrize("method", ["supsup", "ssnet", "exssnet"])
def test_run_writes_results(tmp_path, method, capsys):
    assert main(["run", *FAST, "--method", method, "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert REQUIRED_KEYS <= set(results)
    assert results["method"] == method and results["benchmark"] == "split-digits"
    acc = results["acc_matrix"]
    assert len(acc) == 5 and all(len(row) == 5 for row in acc)
    assert all(acc[i][j] is None for i in range(5) for j in range(i + 1, 5))
    assert results["avg_acc"] > 85.0
    assert len(results["sparse_overlap"]) == 5 and results["sparse_overlap"][0] == 0.0
    assert len(results["task_time_s"]) == 5 and all(t > 0 for t in results["task_time_s"])
    assert results["config"]["density"] == 0.2
    if method != "ssnet":
        assert results["forgetting"] == 0.0
    assert "average accuracy" in capsys.readouterr().out


def test_yaml_config_and_flag_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("benchmark: split-digits\nmethod: supsup\ndensity: 0.3\nmask-epochs: 1\nnum_tasks: 2\n")
    assert main(["run", "--config", str(config), "--density", "0.25", "--quiet", "--out", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["method"] == "supsup" and results["density"] == 0.25 and len(results["acc_matrix"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--density", "0"], "density must be in (0, 1]"),
        (["--density", "1.5"], "density must be in (0, 1]"),
        (["--method", "icarl"], "unknown method 'icarl'"),
        (["--benchmark", "split-imagenet"], "unknown benchmark 'split-imagenet'"),
        (["--model", "vgg99"], "unknown model 'vgg99'"),
        (["--num-tasks", "6"], "need 12 classes"),
        (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "device"),
        (["--mask-lr", "-1"], "mask_lr must be a finite number > 0"),
    ],
)
def test_bad_input_gives_one_clear_error(args, message, capsys):
    code = main(["run", *FAST, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("exssnet: error:")
    assert "Traceback" not in err


def test_bad_yaml_is_refused(tmp_path, capsys):
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("desnity: 0.1\n")
    assert main(["run", "--config", str(bad_key)]) == 2
    assert "unknown config key(s) desnity" in capsys.readouterr().err
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text("batch_size: many\n")
    assert main(["run", "--config", str(bad_type)]) == 2
    assert "'batch_size' must be int" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"keep": true}')
    assert main(["run", *FAST, "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert json.loads((tmp_path / "results.json").read_text()) == {"keep": True}


def test_nan_loss_is_a_clear_error(tmp_path, capsys):
    code = main(["run", *FAST, "--method", "ssnet", "--weight-lr", "1e30", "--out", str(tmp_path)])
    assert code == 2
    assert "loss became" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_module_entry_point_exits_non_zero_on_bad_input():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "exssnet", "run", "--density", "2"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert "density must be in (0, 1]" in proc.stderr
