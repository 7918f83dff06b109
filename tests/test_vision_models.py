"""Vision model zoo: parameter counts against published totals, supermask forward on the right input size."""

import pytest
import torch
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models import build_model
from exssnet.supermask import to_supermask

# torchvision's ResNet18 / ResNet50 have 11,689,512 / 25,557,032 parameters (1000 classes). Removing the
# 7x7 stem conv (3*64*49 = 9,408), the BatchNorm affine parameters (9,600 / 53,120) and the classifier
# (512*1000 + 1000 / 2048*1000 + 1000) leaves the weights of the residual stages, which ours share.
RESNET18_STAGES = 11_689_512 - 9_408 - 9_600 - 513_000
RESNET50_STAGES = 25_557_032 - 9_408 - 53_120 - 2_049_000


def conv_and_linear_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def expected_weights(name: str, classes: int) -> int:
    """Maskable weights by formula: 3x3 stem + residual stages + Linear head."""
    if name == "resnet18":
        return 3 * 64 * 9 + RESNET18_STAGES + 512 * classes
    if name == "resnet18-reduced":  # every stage conv is (20/64)^2 the size of ResNet18's
        return 3 * 20 * 9 + RESNET18_STAGES * 20 * 20 // (64 * 64) + 160 * classes
    if name == "resnet50":  # the standard 7x7 stem, as torchvision's
        return 3 * 64 * 49 + RESNET50_STAGES + 2048 * classes
    if name == "resnet50-cifar":
        return 3 * 64 * 9 + RESNET50_STAGES + 2048 * classes
    if name == "cnn-small":  # 3x3 convs 1->32->64, 28x28 pooled twice to 7x7, 3136->128->C
        return 9 * 32 + 9 * 32 * 64 + 64 * 7 * 7 * 128 + 128 * classes
    raise AssertionError(name)


SHAPES = {
    "resnet18-reduced": (3, 32, 32), "resnet18": (3, 32, 32), "resnet50": (3, 64, 64), "resnet50-cifar": (3, 64, 64),
    "cnn-small": (1, 28, 28),
}


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("classes", [10, 100])
def test_parameter_counts_match_the_formula(name, classes):
    dense = build_model(name, SHAPES[name], classes)
    assert conv_and_linear_weights(dense) == expected_weights(name, classes)
    assert all(getattr(m, "bias", None) is None for m in dense.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert isinstance(list(dense.modules())[-1], nn.Linear)


def test_documented_totals():
    assert expected_weights("resnet18-reduced", 100) == 1_106_140
    assert expected_weights("resnet50", 200) == 23_856_832 + 3 * 64 * 40
    assert expected_weights("resnet50-cifar", 200) == 23_856_832
    assert expected_weights("cnn-small", 20) == 422_688


@pytest.mark.parametrize("name", ["resnet18-reduced", "resnet50", "cnn-small"])
def test_supermask_version_runs_forward(name):
    torch.manual_seed(0)
    classes = 7
    net = to_supermask(build_model(name, SHAPES[name], classes), density=0.1)
    assert net.num_maskable() == expected_weights(name, classes)
    net.add_task(classes)
    # Every BatchNorm left is one task's non-affine statistics inside a per-task MultitaskBatchNorm.
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    per_task = [n.norms[0] for n in net.norm_layers()]
    assert norms and len(norms) == len(per_task) and all(not n.affine for n in norms)
    assert len(per_task) == sum(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in build_model(name, SHAPES[name], classes).modules())
    net.finish_task()
    net.eval()
    x = torch.randn(1, *SHAPES[name])
    with torch.no_grad():
        out = net.logits(x, 0)
    assert out.shape == (1, classes) and torch.isfinite(out).all()
    # Only the masked weights are parameters: BatchNorm is non-affine, finished tasks keep no float scores.
    assert sum(p.numel() for p in net.parameters()) == expected_weights(name, classes)


def test_models_refuse_non_image_inputs():
    with pytest.raises(ExssnetError, match="channels, height, width"):
        build_model("resnet18-reduced", (784,), 10)
    with pytest.raises(ExssnetError, match="channels, height, width"):
        build_model("cnn-small", (1, 2, 2), 10)


def _stem_output_side(name: str, side: int) -> int:
    model = build_model(name, (3, side, side), 10)
    return model.stem(torch.zeros(2, 3, side, side)).shape[-1]


def test_resnet50_has_the_standard_stem():
    # 7x7 stride 2 then 3x3 stride-2 max-pool: 64x64 -> 16x16 entering the stages (CIFAR stem keeps 64x64).
    assert _stem_output_side("resnet50", 64) == 16
    assert _stem_output_side("resnet50-cifar", 64) == 64
    stem_conv = build_model("resnet50", (3, 64, 64), 10).stem[0][0]
    assert stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in build_model("resnet50", (3, 64, 64), 10).stem.modules())


def test_resnet18_reduced_is_supsups_layout():
    # SupSup's GEM ResNet18: 3x3 stride-1 stem of 20 channels, stages 20/40/80/160, 4x4 maps before the pool.
    model = build_model("resnet18-reduced", (3, 32, 32), 10)
    assert model.stem[0][0].kernel_size == (3, 3) and model.stem[0][0].out_channels == 20
    assert [stage[0].body[0][0].out_channels for stage in model.stages] == [20, 40, 80, 160]
    assert model.stages(model.stem(torch.zeros(2, 3, 32, 32))).shape[-2:] == (4, 4)
    assert model.classifier.in_features == 160


def test_kim_cnn_activation_is_tanh_as_in_the_paper():
    torch.manual_seed(0)
    tokens, lengths = torch.randn(3, 12, 8) * 5, torch.tensor([12, 7, 2])
    tanh_features = build_model("kim-cnn", (12, 8), 4).forward_features(tokens, lengths)
    relu_features = build_model("kim-cnn-relu", (12, 8), 4).forward_features(tokens, lengths)
    assert tanh_features.abs().max() <= 1.0 and tanh_features.min() < 0  # Tanh: bounded, can be negative
    assert relu_features.min() >= 0 and relu_features.max() > 1.0
