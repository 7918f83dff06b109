"""save_pretrained / from_pretrained: exact round trip, 1-bit masks, and refusal of every damaged checkpoint."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from exssnet import ExssnetError, from_pretrained, save_pretrained, to_supermask
from exssnet.checkpoint import CONFIG_FILE, TENSORS_FILE
from exssnet.layers.maskcode import HEADER_BYTES, decode_masks
from exssnet.models import build_model

SHAPE = (1, 8, 8)


def trained_net(tasks=(2, 3, 2), density=0.2, keep_scores=True, exclusive=True):
    """A LeNet supermask net with finished tasks whose weights, masks and BN statistics all moved."""
    torch.manual_seed(0)
    # lenet-bn: the checkpoint format must carry per-task BatchNorm statistics
    net = to_supermask(build_model("lenet-bn", SHAPE, 3), density, keep_scores=keep_scores)
    for classes in tasks:
        t = net.add_task(classes)
        net.train()
        net.logits(torch.randn(16, *SHAPE), t)  # updates this task's BN statistics
        net.start_weight_phase(exclusive=exclusive)
        with torch.no_grad():
            for w in net.trainable_parameters():
                w.add_(0.01 * torch.randn_like(w))
        net.finish_task()
    return net


@pytest.fixture(scope="module")
def net():
    return trained_net()


@pytest.fixture
def saved(tmp_path, net):
    return save_pretrained(net, tmp_path / "ckpt", "lenet-bn", SHAPE, save_scores=True)


def test_round_trip_is_exact(net, saved):
    loaded = from_pretrained(saved)
    assert [t.num_classes for t in loaded.tasks] == [2, 3, 2]
    original, restored = net.state_dict(), loaded.state_dict()
    assert list(original) == list(restored)
    assert original.pop("_extra_state") == restored.pop("_extra_state")
    assert all(torch.equal(original[k], restored[k]) for k in original)
    x = torch.randn(7, *SHAPE)
    net.eval()
    assert not loaded.training
    for t in range(3):
        assert torch.equal(net.predict(x, t), loaded.predict(x, t))
        assert torch.equal(net.logits(x, t), loaded.logits(x, t))
    # loaded tasks are finished: the next task starts on top of them
    assert loaded.add_task(2) == 3


def test_masks_cost_about_their_entropy_and_scores_are_optional(net, tmp_path):
    with_scores = save_pretrained(net, tmp_path / "a", "lenet-bn", SHAPE, save_scores=True)
    without = save_pretrained(net, tmp_path / "b", "lenet-bn", SHAPE)
    tensors = load_file(str(without / TENSORS_FILE))
    entropy = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))  # 0.722 bit per weight at density 0.2
    layers = net.masked_layers()
    for t in range(3):
        code = tensors[f"masks.{t}"]
        assert code.dtype == torch.uint8 and code.dim() == 1
        bound = sum(HEADER_BYTES + 3 + math.ceil(1.05 * entropy * layer.weight.numel() / 8) for layer in layers)
        assert code.numel() <= bound
        decoded = decode_masks(code, [layer.weight.shape for layer in layers])
        assert all(torch.equal(mask, layer.mask_of(t)) for mask, layer in zip(decoded, layers))
    assert not any(k.startswith("scores.") for k in tensors)
    size = (with_scores / TENSORS_FILE).stat().st_size - (without / TENSORS_FILE).stat().st_size
    assert size >= 3 * 4 * net.num_maskable()  # float32 scores of 3 tasks
    loaded = from_pretrained(without)
    assert loaded.task_scores(0) is None and torch.equal(loaded.task_masks(1)["1"], net.task_masks(1)["1"])


def test_refuses_to_overwrite_and_unfinished_tasks(net, saved, tmp_path):
    before = (saved / TENSORS_FILE).read_bytes()
    with pytest.raises(ExssnetError, match="already exists"):
        save_pretrained(net, saved, "lenet-bn", SHAPE)
    assert (saved / TENSORS_FILE).read_bytes() == before
    fresh = trained_net(tasks=(2,))
    fresh.add_task(2)
    with pytest.raises(ExssnetError, match="not finished"):
        save_pretrained(fresh, tmp_path / "x", "lenet-bn", SHAPE)
    assert not (tmp_path / "x").exists()


def test_overwrite_replaces_atomically(net, saved):
    small = trained_net(tasks=(2,))
    save_pretrained(small, saved, "lenet-bn", SHAPE, overwrite=True)
    assert from_pretrained(saved).num_tasks == 1
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]  # no temp or old folder left


def _edit_config(path, **changes):
    config = json.loads((path / CONFIG_FILE).read_text())
    config.update(changes)
    (path / CONFIG_FILE).write_text(json.dumps(config))


def _edit_tensors(path, fn):
    tensors = load_file(str(path / TENSORS_FILE))
    fn(tensors)
    save_file(tensors, str(path / TENSORS_FILE))


def _flip_code_bit(t, byte):
    key = "masks.1"
    t[key] = t[key].clone()
    t[key][byte] ^= 4


DAMAGE = {
    "garbage": (lambda p: (p / TENSORS_FILE).write_bytes(b"\x00garbage" * 50), "corrupted or truncated"),
    "truncated": (lambda p: (p / TENSORS_FILE).write_bytes((p / TENSORS_FILE).read_bytes()[:-1000]), "corrupted or truncated"),
    "empty tensors file": (lambda p: (p / TENSORS_FILE).write_bytes(b""), "corrupted or truncated"),
    "no tensors file": (lambda p: (p / TENSORS_FILE).unlink(), "model.safetensors is missing"),
    "no config": (lambda p: (p / CONFIG_FILE).unlink(), "config.json is missing"),
    "bad json": (lambda p: (p / CONFIG_FILE).write_text("{not json"), "is corrupted"),
    "json list": (lambda p: (p / CONFIG_FILE).write_text("[1, 2]"), "not an exssnet checkpoint config"),
    "future version": (lambda p: _edit_config(p, format_version=99), "version 99 is not supported"),
    "wrong type": (lambda p: _edit_config(p, density="0.2"), "'density' has the wrong type"),
    "other density": (lambda p: _edit_config(p, density=0.5), "density 0.5 keeps"),
    "other architecture": (lambda p: _edit_config(p, input_shape=[1, 28, 28]), "tensor weight.1 is torch.float32"),
    "other head": (lambda p: _edit_config(p, num_classes=10), "the architecture needs"),
    "unknown model": (lambda p: _edit_config(p, model_name="vgg99"), "unknown model 'vgg99'"),
    "more tasks than saved": (lambda p: _edit_config(p, task_classes=[2, 3, 2, 2]), "lists 4 task"),
    "extra tensor": (lambda p: _edit_tensors(p, lambda t: t.update(extra=torch.zeros(2))), "unexpected extra"),
    "missing tensor": (lambda p: _edit_tensors(p, lambda t: t.pop("bn.1.running_var")), "missing bn.1.running_var"),
    "wrong dtype": (lambda p: _edit_tensors(p, lambda t: t.update({"masks.0": t["masks.0"].float()})), "masks.0 is torch.float32"),
    "wrong statistics size": (lambda p: _edit_tensors(p, lambda t: t.update({"bn.0.running_mean": t["bn.0.running_mean"][1:].clone()})),
                              "bn.0.running_mean is torch.float32 (399,)"),
    "nan weight": (lambda p: _edit_tensors(p, lambda t: t["weight.4"].__setitem__((0, 0), float("nan"))), "NaN"),
    "pre-1.0 version 1": (lambda p: _edit_config(p, format_version=1), "version 1 is not supported"),
    "code header": (lambda p: _edit_tensors(p, lambda t: _flip_code_bit(t, 0)), "mask code masks.1 is corrupted"),
    "code unary bit": (lambda p: _edit_tensors(p, lambda t: _flip_code_bit(t, HEADER_BYTES + 3)), "is corrupted"),
    "code remainder bit": (lambda p: _edit_tensors(p, lambda t: _flip_code_bit(t, -3)), "is corrupted"),
    "code truncated": (lambda p: _edit_tensors(p, lambda t: t.update({"masks.1": t["masks.1"][:-2].clone()})), "is corrupted"),
    "code with trailing bytes": (lambda p: _edit_tensors(p, lambda t: t.update({"masks.1": torch.cat([t["masks.1"], t["masks.1"][:3]])})),
                                 "after its last mask"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_one_clear_error(saved, damage):
    spoil, message = DAMAGE[damage]
    spoil(saved)
    files = {p.name: p.read_bytes() for p in saved.iterdir()}
    with pytest.raises(ExssnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_pretrained(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == files  # loading changes nothing


def test_missing_folder(tmp_path):
    with pytest.raises(ExssnetError, match="does not exist"):
        from_pretrained(tmp_path / "nope")


def test_conv_model_round_trip(tmp_path):
    from torch import nn

    from exssnet.models import model_names, register_model

    if "test-conv" not in model_names():
        @register_model("test-conv")
        def _conv(input_shape, num_classes):
            return nn.Sequential(nn.Conv2d(input_shape[0], 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Conv2d(4, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    torch.manual_seed(1)
    net = to_supermask(build_model("test-conv", (3, 9, 9), 4), 0.3)
    x = torch.randn(6, 3, 9, 9)
    for classes in (4, 2):
        t = net.add_task(classes)
        net.train()
        net.logits(x, t)
        net.finish_task()
    loaded = from_pretrained(save_pretrained(net, tmp_path / "c", "test-conv", (3, 9, 9)))
    net.eval()
    for t in range(2):
        assert torch.equal(net.logits(x, t), loaded.logits(x, t))


def test_wrapping_twice_keeps_per_task_state():
    net = trained_net(tasks=(2,))
    again = to_supermask(net.model, 0.2)
    assert len(again.norm_layers()) == 2 and len(again.norm_layers()[0].norms) == 1
