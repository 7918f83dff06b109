"""The train-mode/active-task context manager and the named seed streams."""

import pytest
import torch
from torch import nn

from exssnet import to_supermask
from exssnet.modes import evaluating
from exssnet.seeds import BufferStream, TaskStream, buffer_seed, task_generator, task_seed


def finished_net(tasks: int = 2):
    net = to_supermask(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)), density=0.5)
    for _ in range(tasks):
        net.add_task(num_classes=3)
        net.finish_task()
    return net


@pytest.mark.parametrize("training", [True, False])
def test_evaluating_restores_mode_and_active_task_even_on_error(training):
    net = finished_net()
    net.set_task(0)
    net.train(training)
    x = torch.randn(6, 4)
    before = net.logits(x, 0).detach() if not training else None
    with pytest.raises(RuntimeError), evaluating(net):
        assert not net.training and all(not m.training for m in net.modules())
        net.set_task(1)
        raise RuntimeError("boom")
    assert net.training == training and all(m.training == training for m in net.modules())
    assert net.active_task == 0
    if before is not None:  # the task-0 subnetwork (mask and BatchNorm) is back in the layers
        assert torch.equal(net(x)[:, :3], before)


def test_evaluating_works_for_plain_modules():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with evaluating(model):
        assert not model[1].training
    assert model[1].training


def test_task_generators_replay_and_streams_differ():
    draw = lambda seed, task, stream: torch.randperm(50, generator=task_generator(seed, task, stream))  # noqa: E731
    assert torch.equal(draw(3, 1, TaskStream.MASK_PHASE), draw(3, 1, TaskStream.MASK_PHASE))
    streams = [draw(3, 1, s) for s in TaskStream] + [draw(3, 2, TaskStream.MASK_PHASE), draw(4, 1, TaskStream.MASK_PHASE)]
    assert len({tuple(s.tolist()) for s in streams}) == len(streams)
    assert len({task_seed(0, t) for t in range(5)} | {task_seed(1, t) for t in range(5)}) == 10
    assert len({buffer_seed(0, s) for s in BufferStream}) == len(BufferStream)
