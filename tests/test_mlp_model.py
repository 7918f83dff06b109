"""The `mlp` model: WSN's 784-100-100-10 preset, `mlp-H1-H2-...` names, and both engines accept it."""

import pytest
import torch
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.models import build_model
from exssnet.models.registry import model_input_kind
from exssnet.supermask import to_supermask


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_mlp_is_wsn_pmnist_network():
    model = build_model("mlp", (1, 28, 28), 10)
    assert linear_shapes(model) == [(784, 100), (100, 100), (100, 10)]
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 2
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert model_input_kind("mlp") == "image"


@pytest.mark.parametrize("name, hidden", [("mlp-300-100", [300, 100]), ("mlp-50", [50]), ("mlp-64-32-16", [64, 32, 16])])
def test_mlp_family_names_set_hidden_sizes(name, hidden):
    shapes = linear_shapes(build_model(name, (1, 28, 28), 7))
    assert [out for _, out in shapes[:-1]] == hidden and shapes[-1] == (hidden[-1], 7)
    assert model_input_kind(name) == "image"


@pytest.mark.parametrize("name", ["mlp-", "mlp-100-x", "mlp-0-100", "mlp--5"])
def test_bad_mlp_names_are_clear_errors(name):
    with pytest.raises(ExssnetError, match="mlp hidden sizes|unknown model"):
        build_model(name, (1, 28, 28), 10)


def test_mlp_works_under_supermask_and_per_task_heads():
    net = to_supermask(build_model("mlp-20-10", (1, 28, 28), 10), density=0.5)
    net.add_task(10)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    heads = MultiHeadNet(build_model("mlp", (1, 28, 28), 10))
    heads.add_head(10)
    assert heads.heads[0].bias is not None  # the dense baselines' per-task heads carry a bias (WSN's do too)
    assert heads(torch.randn(2, 1, 28, 28), 0).shape == (2, 10)
