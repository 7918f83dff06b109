"""Registrations carry metadata: a model's input kind and classifier, a benchmark's input kind, a method's settings."""

import pytest
from torch import nn

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.methods import method_supports_resume
from exssnet.models.contract import find_classifier
from exssnet.models.registry import MODELS, build_model, register_model
from exssnet.run.config import RunConfig
from exssnet.run.resume import prepare_resume
from exssnet.run.runner import check_model_fits


class TwoLinears(nn.Module):
    """Two Linear layers, neither named `classifier`: the contract alone cannot tell which is the head."""

    def __init__(self, inputs: int, num_classes: int) -> None:
        super().__init__()
        self.out = nn.Linear(16, num_classes)
        self.body = nn.Linear(inputs, 16)

    def forward(self, x):
        return self.out(self.body(x.flatten(1)).relu())


@pytest.fixture
def two_linears():
    register_model("two-linears", input_kind="image", classifier="out")(lambda shape, n: TwoLinears(shape[-1], n))
    try:
        yield
    finally:
        MODELS.unregister("two-linears")


def test_registered_classifier_name_is_what_the_contract_finds(two_linears):
    model = build_model("two-linears", (8,), 3)
    assert find_classifier(model) == ("out", model.out)
    with pytest.raises(ExssnetError, match="cannot tell which of the 2 Linear layers"):
        find_classifier(TwoLinears(8, 3))  # the same model unregistered: a clear error, not a guess


def test_input_kinds_must_match(capsys):
    check_model_fits("split-digits", "lenet")
    check_model_fits("text-offline", "kim-cnn")
    with pytest.raises(ExssnetError, match="'text-offline' gives frozen-encoder token features; model 'lenet' "
                                           "cannot read them: use --model kim-cnn"):
        check_model_fits("text-offline", "lenet")
    assert main(["run", "--benchmark", "split-digits", "--model", "kim-cnn", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exssnet: error: benchmark 'split-digits' gives image tensors; model 'kim-cnn'")
    assert "lenet" in err and "kim-cnn," not in err


def test_resume_support_is_read_from_the_registration(tmp_path, capsys):
    assert method_supports_resume("exssnet") and method_supports_resume("ewc")
    assert method_supports_resume("exssnet", world_size=2) and not method_supports_resume("ewc", world_size=2)
    assert main(["run", "--method", "ewc", "--resume", "--out", str(tmp_path), "--quiet"]) == 2
    assert "nothing to resume in" in capsys.readouterr().err
    with pytest.raises(ExssnetError, match="'ewc' with 2 processes: its state differs between processes"):
        prepare_resume(tmp_path, RunConfig(method="ewc"), resume=True, overwrite=False, resumable=False, world_size=2)
