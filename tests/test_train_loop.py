"""The shared training loop: batches BatchNorm cannot train on, schedules, optimisers and their parameter groups."""

from __future__ import annotations

import math

import pytest
import torch

from exssnet.cli import main
from exssnet.data.tasks import Split, TaskData
from exssnet.methods.loops import PhaseSpec, StepHooks, merged_groups, phase_optimizer, train_phase


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


def _descent(schedule: str, optimizer: str, steps: int = 6) -> float:
    """How far a parameter under the constant gradient 1 moves in `steps` steps of lr 0.1."""
    weight = torch.nn.Parameter(torch.zeros(3))
    module = torch.nn.Module()
    module.weight = weight
    spec = PhaseSpec("p", 1, 0.1, 2, torch.Generator().manual_seed(1), schedule=schedule, optimizer=optimizer)
    hooks = StepHooks(batch_loss=lambda x, y: weight.sum(), validate=lambda: 0.0)
    train_phase(spec, module, lambda x: x, [weight], _task(2 * steps), progress=False, hooks=hooks)
    return -float(weight.detach()[0])


def test_a_constant_schedule_keeps_the_rate_and_sgd_steps_by_it():
    """lr_schedule 'constant': every step moves by the full rate (SGD exactly, Adam's unit steps nearly);
    the default cosine decays it; baseline_optimizer 'sgd' is plain SGD (no momentum)."""
    assert _descent("constant", "sgd") == pytest.approx(0.6, abs=1e-6)
    assert _descent("constant", "adam") == pytest.approx(0.6, abs=1e-5)
    assert _descent("cosine", "sgd") == pytest.approx(0.1 * sum(0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)),
                                                        abs=1e-6)


def test_an_unknown_schedule_or_optimizer_is_one_clear_error(capsys):
    assert main(["run", "--lr-schedule", "linear", "--quiet"]) == 2
    assert "lr_schedule must be one of cosine, constant" in capsys.readouterr().err
    assert main(["run", "--method", "ewc", "--baseline-optimizer", "rmsprop", "--quiet"]) == 2
    assert "baseline_optimizer must be 'adam' or 'sgd'" in capsys.readouterr().err


def test_parameter_groups_with_equal_settings_are_joined_and_train_the_same():
    def nets():
        torch.manual_seed(0)
        return [torch.nn.Linear(4, 3) for _ in range(3)]

    def groups(layers, lr_of_last):
        return [{"params": layers[0].parameters()}, {"params": list(layers[1].parameters()), "lr": 0.01},
                {"params": layers[2].weight, "lr": lr_of_last}]

    joined = merged_groups(groups(nets(), 0.02), 0.01)
    assert [len(g["params"]) for g in joined] == [4, 1] and [g["lr"] for g in joined] == [0.01, 0.02]
    assert merged_groups([torch.nn.Parameter(torch.zeros(1))], 0.1)[0].shape == (1,)  # bare parameters: as given
    results = []
    for join in (True, False):
        layers = nets()
        params = groups(layers, 0.01)
        optimizer = phase_optimizer(params, 0.01) if join else torch.optim.Adam(params, lr=0.01, fused=True)
        assert len(optimizer.param_groups) == (1 if join else 3)
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            optimizer.zero_grad()
            sum(layer(x).square().sum() for layer in layers).backward()
            optimizer.step()
        results.append([p.detach().clone() for layer in layers for p in layer.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))
