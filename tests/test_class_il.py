import json

import pytest

from exssnet.cli import main
from exssnet.run.config import RunConfig
from exssnet.run.hooks import RunHook
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment

FAST = ["--benchmark", "split-digits", "--density", "0.2", "--mask-epochs", "2", "--weight-epochs", "1",
        "--num-tasks", "3", "--quiet", "--threads", "1"]


@pytest.mark.parametrize("mode, rule", [("example", "one-shot"), ("batch", "binary"), ("example", "min-entropy")])
def test_class_il_run_writes_inferred_and_task_given_accuracy(tmp_path, mode, rule, capsys):
    args = ["run", *FAST, "--scenario", "class-il", "--classil-mode", mode, "--classil-rule", rule,
            "--classil-every-task", "--out", str(tmp_path)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    c = results["class_il"]
    assert c["mode"] == mode and c["rule"] == rule and c["evaluated_after_tasks"] == [0, 1, 2]
    assert c["task_given_acc"] == results["acc_matrix"][-1]
    assert len(c["task_inference_acc"]) == len(c["inferred_task_acc"]) == 3
    assert [len(row) for row in c["inferred_task_acc_matrix"]] == [1, 2, 3]
    assert c["task_inference_acc_matrix"][0] == [100.0]  # one learned task: nothing to confuse it with
    for tia, ia, given in zip(c["task_inference_acc"], c["inferred_task_acc"], c["task_given_acc"]):
        assert 0.0 <= ia <= tia <= 100.0 and ia <= given + 1e-9
    assert c["avg_inferred_acc"] == pytest.approx(sum(c["inferred_task_acc"]) / 3)
    assert sum(c["task_inference_acc"]) / 3 > 100.0 / 3  # better than guessing among 3 tasks
    assert "task-inference accuracy" in capsys.readouterr().out


def test_task_il_run_has_no_class_il_entry(tmp_path):
    assert main(["run", *FAST, "--num-tasks", "1", "--out", str(tmp_path)]) == 0
    assert "class_il" not in json.loads((tmp_path / "results.json").read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "class-incremental"], "scenario must be 'task-il' or 'class-il'"),
        (["--scenario", "class-il", "--classil-mode", "pixel"], "task inference mode"),
        (["--scenario", "class-il", "--classil-bn", "shared"], "BatchNorm rule"),
        (["--scenario", "class-il", "--classil-rule", "oracle"], "task inference rule"),
        (["--scenario", "class-il", "--classil-batch-size", "0"], "classil_batch_size must be at least 1"),
    ],
)
def test_bad_class_il_settings_are_clear_errors(tmp_path, args, message, capsys):
    assert main(["run", *FAST, *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


class CrashAfterTask1(RunHook):
    def on_task_end(self, task, method, acc_row, record):
        if task == 1:
            raise RuntimeError("simulated crash")


def test_class_il_rows_survive_resume(tmp_path):
    values = {"benchmark": "split-digits", "density": 0.2, "mask_epochs": 1, "weight_epochs": 1, "num_tasks": 3,
              "threads": 1, "scenario": "class-il", "classil_every_task": True}
    reference = comparable(run_experiment(RunConfig(**values), out=tmp_path / "ref", progress=False))
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(RunConfig(**values), out=out, progress=False, hooks=[CrashAfterTask1()])
    resumed = comparable(run_experiment(RunConfig(**values), out=out, progress=False, resume=True))
    assert resumed["class_il"]["evaluated_after_tasks"] == [0, 1, 2]
    assert resumed["class_il"] == reference["class_il"]
    assert resumed["tasks"] == reference["tasks"]
