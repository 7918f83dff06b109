"""wsn and packnet: earlier tasks bit-identical, WSN reuses weights and trains only free entries, PackNet owns its
pruned share; state dict / checkpoint round trips and --resume."""

import pytest
import torch
from conftest import crash_then_resume

from exssnet import to_supermask
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.errors import ExssnetError
from exssnet.layers.topk import kept_count
from exssnet.methods import build_method
from exssnet.models import build_model
from exssnet.run.config import RunConfig
from exssnet.run.resume import comparable
from exssnet.run.runner import run_experiment

QUICK = dict(benchmark="split-digits", density=0.2, mask_epochs=2, weight_epochs=2, mask_lr=0.01, weight_lr=0.005,
             batch_size=64)


def learn(method_name: str, model: str = "lenet", num_tasks: int = 5, **extra):
    """A method and its benchmark; yields after each learned task (the method, the task id)."""
    torch.manual_seed(0)
    config = RunConfig.from_dict({**QUICK, "method": method_name, "model": model, "num_tasks": num_tasks, **extra})
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0, num_tasks=num_tasks))
    method = build_method(config, benchmark)
    for t, task in enumerate(benchmark.tasks):
        method.learn_task(t, task, progress=False, on_epoch=None)
        method.num_learned = t + 1
        yield method, benchmark, t


def probe_of(benchmark) -> torch.Tensor:
    return torch.cat([task.test.x[:20] for task in benchmark.tasks])


def earlier_tasks_identical(steps):
    """Run `learn`'s steps; after each task, whether every earlier task's logits on the probe are bit-identical to
    what they were right after it was learned. Returns (the method, the comparisons)."""
    reference, identical = [], []
    for method, benchmark, t in steps:
        method.eval_mode()
        with torch.no_grad():
            probe = probe_of(benchmark)
            reference.append(method.logits(probe, t).clone())
            identical += [torch.equal(method.logits(probe, j), reference[j]) for j in range(t)]
    return method, identical


@pytest.mark.parametrize("model", ["lenet", "lenet-bn"])
@pytest.mark.parametrize("method_name", ["wsn", "packnet"])
def test_earlier_tasks_stay_bit_identical_over_five_tasks(method_name, model):
    method, identical = earlier_tasks_identical(learn(method_name, model))
    assert len(identical) == 10 and all(identical)
    if model == "lenet-bn":
        assert method.net.norm_layers() and all(norm.num_tasks == 5 for norm in method.net.norm_layers())


def test_packnet_without_reuse_keeps_earlier_tasks_bit_identical():
    _, identical = earlier_tasks_identical(learn("packnet", "lenet-bn", num_tasks=3, packnet_reuse=False))
    assert len(identical) == 3 and all(identical)


def test_wsn_trains_only_free_entries_and_reuses_earlier_weights():
    before = None
    reuse, chance = [], []
    for method, _, t in learn("wsn", num_tasks=4):
        net = method.net
        for i, layer in enumerate(net.masked_layers()):
            earlier = torch.zeros_like(layer.union)
            for j in range(t):
                earlier |= layer.mask_of(j)
            mask = layer.mask_of(t)
            assert int(mask.sum()) == kept_count(mask.numel(), 0.2)  # top-c of every layer, the head too
            if before is not None:
                changed = layer.weight.detach() != before[i]
                assert not changed[earlier].any()  # weights inside earlier masks never move
                assert changed[~earlier].any()
            if t:
                reuse.append(int((mask & earlier).sum()) / int(mask.sum()))
                chance.append(float(earlier.float().mean()))
        before = [layer.weight.detach().clone() for layer in net.masked_layers()]
        assert net.task_scores(t) is None  # the carried scores live in the method, the net keeps only masks
    # scores carried over: a later mask overlaps the earlier union far more than a random mask of its density
    assert all(r > c + 0.2 for r, c in zip(reuse, chance)), (reuse, chance)


def test_wsn_scores_carry_over_between_tasks():
    tasks = learn("wsn", num_tasks=2)
    method, _, _ = next(tasks)
    carried = {k: v.clone() for k, v in method.scores.items()}
    method.net.add_task(2, initial_scores=method.scores)
    assert all(torch.equal(method.net.task_scores(1)[k], carried[k]) for k in carried)


@pytest.mark.parametrize("share, reuse", [("layer", True), ("free", True), ("layer", False)])
def test_packnet_task_owns_exactly_its_pruned_share(share, reuse):
    keep = 0.25
    head = "5"  # lenet's classifier
    unions = None
    owned_first = {}
    for method, _, t in learn("packnet", num_tasks=4, packnet_keep=keep, packnet_share=share, packnet_reuse=reuse):
        net = method.net
        layers = dict(net.named_masked_layers())
        assert list(layers)[-1] == head
        for name, layer in layers.items():
            earlier = unions[name] if unions else torch.zeros_like(layer.union)
            mask = layer.mask_of(t)
            own = mask & ~earlier
            free = int((~earlier).sum())
            of = free if share == "free" else mask.numel()
            assert int(own.sum()) == min(kept_count(of, keep), free)
            owned_first.setdefault(name, []).append(int(own.sum()))
            if name == head or not reuse:
                assert not (mask & earlier).any()  # a task's head (every layer without reuse) is only its own weights
            else:
                assert torch.equal(mask, earlier | own)  # task t uses every weight owned by tasks <= t
        unions = {name: layer.union.clone() for name, layer in layers.items()}
    if share == "layer":
        assert all(u.all() for u in unions.values())  # 4 tasks x 1/4: every weight is owned
    else:  # a quarter of what is still free: each task owns less than the one before, and 0.75^4 stays free
        assert all(a > b for counts in owned_first.values() for a, b in zip(counts, counts[1:]))
        assert all(abs(float((~u).float().mean()) - 0.75 ** 4) < 0.01 for u in unions.values())


@pytest.mark.parametrize("method_name", ["wsn", "packnet"])
def test_state_dict_and_checkpoint_round_trip_after_two_tasks(method_name, tmp_path):
    for method, benchmark, t in learn(method_name, model="lenet-bn", num_tasks=2):
        pass
    method.eval_mode()
    probe = probe_of(benchmark)
    with torch.no_grad():
        expected = [method.logits(probe, j).clone() for j in range(2)]
    fresh = to_supermask(build_model("lenet-bn", benchmark.input_shape, benchmark.max_classes), 0.2)
    fresh.load_state_dict(method.net.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert all(torch.equal(fresh.logits(probe, j), expected[j]) for j in range(2))
    method.save_checkpoint(tmp_path / "ckpt", {})
    loaded = build_method(method.config, benchmark)
    loaded.load_checkpoint(tmp_path / "ckpt")
    loaded.eval_mode()
    with torch.no_grad():
        assert all(torch.equal(loaded.logits(probe, j), expected[j]) for j in range(2))
    if method_name == "wsn":
        assert all(torch.equal(loaded.scores[k], method.scores[k]) for k in method.scores)


@pytest.mark.parametrize("method_name", ["wsn", "packnet"])
def test_resume_after_crash_is_identical(method_name, tmp_path):
    config = RunConfig(**{**QUICK, "method": method_name, "model": "lenet-bn", "num_tasks": 3, "seed": 1,
                          "threads": 1})
    assert comparable(crash_then_resume(config, tmp_path)) == comparable(run_experiment(config, progress=False))


@pytest.mark.parametrize("zero", [False, True])
def test_packnet_pruned_weights_are_zeroed_only_when_asked(zero):
    method, _, _ = next(learn("packnet", num_tasks=3, packnet_zero_pruned=zero))
    for layer in method.net.masked_layers():
        outside = layer.weight.detach()[~layer.union]
        assert outside.numel() and bool((outside == 0).all()) is zero


def test_phase_order_of_the_new_steps_is_guarded():
    net = to_supermask(build_model("lenet", (1, 28, 28), 2), 0.2)
    net.add_task(2)
    with pytest.raises(ExssnetError, match="prune_and_retrain follows start_free_training"):
        net.prune_and_retrain(0.5)
    net.start_joint_training()
    with pytest.raises(ExssnetError, match="just added"):
        net.start_free_training()
    net.finish_task()
    with pytest.raises(ExssnetError, match="just added"):
        net.start_joint_training()


def test_packnet_keeps_one_share_per_task_of_the_benchmark_when_num_tasks_is_unset():
    config = RunConfig.from_dict({**QUICK, "method": "packnet"})
    assert config.num_tasks is None
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0))
    assert build_method(config, benchmark).keep() == 1.0 / len(benchmark.tasks)


@pytest.mark.parametrize("method_name", ["packnet", "wsn", "exssnet"])
def test_weight_init_keep_starts_from_the_model_as_built_and_still_never_forgets(method_name):
    """weight_init 'keep' (WSN's start): the masked layers hold torch's default Linear draw (uniform within
    +-1/sqrt(fan_in)), not signed constants; earlier tasks stay bit-identical."""
    benchmark = build_benchmark("split-digits", BenchmarkSpec(seed=0, num_tasks=2))
    nets = {init: build_method(RunConfig.from_dict({**QUICK, "method": method_name, "model": "lenet", "num_tasks": 2,
                                                    "weight_init": init}), benchmark).net
            for init in ("keep", "signed-constant")}
    assert nets["keep"].init == "keep" and nets["signed-constant"].init == "signed-constant"
    for kept, signed in zip(nets["keep"].masked_layers(), nets["signed-constant"].masked_layers()):
        fan_in = kept.weight[0].numel()
        assert kept.weight.abs().max() <= fan_in ** -0.5 and kept.weight.abs().unique().numel() > kept.weight.numel() // 2
        assert torch.equal(signed.weight.abs().unique(), torch.tensor([(2 / fan_in) ** 0.5]))
    _, identical = earlier_tasks_identical(learn(method_name, num_tasks=3, weight_init="keep"))
    assert len(identical) == 3 and all(identical)


def test_weight_init_is_checked_and_a_checkpoint_of_the_other_init_is_refused(tmp_path):
    from exssnet.checkpoint import load_compatible, save_pretrained

    with pytest.raises(ExssnetError, match="weight_init must be 'signed-constant' or 'keep', got 'zeros'"):
        RunConfig.from_dict({"method": "wsn", "weight_init": "zeros"})
    method, benchmark, _ = next(learn("packnet", num_tasks=2))
    save_pretrained(method.net, tmp_path / "ckpt", "lenet", benchmark.input_shape)
    with pytest.raises(ExssnetError, match="made with init='signed-constant', this run needs 'keep'"):
        load_compatible(tmp_path / "ckpt", benchmark, model="lenet", density=0.2, keep_scores=False, init="keep")


@pytest.mark.parametrize("bad, message", [({"packnet_share": "layers"}, "packnet_share must be one of layer, free"),
                                          ({"packnet_keep": 1.5}, "packnet_keep must be in"),
                                          ({"packnet_retrain_epochs": -2}, "packnet_retrain_epochs must be >= 0")])
def test_packnet_settings_refuse_bad_values(bad, message):
    with pytest.raises(ExssnetError, match=message):
        RunConfig.from_dict({**QUICK, "method": "packnet", **bad})
