"""head="per-task": each task its own dense classifier (WSN's network) for every supermask method.

Earlier tasks bit-identical (also under an optimizer over `net.parameters()` with weight decay), each head as wide
as its task and frozen after it, state dict / checkpoint / export / resume round trips, task inference through the
heads, KKT and its rescue, and the CLI's refusals."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import crash_then_resume
from test_mask_family import QUICK, earlier_tasks_identical, learn
from torch import nn

from exssnet import ExssnetError, to_supermask
from exssnet.checkpoint import from_pretrained, load_compatible, save_pretrained
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.layers.task_head import TaskHeadLinear
from exssnet.run.config import RunConfig
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment
from exssnet.task_inference import entropy_gradients


def mlp(classes: int = 5) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, classes))


def train_task(net, x: torch.Tensor, classes: int, steps: int = 4) -> None:
    """Add a task and train its mask and weight phases by AdamW over `net.parameters()` (weight decay), then finish it."""
    net.add_task(classes)
    y = torch.randint(0, classes, (len(x),))
    for phase in ("mask", "weights"):
        if phase == "weights":
            net.start_weight_phase(True)
        optimizer = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.5)
        net.train()
        for _ in range(steps):
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.finish_task()


def trained_net(classes=(3, 2, 3)):
    """A per-task-head MLP with finished tasks (`train_task`), in eval mode, and its probe batch."""
    torch.manual_seed(0)
    net = to_supermask(mlp(), 0.5, init="signed-constant", head="per-task")
    x = torch.randn(32, 12)
    for c in classes:
        train_task(net, x, c)
    return net.eval(), x


def test_each_task_trains_its_own_head_as_wide_as_its_classes_and_it_freezes_after():
    torch.manual_seed(0)
    net = to_supermask(mlp(), 0.5, init="signed-constant", head="per-task")
    (head,) = net.head_layers()
    assert net.head == "per-task" and not any(isinstance(m, nn.Linear) and not isinstance(m, TaskHeadLinear)
                                              and m.out_features == 5 for m in net.model.modules())
    net.add_task(3)
    start = head.task_weight["0"].detach().clone()
    assert head.task_weight["0"].shape == (3, 16) and head.task_bias["0"].shape == (3,)
    assert set(map(id, net.head_parameters())) <= set(map(id, net.trainable_parameters()))
    assert all(id(p) not in set(map(id, net.head_parameters())) for p in net.unmasked_parameters())
    x = torch.randn(8, 12)
    loss = nn.functional.cross_entropy(net(x), torch.randint(0, 3, (8,)))
    loss.backward()
    torch.optim.SGD(net.trainable_parameters(), lr=0.5).step()
    assert not torch.equal(head.task_weight["0"], start)  # the head trains with the mask
    net.start_weight_phase(True)
    assert set(map(id, net.head_parameters())) <= set(map(id, net.trainable_parameters()))  # and in the weight phase
    net.finish_task()
    assert not head.task_weight["0"].requires_grad and not head.task_bias["0"].requires_grad
    net.add_task(2)
    assert head.task_weight["1"].shape == (2, 16) and net(x).shape == (8, 2)
    assert not torch.equal(head.task_weight["1"][:2], head.task_weight["0"][:2])  # a fresh head, not a copy


def test_earlier_tasks_stay_bit_identical_under_an_optimizer_over_all_parameters():
    torch.manual_seed(0)
    net = to_supermask(mlp(), 0.5, init="signed-constant", head="per-task")
    x = torch.randn(32, 12)
    reference = []
    for t, c in enumerate((3, 2, 3, 2)):
        train_task(net, x, c, steps=3)
        net.eval()
        with torch.no_grad():
            reference.append(net.logits(x, t).clone())
            assert all(torch.equal(net.logits(x, j), reference[j]) for j in range(t + 1))


@pytest.mark.parametrize("model", ["lenet", "lenet-bn"])
@pytest.mark.parametrize("method_name", ["wsn", "packnet", "exssnet", "supsup"])
def test_methods_keep_earlier_tasks_bit_identical_with_per_task_heads(method_name, model):
    method, identical = earlier_tasks_identical(learn(method_name, model, num_tasks=4, head="per-task"))
    assert len(identical) == 6 and all(identical)
    assert method.net.head == "per-task" and method.net.head_layers()[0].num_tasks == 4


def test_state_dict_checkpoint_and_export_round_trips(tmp_path):
    net, x = trained_net()
    expected = [net.logits(x, t).clone() for t in range(3)]
    fresh = to_supermask(mlp(), 0.5, init="signed-constant", head="per-task")
    fresh.load_state_dict(net.state_dict())
    fresh.eval()
    assert all(torch.equal(fresh.logits(x, t), expected[t]) for t in range(3))
    with pytest.raises(ExssnetError, match="head=.per-task. to load it"):  # a masked-head net cannot take them
        to_supermask(mlp(), 0.5, init="signed-constant").load_state_dict(net.state_dict())
    save_pretrained(net, tmp_path / "ckpt", "mlp", (12,))
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["head"] == "per-task"
    loaded = from_pretrained(tmp_path / "ckpt", model=mlp())
    assert loaded.head == "per-task"
    assert all(torch.equal(loaded.logits(x, t), expected[t]) for t in range(3))
    for t in range(3):
        exported = net.export_task(t)
        assert not any(isinstance(m, TaskHeadLinear) for m in exported.modules())
        assert torch.equal(exported(x), expected[t])
        plain = nn.Sequential(nn.Flatten(), nn.Linear(12, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                              nn.Linear(16, net.tasks[t].num_classes))
        plain.load_state_dict(exported.state_dict(), strict=True)


def test_checkpoint_of_the_other_head_is_refused(tmp_path):
    net, _ = trained_net(classes=(2,))
    save_pretrained(net, tmp_path / "ckpt", "lenet", (1, 28, 28))
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0, num_tasks=2))
    with pytest.raises(ExssnetError, match="head='per-task', this run needs 'masked'"):
        load_compatible(tmp_path / "ckpt", benchmark, model="lenet", density=0.5, keep_scores=False)


def test_a_corrupted_head_tensor_is_one_clear_error(tmp_path):
    from safetensors.torch import load_file, save_file

    net, _ = trained_net(classes=(3, 2))
    save_pretrained(net, tmp_path / "ckpt", "mlp", (12,))
    path = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["head.1.weight"] = torch.zeros(3, 16)  # task 1 has 2 classes
    save_file(tensors, str(path), metadata={"format": "exssnet-supermask"})
    with pytest.raises(ExssnetError, match="head.1.weight"):
        from_pretrained(tmp_path / "ckpt", model=mlp())


def test_keep_starts_every_head_from_the_models_own_classifier():
    torch.manual_seed(0)
    model = mlp()
    own_weight, own_bias = model[4].weight.detach().clone(), model[4].bias.detach().clone()
    net = to_supermask(model, 0.5, init="keep", head="per-task")
    net.add_task(3)
    net.finish_task()
    net.add_task(5)
    (head,) = net.head_layers()
    assert torch.equal(head.task_weight["0"], own_weight[:3]) and torch.equal(head.task_bias["0"], own_bias[:3])
    assert torch.equal(head.task_weight["1"], own_weight) and torch.equal(head.task_bias["1"], own_bias)


def test_task_inference_differentiates_through_the_heads():
    net, x = trained_net(classes=(3, 3, 3))
    per_example = entropy_gradients(net, x[:6], mode="example", bn="mixture")
    for b in range(6):  # exact: each example's gradient is that example's batch gradient
        alone = entropy_gradients(net, x[b : b + 1], mode="batch", bn="mixture")
        assert torch.allclose(per_example[b], alone, atol=1e-6)
    expected = net.logits(x, 1)
    with net.superposed([1], torch.ones(1), "mixture"):
        assert torch.allclose(net(x)[:, :3], expected, atol=1e-6)  # one task's superposition is that task


def test_rescue_restart_resets_the_head_and_restores_it():
    net, x = trained_net(classes=(2,))
    net.add_task(2)
    (head,) = net.head_layers()
    with torch.no_grad():
        head.task_weight["1"].add_(1.0)
    scores, norms, heads = net.mask_phase_state()
    trained = head.task_weight["1"].detach().clone()
    net.restart_task()
    assert not torch.equal(head.task_weight["1"], trained)  # a fresh head with the fresh start
    net.restart_task(scores, norms, heads)
    assert torch.equal(head.task_weight["1"], trained)


def test_kkt_runs_with_per_task_heads_and_copy_is_refused():
    steps = learn("exssnet", num_tasks=2, head="per-task", kkt=True, kkt_batches=2)
    for method, _, t in steps:
        assert method.net.head_layers()[0].num_tasks == t + 1
    with pytest.raises(ExssnetError, match="kkt_head 'copy'"):
        RunConfig.from_dict({**QUICK, "method": "exssnet", "head": "per-task", "kkt": True, "kkt_head": "copy"})


def test_phantom_subnetwork_has_zero_logits_and_leaves_the_heads_alone():
    net, x = trained_net(classes=(3,))
    before = net.logits(x, 0).clone()
    scores = {name: torch.randn_like(layer.weight) for name, layer in net.named_masked_layers()}
    with net.scored(scores):
        assert torch.equal(net(x), torch.zeros(32, 5))
    assert torch.equal(net.logits(x, 0), before)


def test_wrap_refusals():
    with pytest.raises(ExssnetError, match="head must be one of"):
        to_supermask(mlp(), 0.5, init="signed-constant", head="dense")
    with pytest.raises(ExssnetError, match="one Linear"):
        to_supermask(nn.Linear(4, 2), 0.5, init="signed-constant", head="per-task")


def test_resume_after_crash_is_identical_with_per_task_heads(tmp_path):
    config = RunConfig.from_dict({**QUICK, "method": "wsn", "model": "lenet-bn", "num_tasks": 3, "seed": 1, "threads": 1,
                          "head": "per-task"})
    assert comparable(crash_then_resume(config, tmp_path)) == comparable(run_experiment(config, progress=False))


def test_cli_refuses_a_bad_head_and_a_method_that_has_none(tmp_path):
    base = [sys.executable, "-m", "exssnet", "run", "--benchmark", "split-digits", "--num-tasks", "1",
            "--mask-epochs", "1", "--weight-epochs", "1", "--out", str(tmp_path / "run")]
    bad = subprocess.run(base + ["--method", "exssnet", "--head", "dense"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("exssnet: error: head must be")
    dense = subprocess.run(base + ["--method", "naive", "--head", "per-task"], capture_output=True, text=True)
    assert dense.returncode == 2 and "head" in dense.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
