"""Every parameter of a wrapped model is masked, per task, or frozen: nothing an optimizer over `net.parameters()`
(weight decay on) can reach moves a finished task, and a checkpoint / state dict reproduces the net bit for bit.

One block per module type the wrap accepts, each mapping (B, 8) features to (B, 8); the fuzz test composes
random models from them (seeded).
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exssnet import to_supermask
from exssnet.checkpoint import from_pretrained, save_pretrained
from exssnet.layers.view import View
from exssnet.supermask import WrapWarning

WIDTH = 8


class Scale(nn.Module):
    """A custom module with a raw nn.Parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, WIDTH))

    def forward(self, x):
        return x * self.gain


class Reshaped(nn.Module):
    """Run `inner` on the (B, 8) features viewed as `shape` (per example), then flatten back."""

    def __init__(self, inner: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inner, self.shape = inner, shape

    def forward(self, x):
        return self.inner(x.reshape(-1, *self.shape)).flatten(1)


BLOCKS = {
    "linear": lambda: nn.Linear(WIDTH, WIDTH),
    "conv1d": lambda: Reshaped(nn.Conv1d(2, 2, 3, padding=1), (2, 4)),
    "conv2d": lambda: Reshaped(nn.Conv2d(2, 2, 3, padding=1), (2, 2, 2)),
    "conv3d": lambda: Reshaped(nn.Conv3d(1, 1, 3, padding=1), (1, 2, 2, 2)),
    "convtranspose1d": lambda: Reshaped(nn.ConvTranspose1d(2, 2, 3, padding=1), (2, 4)),
    "convtranspose2d": lambda: Reshaped(nn.ConvTranspose2d(2, 2, 3, padding=1), (2, 2, 2)),
    "convtranspose3d": lambda: Reshaped(nn.ConvTranspose3d(1, 1, 3, padding=1), (1, 2, 2, 2)),
    "batchnorm1d": lambda: nn.BatchNorm1d(WIDTH),
    "batchnorm2d": lambda: Reshaped(nn.BatchNorm2d(2), (2, 2, 2)),
    "batchnorm3d": lambda: Reshaped(nn.BatchNorm3d(1), (1, 2, 2, 2)),
    "layernorm": lambda: nn.LayerNorm(WIDTH),
    "groupnorm": lambda: nn.GroupNorm(2, WIDTH),
    "instancenorm": lambda: Reshaped(nn.InstanceNorm1d(2, affine=True), (2, 4)),
    "prelu": lambda: nn.PReLU(),
    "custom-parameter": Scale,
}
KINDS = [*BLOCKS, "embedding"]


class Composed(nn.Module):
    """Features (+ an embedding of token ids when asked) -> residual blocks with tanh -> a Linear head."""

    classifier_name = "head"

    def __init__(self, kinds: list[str], seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(10, WIDTH, padding_idx=0) if "embedding" in kinds else None
        self.blocks = nn.ModuleList(BLOCKS[k]() for k in kinds if k != "embedding")
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, x, ids):
        h = x if self.emb is None else x + self.emb(ids)
        for block in self.blocks:
            h = torch.tanh(block(h)) + h
        return self.head(h)


def inputs(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, WIDTH, generator=g), torch.randint(0, 10, (n,), generator=g)


def train_phase(net, data, labels, steps: int = 3) -> None:
    """A few steps with an optimizer over everything the net holds, weight decay and momentum on."""
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, weight_decay=0.1)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(*data)[:, :3], labels).backward()
        opt.step()


def learn(net, data, seed: int) -> None:
    """ExSSNeT on one task: a mask phase, then the weight phase (free weights), then done."""
    labels = torch.randint(0, 3, (data[0].shape[0],), generator=torch.Generator().manual_seed(seed))
    net.add_task(3)
    train_phase(net, data, labels)
    net.start_weight_phase(exclusive=True)
    train_phase(net, data, labels)
    net.finish_task()


def wrap(model: nn.Module, init: str = "signed-constant"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WrapWarning)
        return to_supermask(model, density=0.5, init=init)


def check_no_forgetting_and_round_trip(kinds: list[str], seed: int, init: str, tmp_path) -> None:
    net = wrap(Composed(kinds, seed), init)
    data = inputs(seed)
    learn(net, data, seed)
    net.eval()
    before = net.logits(data, 0).clone()
    learn(net, (data[0] * 2 + 1, data[1].flip(0)), seed + 1)
    net.eval()
    assert torch.equal(net.logits(data, 0), before), f"task 0 moved after task 1 ({kinds})"
    after1 = net.logits(data, 1).clone()

    save_pretrained(net, tmp_path / "ckpt", "composed", (WIDTH,))
    loaded = from_pretrained(tmp_path / "ckpt", model=Composed(kinds, seed + 100))  # other random values
    assert torch.equal(loaded.logits(data, 0), before) and torch.equal(loaded.logits(data, 1), after1)

    rebuilt = wrap(Composed(kinds, seed + 200), init)
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt.logits(data, 0), before) and torch.equal(rebuilt.logits(data, 1), after1)


@pytest.mark.parametrize("init", ["signed-constant", "keep"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_module_type_keeps_finished_tasks_and_round_trips(kind, init, tmp_path):
    check_no_forgetting_and_round_trip([kind], seed=KINDS.index(kind), init=init, tmp_path=tmp_path)


@pytest.mark.parametrize("seed", range(4))
def test_random_compositions_keep_finished_tasks_and_round_trip(seed, tmp_path):
    rng = random.Random(seed)
    kinds = rng.sample(KINDS, 6)
    check_no_forgetting_and_round_trip(kinds, seed, rng.choice(["signed-constant", "keep"]), tmp_path)


def test_every_parameter_is_masked_or_frozen_and_the_wrap_names_the_frozen_once():
    model = Composed(KINDS, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = to_supermask(model, density=0.5, init="keep")
    wrap_warnings = [w for w in caught if issubclass(w.category, WrapWarning)]
    assert len(wrap_warnings) == 1
    message = str(wrap_warnings[0].message)
    for name in ("LayerNorm", "GroupNorm", "PReLU", "Scale", "InstanceNorm1d", "head (MaskedLinear: bias)"):
        assert name in message
    frozen = dict(net.named_unmasked_parameters())
    assert "blocks.10.weight" in frozen and "blocks.14.gain" in frozen  # LayerNorm, the raw parameter
    assert not any(p.requires_grad for p in frozen.values())
    masked = {id(layer.weight) for layer in net.masked_layers()}
    assert all(id(p) in masked or name in frozen for name, p in net.model.named_parameters())
    assert len(net.masked_layers()) == 9  # the embedding, the Linear block, 6 convolutions, the head


PLAIN_CASES = {
    "embedding": (lambda: nn.Embedding(10, 4, padding_idx=1), lambda: torch.tensor([[0, 1, 9], [3, 3, 2]])),
    "conv3d": (lambda: nn.Conv3d(2, 3, 3, stride=2, padding=1, groups=1), lambda: torch.randn(2, 2, 5, 5, 5)),
    "convtranspose1d": (lambda: nn.ConvTranspose1d(2, 4, 3, stride=2, output_padding=1, groups=2),
                        lambda: torch.randn(2, 2, 7)),
    "convtranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dilation=2),
                        lambda: torch.randn(2, 2, 5, 5)),
    "convtranspose3d": (lambda: nn.ConvTranspose3d(1, 2, 2, stride=2, bias=False), lambda: torch.randn(2, 1, 3, 3, 3)),
}


@pytest.mark.parametrize("case", PLAIN_CASES)
def test_new_masked_layers_rebuild_their_plain_torch_module_per_task(case):
    build, make_input = PLAIN_CASES[case]
    torch.manual_seed(0)
    original = build()
    net = wrap(nn.ModuleDict({"layer": original}))
    layer = net.model["layer"]
    assert type(layer).__mro__[1:].count(type(original)) == 1  # still an instance of the torch type
    for task in range(2):
        layer.add_task(task)
        layer.commit(task)
    x = make_input()
    for task in range(2):
        plain = layer.plain_module(task)
        assert type(plain) is type(original) and plain.state_dict().keys() == original.state_dict().keys()
        layer.select(View.MASK, task)
        assert torch.equal(plain(x), layer(x))
    assert not torch.equal(layer.plain_module(0).weight, layer.plain_module(1).weight)


def test_embedding_with_max_norm_is_refused_with_its_path():
    from exssnet import ExssnetError

    model = nn.Sequential(nn.Embedding(10, 4, max_norm=1.0), nn.Flatten(), nn.Linear(8, 3))
    with pytest.raises(ExssnetError, match="'0'.*max_norm"):
        wrap(model)
