"""Wrapping your own (pretrained) model: `init=` chooses the weights, biases and affine values are kept,
`from_pretrained(dir, model=instance)` loads onto your instance, `add_task` refuses a class count the head lacks."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.checkpoint import from_pretrained, save_pretrained
from exssnet.supermask import WrapWarning


class MyMLP(nn.Module):
    """An unregistered model with biases and an affine BatchNorm, as a user would write it."""

    classifier_name = "head"

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.norm = nn.BatchNorm1d(8)
        self.conv = nn.Conv1d(1, 1, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.norm(self.body(x)))
        return self.head(self.conv(h.unsqueeze(1)).squeeze(1))


def pretrained() -> MyMLP:
    torch.manual_seed(7)
    model = MyMLP()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 2.0)
        model.norm.bias.uniform_(-1.0, 1.0)
    return model


def quiet_wrap(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WrapWarning)
        return to_supermask(model, **kwargs)


def test_keep_init_keeps_every_weight_and_bias_and_the_affine_values():
    model = pretrained()
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    net = quiet_wrap(model, density=0.5, init="keep")
    params = dict(net.model.named_parameters())
    for name, value in original.items():
        assert torch.equal(params[name], value), name
    net.add_task(2)
    net.finish_task()
    x = torch.randn(5, 6)
    net.eval()
    layer = net.model.body
    masked = F.linear(x, original["body.weight"] * layer.mask_of(0), original["body.bias"])
    assert torch.equal(layer(x), masked)  # the masked forward adds the (frozen) bias


def test_signed_constant_init_redraws_weights_but_keeps_biases():
    model = pretrained()
    bias = model.head.bias.detach().clone()
    net = quiet_wrap(model, density=0.5, init="signed-constant")
    weight = net.model.body.weight
    assert torch.allclose(weight.abs(), torch.full_like(weight, (2.0 / 6) ** 0.5))
    assert torch.equal(net.model.head.bias, bias)


def test_default_init_is_the_papers_and_the_wrap_says_so_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = to_supermask(pretrained(), density=0.5)
    messages = [str(w.message) for w in caught if issubclass(w.category, WrapWarning)]
    assert len(messages) == 1 and "init='signed-constant'" in messages[0]
    assert "affine values of norm are dropped" in messages[0] and "body (MaskedLinear: bias)" in messages[0]
    assert net.model.body.weight.abs().unique().numel() == 1 and net.model.norm.weight is None
    assert net.init == "signed-constant"


def test_fresh_identity_batchnorm_affine_is_dropped_without_a_word():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = to_supermask(nn.Sequential(nn.Linear(4, 4, bias=False), nn.BatchNorm1d(4), nn.Linear(4, 2, bias=False)),
                           density=0.5, init="signed-constant")
    assert not [w for w in caught if issubclass(w.category, WrapWarning)]
    assert net.model[1].weight is None and not net.named_unmasked_parameters()


def test_unknown_init_is_refused():
    with pytest.raises(ExssnetError, match="init must be one of"):
        to_supermask(pretrained(), density=0.5, init="kaiming")


def test_from_pretrained_onto_your_own_instance_round_trips_bit_exactly(tmp_path):
    net = quiet_wrap(pretrained(), density=0.5, init="keep")
    x = torch.randn(16, 6)
    for task in range(2):
        net.add_task(2)
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.5, weight_decay=0.1)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(net(x * (task + 1)), torch.arange(16) % 2).backward()
            opt.step()
        net.finish_task()
    net.eval()
    want = [net.logits(x, t).clone() for t in range(2)]
    save_pretrained(net, tmp_path / "ckpt", "my-mlp", (6,))
    with pytest.raises(ExssnetError, match="unknown model 'my-mlp'|model=instance"):
        from_pretrained(tmp_path / "ckpt")
    torch.manual_seed(123)
    loaded = from_pretrained(tmp_path / "ckpt", model=MyMLP())  # fresh random values everywhere
    for t in range(2):
        assert torch.equal(loaded.logits(x, t), want[t])
    assert torch.equal(loaded.model.norm.weight, net.model.norm.weight)


def test_add_task_refuses_more_classes_than_the_head_has():
    net = quiet_wrap(pretrained(), density=0.5, init="keep")
    with pytest.raises(ExssnetError, match="5 classes.*'head' has 2"):
        net.add_task(num_classes=5)
    assert net.num_tasks == 0
    with pytest.raises(ExssnetError, match="positive integer"):
        net.add_task(num_classes=0)
    assert net.add_task(num_classes=2) == 0


@pytest.mark.parametrize("training", [True, False])
def test_kept_batchnorm_affine_values_act_as_in_a_plain_batchnorm(training):
    model = pretrained()
    plain = MyMLP()
    plain.load_state_dict(model.state_dict())
    net = quiet_wrap(model, density=0.5, init="keep")
    net.add_task(2)
    norm = net.model.norm
    x = torch.randn(16, 8) * 3 + 1
    norm.train(training), plain.norm.train(training)
    assert torch.equal(norm(x), plain.norm(x))
    assert torch.equal(norm.statistics(0)["running_mean"], plain.norm.running_mean)


def test_a_supermask_net_is_not_wrapped_twice(tmp_path):
    net = quiet_wrap(pretrained(), density=0.5, init="keep")
    with pytest.raises(ExssnetError, match="already a SupermaskNet"):
        to_supermask(net, density=0.5, init="keep")
    net.add_task(2)
    net.finish_task()
    save_pretrained(net, tmp_path / "ckpt", "my-mlp", (6,))
    with pytest.raises(ExssnetError, match="already a SupermaskNet"):
        from_pretrained(tmp_path / "ckpt", model=net)
