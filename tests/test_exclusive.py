"""ExSSNeT's promise: weights used by earlier tasks get exactly zero gradient, so old tasks never change."""

import torch
import torch.nn.functional as F

from exssnet import to_supermask
from exssnet.data import BenchmarkSpec, build_benchmark
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


def weight_grads_after_step(net, exclusive):
    net.start_weight_phase(exclusive=exclusive)
    net.train()
    loss = F.cross_entropy(net(torch.randn(16, 1, 8, 8)), torch.randint(0, 2, (16,)))
    loss.backward()
    return [layer.weight.grad for layer in net.masked_layers()]


def test_exclusive_gradient_is_exactly_zero_outside_free_weights():
    net = net_with_one_finished_task()
    grads = weight_grads_after_step(net, exclusive=True)
    for layer, grad in zip(net.masked_layers(), grads):
        free = layer.mask_of(1) & ~layer.mask_of(0)
        assert torch.count_nonzero(grad[~free]) == 0
        assert torch.count_nonzero(grad[free]) > 0


def test_ssnet_gradient_reaches_weights_shared_with_earlier_tasks():
    net = net_with_one_finished_task()
    grads = weight_grads_after_step(net, exclusive=False)
    overlap_has_grad = [
        torch.count_nonzero(grad[layer.mask_of(1) & layer.mask_of(0)]) > 0
        for layer, grad in zip(net.masked_layers(), grads)
    ]
    assert any(overlap_has_grad)


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
