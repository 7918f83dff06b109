"""`eval_split: val`: the accuracy matrix on each task's validation examples, the test split never read."""

from __future__ import annotations

import pytest
import torch
from conftest import one_error_line

from exssnet.run.config import RunConfig
from exssnet.run.runner import load_benchmark, run_experiment

TINY = dict(benchmark="split-digits", method="naive", num_tasks=2, baseline_epochs=1, batch_size=64, seed=0)


def test_validation_takes_the_place_of_the_test_split_everywhere():
    plain = load_benchmark(RunConfig.from_dict(TINY))
    on_val = load_benchmark(RunConfig.from_dict({**TINY, "eval_split": "val"}))
    assert on_val.info["eval_split"] == "val"
    for before, after in zip(plain.tasks, on_val.tasks):
        assert torch.equal(after.test.x, before.val.x) and torch.equal(after.test.y, before.val.y)
        assert torch.equal(after.train.x, before.train.x)  # training data unchanged
        assert len(before.test) != len(before.val)


def test_a_run_on_validation_trains_the_same_and_measures_on_validation(capsys):
    on_test = run_experiment(RunConfig.from_dict(TINY), progress=False)
    on_val = run_experiment(RunConfig.from_dict({**TINY, "eval_split": "val"}), progress=False)
    assert on_val["config"]["eval_split"] == "val"
    assert on_val["tasks"][0]["train_phase"]["loss"] == on_test["tasks"][0]["train_phase"]["loss"]
    assert on_val["acc_matrix"] != on_test["acc_matrix"]
    # the last task's validation accuracy at the end of its training is the matrix's diagonal entry
    assert on_val["acc_matrix"][1][1] == pytest.approx(on_val["tasks"][1]["train_phase"]["val_acc"][-1])


@pytest.mark.parametrize("flags, message", [
    (["--eval-split", "train"], "eval_split must be 'test' or 'val', got 'train'"),
    (["--eval-split", "val", "--val-fraction", "0"], "eval_split 'val' needs validation examples"),
])
def test_bad_eval_split_is_one_error_line(flags, message, capsys):
    assert message in one_error_line(["run", "--benchmark", "split-digits", "--method", "naive", *flags], capsys)
