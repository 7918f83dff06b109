"""Dense baselines: end-to-end runs, regulariser and buffer invariants, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_accuracy_matrix, crash_then_resume, own_keys

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.methods import build_method, method_names
from exssnet.methods.base import METHODS, method_text_inputs
from exssnet.methods.baselines.agem import project_gradient
from exssnet.methods.baselines.dense import DenseMethod
from exssnet.methods.baselines.lwf import distillation_loss
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.methods.baselines.replay_buffer import ReservoirBuffer
from exssnet.run.config import RunConfig, methods_reading
from exssnet.run.resume import comparable
from exssnet.run.runner import load_benchmark, run_experiment

TINY = dict(benchmark="split-digits", num_tasks=3, baseline_epochs=1, mask_epochs=1, weight_epochs=1, batch_size=64, seed=0)
# cgate's gates start half open and noisy (straight-through Gumbel): it needs more than the 5 steps of one epoch here
# packnet prunes 2/3 of each layer after its 5 steps: at the default weight_lr the weights barely leave their
# signed-constant start (all of one magnitude), so which third survives would be chance
SLOWER = {"cgate": dict(baseline_epochs=2, batch_size=32), "packnet": dict(weight_lr=0.005)}
VISION_METHODS = [m for m in method_names() if method_text_inputs(m) == "features"]  # language methods: test_language.py


@pytest.fixture(scope="module")
def tiny_runs() -> dict[str, dict]:
    """One 3-task, 1-epoch run per registered method (shared by the tests below)."""
    torch.set_num_threads(1)
    return {m: run_experiment(RunConfig.from_dict(own_keys(m, dict(method=m, **{**TINY, **SLOWER.get(m, {})}))), progress=False)
            for m in VISION_METHODS}


def method_for(name: str, **overrides):
    config = RunConfig.from_dict(own_keys(name, {"method": name, **TINY, **overrides}))
    return build_method(config, load_benchmark(config))


@pytest.mark.parametrize("method", VISION_METHODS)
def test_every_registered_method_runs_end_to_end(tiny_runs, method):
    results = tiny_runs[method]
    assert results["method"] == method
    assert_accuracy_matrix(results, 3)
    assert results["avg_acc"] > 60.0  # far above chance (50%) after one epoch on 2-class tasks


@pytest.mark.parametrize("method", ["individual", "joint"])
def test_individual_and_joint_do_not_forget(tiny_runs, method):
    acc = tiny_runs[method]["acc_matrix"]
    assert tiny_runs[method]["forgetting"] == 0.0
    assert all(acc[i][j] == acc[j][j] for j in range(3) for i in range(j, 3))  # every column is constant


def test_naive_changes_old_tasks(tiny_runs):
    """The contrast that makes the zero-forgetting test meaningful: a shared trunk does move old answers."""
    acc = tiny_runs["naive"]["acc_matrix"]
    assert any(acc[i][j] != acc[j][j] for j in range(3) for i in range(j + 1, 3))


def test_replay_buffers_hold_every_task(tiny_runs):
    for method in ("er", "der", "derpp"):
        counts = tiny_runs[method]["buffer_task_counts"]
        assert set(counts) == {"0", "1", "2"} and sum(counts.values()) <= RunConfig.from_dict({"method": method}).settings_of().buffer_size
    assert set(tiny_runs["agem"]["buffer_task_counts"]) == {"0", "1", "2"}  # offered at each task's end


def test_ewc_penalty_zero_at_anchor_positive_away():
    method = method_for("ewc", ewc_lambda=10.0)
    params = method.net.shared_parameters()
    method.consolidate({n: torch.ones_like(p) for n, p in params.items()}, params)
    assert method.penalty().item() == 0.0
    with torch.no_grad():
        next(iter(params.values())).add_(0.1)
    assert method.penalty().item() > 0.0


def test_ewc_fisher_is_nonnegative_and_informative():
    method = method_for("ewc")
    benchmark = method.benchmark
    method.learn_task(0, benchmark.tasks[0], progress=False, on_epoch=None)
    fisher, anchor = method.consolidated[0]
    assert all((f >= 0).all() for f in fisher.values()) and any(f.sum() > 0 for f in fisher.values())


def test_ewc_batch_fisher_is_hats_estimator_and_batch_one_is_per_example():
    """ewc_fisher_batch B: sum over batches of |b| * (grad of the batch's mean loss)^2 / n (HAT's fisher_matrix_diag);
    B = 1 is the mean squared per-example gradient; ewc_fisher_examples bounds the examples read (0: all)."""
    from exssnet.methods.baselines.ewc import diagonal_fisher

    method = method_for("ewc")
    task = method.benchmark.tasks[0]
    method.learn_task(0, task, progress=False, on_epoch=None)  # task 0's head exists, the weights are trained
    params = method.net.shared_parameters()
    n = 10

    def squared_grad(index):
        loss = torch.nn.functional.cross_entropy(method.net(task.train.x[index], 0), task.train.y[index])
        return [g ** 2 for g in torch.autograd.grad(loss, list(params.values()))]

    method.net.eval()
    per_example = [squared_grad(torch.tensor([i])) for i in range(n)]
    batches = [(4, squared_grad(torch.arange(s, min(n, s + 4)))) for s in range(0, n, 4)]
    expected_one = [sum(g[k] for g in per_example) / n for k in range(len(params))]
    expected_four = [sum(min(size, n - 4 * i) * g[k] for i, (size, g) in enumerate(batches)) / n for k in range(len(params))]
    one = diagonal_fisher(method.net, 0, task, max_examples=n, batch=1)
    four = diagonal_fisher(method.net, 0, task, max_examples=n, batch=4)
    assert all(torch.allclose(one[name], e, atol=1e-7) for name, e in zip(params, expected_one))
    assert all(torch.allclose(four[name], e, atol=1e-7) for name, e in zip(params, expected_four))
    assert sum(float(f.sum()) for f in four.values()) < sum(float(f.sum()) for f in one.values())
    every = diagonal_fisher(method.net, 0, task, max_examples=0, batch=len(task.train))
    mean_grad = squared_grad(torch.arange(len(task.train)))
    assert all(torch.allclose(every[name], e, atol=1e-7) for name, e in zip(params, mean_grad))


def test_online_ewc_fisher_accumulates_with_decay():
    method = method_for("online-ewc", ewc_gamma=0.5)
    params = method.net.shared_parameters()
    method.consolidate({n: torch.ones_like(p) for n, p in params.items()}, params)
    second_anchor = {n: p.detach() + 1.0 for n, p in params.items()}
    method.consolidate({n: 2 * torch.ones_like(p) for n, p in params.items()}, second_anchor)
    assert len(method.consolidated) == 1
    fisher, anchor = method.consolidated[0]
    assert all(torch.allclose(f, torch.full_like(f, 0.5 * 1 + 2)) for f in fisher.values())
    assert all(torch.equal(anchor[n], second_anchor[n]) for n in anchor)
    offline = method_for("ewc")
    for _ in range(2):
        offline.consolidate({n: torch.ones_like(p) for n, p in params.items()}, params)
    assert len(offline.consolidated) == 2


def test_ewc_mean_merge_keeps_the_running_mean_fisher_and_the_newest_anchor():
    """ewc_merge 'mean': one pair; after tasks with Fisher 1, 2, 6 it holds 3 (the mean) and the last anchor."""
    method = method_for("ewc", ewc_merge="mean")
    params = method.net.shared_parameters()
    for value in (1.0, 2.0, 6.0):
        last = {n: p.detach() + value for n, p in params.items()}
        method.consolidate({n: torch.full_like(p, value) for n, p in params.items()}, last)
    assert len(method.consolidated) == 1
    fisher, anchor = method.consolidated[0]
    assert all(torch.allclose(f, torch.full_like(f, 3.0)) for f in fisher.values())
    assert all(torch.equal(anchor[n], last[n]) for n in anchor)


def test_si_importance_grows_and_is_nonnegative():
    method = method_for("si")
    method.learn_task(0, method.benchmark.tasks[0], progress=False, on_epoch=None)
    importance = method.importance.values()
    assert all((w >= 0).all() for w in importance) and any(w.sum() > 0 for w in importance)


def test_distillation_is_zero_for_identical_logits():
    logits = torch.randn(8, 3)
    assert distillation_loss(logits, logits, 2.0).abs().item() < 1e-6
    assert distillation_loss(logits, -logits, 2.0).item() > 0


def test_reservoir_buffer_never_overflows_and_keeps_every_task():
    buffer = ReservoirBuffer(capacity=50, seed=0)
    for task in range(5):
        for _ in range(8):
            x, y = torch.randn(25, 4), torch.randint(0, 2, (25,))
            buffer.add(x, y, torch.full_like(y, task))
            assert len(buffer) <= 50
    assert len(buffer) == 50 and buffer.seen == 1000
    assert set(buffer.task_counts()) == set(range(5))
    batch = buffer.sample(80)
    assert batch.x.shape == (50, 4) and batch.logits is None


def test_reservoir_buffer_rejects_empty_capacity():
    with pytest.raises(ExssnetError, match="buffer_size must be at least 1"):
        ReservoirBuffer(0, seed=0)


@pytest.mark.parametrize("grad, reference", [([1.0, 0.0], [-1.0, 1.0]), ([2.0, -3.0, 1.0], [1.0, 1.0, 0.0])])
def test_agem_projection_removes_conflict(grad, reference):
    g, r = torch.tensor(grad), torch.tensor(reference)
    assert torch.dot(g, r) < 0
    projected = project_gradient(g, r)
    assert torch.dot(projected, r).item() >= -1e-6
    assert torch.dot(projected, r).abs().item() < 1e-6  # projected onto the constraint boundary


def test_agem_projection_keeps_agreeing_gradient():
    g, r = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])
    assert torch.equal(project_gradient(g, r), g)
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        g, r = torch.randn(10, generator=gen), torch.randn(10, generator=gen)
        assert torch.dot(project_gradient(g, r), r).item() >= -1e-5


def test_multihead_replaces_the_last_linear():
    net = MultiHeadNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)))
    net.add_head(3)
    assert net.feature_dim == 6 and net(torch.randn(5, 4), 0).shape == (5, 3)


def test_unknown_method_lists_every_method():
    with pytest.raises(ExssnetError) as info:
        method_for("bogus")
    for name in method_names():
        assert name in str(info.value)


@pytest.mark.parametrize("key, value, message", [
    ("ewc_lambda", -1.0, "ewc_lambda must be a finite number >= 0"),
    ("ewc_gamma", 1.5, "ewc_gamma must be in [0, 1]"),
    ("ewc_merge", "sum", "ewc_merge must be 'per-task' or 'mean'"),
    ("ewc_fisher_batch", 0, "ewc_fisher_batch must be at least 1"),
    ("ewc_fisher_examples", -1, "ewc_fisher_examples must be >= 0"),
    ("si_c", float("nan"), "si_c must be a finite number >= 0"),
    ("si_xi", 0.0, "si_xi must be a finite number > 0"),
    ("lwf_temperature", -2.0, "lwf_temperature must be a finite number > 0"),
    ("buffer_size", 0, "buffer_size must be at least 1"),
    ("replay_batch_size", 0, "replay_batch_size must be at least 1"),
    ("agem_mem_batch", 0, "agem_mem_batch must be at least 1"),
    ("der_alpha", -0.1, "der_alpha must be a finite number >= 0"),
    ("baseline_epochs", -1, "baseline_epochs must be >= 0"),
    ("baseline_lr", 0.0, "baseline_lr must be a finite number > 0"),
    ("baseline_head", "masked", "baseline_head must be 'per-task' or 'shared'"),
])
def test_bad_hyperparameters_are_refused(key, value, message):
    with pytest.raises(ExssnetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RunConfig.from_dict({"method": methods_reading(key)[0], key: value})


def test_baseline_epochs_default_matches_supermask_budget():
    assert method_for("naive", mask_epochs=3, weight_epochs=4, baseline_epochs=None).epochs_per_task == 7
    assert method_for("naive", mask_epochs=3, weight_epochs=4, baseline_epochs=2).epochs_per_task == 2


DENSE_METHODS = [m for m in VISION_METHODS if issubclass(METHODS.get(m).factory, DenseMethod)]


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_a_crashed_dense_run_resumes_to_the_uninterrupted_result(tiny_runs, method, tmp_path):
    config = RunConfig.from_dict(own_keys(method, dict(method=method, **{**TINY, **SLOWER.get(method, {})})))
    # crashed in the last of the 3 tasks: the checkpoint holds two finished tasks' state (two heads, nets, Fishers)
    assert comparable(crash_then_resume(config, tmp_path, at=2)) == comparable(tiny_runs[method])


def test_cli_run_with_out_writes_a_method_state_checkpoint_and_resumes_from_it(tmp_path, capsys):
    flags = ["run", "--benchmark", "split-digits", "--num-tasks", "2", "--baseline-epochs", "1", "--quiet",
             "--method", "er", "--buffer-size", "40", "--out", str(tmp_path)]
    assert main(flags) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["buffer_size"] == 40 and len(results["acc_matrix"]) == 2
    folder = tmp_path / "checkpoints" / "task-001"
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "exssnet-method-state" and config["method"] == "er"
    assert config["values"]["num_learned"] == 2 and config["values"]["buffer"]["size"] == 40
    assert {"config.json", "state.safetensors"} <= {p.name for p in folder.iterdir()}
    assert all(p.suffix in (".json", ".safetensors") for p in folder.iterdir())  # nothing that runs code on load
    capsys.readouterr()
    assert main(["run", "--out", str(tmp_path), "--resume"]) == 2
    assert "is already complete" in capsys.readouterr().err
    method = method_for("ewc")
    with pytest.raises(ExssnetError, match="holds the state of method 'er', not 'ewc'"):
        method.load_checkpoint(folder)
    assert main(["evaluate", str(folder), "--benchmark", "split-digits"]) == 2
    assert "the resume state of a 'er' run, not a supermask model" in capsys.readouterr().err


def test_a_damaged_method_state_is_refused_with_a_clear_error(tmp_path):
    method = method_for("er", buffer_size=40)
    method.save_checkpoint(tmp_path / "ckpt", {})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del config["values"]["buffer"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExssnetError, match="replay buffer 'buffer' is missing or damaged"):
        method_for("er", buffer_size=40).load_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "state.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ExssnetError, match="state.safetensors is corrupted or truncated"):
        method_for("er", buffer_size=40).load_checkpoint(tmp_path / "ckpt")


def test_shared_head_is_one_module_every_task_trains_and_regularisers_protect():
    """baseline_head 'shared' (GPM's single-head MLP): one Linear for all tasks; training task 1 moves what task 0
    reads (its per-task counterpart stays put), and EWC's Fisher and anchor cover the head."""
    per_task, shared = method_for("naive"), method_for("naive", baseline_head="shared")
    for method in (per_task, shared):
        for t in (0, 1):
            method.learn_task(t, method.benchmark.tasks[t], progress=False, on_epoch=None)
    assert shared.net.heads[0] is shared.net.heads[1] and shared.net.heads[0].out_features == shared.benchmark.max_classes
    assert per_task.net.heads[0] is not per_task.net.heads[1]
    assert len(list(shared.net.parameters())) == len(list(shared.net.trunk.parameters())) + 2
    before = {name: p.detach().clone() for name, p in shared.net.heads[0].named_parameters()}
    untouched = {name: p.detach().clone() for name, p in per_task.net.heads[0].named_parameters()}
    for method in (per_task, shared):
        method.learn_task(2, method.benchmark.tasks[2], progress=False, on_epoch=None)
    assert any(not torch.equal(p, before[name]) for name, p in shared.net.heads[0].named_parameters())
    assert all(torch.equal(p, untouched[name]) for name, p in per_task.net.heads[0].named_parameters())
    ewc = method_for("ewc", baseline_head="shared")
    ewc.learn_task(0, ewc.benchmark.tasks[0], progress=False, on_epoch=None)
    fisher, anchor = ewc.consolidated[0]
    assert {"shared_head.weight", "shared_head.bias"} <= set(fisher) and fisher.keys() == anchor.keys()
    assert "shared_head.weight" not in method_for("ewc").net.shared_parameters()


@pytest.mark.parametrize("method", ["joint", "der", "lwf", "si"])
def test_methods_that_read_heads_themselves_run_with_a_shared_head(method):
    """Joint's mixed batches, DER's stored logits, LwF's teacher copy and SI's importance all see the one head."""
    config = RunConfig.from_dict(own_keys(method, dict(method=method, **TINY, baseline_head="shared")))
    results = run_experiment(config, progress=False)
    assert_accuracy_matrix(results, 3)
    assert results["avg_acc"] > 50.0
    method_object = build_method(config, load_benchmark(config))
    method_object.learn_task(0, method_object.benchmark.tasks[0], progress=False, on_epoch=None)
    if method == "lwf":
        method_object.before_task(1, method_object.benchmark.tasks[1])
        assert method_object.teacher.heads[0] is method_object.teacher.shared_head


def test_shared_head_refuses_a_task_wider_than_it():
    net = MultiHeadNet(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)), shared_width=3)
    net.add_head(2)
    net.add_head(3)
    with pytest.raises(ExssnetError, match="a task has 4 classes, more than the shared head's 3 outputs"):
        net.add_head(4)


def test_mixed_batches_use_each_examples_own_head():
    torch.manual_seed(0)
    net = MultiHeadNet(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)))
    net.add_head(2)
    net.add_head(3)
    x, y, tasks = torch.randn(6, 4), torch.tensor([0, 1, 2, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 1, 1])
    features = net.features(x)
    padded = net.padded_logits(features, tasks, width=3)
    assert torch.allclose(padded[:2, :2], net(x[:2], 0)) and (padded[:2, 2] == 0).all()
    assert torch.allclose(padded[2:], net(x[2:], 1))
    manual = (torch.nn.functional.cross_entropy(net(x[:2], 0), y[:2], reduction="sum")
              + torch.nn.functional.cross_entropy(net(x[2:], 1), y[2:], reduction="sum")) / 6
    assert torch.allclose(net.mixed_cross_entropy(features, y, tasks), manual)


def test_der_buffer_keeps_logits_of_the_own_head():
    method = method_for("der", buffer_size=30)
    for t in range(2):
        method.learn_task(t, method.benchmark.tasks[t], progress=False, on_epoch=None)
    stored = method.buffer.sample(30)
    assert len(method.buffer) == 30 and stored.logits.shape == (30, method.benchmark.max_classes)
    assert set(stored.task_ids.tolist()) == {0, 1}


@pytest.mark.parametrize("name", ["der", "derpp"])
def test_der_stores_each_batchs_logits_on_its_own_head(name):
    """The rows a step stores are the logits its task's head gave that batch (zero-padded), without and with replay."""
    method = method_for(name, buffer_size=64, replay_batch_size=8)
    width = method.benchmark.max_classes
    for t in range(2):  # task 0: an empty buffer (plain step); task 1: the replay branch
        task = method.benchmark.tasks[t]
        method.before_task(t, task)
        x, y = task.train.x[:16], task.train.y[:16]
        step = method.training_step(x, y, t)
        method.after_step(x, y, t, step)
        with torch.no_grad():
            expected = method.net(x, t)  # no optimizer step was taken: the same weights
        rows = slice(16 * t, 16 * (t + 1))  # the reservoir fills its first slots in order
        assert torch.equal(method.buffer.x[0][rows], x) and (method.buffer.task_ids[rows] == t).all()
        stored = method.buffer.logits[rows]
        assert torch.allclose(stored[:, : task.num_classes], expected, atol=1e-6) and expected.abs().sum() > 0
        assert (stored[:, task.num_classes:] == 0).all() and stored.shape[1] == width
