import pytest
import torch

from exssnet import to_supermask
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.readers import FASHION_MNIST_DIR
from exssnet.footprint import state_bytes, task_footprint
from exssnet.models import build_model
from exssnet.task_inference import infer_task

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


def resident_bytes(module: torch.nn.Module) -> int:
    """Bytes of every tensor storage the module's submodules hold (parameters, buffers, caches; each storage once)."""
    seen: set[int] = set()
    total = 0

    def visit(value) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for sub in module.modules():
        for value in vars(sub).values():
            visit(value)
    return total


def superposed_peak(num_tasks: int) -> tuple[int, int, int]:
    """(resident bytes with task 0 selected, peak resident bytes during superposed forward passes, passes seen)."""
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.1)
    for _ in range(num_tasks):
        net.add_task(2)
        net.finish_task()
    net.set_task(0)
    one_task = resident_bytes(net)
    peaks: list[int] = []
    hooks = [layer.register_forward_hook(lambda *_: peaks.append(resident_bytes(net))) for layer in net.masked_layers()]
    for mode in ("batch", "example"):  # SupSup's one-shot inference: a forward pass with every mask superposed
        infer_task(net, torch.randn(16, 1, 8, 8), mode=mode, rule="one-shot")
    for hook in hooks:
        hook.remove()
    return one_task, max(peaks), len(peaks)


def test_superposed_forward_holds_no_float_copy_of_masks():
    """Superposing T tasks costs their packed masks only: no float mask (or float copy per task) is kept."""
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.1)
    packed = sum((layer.weight.numel() + 7) // 8 for layer in net.masked_layers())
    one_task, peak3, passes = superposed_peak(3)
    assert passes == 2 * len(net.masked_layers())  # the forward passes ran
    assert peak3 <= one_task  # no more than one selected task's view (which caches one masked float weight)
    _, peak6, _ = superposed_peak(6)
    assert peak6 - peak3 <= 3 * packed + 3 * 64  # three more tasks: three more packed masks (and small metadata)


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
