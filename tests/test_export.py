"""`SupermaskNet.export_task`: one finished task as a plain model of the user's own class, equal to `net.logits`."""

from __future__ import annotations

import pytest
import torch
from conftest import learn_supsup_ssnet_exssnet
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.masked import MaskedConv1d, MaskedConv2d, MaskedLinear
from exssnet.models import build_model
from exssnet.supermask import WeightRule


class ReusedBlock(nn.Module):
    """A user model whose `mix` layer is registered under two names and called twice."""

    classifier_name = "head"

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16, bias=False)
        self.norm = nn.BatchNorm1d(16, affine=False)
        self.mix = nn.Linear(16, 16, bias=False)
        self.again = self.mix
        self.head = nn.Linear(16, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.embed(x)))
        h = torch.relu(self.again(torch.relu(self.mix(h))))
        return self.head(h)


def inputs_for(name: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    if name == "kim-cnn":
        return torch.randn(batch, 12, 16, generator=generator), torch.randint(1, 13, (batch,), generator=generator)
    shape = {"lenet": (1, 8, 8), "resnet18-reduced": (3, 8, 8), "reused": (8,)}[name]
    return (torch.randn(batch, *shape, generator=generator),)


def dense(name: str, num_classes: int) -> nn.Module:
    if name == "reused":
        return ReusedBlock(num_classes)
    shape = {"lenet": (1, 8, 8), "resnet18-reduced": (3, 8, 8), "kim-cnn": (12, 16)}[name]
    return build_model(name, shape, num_classes)


def trained(name: str, classes: tuple[int, ...] = (3, 3, 3), head: int = 3):
    """Task 0 SupSup (mask only), task 1 SSNeT (all its weights train), task 2 ExSSNeT (free weights train)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    net = to_supermask(dense(name, head), 0.3)
    return learn_supsup_ssnet_exssnet(net, classes, lambda: inputs_for(name, 16, generator))


MODELS = ["lenet", "resnet18-reduced", "kim-cnn", "reused"]


@pytest.mark.parametrize("name", MODELS)
def test_exported_model_equals_the_nets_logits_bit_for_bit(name):
    net = trained(name)
    x = inputs_for(name, 9, torch.Generator().manual_seed(2))
    net.eval()
    for task in range(net.num_tasks):
        model = net.export_task(task)
        assert type(model) is type(net.model) and not model.training
        assert not [m for m in model.modules() if type(m).__module__.startswith("exssnet.layers")]
        with torch.no_grad():
            assert torch.equal(model(*x), net.logits(x, task)), f"{name} task {task}"
    # the weight phases changed the shared weights: the exports of the three tasks really differ
    with torch.no_grad():
        outs = [net.export_task(t)(*x) for t in range(3)]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


@pytest.mark.parametrize("name", ["lenet", "kim-cnn", "reused"])
def test_a_freshly_built_instance_loads_the_export_strictly(name):
    net = trained(name)
    model = net.export_task(2)
    fresh = dense(name, net.tasks[2].num_classes)
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = inputs_for(name, 5, torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(*x), net.eval().logits(x, 2))


def test_resnet_export_loads_strictly_into_a_fresh_resnet():
    """The supermask BatchNorms are non-affine (the paper's), the ResNet's own are affine: the export carries identity
    affine values for them, so a freshly built ResNet loads it strictly and computes the same logits."""
    net = trained("resnet18-reduced")
    model = net.export_task(1)
    fresh = dense("resnet18-reduced", 3)
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = inputs_for("resnet18-reduced", 4, torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(*x), net.eval().logits(x, 1))


def test_a_module_reused_under_two_names_stays_one_module():
    model = trained("reused").export_task(0)
    assert model.mix is model.again and isinstance(model.mix, nn.Linear) and type(model.mix) is nn.Linear
    assert list(model.state_dict()) == list(ReusedBlock().state_dict())


def test_the_export_shares_no_tensor_with_the_net():
    net = trained("lenet")
    model = net.export_task(0)
    x = inputs_for("lenet", 4, torch.Generator().manual_seed(4))
    before = net.eval().logits(x, 0).detach().clone()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(2)
    assert torch.equal(net.logits(x, 0), before)


def test_a_head_wider_than_the_task_is_sliced_to_its_classes():
    net = trained("lenet", classes=(2, 4, 3), head=4)
    x = inputs_for("lenet", 6, torch.Generator().manual_seed(5))
    net.eval()
    for task, width in enumerate((2, 4, 3)):
        model = net.export_task(task)
        assert model[-1].out_features == width
        with torch.no_grad():
            # BLAS may sum a narrower matrix product in another order: equal up to float rounding
            torch.testing.assert_close(model(*x), net.logits(x, task), rtol=0, atol=1e-6)
    with torch.no_grad():  # the full-width task is the same head: bit for bit
        assert torch.equal(net.export_task(1)(*x), net.logits(x, 1))


def test_an_unfinished_task_is_refused():
    net = trained("lenet")
    net.add_task(3)
    with pytest.raises(ExssnetError, match="task 3 is not finished .*finish_task"):
        net.export_task(3)
    net.start_weight_phase(WeightRule.EXCLUSIVE)
    with pytest.raises(ExssnetError, match="task 3 is not finished"):
        net.export_task(3)
    with pytest.raises(ExssnetError, match="out of range"):
        net.export_task(7)


def test_a_model_whose_classifier_cannot_be_told_is_refused_with_what_to_set():
    two = nn.Module()
    two.a, two.b = nn.Linear(4, 4), nn.Linear(4, 2)
    two.forward = lambda x: two.b(two.a(x))
    net = to_supermask(two, 0.5)
    net.add_task(2)
    net.finish_task()
    with pytest.raises(ExssnetError, match="classifier_name"):
        net.export_task(0)


def committed(layer, task: int = 0):
    layer.add_task(task)
    layer.commit(task)
    return layer


@pytest.mark.parametrize("make, x", [
    (lambda: MaskedLinear(6, 5, density=0.4), torch.randn(3, 6)),
    (lambda: MaskedConv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="circular", density=0.4),
     torch.randn(2, 4, 11)),
    (lambda: MaskedConv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2, padding_mode="reflect",
                          density=0.4), torch.randn(2, 4, 7, 6)),
])
def test_plain_module_of_a_masked_layer_is_its_torch_layer_with_weight_times_mask(make, x):
    layer = committed(make())
    layer.add_task(1)
    layer.commit(1)
    for task in (0, 1):
        plain = layer.plain_module(task)
        assert type(plain) is type(layer).__mro__[[c.__module__.startswith("torch.nn.") for c in type(layer).__mro__].index(True)]
        assert plain.bias is None
        assert torch.equal(plain.weight, layer.weight * layer.mask_of(task))
        assert plain.weight.data_ptr() != layer.weight.data_ptr()
        assert torch.equal(plain(x), layer.task_output(x, task))


def test_plain_module_keeps_a_bias_when_the_layer_has_one():
    layer = committed(MaskedLinear(6, 5, density=0.4))
    layer.bias = nn.Parameter(torch.randn(5), requires_grad=False)
    plain = layer.plain_module(0)
    x = torch.randn(3, 6)
    assert torch.equal(plain.bias, layer.bias) and plain.bias.data_ptr() != layer.bias.data_ptr()
    assert torch.equal(plain(x), nn.functional.linear(x, layer.weight * layer.mask_of(0), layer.bias))


@pytest.mark.parametrize("dims, shape", [(1, (5, 4)), (2, (3, 4, 5, 5)), (3, (2, 4, 3, 3, 3))])
def test_plain_module_of_a_multitask_batchnorm_holds_the_tasks_statistics(dims, shape):
    norm = MultitaskBatchNorm(4, dims=dims, momentum=0.3)
    norm.add_task(0)
    norm.add_task(1)
    norm.train()
    for task in (0, 1):
        norm.set_task(task)
        for _ in range(task + 2):
            norm(torch.randn(*shape) * (task + 1) + task)
    norm.eval()
    x = torch.randn(*shape)
    for task in (0, 1):
        plain = norm.plain_module(task).eval()
        assert type(plain) is {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims] and not plain.affine
        assert plain.momentum == 0.3 and int(plain.num_batches_tracked) == task + 2
        norm.set_task(task)
        assert torch.equal(plain(x), norm(x))
    norm.affine = True  # a wrap that kept an affine original says so: identity affine values, the same function
    plain = norm.plain_module(1).eval()
    assert plain.affine and torch.equal(plain(x), norm(x))
