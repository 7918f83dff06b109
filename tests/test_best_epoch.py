"""keep_best_epoch: a phase ends with the state of its lowest-validation-loss epoch (WSN's protocol)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import own_keys

from exssnet.cli import main
from exssnet.data.tasks import Split, TaskData
from exssnet.methods import build_method
from exssnet.methods.best_epoch import BestEpoch, validation_loss
from exssnet.methods.loops import PhaseSpec, StepHooks, train_phase
from exssnet.run.config import RunConfig
from exssnet.run.runner import load_benchmark, task_to_device


def toy_task(n: int = 64) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return TaskData(name="toy", classes=["a", "b"], train=Split(x, y), val=Split(x[:16], y[:16]), test=Split(x[:16], y[:16]))


def test_best_epoch_keeps_the_lowest_loss_state_and_restores_it():
    task = toy_task()
    model = torch.nn.Linear(4, 2)
    keeper = BestEpoch(model, model, task.val, 8)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    keeper.update(1)  # loss log(2)
    with torch.no_grad():
        model.weight[1, 0], model.weight[0, 0] = 5.0, -5.0  # the right rule: a lower loss
    keeper.update(2)
    good = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.mul_(-1)  # the wrong rule: worse
    keeper.update(3)
    assert keeper.best_epoch == 2 and keeper.losses[0] == pytest.approx(math.log(2))
    keeper.restore()
    assert torch.equal(model.weight, good)
    assert keeper.to_dict()["best_epoch"] == 2


def test_train_phase_keep_best_ends_at_the_best_recorded_loss():
    task = toy_task()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    steps = []

    def spoil_after_two_epochs(x, y, step):  # from epoch 3 on, each step flips the rule: later epochs are worse
        steps.append(1)
        if len(steps) > 16:
            with torch.no_grad():
                model.weight.copy_(-model.weight.abs() * torch.tensor([[-1.0], [1.0]]))

    spec = PhaseSpec("t", epochs=5, lr=0.5, batch_size=8, generator=torch.Generator().manual_seed(0), keep_best=True)
    history = train_phase(spec, model, model, model.parameters(), task, progress=False,
                          hooks=StepHooks(after_step=spoil_after_two_epochs))
    record = history.to_dict()["keep_best_epoch"]
    assert record["best_epoch"] <= 2 < len(record["val_loss"]) == 5
    model.eval()
    assert validation_loss(model, task.val, 8) == pytest.approx(min(record["val_loss"]))
    assert record["val_loss"][record["best_epoch"] - 1] == min(record["val_loss"])


@pytest.mark.parametrize("method", ["naive", "supsup", "exssnet"])
def test_methods_end_each_task_at_their_best_epoch(method):
    config = RunConfig.from_dict(own_keys(method, dict(benchmark="split-digits", method=method, num_tasks=2, baseline_epochs=4, mask_epochs=3,
                                      weight_epochs=2, batch_size=16, seed=0, keep_best_epoch=True,
                                      baseline_lr=0.05, mask_lr=0.5, weight_lr=0.05)))  # noisy: the last epoch is not always best
    torch.set_num_threads(1)
    benchmark = load_benchmark(config)
    m = build_method(config, benchmark)
    tasks = [task_to_device(t, torch.device("cpu")) for t in benchmark.tasks]
    for t in range(2):
        info = m.learn_task(t, tasks[t], False, None)
        last = info["weight_phase" if method == "exssnet" else ("train_phase" if method == "naive" else "mask_phase")]
        m.eval_mode()
        loss = validation_loss(lambda x, t=t: m.logits(x, t), tasks[t].val, 1024)
        assert loss == pytest.approx(min(last["keep_best_epoch"]["val_loss"]), rel=1e-5)
        if method == "exssnet":  # its weight phase overfits at these rates: the restored epoch is not the last
            assert last["keep_best_epoch"]["best_epoch"] < len(last["keep_best_epoch"]["val_loss"])


def test_joint_keeps_its_best_epoch_on_the_union_of_tasks(tmp_path):
    """joint validates on every task's split at once (labels pick each example's head): the best-epoch loss must
    score it the same way (it raised 'Target out of bounds' on the first task's head before)."""
    args = ["run", "--method", "joint", "--benchmark", "split-digits", "--num-tasks", "3", "--baseline-epochs", "2",
            "--keep-best-epoch", "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    record = json.loads((tmp_path / "results.json").read_text())["tasks"][0]["train_phase"]["keep_best_epoch"]
    assert len(record["val_loss"]) == 2 and record["best_epoch"] in (1, 2)
