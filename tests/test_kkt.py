"""KKT: the KNN vote, the source choice on constructed streams, cloning, binary masks, CLI and resume."""

import json
import re

import pytest
import torch
from conftest import crash_then_resume

from exssnet import to_supermask
from exssnet.cli import main
from exssnet.data.tasks import Benchmark, Split, TaskData
from exssnet.errors import ExssnetError
from exssnet.kkt import (
    KKTSettings,
    blend_scores,
    choose_source,
    fresh_features,
    fresh_scores,
    kkt_initial_scores,
    knn_accuracy,
    knn_predict,
    mcnemar_p,
    paired_decision,
    penultimate_features,
    scores_from_mask,
)
from exssnet.layers.topk import topk_mask
from exssnet.methods import build_method
from exssnet.methods.supermask_methods import SupermaskMethod
from exssnet.models import build_model
from exssnet.run.config import RunConfig
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment
from exssnet.seeds import task_seed

DIM = 32


# ----- the pure KNN ----------------------------------------------------------------------
def test_knn_predict_on_hand_made_points():
    train_x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [10.0, 10.0], [10.0, 11.0], [11.0, 10.0]])
    train_y = torch.tensor([0, 0, 0, 1, 1, 1])
    query = torch.tensor([[0.2, 0.2], [10.5, 10.5], [9.0, 9.0]])
    assert knn_predict(train_x, train_y, query, k=1, num_classes=2).tolist() == [0, 1, 1]
    assert knn_predict(train_x, train_y, query, k=3, num_classes=2).tolist() == [0, 1, 1]
    # k=5 near the 0-cluster: three 0s and two 1s vote 0; k above the point count is capped (tie -> class 0)
    assert knn_predict(train_x, train_y, query[:1], k=5, num_classes=2).tolist() == [0]
    assert knn_predict(train_x, train_y, query, k=99, num_classes=2).tolist() == [0, 0, 0]
    assert knn_accuracy(train_x, train_y, query, torch.tensor([0, 1, 0]), k=1, num_classes=2) == pytest.approx(200 / 3)


def test_choose_source_needs_to_beat_chance():
    assert choose_source([], 50.0) is None
    assert choose_source([40.0, 50.0], 50.0) is None
    assert choose_source([60.0, 90.0, 90.0], 50.0) == 1  # best, lowest id among equals
    assert choose_source([20.0, 10.5], 10.0) == 0


def test_mcnemar_p_counts_only_the_points_where_the_two_differ():
    t, f = True, False
    # 6 points only the candidate gets right, 1 only the reference: P(Bin(7, 1/2) >= 6) = 8/128
    candidate = torch.tensor([t] * 6 + [f] + [t] * 50 + [f] * 5)
    reference = torch.tensor([f] * 6 + [t] + [t] * 50 + [f] * 5)
    assert mcnemar_p(candidate, reference) == pytest.approx(8 / 128)
    assert mcnemar_p(reference, candidate) == pytest.approx(127 / 128)
    assert mcnemar_p(candidate, candidate) == 1.0  # no discordant point: no evidence
    assert mcnemar_p(torch.ones(10, dtype=torch.bool), torch.zeros(10, dtype=torch.bool)) == pytest.approx(2**-10)


def test_paired_decision_divides_alpha_by_the_candidates():
    assert paired_decision(0.03, 0.05, 1) and not paired_decision(0.03, 0.05, 2)
    assert paired_decision(0.0249, 0.05, 2) and not paired_decision(0.05, 0.05, 1)


def test_blend_scores_mixes_source_and_fresh():
    source, fresh = {"a": torch.full((2, 3), 4.0)}, {"a": torch.full((2, 3), 2.0)}
    assert torch.equal(blend_scores(source, fresh, 0.25)["a"], torch.full((2, 3), 2.5))
    copy = blend_scores(source, fresh, 1.0)["a"]
    assert torch.equal(copy, source["a"]) and copy.data_ptr() != source["a"].data_ptr()


def test_scores_from_mask_reproduce_the_mask_under_top_k():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(100, 40)
    mask = topk_mask(scores, 0.1)
    rebuilt = scores_from_mask(mask, generator)
    assert torch.equal(topk_mask(rebuilt, 0.1), mask)
    bound = 1 / 40 ** 0.5
    assert rebuilt.min() >= 0 and rebuilt.max() <= 2 * bound and rebuilt[mask].min() >= bound


def test_penultimate_features_are_the_input_of_the_last_masked_layer():
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.finish_task()
    x = torch.randn(5, 1, 8, 8)
    features = penultimate_features(net, x, 0)
    assert features.shape == (5, 100)
    net.eval()
    net.set_task(0)
    head = net.masked_layers()[-1]
    assert torch.allclose(torch.nn.functional.linear(features, head.effective_weight()), net(x))


def test_penultimate_features_of_a_resnet_are_its_pooled_features():
    torch.manual_seed(0)
    net = to_supermask(build_model("resnet18-reduced", (3, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.finish_task()
    x = torch.randn(3, 3, 8, 8)
    features = penultimate_features(net, x, 0)
    net.eval()
    net.set_task(0)
    with torch.no_grad():
        assert torch.equal(features, net.model.forward_features(x))


def test_fresh_scores_are_the_next_draw_and_leave_the_global_rng_alone():
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.finish_task()
    torch.manual_seed(3)
    fresh = fresh_scores(net)
    after = torch.rand(3)
    torch.manual_seed(3)
    net.add_task(2)  # draws its scores from the global RNG
    drawn = net.task_scores(1)
    assert set(fresh) == set(drawn) and all(torch.equal(fresh[name], drawn[name]) for name in drawn)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(3), after)  # fresh_scores did not advance the global RNG


def test_fresh_features_are_those_of_the_top_k_subnetwork_and_leave_no_trace():
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet", (1, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.finish_task()
    scores = fresh_scores(net)
    x = torch.randn(5, 1, 8, 8)
    stored = [list(layer.scores) for layer in net.masked_layers()]
    features = fresh_features(net, x, scores)
    hidden = x.flatten(1)
    batchnorm = bool(net.norm_layers())
    for name, layer in list(net.named_masked_layers())[:2]:  # Linear -> [BatchNorm on the batch's statistics] -> ReLU
        hidden = hidden @ (layer.weight * topk(scores[name])).T
        if batchnorm:
            hidden = (hidden - hidden.mean(0)) / (hidden.var(0, unbiased=False) + 1e-5).sqrt()
        hidden = torch.relu(hidden)
    assert torch.allclose(features, hidden, atol=1e-5)
    assert [list(layer.scores) for layer in net.masked_layers()] == stored and net.active_task == 0
    assert torch.equal(penultimate_features(net, x, 0), penultimate_features(net, x, 0))


def topk(scores: torch.Tensor) -> torch.Tensor:
    from exssnet.layers.topk import topk_mask

    return topk_mask(scores, 0.3).float()


# ----- constructed streams -----------------------------------------------------------------
def gaussian_task(name: str, signal_dim: int, seed: int, flip: bool = False, n: int = 600) -> TaskData:
    """Label = sign of one input coordinate (of 32 Gaussian ones); `flip` swaps the two labels."""
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> Split:
        x = torch.randn(count, DIM, generator=generator)
        y = (x[:, signal_dim] > 0).long()
        return Split(x, 1 - y if flip else y)

    return TaskData(name, ["neg", "pos"], split(n), split(100), split(200))


def constant_task(name: str, n: int = 600) -> TaskData:
    """Identical inputs with exactly balanced labels: no feature can beat chance."""
    def split(count: int) -> Split:
        return Split(torch.zeros(count, DIM), torch.arange(count) % 2)

    return TaskData(name, ["a", "b"], split(n), split(100), split(200))


def learn(tasks: list[TaskData], **overrides) -> tuple[SupermaskMethod, list[dict]]:
    """Learn `tasks` in order the way the runner does (global seed per task)."""
    values = dict(method="exssnet", density=0.2, mask_epochs=3, weight_epochs=1, batch_size=64, seed=0, kkt=True, keep_scores=True)
    config = RunConfig.from_dict({**values, **overrides})
    torch.manual_seed(config.seed)
    method = build_method(config, Benchmark("synthetic", tasks, (DIM,)))
    assert isinstance(method, SupermaskMethod) and method.name == config.method
    records = [learn_one(method, tasks, t) for t in range(len(tasks))]
    return method, records


def learn_one(method: SupermaskMethod, tasks: list[TaskData], t: int) -> dict:
    torch.manual_seed(task_seed(method.config.seed, t))
    return method.learn_task(t, tasks[t], progress=False, on_epoch=None)


def old_logits(method: SupermaskMethod, x: torch.Tensor, upto: int) -> list[torch.Tensor]:
    method.eval_mode()
    with torch.no_grad():
        return [method.logits(x, j).clone() for j in range(upto)]


@pytest.mark.parametrize("method_name, keep_scores", [("exssnet", True), ("supsup", True), ("exssnet", False)])
def test_kkt_picks_the_related_task_and_leaves_old_tasks_untouched(method_name, keep_scores):
    """Stream: unrelated U, related A, unrelated V, then a relabelled copy of A -> source is A (task 1)."""
    first = [gaussian_task("U", 5, 1), gaussian_task("A", 0, 2), gaussian_task("V", 9, 3)]
    method, records = learn(first, method=method_name, keep_scores=keep_scores)
    probe = torch.randn(50, DIM, generator=torch.Generator().manual_seed(9))
    before = old_logits(method, probe, 3)
    new = gaussian_task("A-relabelled", 0, 4, flip=True)
    record = learn_one(method, [*first, new], 3)["kkt"]
    assert records[0]["kkt"]["source"] is None and records[0]["kkt"]["knn_acc"] == []
    assert record["source"] == 1, record
    assert record["knn_acc"][1] > max(record["knn_acc"][0], record["knn_acc"][2]) + 10
    assert record["chance"] == 50.0 and record["init"] == ("scores" if keep_scores else "mask")
    assert record["knn_train"] + record["knn_test"] == 600 and record["seconds"] >= 0
    after = old_logits(method, probe, 3)
    assert all(torch.equal(b, a) for b, a in zip(before, after))
    if not keep_scores:
        assert method.net.task_scores(1) is None


def test_nothing_beats_chance_falls_back_to_the_same_random_init_as_without_kkt():
    tasks = [gaussian_task("A", 0, 2), constant_task("C")]
    settings = dict(mask_epochs=1, weight_epochs=1, kkt_batches=20, kkt_k=1000)  # all 600 examples, k >= 400
    with_kkt, records = learn(tasks, **settings, kkt_rule="chance")
    without, plain = learn(tasks, **{**settings, "kkt": False})
    assert records[1]["kkt"]["source"] is None and records[1]["kkt"]["init"] == "random"
    assert records[1]["kkt"]["knn_acc"][0] <= 50.0 and records[1]["kkt"]["decision"] == "not above chance"
    assert "kkt" not in plain[1]
    for a, b in zip(with_kkt.net.masked_layers(), without.net.masked_layers()):
        assert torch.equal(a.mask_of(1), b.mask_of(1)) and torch.equal(a.weight, b.weight)


def test_kkt_scores_are_clones_of_the_source():
    method, _ = learn([gaussian_task("A", 0, 2)], mask_epochs=1, weight_epochs=0)
    net = method.net
    source = {name: s.clone() for name, s in net.task_scores(0).items()}
    scores, choice = kkt_initial_scores(net, gaussian_task("A2", 0, 3), 1, KKTSettings(head="copy"),
                                        torch.Generator().manual_seed(0))
    assert choice.source == 0 and choice.init == "scores"
    for name, s in scores.items():
        assert torch.equal(s, source[name]) and s.data_ptr() != net.task_scores(0)[name].data_ptr()
        s.add_(1.0)
    net.add_task(2, initial_scores=scores)
    for p in net.score_parameters(1):
        p.data.mul_(-3.0)
    assert all(torch.equal(net.task_scores(0)[name], source[name]) for name in source)


@pytest.mark.parametrize("head, blend", [("fresh", 1.0), ("copy", 0.5), ("fresh", 0.5)])
def test_fresh_head_and_blend_start_from_the_fresh_draw_where_asked(head, blend):
    method, _ = learn([gaussian_task("A", 0, 2)], mask_epochs=1, weight_epochs=0)
    net = method.net
    source = net.task_scores(0)
    classifier = list(source)[-1]
    torch.manual_seed(5)
    scores, choice = kkt_initial_scores(net, gaussian_task("A2", 0, 3), 1, KKTSettings(head=head, blend=blend),
                                        torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    fresh = fresh_scores(net)  # what the task would start from without KKT
    assert choice.source == 0 and choice.classifier == classifier and choice.to_dict()["classifier"] == classifier
    assert choice.decision == "transfer" and choice.p_value < 0.05 and choice.fresh_acc < choice.knn_acc[0]
    for name in source:
        expected = fresh[name] if name == classifier and head == "fresh" else blend * source[name] + (1 - blend) * fresh[name]
        assert torch.allclose(scores[name], expected)
    net.add_task(2, initial_scores=scores)
    assert all(torch.equal(net.task_scores(1)[name], scores[name]) for name in scores)


def test_paired_rule_refuses_a_source_no_better_than_a_fresh_subnetwork():
    """Task B's label is a coordinate task A never used: A's features are no better than random ones."""
    tasks = [gaussian_task("A", 0, 2), gaussian_task("B", 9, 3)]
    settings = dict(mask_epochs=1, weight_epochs=1)
    chance = learn(tasks, **settings, kkt_rule="chance")[1][1]["kkt"]
    paired_method, paired = learn(tasks, **settings)
    plain_method, _ = learn(tasks, **{**settings, "kkt": False})
    assert chance["source"] == 0 and chance["decision"] == "transfer" and chance["rule"] == "chance"
    record = paired[1]["kkt"]
    assert record["rule"] == "paired" and record["source"] is None and record["init"] == "random"
    assert record["decision"] == "not clearly above fresh" and record["p_value"] >= 0.05
    assert record["fresh_acc"] == chance["fresh_acc"] and record["knn_acc"] == chance["knn_acc"]
    for a, b in zip(paired_method.net.masked_layers(), plain_method.net.masked_layers()):
        assert torch.equal(a.mask_of(1), b.mask_of(1)) and torch.equal(a.weight, b.weight)


def test_transfer_raises_the_sparse_overlap_with_the_source():
    """Table 11: a task started from an earlier task's scores shares more of its weights with earlier masks."""
    tasks = [gaussian_task("U", 5, 1), gaussian_task("A", 0, 2), gaussian_task("A-relabelled", 0, 4, flip=True)]
    with_kkt, records = learn(tasks)
    without, _ = learn(tasks, kkt=False)
    assert records[2]["kkt"]["source"] == 1
    overlap_with, overlap_without = with_kkt.summary()["sparse_overlap"], without.summary()["sparse_overlap"]
    assert overlap_with[:2] == overlap_without[:2]  # tasks 0 and 1 did not transfer: identical runs
    assert overlap_with[2] > overlap_without[2] + 0.2, (overlap_with, overlap_without)


# ----- config, CLI and resume --------------------------------------------------------------
FAST = ["--benchmark", "split-digits", "--density", "0.2", "--mask-epochs", "1", "--weight-epochs", "1",
        "--num-tasks", "3", "--quiet", "--threads", "1"]


def test_cli_run_with_kkt_writes_kkt_entries(tmp_path):
    assert main(["run", *FAST, "--kkt", "--kkt-k", "5", "--kkt-batches", "2", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    entries = [task["kkt"] for task in results["tasks"]]
    assert entries[0]["source"] is None and entries[0]["knn_acc"] == []
    assert [len(e["knn_acc"]) for e in entries] == [0, 1, 2]
    assert all(e["chance"] == 50.0 and e["knn_train"] + e["knn_test"] in (0, 128) for e in entries)
    assert results["config"]["kkt"] is True and results["config"]["kkt_k"] == 5


@pytest.mark.parametrize("args, message", [
    (["--kkt-k", "0"], "kkt_k must be at least 1, got 0"),
    (["--kkt-batches", "-2"], "kkt_batches must be at least 1, got -2"),
    (["--kkt-batch-size", "0"], "kkt_batch_size must be at least 1"),
    (["--kkt-head", "zero"], "kkt_head must be 'copy' or 'fresh', got 'zero'"),
    (["--kkt-rule", "best"], "kkt_rule must be 'chance' or 'paired', got 'best'"),
    (["--kkt-alpha", "1.5"], "kkt_alpha must be in (0, 1), got 1.5"),
    (["--kkt-blend", "0"], "kkt_blend must be in (0, 1], got 0.0"),
])
def test_bad_kkt_settings_give_one_clear_error(args, message, capsys):
    assert main(["run", *FAST, "--kkt", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    with pytest.raises(ExssnetError, match=re.escape(message.split(",")[0])):
        value = {"--kkt-head": str, "--kkt-rule": str, "--kkt-alpha": float, "--kkt-blend": float}.get(args[0], int)(args[1])
        RunConfig.from_dict({args[0][2:].replace("-", "_"): value})


def test_kkt_is_refused_by_a_method_that_ignores_it(capsys):
    with pytest.raises(ExssnetError, match="method 'ewc' does not read --kkt True \\(read by exssnet, ssnet, supsup\\)"):
        RunConfig.from_dict({"method": "ewc", "kkt": True})
    assert main(["run", *FAST, "--method", "ewc", "--kkt"]) == 2
    assert "exssnet: error: method 'ewc' does not read --kkt" in capsys.readouterr().err
    assert "kkt" not in RunConfig.from_dict({"method": "ewc", "kkt": False}).to_dict()  # the default: accepted, unused
    assert RunConfig.from_dict({"method": "supsup", "kkt": True}).settings_of().kkt is True


@pytest.mark.parametrize("keep_scores", [True, False])
def test_resume_with_kkt_is_identical(tmp_path, keep_scores):
    config = RunConfig.from_dict(dict(benchmark="split-digits", density=0.2, mask_epochs=1, weight_epochs=1,
                                      num_tasks=3, kkt=True, kkt_batches=3, keep_scores=keep_scores, threads=1))
    reference = run_experiment(config, out=tmp_path / "ref", progress=False)
    resumed = crash_then_resume(config, tmp_path / "run")
    assert comparable(resumed) == comparable(reference)
    assert [t["kkt"]["source"] for t in resumed["tasks"]][0] is None
    assert all(len(t["kkt"]["knn_acc"]) == i for i, t in enumerate(resumed["tasks"]))


# ----- rescue: a mask phase that ends at chance runs once more from the other start -------------
def test_restart_task_replaces_scores_and_statistics_and_state_round_trips():
    torch.manual_seed(0)
    net = to_supermask(build_model("lenet-bn", (1, 8, 8), 2), density=0.3)
    net.add_task(2)
    net.finish_task()
    net.add_task(2)
    net.train()
    net(torch.randn(16, 1, 8, 8))  # moves task 1's BatchNorm statistics
    scores, norms, heads = net.mask_phase_state()
    assert heads == []  # the masked head has no per-task dense head
    mask_before = [layer.mask_of(0).clone() for layer in net.masked_layers()]
    given = {name: torch.full_like(s, 0.5) for name, s in list(scores.items())[:1]}
    net.restart_task(given)
    now = net.task_scores(1)
    first = next(iter(given))
    assert torch.equal(now[first], given[first]) and not torch.equal(now[first], scores[first])
    assert all(not torch.equal(now[name], scores[name]) for name in list(scores)[1:])  # fresh draws
    assert all(float(norm.norms[1].running_mean.abs().sum()) == 0.0 for norm in net.norm_layers())
    assert net.trainable_parameters() == net.score_parameters(1)
    net.restart_task(scores, norms)
    assert all(torch.equal(net.task_scores(1)[name], scores[name]) for name in scores)
    assert all(torch.equal(norm.norms[1].running_mean, state["running_mean"]) for norm, state in zip(net.norm_layers(), norms))
    assert all(torch.equal(layer.mask_of(0), m) for layer, m in zip(net.masked_layers(), mask_before))
    net.start_weight_phase(True)
    with pytest.raises(ExssnetError, match="only a task in its mask phase can restart"):
        net.restart_task()


def start_and_rescue(method: SupermaskMethod, task: TaskData, t: int, second_acc: float | None):
    """Add task t as learn_task does, pretend its first mask phase ended at chance, and rescue it.

    `second_acc` None: the rescue really trains; else a stand-in training that scrambles the scores and reports it.
    Returns (KKT record, scores the rescue started from, scores before the rescue, history kept).
    """
    from exssnet.methods.loops import PhaseHistory, PhaseSpec, train_phase

    torch.manual_seed(task_seed(method.config.seed, t))
    start = method.initial_scores(t, task)
    method.net.add_task(task.num_classes, initial_scores=start.scores)
    before = method.net.mask_phase_state()[0]
    started: dict = {}

    def train_mask() -> PhaseHistory:
        started.update(method.net.mask_phase_state()[0])
        if second_acc is None:
            return train_phase(PhaseSpec("mask", 1, 0.01, 64, torch.Generator().manual_seed(0)), method.net,
                               method.net_logits_fn(2), method.net.trainable_parameters(), task, progress=False)
        for p in method.net.trainable_parameters():
            p.data.normal_()
        return PhaseHistory("mask", loss=[0.7], val_acc=[second_acc])

    kept, rescue = method.rescue_at_chance(t, task, PhaseHistory("mask", loss=[0.69], val_acc=[50.0]), train_mask,
                                           start.choice)
    return {**start.record, "rescue": rescue}, started, before, kept


def test_rescue_after_a_fresh_start_retries_from_the_best_earlier_task_and_keeps_the_better():
    method, _ = learn([gaussian_task("U", 5, 1), gaussian_task("A", 0, 2)], mask_epochs=1, weight_epochs=1)
    record, started, _, kept = start_and_rescue(method, gaussian_task("B", 9, 3), 2, second_acc=None)
    assert record["source"] is None  # B is unrelated: the paired rule kept the fresh draw
    best = max(range(2), key=lambda j: (record["knn_acc"][j], -j))
    assert record["rescue"]["start"] == f"task {best}" and record["rescue"]["kept"] == "rescue"
    assert record["rescue"]["first_val_acc"] == 50.0 and record["rescue"]["val_acc"] == kept.val_acc[-1] > 60
    source = method.net.task_scores(best)
    assert all(torch.equal(started[name], source[name]) for name in source)  # the whole source, head included


def test_rescue_after_a_transfer_retries_from_the_fresh_draw_and_restores_the_first_when_not_better():
    tasks = [gaussian_task("U", 5, 1), gaussian_task("A", 0, 2)]
    method, _ = learn(tasks, mask_epochs=1, weight_epochs=1)
    torch.manual_seed(task_seed(0, 2))
    fresh = fresh_scores(method.net)
    record, started, before, kept = start_and_rescue(method, gaussian_task("A2", 0, 4, flip=True), 2, second_acc=40.0)
    assert record["source"] == 1 and record["rescue"]["start"] == "fresh" and record["rescue"]["kept"] == "first"
    assert all(torch.equal(started[name], fresh[name]) for name in fresh)  # the start the run without KKT uses
    assert kept.val_acc == [50.0] and record["rescue"]["other_phase"]["val_acc"] == [40.0]
    assert all(torch.equal(method.net.task_scores(2)[name], before[name]) for name in before)


def test_a_task_at_chance_either_way_keeps_its_first_start_and_the_rescue_is_recorded():
    tasks = [gaussian_task("A", 0, 2), constant_task("C")]
    with_kkt, records = learn(tasks, mask_epochs=1, weight_epochs=1)
    without, _ = learn(tasks, mask_epochs=1, weight_epochs=1, kkt=False)
    no_rescue, plain = learn(tasks, mask_epochs=1, weight_epochs=1, kkt_rescue=False)
    rescue = records[1]["kkt"]["rescue"]
    assert rescue["start"] == "task 0" and rescue["kept"] == "first" and rescue["first_val_acc"] <= 55
    assert "rescue" not in plain[1]["kkt"] and "rescue" not in records[0]["kkt"]
    for a, b in zip(with_kkt.net.masked_layers(), without.net.masked_layers()):
        assert torch.equal(a.mask_of(1), b.mask_of(1)) and torch.equal(a.weight, b.weight)
