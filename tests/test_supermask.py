import re

import pytest
import torch
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.layers import MaskedConv1d, MaskedConv2d, MaskedLinear, MultitaskBatchNorm
from exssnet.models import build_model


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3),
    )


def test_injection_replaces_linear_conv_and_batchnorm():
    net = to_supermask(small_cnn(), density=0.2)
    kinds = [type(m) for m in net.model]
    assert kinds[0] is MaskedConv2d and kinds[1] is MultitaskBatchNorm
    assert kinds[4] is MaskedLinear and kinds[7] is MaskedLinear
    assert all(layer.bias is not None and not layer.bias.requires_grad for layer in net.masked_layers())  # kept, frozen


def test_conv1d_is_injected():
    net = to_supermask(nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)), density=0.5)
    assert isinstance(net.model[0], MaskedConv1d)
    assert net.model[1].dims == 1


def test_tasks_are_added_one_at_a_time_and_switchable():
    net = to_supermask(small_cnn(), density=0.2)
    x = torch.randn(5, 1, 6, 6)
    outputs = []
    for _ in range(3):
        t = net.add_task(num_classes=3)
        net.finish_task()
        net.eval()
        outputs.append(net.logits(x, t))
    assert net.num_tasks == 3
    for t in range(3):
        net.set_task(t)
        assert torch.equal(net(x), outputs[t])
    assert not torch.equal(outputs[0], outputs[1])


def test_finished_task_keeps_packed_mask_and_optionally_drops_scores():
    net = to_supermask(small_cnn(), density=0.2, keep_scores=False)
    net.add_task(3)
    net.finish_task()
    layer = net.masked_layers()[0]
    assert "0" not in layer.scores
    assert layer.packed_mask(0).dtype == torch.uint8
    assert layer.packed_mask(0).numel() == -(-layer.weight.numel() // 8)
    assert net.task_scores(0) is None


@pytest.mark.parametrize("bad", [-1, 1, 5, 1.0, "0", True])
def test_out_of_range_task_id_is_a_clear_error(bad):
    net = to_supermask(small_cnn(), density=0.2)
    net.add_task(3)
    net.finish_task()
    with pytest.raises(ExssnetError, match="out of range"):
        net.predict(torch.randn(2, 1, 6, 6), bad)


@pytest.mark.parametrize("density", [0, -0.1, 1.5, float("nan"), "x"])
def test_density_outside_unit_interval_is_refused(density):
    with pytest.raises(ExssnetError, match="density"):
        to_supermask(small_cnn(), density=density)


def test_phase_order_is_enforced():
    net = to_supermask(small_cnn(), density=0.2)
    with pytest.raises(ExssnetError):
        net.finish_task()
    net.add_task(3)
    with pytest.raises(ExssnetError, match="not finished"):
        net.add_task(3)
    net.start_weight_phase(exclusive=True)
    with pytest.raises(ExssnetError, match="phase"):
        net.start_weight_phase(exclusive=True)
    net.finish_task()


def test_lenet_shape():
    net = to_supermask(build_model("lenet", (1, 28, 28), 2), density=0.1)
    sizes = [tuple(layer.weight.shape) for layer in net.masked_layers()]
    assert sizes == [(300, 784), (100, 300), (2, 100)]
    assert net.norm_layers() == []  # the paper's (SupSup's) LeNet has no BatchNorm
    net.add_task(2)
    assert net(torch.randn(4, 1, 28, 28)).shape == (4, 2)
    bn = to_supermask(build_model("lenet-bn", (1, 28, 28), 2), density=0.1)
    assert len(bn.norm_layers()) == 2


def test_unknown_model_name():
    with pytest.raises(ExssnetError, match="unknown model"):
        build_model("nope", (1, 28, 28), 2)


def test_trainable_parameters_follow_the_phase():
    net = to_supermask(small_cnn(), density=0.2)
    assert net.trainable_parameters() == []
    net.add_task(3)
    assert net.trainable_parameters() == net.score_parameters(0)
    net.start_weight_phase(exclusive=True)
    compact = net.trainable_parameters()
    assert compact == net.compact_parameters() and all(p.dim() == 1 and p.requires_grad for p in compact)
    assert sum(p.numel() for p in compact) == sum(int(m.sum()) for m in net.task_masks(0).values())
    assert not any(w.requires_grad for w in net.weight_parameters())
    with torch.no_grad():
        for p in compact:
            p.fill_(0.5)
    net.set_task(0)  # selecting the task again keeps the compact parameters in use
    net.eval()
    for layer, mask in zip(net.masked_layers(), net.task_masks(0).values()):
        assert torch.equal(layer.effective_weight()[mask], torch.full((int(mask.sum()),), 0.5))
    net.finish_task()
    assert net.trainable_parameters() == [] and all(layer.compact_weight is None for layer in net.masked_layers())
    for layer, mask in zip(net.masked_layers(), net.task_masks(0).values()):
        assert (layer.weight[mask] == 0.5).all()  # written back into the shared weights


def test_phase_machine_hands_out_what_trains_and_sets_nothing_else():
    from exssnet.supermask import Phase

    net = to_supermask(small_cnn(), density=0.2)
    trainable = lambda: [p for p in net.parameters() if p.requires_grad]  # noqa: E731
    assert net.phase is Phase.DONE and net.trainable_parameters() == [] and trainable() == []
    net.add_task(num_classes=3)
    net.finish_task()
    t = net.add_task(num_classes=3)
    assert net.phase is Phase.MASK
    assert {id(p) for p in trainable()} == {id(p) for p in net.trainable_parameters()} == {id(p) for p in net.score_parameters(t)}
    net.start_weight_phase(exclusive=True)
    assert net.phase is Phase.WEIGHTS
    assert {id(p) for p in trainable()} == {id(p) for p in net.trainable_parameters()} == {id(p) for p in net.compact_parameters()}
    assert not any(w.requires_grad for w in net.weight_parameters())
    net.finish_task()
    assert net.phase is Phase.DONE and net.trainable_parameters() == [] and trainable() == []


@pytest.mark.parametrize(
    "steps, message",
    [
        (["weights"], "no unfinished task to move to phase 'weights'"),
        (["finish"], "no unfinished task to move to phase 'done'"),
        (["add", "add"], "task 0 is not finished (phase 'mask')"),
        (["add", "weights", "weights"], "task 0 cannot go from phase 'weights' to 'weights'"),
        (["add", "weights", "add"], "task 0 is not finished (phase 'weights')"),
        (["add", "finish", "finish"], "no unfinished task to move to phase 'done'"),
    ],
)
def test_illegal_phase_transitions_are_refused_and_change_nothing(steps, message):
    net = to_supermask(small_cnn(), density=0.2)
    do = {"add": lambda: net.add_task(3), "weights": lambda: net.start_weight_phase(exclusive=False), "finish": net.finish_task}
    for step in steps[:-1]:
        do[step]()
    before = (net.phase, net.num_tasks, [p.requires_grad for p in net.parameters()])
    with pytest.raises(ExssnetError, match=re.escape(message)):
        do[steps[-1]]()
    assert (net.phase, net.num_tasks, [p.requires_grad for p in net.parameters()]) == before
