"""Per-task state is ordinary PyTorch state: a freshly wrapped model loads a trained one's `state_dict`."""

import io

import pytest
import torch
from conftest import learn_supsup_ssnet_exssnet, train_steps

from exssnet import ExssnetError, from_pretrained, save_pretrained, to_supermask
from exssnet.models import build_model
from exssnet.supermask import SupermaskNet, WeightRule

SHAPE = (1, 8, 8)


def fresh(keep_scores=False):
    return to_supermask(build_model("lenet-bn", SHAPE, 4), 0.2, keep_scores=keep_scores)


def three_tasks(keep_scores=False):
    """Task 0 SupSup (mask only), task 1 SSNeT (all its weights train), task 2 ExSSNeT (free weights train)."""
    torch.manual_seed(0)
    net = fresh(keep_scores)
    x = torch.randn(16, *SHAPE)
    return learn_supsup_ssnet_exssnet(net, (2, 3, 4), lambda: x)


def assert_same_logits(a, b, tasks):
    x = torch.randn(9, *SHAPE)
    a.eval(), b.eval()
    for t in tasks:
        assert torch.equal(a.logits(x, t), b.logits(x, t)), f"task {t} differs"


@pytest.mark.parametrize("keep_scores", [False, True])
def test_fresh_model_loads_a_trained_state_dict_bit_for_bit(keep_scores):
    net = three_tasks(keep_scores)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)  # plain torch.save works, and loads without unpickling code
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    loaded = fresh(keep_scores)
    loaded.load_state_dict(state, strict=True)
    assert [(t.num_classes, t.phase) for t in loaded.tasks] == [(t.num_classes, t.phase) for t in net.tasks]
    assert_same_logits(net, loaded, range(3))
    assert loaded.task_scores(2) is None if not keep_scores else torch.equal(loaded.task_scores(2)["1"],
                                                                             net.task_scores(2)["1"])
    # the loaded net goes on like the original: the next task starts on top of the same union
    assert loaded.add_task(2) == 3
    assert all(torch.equal(a.union, b.union) for a, b in zip(net.masked_layers(), loaded.masked_layers()))


def test_a_task_in_its_mask_phase_round_trips_and_trains_on():
    net = three_tasks()
    net.add_task(2)
    x = torch.randn(16, *SHAPE)
    train_steps(net, x, steps=1)
    loaded = fresh()
    loaded.load_state_dict(net.state_dict())
    assert loaded.phase is net.phase and len(loaded.trainable_parameters()) == len(net.masked_layers())
    assert_same_logits(net, loaded, range(4))
    torch.manual_seed(1)
    train_steps(net, x, steps=1)
    torch.manual_seed(1)
    train_steps(loaded, x, steps=1)
    assert_same_logits(net, loaded, range(4))


def test_a_weight_phase_state_is_refused_with_a_clear_error():
    net = three_tasks()
    net.add_task(2)
    net.start_weight_phase(WeightRule.ALL)
    with pytest.raises(ExssnetError, match="weight phase"):
        fresh().load_state_dict(net.state_dict(), strict=False)


def test_from_pretrained_loads_the_state_dict_without_replaying_tasks(tmp_path, monkeypatch):
    net = three_tasks()
    saved = save_pretrained(net, tmp_path / "ckpt", "lenet-bn", SHAPE)

    def no_replay(*args, **kwargs):
        raise AssertionError("from_pretrained must not build tasks to overwrite them")

    monkeypatch.setattr(SupermaskNet, "add_task", no_replay)
    monkeypatch.setattr(SupermaskNet, "finish_task", no_replay)
    loaded = from_pretrained(saved)
    assert_same_logits(net, loaded, range(3))


class SharedTwice(torch.nn.Module):
    """One Linear and one BatchNorm reached under two names each (the state dict lists them twice)."""

    classifier_name = "head"

    def __init__(self, input_shape=SHAPE, num_classes=3):
        super().__init__()
        self.body = torch.nn.Linear(int(torch.tensor(input_shape).prod()), 16)
        self.shared = torch.nn.Linear(16, 16)
        self.alias = self.shared
        self.norm = torch.nn.BatchNorm1d(16)
        self.norm_alias = self.norm
        self.head = torch.nn.Linear(16, num_classes)

    def forward(self, x):
        h = torch.relu(self.norm(self.shared(self.body(x.flatten(1)))))
        return self.head(self.norm_alias(self.alias(h)))


def test_checkpoint_stores_a_shared_layer_once_and_loads_it_under_both_names(tmp_path):
    from safetensors.torch import load_file

    from exssnet.models.registry import MODELS, register_model

    if "test-shared-twice" not in MODELS.names():
        register_model("test-shared-twice")(SharedTwice)
    torch.manual_seed(0)
    net = to_supermask(SharedTwice(), 0.5)
    x = torch.randn(16, *SHAPE)
    for _ in range(2):
        net.add_task(3)
        train_steps(net, x)
        net.finish_task()
    saved = save_pretrained(net, tmp_path / "ckpt", "test-shared-twice", SHAPE)
    keys = set(load_file(str(saved / "model.safetensors")))
    assert keys == {"weight.body", "weight.shared", "weight.head", "masks.0", "masks.1"} | {
        f"bn.{t}.{s}" for t in range(2) for s in ("running_mean", "running_var", "num_batches_tracked")} | {
        f"state.model.{name}" for name in ("body.bias", "shared.bias", "head.bias")}  # the identity BatchNorm affine: dropped
    loaded = from_pretrained(saved)
    assert loaded.model.alias is loaded.model.shared and loaded.model.norm_alias is loaded.model.norm
    assert_same_logits(net, loaded, range(2))
