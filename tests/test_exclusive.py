"""ExSSNeT's promise: weights used by earlier tasks get exactly zero gradient, so old tasks never change."""

import pytest
import torch
import torch.nn.functional as F

from exssnet import to_supermask
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.layers import View
from exssnet.methods import build_method
from exssnet.models import build_model
from exssnet.run.config import RunConfig


def net_with_one_finished_task(density=0.3):
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=density)
    net.add_task(2)
    net.finish_task()
    net.add_task(2)
    return net


def compact_grads_after_step(net, exclusive):
    net.start_weight_phase(exclusive=exclusive)
    net.train()
    loss = F.cross_entropy(net(torch.randn(16, 1, 8, 8)), torch.randint(0, 2, (16,)))
    loss.backward()
    return loss


def test_weight_phase_trains_one_compact_parameter_of_the_free_entries():
    net = net_with_one_finished_task()
    compute = compact_grads_after_step(net, exclusive=True)
    assert compute.requires_grad
    assert net.trainable_parameters() == net.compact_parameters()
    for layer in net.masked_layers():
        free = layer.mask_of(1) & ~layer.mask_of(0)
        assert layer.weight.grad is None and not layer.weight.requires_grad
        assert layer.compact_weight.shape == (int(free.sum()),)
        assert torch.equal(layer.compact_index, free.flatten().nonzero().flatten())
        assert torch.count_nonzero(layer.compact_weight.grad) > 0


def test_ssnet_compact_parameter_covers_weights_shared_with_earlier_tasks():
    net = net_with_one_finished_task()
    compact_grads_after_step(net, exclusive=False)
    shared_trained = []
    for layer in net.masked_layers():
        mask = layer.mask_of(1)
        assert torch.equal(layer.compact_index, mask.flatten().nonzero().flatten())
        shared = (mask & layer.mask_of(0)).flatten()[layer.compact_index]
        shared_trained.append(torch.count_nonzero(layer.compact_weight.grad[shared]) > 0)
    assert any(shared_trained)


def two_tasks(seed=0):
    torch.manual_seed(seed)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.start_weight_phase(exclusive=True)
    net.finish_task()
    net.add_task(2)
    return net


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.AdamW(params, lr=0.1, weight_decay=0.5),
    lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.5),
])
def test_no_optimizer_over_all_parameters_moves_earlier_tasks(make_optimizer):
    # a user loop that hands EVERY parameter to an optimizer with weight decay, in both phases
    net = two_tasks()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 2, (32,))
    net.eval()
    before = net.logits(x, 0).clone()
    old_weights = [layer.weight.detach().clone() for layer in net.masked_layers()]
    for phase in ("mask", "weights"):
        if phase == "weights":
            net.start_weight_phase(exclusive=True)
        net.set_task(1)
        net.train()
        optimizer = make_optimizer(list(net.parameters()))
        for _ in range(5):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    net.finish_task()
    net.eval()
    assert torch.equal(net.logits(x, 0), before)
    for layer, old in zip(net.masked_layers(), old_weights):
        free = layer.mask_of(1) & ~layer.mask_of(0)
        changed = layer.weight != old
        assert not changed[~free].any() and changed[free].any()


def test_compact_training_equals_full_weight_training_with_a_gradient_mask():
    """The compact parameter is the old design (Adam on the whole weight, gradient zeroed outside free) bit for bit."""
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 2, (32,))
    compact, reference = two_tasks(), two_tasks()
    compact.start_weight_phase(exclusive=True)
    reference.start_weight_phase(exclusive=True)
    free = {}
    for name, layer in reference.named_masked_layers():
        free[name] = layer.mask_of(1) & ~layer.mask_of(0)
        layer.end_compact()
        layer.select(View.MASK, 1)
        layer.weight.requires_grad_(True)
    for net, params in ((compact, compact.trainable_parameters()), (reference, reference.weight_parameters())):
        net.train()
        optimizer = torch.optim.Adam(params, lr=0.01)
        for _ in range(5):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            if net is reference:
                for name, layer in net.named_masked_layers():
                    layer.weight.grad *= free[name]
            optimizer.step()
    compact.finish_task()
    for a, b in zip(compact.masked_layers(), reference.masked_layers()):
        assert torch.equal(a.weight, b.weight.detach())


def old_task_logits_stay_identical(method_name: str) -> list[bool]:
    """Train 5 tasks; after each, compare every earlier task's logits with those right after it was learned."""
    torch.manual_seed(0)
    config = RunConfig(benchmark="split-digits", method=method_name, density=0.2, mask_epochs=2,
                       weight_epochs=3, weight_lr=0.01, batch_size=64)
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0))
    method = build_method(config, benchmark)
    probe = torch.cat([task.test.x[:20] for task in benchmark.tasks])
    reference, identical = [], []
    for t, task in enumerate(benchmark.tasks):
        method.learn_task(t, task, progress=False, on_epoch=None)
        method.eval_mode()
        with torch.no_grad():
            reference.append(method.logits(probe, t).clone())
            for j in range(t):
                identical.append(torch.equal(method.logits(probe, j), reference[j]))
    return identical


def test_exssnet_earlier_tasks_are_bit_identical_after_five_tasks():
    assert all(old_task_logits_stay_identical("exssnet"))


def test_supsup_earlier_tasks_are_bit_identical_after_five_tasks():
    assert all(old_task_logits_stay_identical("supsup"))


def test_ssnet_changes_earlier_tasks():
    # the same check must be able to fail: SSNeT trains shared weights and changes old outputs
    assert not all(old_task_logits_stay_identical("ssnet"))


def test_exssnet_weight_phase_changes_only_free_weights():
    torch.manual_seed(0)
    config = RunConfig(benchmark="split-digits", method="exssnet", density=0.3, mask_epochs=1, weight_epochs=2,
                       weight_lr=0.01, num_tasks=3)
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0, num_tasks=3))
    method = build_method(config, benchmark)
    for t, task in enumerate(benchmark.tasks):
        before = [layer.weight.detach().clone() for layer in method.net.masked_layers()]
        method.learn_task(t, task, progress=False, on_epoch=None)
        for layer, old in zip(method.net.masked_layers(), before):
            earlier = torch.zeros_like(layer.weight, dtype=torch.bool)
            for j in range(t):
                earlier |= layer.mask_of(j)
            free = layer.mask_of(t) & ~earlier
            changed = layer.weight.detach() != old
            assert not changed[~free].any()
            assert changed[free].any()


def test_weight_phase_with_channels_last_weights_writes_back_in_logical_order():
    from torch import nn

    torch.manual_seed(0)
    net = to_supermask(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 2)), density=0.3)
    net.add_task(2)
    net.finish_task()
    net.add_task(2)
    net.to(memory_format=torch.channels_last)
    conv = net.masked_layers()[0]
    assert not conv.weight.is_contiguous()
    net.start_weight_phase(exclusive=True)
    with torch.no_grad():
        for p in net.trainable_parameters():
            p.fill_(0.25)
    x = torch.randn(4, 3, 6, 6)
    during = net(x)
    net.finish_task()
    free = conv.mask_of(1) & ~conv.mask_of(0)
    assert (conv.weight[free] == 0.25).all() and not (conv.weight[~free] == 0.25).any()
    net.set_task(1)
    assert torch.allclose(net(x), during)
