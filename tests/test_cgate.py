"""CGATE: per-task gates, frozen channels, finished tasks never change."""

from __future__ import annotations

import pytest
import torch

from exssnet.layers.gating import GatedLayer, PerTaskBatchNorm, inject_gates
from exssnet.methods import build_method
from exssnet.run.config import RunConfig
from exssnet.run.runner import load_benchmark, run_experiment, task_to_device


def test_inject_gates_wraps_layers_and_batchnorms():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    inject_gates(model)
    assert isinstance(model[0], GatedLayer) and isinstance(model[1], PerTaskBatchNorm) and isinstance(model[3], GatedLayer)
    gate = model[0]
    gate.add_task()
    gate.eval()
    with torch.no_grad():
        gate.gates[0].net[2].bias.fill_(-100.0)  # every gate closed
    assert gate(torch.randn(2, 1, 5, 5)).abs().sum() == 0


@pytest.mark.parametrize("model", ["lenet", "cnn-small"])
def test_finished_tasks_never_change(model):
    config = RunConfig.from_dict(dict(benchmark="split-digits", method="cgate", model=model, num_tasks=3, baseline_epochs=2,
                                      batch_size=32, seed=0, cgate_sparsity=0.1))
    benchmark = load_benchmark(config)
    method = build_method(config, benchmark)
    tasks = [task_to_device(t, torch.device("cpu")) for t in benchmark.tasks]
    method.learn_task(0, tasks[0], False, None)
    method.eval_mode()
    with torch.no_grad():
        before = method.logits(tasks[0].test.x, 0)
    weights = {name: p.detach().clone() for name, p in method.net.trunk.named_parameters()}
    frozen = {layer: layer.frozen.clone() for layer in method.gated()}
    assert all(f.any() for f in frozen.values()) and not all(f.all() for f in frozen.values())
    for t in (1, 2):
        method.learn_task(t, tasks[t], False, None)
    method.eval_mode()
    with torch.no_grad():
        assert torch.equal(method.logits(tasks[0].test.x, 0), before)
    for layer, rows in frozen.items():
        assert torch.equal(layer.layer.weight[rows], weights[next(n for n, m in method.net.trunk.named_modules() if m is layer) + ".layer.weight"][rows])
    changed = [not torch.equal(p, weights[name]) for name, p in method.net.trunk.named_parameters() if name.endswith("layer.weight")]
    assert any(changed)  # free filters did train: the frozen check above can fail


def test_cgate_run_has_zero_forgetting():
    results = run_experiment(RunConfig.from_dict(dict(benchmark="split-digits", method="cgate", model="lenet-bn", num_tasks=3, baseline_epochs=2,
                                                      batch_size=32, seed=0)), progress=False)
    assert results["forgetting"] == 0.0 and results["avg_acc"] > 70.0
    assert len(results["cgate_channels_used"]) == 3


def test_relevance_is_firing_probability_above_threshold():
    """A channel that fires on one example in a hundred is not relevant; one that fires on most is (Abati et al.)."""
    layer = GatedLayer(torch.nn.Linear(2, 2))
    layer.add_task()
    with torch.no_grad():  # gate logit of channel c = x[:, c]
        net = layer.gates[0].net
        net[0].weight.zero_()
        net[0].weight[:2, :2] = torch.eye(2)
        net[0].bias.zero_()
        net[2].weight.zero_()
        net[2].weight[:2, :2] = torch.eye(2)
        net[2].bias.fill_(-0.5)
    x = torch.full((100, 2), 0.0)
    x[0, 0] = 1.0  # channel 0: one example in a hundred
    x[:90, 1] = 1.0  # channel 1: ninety
    layer.eval()
    layer.start_counting()
    with torch.no_grad():
        layer(x[:40])
        layer(x[40:])
    probability = layer.firing_probability()
    assert probability.tolist() == [0.01, 0.9]
    layer.finish_task(probability > 0.1)
    assert layer.relevant[0].tolist() == [False, True] and layer.frozen.tolist() == [False, True]


def test_cgate_freezes_what_fires_on_validation_data():
    config = RunConfig.from_dict(dict(benchmark="split-digits", method="cgate", num_tasks=1, baseline_epochs=2, batch_size=32,
                                      seed=0, cgate_relevance=0.3))
    benchmark = load_benchmark(config)
    method = build_method(config, benchmark)
    task = task_to_device(benchmark.tasks[0], torch.device("cpu"))
    method.learn_task(0, task, False, None)
    method.eval_mode()
    layers = method.gated()
    for layer in layers:
        layer.relevant.clear()  # count the task's unrestricted gates again, on its validation split
        layer.start_counting()
    with torch.no_grad():
        method.task_logits(task.val.x, 0)
    for layer in layers:
        probability = layer.firing_probability()
        assert torch.equal(layer.frozen, probability > 0.3)
    assert any(0 < int(layer.frozen.sum()) < layer.out_channels for layer in layers)


def test_bad_relevance_threshold_is_refused():
    from exssnet.errors import ExssnetError

    for value in (-0.1, 1.0, float("nan")):
        with pytest.raises(ExssnetError, match="cgate_relevance"):
            RunConfig.from_dict(dict(method="cgate", cgate_relevance=value)).settings_of()
