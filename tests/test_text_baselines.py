"""Every dense baseline and class-IL run on a text benchmark whose tasks have different token lengths."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_accuracy_matrix, own_flags
from text_fixtures import write_glove_txt, write_offline_sources

from exssnet.cli import main
from exssnet.data.tasks import concat_inputs
from exssnet.methods import method_names, method_settings_class
from exssnet.methods.base import method_text_inputs
from exssnet.methods.baselines.dense import BaselineSettings
from exssnet.methods.baselines.replay_buffer import ReservoirBuffer

FAST = ["--model", "kim-cnn", "--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "8", "--threads", "1", "--quiet"]
# small method settings, each given only to the methods that read it (others refuse a setting they ignore)
FAST_METHOD = {"baseline_epochs": 1, "buffer_size": 16, "replay_batch_size": 4, "agem_mem_batch": 8}


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return write_offline_sources(root / "data", per_class=12), write_glove_txt(root / "glove.txt")


def offline_args(offline, out, method: str = "exssnet") -> list[str]:
    data, glove = offline
    flags = own_flags(method, FAST_METHOD)
    return ["run", "--benchmark", "text-offline", "--data-dir", str(data), "--encoder", str(glove),
            "--text-max-train", "4", "--text-max-test", "2", "--num-tasks", "4", *FAST, *flags, "--method", method,
            "--out", str(out)]


def test_concat_pads_the_token_axis_with_the_padding_mask():
    short = (torch.ones(2, 3, 4), torch.tensor([3, 2]))
    long = (torch.ones(1, 5, 4), torch.tensor([5]))
    features, lengths = concat_inputs([short, long])
    assert features.shape == (3, 5, 4) and lengths.tolist() == [3, 2, 5]
    assert features[:2, 3:].abs().sum() == 0  # padding is zero and lies past each length
    ids, mask = concat_inputs([(torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2)), (torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4))])
    assert ids.shape == (2, 4) and mask[0].tolist() == [1, 1, 0, 0]


def test_buffer_stores_tasks_of_different_token_lengths():
    buffer = ReservoirBuffer(4, seed=0)
    buffer.add((torch.ones(2, 3, 2), torch.tensor([3, 1])), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    buffer.add((torch.ones(2, 6, 2), torch.tensor([6, 5])), torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
    batch = buffer.sample(4)
    assert batch.x[0].shape == (4, 6, 2) and sorted(batch.x[1].tolist()) == [1, 3, 5, 6]


# every dense baseline that runs on any model (cgate gates vision backbones; language methods bring their encoder)
DENSE_BASELINES = [m for m in method_names() if issubclass(method_settings_class(m), BaselineSettings)
                   and method_text_inputs(m) == "features" and m != "cgate"]


@pytest.mark.parametrize("method", DENSE_BASELINES)
def test_every_dense_baseline_runs_on_text(offline, tmp_path, method):
    assert main(offline_args(offline, tmp_path / "o", method)) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert_accuracy_matrix(results, 4)


def test_class_il_runs_on_text(offline, tmp_path):
    assert main([*offline_args(offline, tmp_path / "o", "supsup"), "--scenario", "class-il"]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "class_il" in results
