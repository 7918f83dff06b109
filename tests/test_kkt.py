"""KKT: the KNN vote, the source choice on constructed streams, cloning, binary masks, CLI and resume."""

import json

import pytest
import torch

from exssnet import to_supermask
from exssnet.cli import main
from exssnet.data.tasks import Benchmark, Split, TaskData
from exssnet.errors import ExssnetError
from exssnet.kkt import (
    KKTSettings,
    choose_source,
    kkt_initial_scores,
    knn_accuracy,
    knn_predict,
    penultimate_features,
    scores_from_mask,
)
from exssnet.layers.topk import topk_mask
from exssnet.methods.supermask_methods import SupermaskMethod
from exssnet.models import build_model
from exssnet.run.config import RunConfig
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment
from exssnet.seeds import task_seed
from exssnet.supermask import WeightRule

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
    method = SupermaskMethod(config, Benchmark("synthetic", tasks, (DIM,)), weight_rule=None
                             if config.method == "supsup" else WeightRule.EXCLUSIVE, settings=config.settings_of())
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
    with_kkt, records = learn(tasks, **settings)
    without, plain = learn(tasks, **{**settings, "kkt": False})
    assert records[1]["kkt"]["source"] is None and records[1]["kkt"]["init"] == "random"
    assert records[1]["kkt"]["knn_acc"][0] <= 50.0
    assert "kkt" not in plain[1]
    for a, b in zip(with_kkt.net.masked_layers(), without.net.masked_layers()):
        assert torch.equal(a.mask_of(1), b.mask_of(1)) and torch.equal(a.weight, b.weight)


def test_kkt_scores_are_clones_of_the_source():
    method, _ = learn([gaussian_task("A", 0, 2)], mask_epochs=1, weight_epochs=0)
    net = method.net
    source = {name: s.clone() for name, s in net.task_scores(0).items()}
    scores, choice = kkt_initial_scores(net, gaussian_task("A2", 0, 3), 1, KKTSettings(),
                                        torch.Generator().manual_seed(0))
    assert choice.source == 0 and choice.init == "scores"
    for name, s in scores.items():
        assert torch.equal(s, source[name]) and s.data_ptr() != net.task_scores(0)[name].data_ptr()
        s.add_(1.0)
    net.add_task(2, initial_scores=scores)
    for p in net.score_parameters(1):
        p.data.mul_(-3.0)
    assert all(torch.equal(net.task_scores(0)[name], source[name]) for name in source)


def test_fresh_head_copies_every_layer_but_the_classifier():
    method, _ = learn([gaussian_task("A", 0, 2)], mask_epochs=1, weight_epochs=0)
    net = method.net
    source = net.task_scores(0)
    classifier = list(source)[-1]
    scores, choice = kkt_initial_scores(net, gaussian_task("A2", 0, 3), 1, KKTSettings(head="fresh"),
                                        torch.Generator().manual_seed(0))
    assert choice.source == 0 and choice.classifier == classifier and choice.to_dict()["classifier"] == classifier
    assert set(scores) == set(source) - {classifier}
    assert all(torch.equal(scores[name], source[name]) for name in scores)
    torch.manual_seed(5)
    net.add_task(2, initial_scores=scores)
    new = net.task_scores(1)
    assert all(torch.equal(new[name], source[name]) for name in scores)
    assert not torch.equal(new[classifier], source[classifier])
    bound = 1 / net.masked_layers()[-1].weight[0].numel() ** 0.5  # a fresh draw: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert new[classifier].abs().max() <= bound


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
])
def test_bad_kkt_settings_give_one_clear_error(args, message, capsys):
    assert main(["run", *FAST, "--kkt", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    with pytest.raises(ExssnetError, match=message.split(",")[0]):
        RunConfig.from_dict({args[0][2:].replace("-", "_"): args[1] if args[0] == "--kkt-head" else int(args[1])})


def test_kkt_is_refused_by_a_method_that_ignores_it(capsys):
    with pytest.raises(ExssnetError, match="--kkt is not supported for method 'ewc' \\(only exssnet, ssnet, supsup\\)"):
        RunConfig.from_dict({"method": "ewc", "kkt": True})
    assert main(["run", *FAST, "--method", "ewc", "--kkt"]) == 2
    assert "exssnet: error: --kkt is not supported for method 'ewc'" in capsys.readouterr().err
    assert RunConfig.from_dict({"method": "ewc", "kkt": False}).to_dict()["kkt"] is False
    assert RunConfig.from_dict({"method": "supsup", "kkt": True}).settings_of().kkt is True


@pytest.mark.parametrize("keep_scores", [True, False])
def test_resume_with_kkt_is_identical(tmp_path, keep_scores):
    from test_resume import Crash

    config = RunConfig.from_dict(dict(benchmark="split-digits", density=0.2, mask_epochs=1, weight_epochs=1,
                                      num_tasks=3, kkt=True, kkt_batches=3, keep_scores=keep_scores, threads=1))
    reference = run_experiment(config, out=tmp_path / "ref", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(config, out=tmp_path / "run", progress=False, hooks=[Crash(at=1)])
    resumed = run_experiment(config, out=tmp_path / "run", progress=False, resume=True)
    assert comparable(resumed) == comparable(reference)
    assert [t["kkt"]["source"] for t in resumed["tasks"]][0] is None
    assert all(len(t["kkt"]["knn_acc"]) == i for i, t in enumerate(resumed["tasks"]))
