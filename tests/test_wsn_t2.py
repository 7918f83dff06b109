"""WSN's Table 2 networks (alexnet-5, tinynet-4c3f) and the wsn-t2-* presets (CIFAR-100 Split 10x10, TinyImageNet 40x5).

The real datasets are not offline: the presets are checked against WSN's protocol and run, shortened, on the
standard-format fixture folders of tests/vision_fixtures.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from vision_fixtures import write_cifar100, write_tiny_imagenet

from exssnet import to_supermask
from exssnet.cli import main
from exssnet.data.tasks import Benchmark, Split, TaskData
from exssnet.layers.masked import MaskedLayer
from exssnet.methods import build_method
from exssnet.models import build_model
from exssnet.models.contract import find_classifier
from exssnet.run.config import RunConfig, load_yaml

CONFIGS = Path(__file__).parents[1] / "configs"
SHAPES = {"alexnet-5": (3, 32, 32), "tinynet-4c3f": (3, 64, 64)}


def alexnet_weights(classes: int) -> int:
    """conv 3->64 (4x4), 64->128 (3x3), 128->256 (2x2); 32x32 pooled to 2x2, so fc 1024->2048->2048->C."""
    return 3 * 64 * 16 + 64 * 128 * 9 + 128 * 256 * 4 + 256 * 2 * 2 * 2048 + 2048 * 2048 + 2048 * classes


def tinynet_weights(classes: int) -> int:
    """four 3x3 convs of 160 channels at stride 2 (64 -> 4), so fc 160*4*4 = 2560 -> 640 -> 640 -> C."""
    return 3 * 160 * 9 + 3 * 160 * 160 * 9 + 2560 * 640 + 640 * 640 + 640 * classes


WEIGHTS = {"alexnet-5": alexnet_weights, "tinynet-4c3f": tinynet_weights}


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("classes", [5, 10])
def test_model_builds_for_its_input_and_gives_one_logit_per_class(name, classes):
    model = build_model(name, SHAPES[name], classes).eval()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sum(m.weight.numel() for m in layers) == WEIGHTS[name](classes)
    assert all(m.bias is None for m in layers)
    head_name, head = find_classifier(model)
    assert head is layers[-1] and head.out_features == classes
    with torch.no_grad():
        assert model(torch.randn(3, *SHAPES[name])).shape == (3, classes)


def test_alexnet_blocks_follow_gpm_and_wsn():
    """conv -> BatchNorm -> ReLU -> dropout -> 2x2 max-pool; dropout 0.2, 0.2, then 0.5 after conv3, fc1 and fc2."""
    model = build_model("alexnet-5", SHAPES["alexnet-5"], 10)
    kinds = [type(m) for m in model]
    block = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout, nn.MaxPool2d]
    assert kinds[:15] == block * 3 and kinds[15] is nn.Flatten
    assert kinds[16:24] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout] * 2 and kinds[24:] == [nn.Linear]
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.2, 0.2, 0.5, 0.5, 0.5]
    assert [m.kernel_size for m in model if isinstance(m, nn.Conv2d)] == [(4, 4), (3, 3), (2, 2)]


def test_tinynet_is_four_strided_convs_without_batchnorm_or_dropout():
    model = build_model("tinynet-4c3f", SHAPES["tinynet-4c3f"], 5)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [(160, (3, 3), (2, 2), (1, 1))] * 4
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [640, 640, 5]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.Dropout)) for m in model.modules())


@pytest.mark.parametrize("name", list(SHAPES))
def test_models_refuse_inputs_they_cannot_read(name):
    from exssnet.errors import ExssnetError

    with pytest.raises(ExssnetError, match=f"{name} needs image inputs"):
        build_model(name, (784,), 10)


@pytest.mark.parametrize("name", list(SHAPES))
def test_supermask_wraps_every_conv_and_linear_without_a_warning(name):
    dense = build_model(name, SHAPES[name], 10)
    convs_and_linears = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in dense.modules())
    batchnorms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in dense.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a WrapWarning (e.g. an unmasked trainable) fails the test
        net = to_supermask(dense, 0.1, init="signed-constant")
    assert len(net.masked_layers()) == convs_and_linears
    assert all(isinstance(m, MaskedLayer) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert len(net.norm_layers()) == batchnorms == (5 if name == "alexnet-5" else 0)


def random_benchmark(shape: tuple[int, ...], tasks: int = 2, classes: int = 3, per_split: int = 12) -> Benchmark:
    generator = torch.Generator().manual_seed(0)

    def split() -> Split:
        return Split(torch.randn(per_split, *shape, generator=generator),
                     torch.arange(per_split) % classes)

    made = [TaskData(f"task{t}", [f"c{t}-{c}" for c in range(classes)], split(), split(), split()) for t in range(tasks)]
    return Benchmark("random", made, shape)


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("method_name", ["wsn", "exssnet"])
def test_learning_a_second_task_leaves_the_first_bit_identical(name, method_name):
    """Dropout and (alexnet-5) per-task BatchNorm included: task 0's logits after task 1 equal those after task 0."""
    torch.manual_seed(0)
    benchmark = random_benchmark(SHAPES[name])
    epochs = {"mask_epochs": 1, "weight_epochs": 0 if method_name == "wsn" else 1}
    config = RunConfig.from_dict({"method": method_name, "model": name, "density": 0.3, "batch_size": 4,
                                  "mask_lr": 0.01, "weight_lr": 0.01, "num_tasks": 2, "classes_per_task": 3, **epochs})
    method = build_method(config, benchmark)
    probe = torch.cat([task.test.x[:6] for task in benchmark.tasks])
    after = []
    for t, task in enumerate(benchmark.tasks):
        method.learn_task(t, task, progress=False, on_epoch=None)
        method.num_learned = t + 1
        method.eval_mode()
        with torch.no_grad():
            after.append(method.logits(probe, 0).clone())
    assert torch.equal(after[0], after[1])
    assert not torch.equal(method.logits(probe, 1), after[1])  # task 1 is a different subnetwork


T2_PRESETS = sorted(CONFIGS.glob("wsn-t2-*.yaml"))
# WSN's protocol per benchmark (its Sec. 4 / App. A and scripts/wsn/*.sh; CIFAR-100 also GPM's main_cifar100.py):
# tasks x classes, class order, validation fraction, batch size, epochs per task (at most, for WSN), Adam lr; model.
PROTOCOL = {
    "cifar100": dict(benchmark="split-cifar100", model="alexnet-5", num_tasks=10, classes_per_task=10,
                     class_order="sequential", val_fraction=0.05, batch_size=64, epochs=200, augment=False),
    "tinyimagenet": dict(benchmark="split-tinyimagenet", model="tinynet-4c3f", num_tasks=40, classes_per_task=5,
                         class_order="seeded", val_fraction=0.1, batch_size=10, epochs=10, augment=True),
}
DENSE = {"naive", "joint", "individual"}


def test_every_method_has_a_preset_on_both_benchmarks():
    stems = {p.stem for p in T2_PRESETS}
    for bench in PROTOCOL:
        for method in ("naive", "joint", "individual", "supsup", "exssnet", "packnet", "wsn-c0.1", "wsn-c0.3", "wsn-c0.5"):
            assert f"wsn-t2-{bench}-{method}" in stems


@pytest.mark.parametrize("preset", T2_PRESETS, ids=lambda p: p.stem)
def test_preset_follows_wsns_table2_protocol(preset):
    config = RunConfig.from_dict(load_yaml(preset))
    protocol = PROTOCOL[preset.stem.split("-")[2]]
    for key in ("benchmark", "model", "num_tasks", "classes_per_task", "class_order", "val_fraction", "batch_size",
                "augment"):
        assert getattr(config, key) == protocol[key], key
    assert (config.keep_best_epoch, config.lr_schedule) == (True, "constant")
    epochs = protocol["epochs"]
    if config.method in DENSE:
        settings = config.settings_of()
        assert (settings.baseline_epochs, settings.baseline_optimizer, settings.baseline_lr) == (epochs, "adam", 0.001)
    elif config.method == "wsn":  # one joint phase at Adam 0.001; capacity c = density, named in the file
        assert (config.mask_epochs, config.weight_epochs, config.mask_lr) == (epochs, 0, 0.001)
        assert preset.stem.endswith(f"-c{config.density}")
    elif config.method == "packnet":
        assert (config.mask_epochs, config.weight_epochs, config.weight_lr) == (0, epochs, 0.001)
    elif config.method == "supsup":
        assert (config.mask_epochs, config.weight_epochs, config.mask_lr) == (epochs, 0, 0.001)
    else:  # exssnet: the same epoch budget, half mask phase and half weight phase
        assert config.method == "exssnet"
        assert config.mask_epochs == config.weight_epochs == epochs // 2
    text = preset.read_text()
    assert "# Paper: WSN Table 2" in text and f"configs/{preset.name}" in text


@pytest.mark.parametrize("stem, write, extra", [
    ("wsn-t2-cifar100-wsn-c0.5", lambda root: write_cifar100(root), []),
    ("wsn-t2-cifar100-exssnet", lambda root: write_cifar100(root), ["--weight-epochs", "1"]),
    ("wsn-t2-cifar100-naive", lambda root: write_cifar100(root), ["--baseline-epochs", "1"]),
    ("wsn-t2-tinyimagenet-wsn-c0.5", lambda root: write_tiny_imagenet(root, num_classes=10), []),
    ("wsn-t2-tinyimagenet-packnet", lambda root: write_tiny_imagenet(root, num_classes=10), ["--weight-epochs", "1"]),
])
def test_preset_runs_on_the_standard_format_fixture(stem, write, extra, tmp_path):
    """The preset as written, cut to one task of one epoch, on a tiny folder in the dataset's own format."""
    write(tmp_path / "data")
    args = ["run", "--config", str(CONFIGS / f"{stem}.yaml"), "--data-dir", str(tmp_path / "data"),
            "--num-tasks", "1", "--mask-epochs", "1", *extra, "--threads", "1", "--quiet", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    preset = load_yaml(CONFIGS / f"{stem}.yaml")
    for key in ("benchmark", "model", "method", "density", "classes_per_task", "batch_size", "val_fraction"):
        assert results["config"][key] == preset[key], key
    assert len(results["acc_matrix"]) == 1
