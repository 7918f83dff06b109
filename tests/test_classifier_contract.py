"""One feature/classifier contract (exssnet.models.contract) for KKT, the multi-head baselines and checkpoints."""

import pytest
import torch
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.checkpoint import head_classes
from exssnet.kkt import classifier_inputs
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.models import build_model
from exssnet.models.contract import find_classifier


class HeadFirst(nn.Module):
    """The classifier is defined before the trunk: "the last Linear defined" would be the wrong one."""

    classifier_name = "out"

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(16, 5)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class Unnamed(HeadFirst):
    classifier_name = None


def test_user_model_names_its_classifier_for_checkpoint_kkt_and_multihead():
    net = to_supermask(HeadFirst(), density=0.5)
    assert head_classes(net) == 5  # the last Linear defined is 16 wide
    net.add_task(5)
    net.finish_task()
    x = torch.randn(3, 4)
    features, name = classifier_inputs(net, x, 0)
    assert name == "out" and features.shape == (3, 16)
    trunk = MultiHeadNet(HeadFirst())
    assert isinstance(trunk.trunk.out, nn.Identity) and trunk.feature_dim == 16


def test_registered_models_declare_their_classifier():
    for name, shape in (("resnet18-reduced", (3, 8, 8)), ("lenet", (1, 8, 8)), ("kim-cnn", (6, 5))):
        model = build_model(name, shape, 7)
        found, module = find_classifier(model)
        assert module.out_features == 7, name
        if hasattr(model, "get_classifier"):
            assert module is model.get_classifier()


@pytest.mark.parametrize(
    "model, message",
    [
        (Unnamed(), "cannot tell which of the 3 Linear layers of Unnamed is its classifier"),
        (nn.Sequential(nn.Conv2d(1, 2, 3)), "has no nn.Linear classifier"),
    ],
)
def test_undeterminable_classifier_is_a_clear_error(model, message):
    with pytest.raises(ExssnetError, match=message):
        find_classifier(model)
    with pytest.raises(ExssnetError, match=message):
        MultiHeadNet(model)


def test_wrong_classifier_name_is_a_clear_error():
    model = HeadFirst()
    model.classifier_name = "body.1"
    with pytest.raises(ExssnetError, match="is a ReLU, not an nn.Linear"):
        find_classifier(model)
