"""Language baselines on a tiny random BERT: each method's defining behaviour, end-to-end runs, errors."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from conftest import assert_accuracy_matrix, crash_then_resume, own_flags, own_keys  # noqa: E402
from text_fixtures import write_offline_sources, write_tiny_bert, write_tiny_causal_lm  # noqa: E402

from exssnet.amp import AMP_DTYPES  # noqa: E402
from exssnet.cli import main  # noqa: E402
from exssnet.errors import ExssnetError  # noqa: E402
from exssnet.methods import build_method  # noqa: E402
from exssnet.methods.language import LANGUAGE_METHODS  # noqa: E402
from exssnet.methods.language.encoder_net import masked_mean  # noqa: E402
from exssnet.run.config import RunConfig  # noqa: E402
from exssnet.run.resume import comparable  # noqa: E402
from exssnet.run.runner import load_benchmark, run_experiment, task_to_device  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lang")
    return {"data": write_offline_sources(root / "data", per_class=12), "bert": write_tiny_bert(root / "bert"),
            "lm": write_tiny_causal_lm(root / "lm")}


def tiny_config(files, method: str, **overrides) -> RunConfig:
    """A 3-task offline stream with 4 training examples per class, on the tiny BERT."""
    values = dict(benchmark="text-offline", method=method, data_dir=str(files["data"]), encoder=str(files["bert"]),
                  text_max_train=4, text_max_test=2, num_tasks=3, baseline_epochs=2, batch_size=4, max_length=16,
                  prompt_tokens=4, adapter_size=8, buffer_size=8, replay_batch_size=4, lm_lr=1e-3, seed=0,
                  lamol_lm=str(files["lm"]), threads=1)
    return RunConfig.from_dict(own_keys(method, {**values, **overrides}))


def setup(files, method: str, **overrides):
    """(method, tasks on the CPU) for `tiny_config`'s stream."""
    config = tiny_config(files, method, **overrides)
    benchmark = load_benchmark(config)
    return build_method(config, benchmark), [task_to_device(t, torch.device("cpu")) for t in benchmark.tasks]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if name in before and not torch.equal(p, before[name])}


def test_token_inputs_are_ids_and_masks(files):
    method, tasks = setup(files, "ft")
    ids, mask = tasks[0].train.x
    assert ids.dtype == torch.long and mask.shape == ids.shape and method.benchmark.info["inputs"] == "tokens"


def test_the_encoder_sees_each_batch_without_its_trailing_padding(files):
    """A split is padded to its longest text; the pooled features of a batch are the same with and without the
    columns no example of the batch attends to, and the encoder is only run on the attended ones."""
    method, tasks = setup(files, "ft")
    trunk = method.net.trunk.eval()
    ids, mask = tasks[0].train.x
    lengths = mask.sum(dim=1)
    short = lengths.argsort()[:2]  # the two shortest texts: their batch is narrower than the split
    padded = (torch.cat([ids[short], ids.new_zeros(2, 5)], dim=1), torch.cat([mask[short], mask.new_zeros(2, 5)], dim=1))
    seen = []
    handle = trunk.model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                                   with_kwargs=True)
    with torch.no_grad():
        pooled = trunk(*padded)
    handle.remove()
    assert seen == [int(lengths[short].max())] and seen[0] < padded[0].shape[1]
    with torch.no_grad():
        untrimmed = masked_mean(trunk.hidden(*padded), padded[1])
    assert torch.allclose(pooled, untrimmed, atol=1e-5)


def test_ft_trains_the_whole_encoder(files):
    method, tasks = setup(files, "ft")
    before = snapshot(method.net.trunk)
    method.learn_task(0, tasks[0], False, None)
    used = {name for name in before if ".pooler." not in name}  # features are the mean of the last hidden states
    assert changed(before, method.net.trunk) == used  # every weight the features depend on moved


def test_replay_trains_on_earlier_tasks_examples(files):
    method, tasks = setup(files, "replay")
    for t in range(2):
        method.learn_task(t, tasks[t], False, None)
    assert set(method.buffer.task_counts()) == {0, 1}


def test_regularization_penalises_feature_drift(files):
    method, tasks = setup(files, "regularization", lm_reg_lambda=10.0)
    method.learn_task(0, tasks[0], False, None)
    method.before_task(1, tasks[1])
    x, y = next(tasks[1].train.batches(4))
    with torch.no_grad():
        weight = method.net.trunk.model.embeddings.word_embeddings.weight
        weight.add_(torch.randn_like(weight))  # the encoder drifts from the reference
    method.net.eval()  # no dropout: both losses see the same features
    losses = []
    for reg_lambda in (10.0, 0.0):
        method.settings.lm_reg_lambda = reg_lambda
        method.buffer.generator.manual_seed(0)  # the same replayed examples
        losses.append(float(method.training_loss(x, y, 1).detach()))
    with_penalty, without = losses
    assert with_penalty > without


def learn_first_task(method, tasks) -> torch.Tensor:
    """Learn task 0 and return its test logits (eval mode) to compare with after later tasks."""
    method.learn_task(0, tasks[0], False, None)
    method.eval_mode()
    with torch.no_grad():
        return method.logits(tasks[0].test.x, 0)


def test_adaptbert_trains_adapters_only(files):
    method, tasks = setup(files, "adaptbert-ft")
    before = snapshot(method.net.trunk)
    method.learn_task(0, tasks[0], False, None)
    moved = changed(before, method.net.trunk)
    assert moved and all(".adapters." in name for name in moved)


def test_multiadaptbert_keeps_earlier_adapters_and_outputs(files):
    method, tasks = setup(files, "multiadaptbert")
    before_logits = learn_first_task(method, tasks)
    before = snapshot(method.net)
    method.learn_task(1, tasks[1], False, None)
    method.eval_mode()
    assert not changed(before, method.net)  # encoder, task 0's adapters and head: all as they were
    assert all(site.adapters[1].up.weight.abs().sum() > 0 for site in method.sites)  # task 1's adapters trained (start at 0)
    with torch.no_grad():
        assert torch.equal(method.logits(tasks[0].test.x, 0), before_logits)


def test_prompt_tuning_trains_prompts_only(files):
    method, tasks = setup(files, "prompt-tuning")
    before_logits = learn_first_task(method, tasks)
    before: dict[str, torch.Tensor] = {}
    fit = method.fit

    def snapshot_then_fit(*args, **kwargs):  # after before_task has created task 1's prompt
        before.update(snapshot(method.net.trunk))
        return fit(*args, **kwargs)

    method.fit = snapshot_then_fit
    method.learn_task(1, tasks[1], False, None)
    assert changed(before, method.net.trunk) == {"model.prompt_encoder.task1.embedding.weight"}
    assert method.net.trunk.model.prompt_encoder["task1"].embedding.weight.shape[0] == 4
    method.eval_mode()
    with torch.no_grad():
        assert torch.equal(method.logits(tasks[0].test.x, 0), before_logits)


def test_mbpa_adapts_locally_and_restores_the_base_weights(files):
    method, tasks = setup(files, "mbpa", mbpa_lr=0.5, mbpa_steps=3, mbpa_test_batch=2)
    method.learn_task(0, tasks[0], False, None)
    method.eval_mode()
    before = snapshot(method.net)
    x = tasks[0].test.x
    with torch.no_grad():
        plain = method.net(x, 0)
        adapted = method.logits(x, 0)
    assert method.adapted_batches > 0 and not torch.allclose(adapted, plain)  # local adaptation changed the answer
    assert not changed(before, method.net)  # ... and the base weights are back


def test_lamol_replays_pseudo_samples_from_the_language_model(files):
    method, tasks = setup(files, "lamol", lamol_gamma=0.5)
    lm_before = snapshot(method.lm)
    method.learn_task(0, tasks[0], False, None)
    assert changed(lm_before, method.lm)  # the LM learned to write task 0
    method.learn_task(1, tasks[1], False, None)
    expected = round(0.5 * len(tasks[1].train))
    assert method.pseudo_counts == [{"0": expected}]
    _, labels, task_ids = method.pseudo
    assert task_ids.tolist() == [0] * expected and set(labels.tolist()) <= set(range(tasks[0].num_classes))
    lm_before = snapshot(method.lm)
    method.learn_task(2, tasks[2], False, None)
    assert len(tasks) == 3 and method.pseudo_counts[-1] == {"0": round(0.5 * len(tasks[2].train)), "1": round(0.5 * len(tasks[2].train))}
    assert not changed(lm_before, method.lm)  # after the last task nothing is generated again: the LM is not trained


@pytest.mark.parametrize("lm_amp", ["bf16", "fp16", None])
def test_lamol_runs_its_language_model_in_the_mixed_precision_asked_for(files, lm_amp, monkeypatch):
    """lamol_lm_amp covers the LM's forward passes (training and generation) and nothing else: the optimizer steps
    outside autocast (SmolLM2's Adam steps taken under CPU bf16 autocast left an LM that wrote only empty texts),
    and the classifier stays float32 (it follows --amp)."""
    method, tasks = setup(files, "lamol", lamol_gamma=0.5, lamol_lm_amp=lm_amp)
    seen: dict[str, set] = {"lm": set(), "classifier": set(), "step": set()}
    record = lambda name: lambda *_: seen[name].add(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))  # noqa: E731
    method.lm.register_forward_hook(record("lm"))
    method.net.register_forward_hook(record("classifier"))
    adam_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (record("step")(), adam_step(self, *a, **k))[1])
    method.learn_task(0, tasks[0], False, None)
    method.learn_task(1, tasks[1], False, None)  # generates pseudo texts, then trains the LM again
    assert seen["lm"] == ({AMP_DTYPES[lm_amp]} if lm_amp else {False}) and seen["classifier"] == {False}
    assert seen["step"] == {False}  # every optimizer step (the LM's and the classifier's) outside autocast
    assert next(method.lm.parameters()).dtype == torch.float32  # weights and Adam state stay float32


def test_lamol_refuses_an_unknown_lm_precision():
    with pytest.raises(ExssnetError, match="lamol_lm_amp must be one of bf16, fp16"):
        RunConfig.from_dict({"method": "lamol", "benchmark": "text-offline", "lamol_lm_amp": "int8"})


def test_idbr_adds_task_id_and_generic_space_losses(files):
    method, tasks = setup(files, "idbr")
    method.learn_task(0, tasks[0], False, None)
    method.before_task(1, tasks[1])
    with torch.no_grad():
        weight = method.net.trunk.model.embeddings.word_embeddings.weight
        weight.add_(torch.randn_like(weight))
    x, y = next(tasks[1].train.batches(4))
    losses = []
    for task_lambda, reg_lambda in ((0.0, 0.0), (1.0, 0.0), (1.0, 10.0)):
        method.settings.idbr_task_lambda, method.settings.lm_reg_lambda = task_lambda, reg_lambda
        torch.manual_seed(0)
        method.buffer.generator.manual_seed(0)
        method.net.eval()
        losses.append(float(method.training_loss(x, y, 1).detach()))
    assert losses[0] < losses[1] < losses[2]


@pytest.mark.parametrize("method", LANGUAGE_METHODS)
def test_every_language_method_runs_from_the_cli(files, tmp_path, method):
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(files["data"]), "--encoder", str(files["bert"]),
            "--method", method, "--text-max-train", "4", "--text-max-test", "2", "--num-tasks", "3",
            "--batch-size", "4", "--max-length", "16", "--threads", "1", "--quiet", "--out", str(tmp_path / "o"),
            *own_flags(method, dict(baseline_epochs=1, prompt_tokens=4, adapter_size=8, buffer_size=8,
                                    replay_batch_size=4, lamol_lm=files["lm"]))]
    assert main(args) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["method"] == method
    assert_accuracy_matrix(results, 3)
    if method in ("multiadaptbert", "prompt-tuning"):
        assert results["forgetting"] == 0.0


@pytest.mark.parametrize("method", LANGUAGE_METHODS)
def test_a_crashed_language_run_resumes_to_the_uninterrupted_result(files, tmp_path, method):
    """Encoder, heads, adapters, prompts, buffers, the LM and every random stream come back from the checkpoint."""
    # a buffer smaller than a task (its reservoir draws start in task 0), MbPA++'s replay every third step
    config = tiny_config(files, method, baseline_epochs=1, buffer_size=4, mbpa_replay_every=3)
    assert comparable(crash_then_resume(config, tmp_path)) == comparable(run_experiment(config, progress=False))


def test_language_method_on_a_vision_benchmark_is_refused(capsys):
    assert main(["run", "--benchmark", "split-digits", "--method", "ft", "--quiet"]) == 2
    assert "text benchmark" in capsys.readouterr().err


def test_language_methods_refuse_a_shared_head():
    with pytest.raises(ExssnetError, match="baseline_head 'shared' is for the dense baselines"):
        RunConfig.from_dict({"method": "ft", "benchmark": "text-offline", "baseline_head": "shared"})


def test_lamol_without_a_language_model_is_refused_before_any_data_is_read(files, tmp_path, capsys):
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(tmp_path / "absent"), "--encoder", str(files["bert"]),
            "--method", "lamol", "--text-max-train", "4", "--quiet"]
    assert main(args) == 2 and "--lamol-lm" in capsys.readouterr().err  # not the missing data folder


def test_prompts_longer_than_the_encoder_positions_are_refused(files, capsys):
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(files["data"]), "--encoder", str(files["bert"]),
            "--method", "prompt-tuning", "--text-max-train", "4", "--max-length", "32", "--prompt-tokens", "40", "--quiet"]
    assert main(args) == 2 and "positions" in capsys.readouterr().err


def test_quiet_run_draws_no_hugging_face_progress_bar(files, tmp_path):
    """`--quiet` also silences the bars transformers draws while it loads an encoder (fresh process)."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "exssnet", "run", "--benchmark", "text-offline", "--data-dir", str(files["data"]),
            "--encoder", str(files["bert"]), "--method", "ft", "--text-max-train", "2", "--text-max-test", "2",
            "--num-tasks", "2", "--baseline-epochs", "1", "--batch-size", "4", "--max-length", "16", "--threads", "1",
            "--quiet", "--out", str(tmp_path / "o")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_DISABLE")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "%|" not in done.stderr and "it/s]" not in done.stderr, done.stderr


def test_a_large_eval_batch_is_encoded_in_chunks_of_similar_length(files, monkeypatch):
    """Scoring a test split: texts of similar length share an encoder call, each call trimmed to its longest text;
    every text's features are those of encoding the whole batch at once, in input order."""
    import exssnet.methods.language.encoder_net as encoder_net

    monkeypatch.setattr(encoder_net, "EVAL_CHUNK", 5)
    method, tasks = setup(files, "ft", text_max_test=12)
    trunk = method.net.trunk.eval()
    ids, mask = (t.clone() for t in tasks[1].test.x)
    lengths = 3 + (torch.arange(len(ids)) * 5) % (ids.shape[1] - 2)  # texts of 3..8 tokens, in no order
    mask[torch.arange(ids.shape[1]) >= lengths[:, None]] = 0
    ids[mask == 0] = 0
    assert len(ids) > 10 and lengths.min() < lengths.max() == ids.shape[1]
    seen = []
    handle = trunk.model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape),
                                                   with_kwargs=True)
    with torch.no_grad():
        pooled = trunk(ids, mask)
        chunk_shapes = list(seen)
        at_once = trunk.pooled(ids, mask)
        trunk.train()
        seen.clear()
        trunk(ids, mask)
    handle.remove()
    assert len(seen) == 1  # a training batch is encoded as it comes
    assert [rows for rows, _ in chunk_shapes] == [5] * (len(ids) // 5) + ([len(ids) % 5] if len(ids) % 5 else [])
    widths = [width for _, width in chunk_shapes]
    assert widths == sorted(widths, reverse=True) and widths[0] == int(lengths.max())
    assert sum(rows * width for rows, width in chunk_shapes) < len(ids) * int(lengths.max())  # fewer padded tokens
    assert torch.allclose(pooled, at_once, atol=1e-5)
    assert not torch.equal(pooled, at_once[lengths.argsort(descending=True, stable=True)])  # rows back in input order
