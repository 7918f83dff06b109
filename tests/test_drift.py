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
