"""The shared training loop: batches BatchNorm cannot train on."""

from __future__ import annotations

import pytest
import torch

from exssnet.cli import main
from exssnet.data.tasks import Split, TaskData
from exssnet.methods.loops import PhaseSpec, StepHooks, train_phase


def _task(rows: int) -> TaskData:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(rows, 4, generator=g), torch.randint(0, 2, (rows,), generator=g))
    return TaskData("t", ["a", "b"], split, Split(split.x[:0], split.y[:0]), split)


def _train(net: torch.nn.Module, rows: int, batch_size: int) -> list[int]:
    seen: list[int] = []
    spec = PhaseSpec("p", 2, 0.01, batch_size, torch.Generator().manual_seed(1))
    hooks = StepHooks(after_step=lambda x, y, step: seen.append(len(y)))
    train_phase(spec, net, net, net.parameters(), _task(rows), progress=False, hooks=hooks)
    return seen


def test_a_last_one_row_batch_is_dropped_only_where_batchnorm_trains():
    bn = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    assert _train(bn, 7, 3) == [3, 3] * 2  # 7 = 3 + 3 + 1: the 1-row batch is dropped each epoch
    assert _train(bn, 8, 3) == [3, 3, 2] * 2  # a 2-row last batch trains
    plain = torch.nn.Sequential(torch.nn.Linear(4, 2))
    assert _train(plain, 7, 3) == [3, 3, 1] * 2  # no BatchNorm: every row trains


@pytest.mark.parametrize("method", ["exssnet", "ewc"])
def test_a_batchnorm_run_whose_last_batch_has_one_row_finishes(method, capsys):
    """split-digits' first task has 268 training rows: batches of 3 leave 1 (a torch ValueError before)."""
    args = ["run", "--method", method, "--benchmark", "split-digits", "--model", "lenet-bn", "--batch-size", "3",
            "--num-tasks", "1", "--mask-epochs", "1", "--weight-epochs", "1", "--threads", "1", "--quiet"]
    assert main(args) == 0
    assert "Traceback" not in capsys.readouterr().err
