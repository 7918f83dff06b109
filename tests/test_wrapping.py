"""to_supermask on unusual models: handled correctly, or refused with the module's path. Never silent."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.layers import MaskedLinear, MultitaskBatchNorm


def learn_one_task(net, x: torch.Tensor, steps: int = 3) -> None:
    """A short mask phase and an exclusive weight phase on random labels (enough to move statistics)."""
    net.add_task(3)
    net.train()
    y = torch.randint(0, 3, (x.shape[0],), generator=torch.Generator().manual_seed(net.num_tasks))
    opt = torch.optim.SGD(net.score_parameters(net.num_tasks - 1), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x)[:, :3], y).backward()
        opt.step()
    net.start_weight_phase(exclusive=True)
    weights = torch.optim.SGD(net.weight_parameters(), lr=0.5)
    for _ in range(steps):
        weights.zero_grad()
        F.cross_entropy(net(x)[:, :3], y).backward()
        weights.step()
    net.finish_task()


class Twice(nn.Module):
    """One Linear object used at two places of the forward pass and registered under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(8, 8)
        self.alias = self.shared
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.alias(torch.relu(self.shared(x))))


def test_module_used_twice_becomes_one_shared_masked_layer():
    net = to_supermask(Twice(), density=0.5)
    assert isinstance(net.model.shared, MaskedLinear) and net.model.alias is net.model.shared
    assert net.model.alias.bias is not None and not net.model.alias.bias.requires_grad  # kept, frozen
    assert len(net.masked_layers()) == 2
    x = torch.randn(16, 8)
    learn_one_task(net, x)
    net.eval()
    before = net.predict(x, 0), net.logits(x, 0)
    learn_one_task(net, x)
    net.eval()
    assert torch.equal(net.logits(x, 0), before[1])


def test_module_in_a_sequential_twice_is_shared():
    block = nn.Linear(6, 6)
    net = to_supermask(nn.Sequential(block, nn.ReLU(), block, nn.Linear(6, 3)), density=0.5)
    assert net.model[0] is net.model[2] and isinstance(net.model[0], MaskedLinear)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.attn(x, x, x)[0].mean(dim=1))


def test_multihead_attention_is_refused_with_its_path():
    with pytest.raises(ExssnetError, match="'attn'.*MultiheadAttention"):
        to_supermask(Attention(), density=0.5)


@pytest.mark.parametrize("norm", [nn.InstanceNorm2d(4, track_running_stats=True), nn.SyncBatchNorm(4)])
def test_norm_with_shared_running_statistics_is_refused(norm):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(norm), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with pytest.raises(ExssnetError, match=r"'1\.0'.*running statistics"):
        to_supermask(model, density=0.5)


def test_instance_norm_without_running_statistics_is_fine():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.InstanceNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    net = to_supermask(model, density=0.5)
    learn_one_task(net, torch.randn(8, 1, 6, 6))


def test_batchnorm3d_keeps_statistics_per_task():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Unflatten(1, (1, 2)), nn.BatchNorm3d(1), nn.Flatten(), nn.Linear(2 * 16, 3))
    net = to_supermask(model, density=0.5)
    assert isinstance(net.model[2], MultitaskBatchNorm) and net.model[2].dims == 3
    x = torch.randn(16, 1, 4, 4)
    learn_one_task(net, x)
    net.eval()
    before = net.logits(x, 0)
    learn_one_task(net, x * 3 + 1)
    net.eval()
    assert torch.equal(net.logits(x, 0), before)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 4)
        self.dec = nn.Linear(4, 8)
        self.dec.weight = nn.Parameter(self.enc.weight.t())  # replaced below by the tie itself
        self.emb = nn.Embedding(3, 8)
        self.out = nn.Linear(8, 3, bias=False)
        self.out.weight = self.emb.weight  # tied: the classifier is the embedding table

    def forward(self, x):
        return self.out(self.dec(self.enc(x)))


def test_tied_weights_are_refused_with_both_names():
    with pytest.raises(ExssnetError, match=r"'emb\.weight' is the same tensor as 'out\.weight'.*tied"):
        to_supermask(Tied(), density=0.5)


class FunctionalDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        z = self.enc(x)
        return self.head(F.linear(z, self.enc.weight.t()))


class PropertyDecoder(FunctionalDecoder):
    def forward(self, x):
        return self.head(self.enc(x) @ self.enc.weight)


@pytest.mark.parametrize("model", [FunctionalDecoder, PropertyDecoder])
def test_weight_used_outside_its_layer_is_refused(model):
    net = to_supermask(model(), density=0.5)
    net.add_task(3)
    with pytest.raises(ExssnetError, match="masked layer 'enc' outside that layer's forward"):
        net(torch.randn(2, 8))
    with pytest.raises(ExssnetError, match="'enc'"):  # still refused on the next try
        net(torch.randn(2, 8))


class HiddenReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.layers = [self.fc]  # a plain list: not part of the module tree

    def forward(self, x):
        return self.layers[0](x)


def test_module_held_outside_the_tree_is_refused():
    net = to_supermask(HiddenReference(), density=0.5)
    net.add_task(3)
    with pytest.raises(ExssnetError, match="outside its module tree"):
        net(torch.randn(2, 8))


def test_lazy_module_is_refused():
    with pytest.raises(ExssnetError, match="'0'.*lazy"):
        to_supermask(nn.Sequential(nn.LazyLinear(3)), density=0.5)


def test_ordinary_model_passes_the_first_forward_check():
    net = to_supermask(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)), density=0.5)
    learn_one_task(net, torch.randn(4, 8))
    assert net._weight_use_checked


class HeadFirst(nn.Module):
    """A registered model whose classifier is defined before its body (named through the classifier contract)."""

    classifier_name = "head"

    def __init__(self, input_shape, num_classes) -> None:
        super().__init__()
        self.head = nn.Linear(16, num_classes)
        self.body = nn.Linear(int(torch.tensor(input_shape).prod()), 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1))))


def test_classifier_defined_first_saves_and_loads(tmp_path):
    from exssnet.checkpoint import from_pretrained, save_pretrained
    from exssnet.models.registry import MODELS, register_model

    if "test-head-first" not in MODELS.names():
        register_model("test-head-first")(HeadFirst)
    net = to_supermask(HeadFirst((1, 4, 4), 5), density=0.5)
    x = torch.randn(8, 1, 4, 4)
    learn_one_task(net, x)
    save_pretrained(net, tmp_path / "ckpt", "test-head-first", (1, 4, 4))
    loaded = from_pretrained(tmp_path / "ckpt")
    assert loaded.model.head.weight.shape == (5, 16)
    net.eval()
    assert torch.equal(loaded.predict(x, 0), net.predict(x, 0))


class Unnamed(HeadFirst):
    classifier_name = None


def test_classifier_that_cannot_be_told_is_a_clear_error_not_a_wrong_head(tmp_path):
    from exssnet.checkpoint import save_pretrained

    net = to_supermask(Unnamed((1, 4, 4), 5), density=0.5)
    learn_one_task(net, torch.randn(8, 1, 4, 4))
    with pytest.raises(ExssnetError, match="cannot tell which of the 2 Linear layers"):
        save_pretrained(net, tmp_path / "ckpt", "test-head-first", (1, 4, 4))
    assert not (tmp_path / "ckpt").exists()
