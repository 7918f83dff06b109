import pytest
import torch

from exssnet import to_supermask
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.readers import FASHION_MNIST_DIR
from exssnet.footprint import state_bytes, task_footprint
from exssnet.models import build_model

# running mean/var float32 + num_batches_tracked per BN layer; the paper's LeNet has no BatchNorm
BN_BYTES = {"lenet-bn": (300 + 100) * 2 * 4 + 2 * 8, "lenet": 0}


@pytest.mark.parametrize("model", list(BN_BYTES))
@pytest.mark.parametrize("keep_scores", [False, True])
def test_a_finished_task_costs_its_mask_bits_and_batchnorm_statistics(keep_scores, model):
    net = to_supermask(build_model(model, (1, 8, 8), 2), density=0.1, keep_scores=keep_scores)
    sizes = [state_bytes(net)]
    for exclusive in (True, False, True, True):
        net.add_task(2)
        net.start_weight_phase(exclusive=exclusive)
        net.finish_task()
        sizes.append(state_bytes(net))
    params = [layer.weight.numel() for layer in net.masked_layers()]
    expected_mask = sum((n + 7) // 8 for n in params)
    expected_bn = BN_BYTES[model]
    expected_scores = 4 * sum(params) if keep_scores else 0
    for t in range(4):
        footprint = task_footprint(net, t)
        assert (footprint.mask, footprint.batchnorm, footprint.scores) == (expected_mask, expected_bn, expected_scores)
    growth = {b - a for a, b in zip(sizes, sizes[1:])}
    assert growth == {expected_mask + expected_bn + expected_scores}  # nothing else grows with the task count


def test_superposition_holds_no_float_copy_of_masks():
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.1)
    for _ in range(3):
        net.add_task(2)
        net.finish_task()
    layer = net.masked_layers()[0]
    with net.superposed([0, 1, 2], torch.full((3,), 1 / 3)):
        assert not any(isinstance(v, torch.Tensor) and v.shape[:1] == (3,) and v.dim() == 3 for v in vars(layer).values())
    net.set_task(1)
    assert layer._alphas is None and layer._superposed == []


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="needs apt package dataset-fashion-mnist")
def test_pairs_mnist_fashion_tasks_are_distinct_two_class_pairs():
    bench = build_benchmark("pairs-mnist-fashion", BenchmarkSpec(seed=3, num_tasks=6))
    assert len(bench.tasks) == 6 and bench.input_shape == (1, 28, 28)
    pairs = [tuple(task.classes) for task in bench.tasks]
    assert len(set(pairs)) == 6
    for task in bench.tasks:
        assert len(task.train) + len(task.val) == 1000 and len(task.test) == 400
        assert set(task.test.y.tolist()) == {0, 1} and task.train.x.max() <= 1.0
    assert sum(name.startswith("fashion") for pair in pairs for name in pair) > 0
