"""results.json `drift`: SupSup / ExSSNeT leave earlier tasks' outputs exactly unchanged, SSNeT does not."""

import json
from dataclasses import replace

import pytest
import torch

from exssnet.run.drift import changed_share, max_abs_change
from exssnet.run.hooks import RunHook
from exssnet.run.runner import run_experiment


def test_drift_helpers():
    assert changed_share(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 1])) == 0.5
    assert max_abs_change(torch.zeros(2, 3), torch.tensor([[0.0, -2.0, 1.0], [0.5, 0.0, 0.0]])) == 2.0


@pytest.mark.parametrize("method", ["supsup", "exssnet"])
def test_no_drift_without_shared_weight_training(digits_config, method):
    results = run_experiment(replace(digits_config, method=method), progress=False)
    drift = results["drift"]
    assert len(drift["changed_predictions"]) == len(results["task_names"]) == 5
    assert drift["changed_predictions"] == [0.0] * 5
    assert drift["max_logit_change"] == [0.0] * 5


def test_ssnet_drifts(digits_config):
    results = run_experiment(replace(digits_config, method="ssnet"), progress=False)
    drift = results["drift"]
    assert max(drift["max_logit_change"][:-1]) > 0.0  # weights inside earlier masks were retrained
    assert drift["max_logit_change"][-1] == 0.0 and drift["changed_predictions"][-1] == 0.0  # nothing after the last task
    assert 0.0 <= drift["avg_changed_predictions"] <= 1.0


class Crash(RunHook):
    def on_task_end(self, task, method, acc_row, record):
        if task == 2:
            raise RuntimeError("simulated crash")


def test_drift_records_survive_a_resume(digits_config, tmp_path):
    """A run that crashed in task 2 and was resumed reports the drift an uninterrupted run reports."""
    config = replace(digits_config, method="ssnet", mask_epochs=1, weight_epochs=1)
    reference = run_experiment(config, out=tmp_path / "ref", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(config, out=tmp_path / "run", progress=False, hooks=[Crash()])
    from safetensors.torch import load_file

    state = json.loads((tmp_path / "run" / "run_state.json").read_text())
    saved = load_file(str(tmp_path / "run" / "checkpoints" / state["checkpoint"] / "run_hooks.safetensors"))
    assert sorted(saved) == ["drift/logits.0", "drift/logits.1", "drift/pred.0", "drift/pred.1"]  # saved with the checkpoint
    resumed = run_experiment(config, out=tmp_path / "run", progress=False, resume=True)
    assert resumed["drift"] == reference["drift"]
    assert None not in resumed["drift"]["changed_predictions"]


def test_drift_reuses_the_runs_own_evaluation(digits_config, monkeypatch):
    """One process: drift takes its outputs from the evaluation that fills the accuracy matrix, no second pass."""
    import exssnet.run.drift as drift_module

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the drift hook evaluated the test set again")

    config = replace(digits_config, method="ssnet", mask_epochs=1, weight_epochs=1)
    reference = run_experiment(config, progress=False)["drift"]  # hook fed by the run's evaluation
    monkeypatch.setattr(drift_module, "task_outputs", no_second_pass)
    assert run_experiment(config, progress=False)["drift"] == reference
    monkeypatch.undo()
    monkeypatch.setattr(drift_module.DriftHook, "on_test_outputs", lambda self, task, seen, logits: None)
    own_pass = run_experiment(config, progress=False)["drift"]  # what a sharded (data parallel) run measures
    assert own_pass["changed_predictions"] == reference["changed_predictions"]
    assert own_pass["max_logit_change"] == pytest.approx(reference["max_logit_change"], rel=1e-5, abs=1e-6)
    assert max(reference["max_logit_change"][:-1]) > 0.0


class OutputsSeen(RunHook):
    def __init__(self):
        self.calls = []

    def on_test_outputs(self, task, seen, logits):
        self.calls.append((task, seen, tuple(logits.shape), logits.dtype, logits.device.type))

    def on_task_end(self, task, method, acc_row, record):
        assert [seen for t, seen, *_ in self.calls if t == task] == list(range(task + 1))


def test_hooks_get_every_seen_tasks_test_logits(digits_config):
    hook = OutputsSeen()
    results = run_experiment(replace(digits_config, method="supsup", mask_epochs=1), progress=False, hooks=[hook])
    n = len(results["task_names"])
    assert len(hook.calls) == n * (n + 1) // 2
    assert {(dtype, device) for *_, dtype, device in hook.calls} == {(torch.float32, "cpu")}
    assert all(shape[1] == 2 for *_, shape, _, _ in hook.calls)  # digits: 2 classes per task
