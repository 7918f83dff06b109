"""Text model resolution: offline only, built-in names, folders, the Hugging Face cache, clear one-line errors;
static word vectors refused for language methods; one progress bar over feature encoding; warnings once."""

from __future__ import annotations

import json
import socket
import time

import pytest
from text_fixtures import write_glove_txt, write_offline_sources, write_tiny_bert

from exssnet.cli import main
from exssnet.data.text_models import MODELS_ENV, NAMED_MODELS, load_pretrained, resolve_model
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the resolution must never try the hub)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_unknown_name_fails_at_once_naming_what_was_looked_for(no_network, monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.perf_counter()
    with pytest.raises(ExssnetError) as error:
        load_pretrained("AutoModel", "someone/not-here", "encoder")
    assert time.perf_counter() - start < 2.0
    message = str(error.value)
    assert "\n" not in message and "'someone/not-here' not found offline" in message
    for looked_for in ("built-in name (minilm, mpnet-base, smollm2-135m)", "local folder", "Hugging Face cache"):
        assert looked_for in message


def test_a_name_in_the_hugging_face_cache_resolves_without_network(no_network, monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    repo = hub / "models--someone--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    assert resolve_model("someone/cached-model").path == "someone/cached-model"
    with pytest.raises(ExssnetError, match="not found offline"):
        resolve_model("someone/other-model")


def test_named_models_resolve_under_the_models_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    with pytest.raises(ExssnetError, match="run `make setup-text-large`") as error:
        resolve_model("mpnet-base", "encoder")
    assert "\n" not in str(error.value) and "all-mpnet-base-v2" in str(error.value)
    with pytest.raises(ExssnetError, match="run `make setup-text-large`"):
        resolve_model("smollm2-135m", "causal language model")
    (tmp_path / "all-mpnet-base-v2").mkdir()
    (tmp_path / "all-mpnet-base-v2" / "config.json").write_text("{}")
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "smollm2-135m" / NAMED_MODELS["smollm2-135m"].file).write_bytes(b"GGUF")
    assert resolve_model("mpnet-base").path == str(tmp_path / "all-mpnet-base-v2")
    smol = resolve_model("smollm2-135m")
    assert smol.path == str(tmp_path / "smollm2-135m") and smol.kwargs()["gguf_file"] == NAMED_MODELS["smollm2-135m"].file
    assert smol.kwargs()["local_files_only"] is True


def test_local_folder_and_gguf_file_resolve(tmp_path):
    assert resolve_model(str(tmp_path)).path == str(tmp_path)
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    source = resolve_model(str(gguf))
    assert source.path == str(tmp_path) and source.gguf_file == "model.Q4.gguf"


def test_a_local_tiny_bert_loads_without_network(no_network, tmp_path):
    pytest.importorskip("transformers")
    bert = write_tiny_bert(tmp_path / "bert")
    assert load_pretrained("AutoModel", str(bert), "encoder").config.hidden_size == 16


@pytest.mark.parametrize("encoder", ["glove-6b-50d", "vectors.txt"])
def test_language_methods_refuse_static_word_vectors_at_config_time(encoder):
    with pytest.raises(ExssnetError, match="static word vectors") as error:
        RunConfig.from_dict({"benchmark": "text-offline", "method": "ft", "encoder": encoder})
    assert "\n" not in str(error.value)
    RunConfig.from_dict({"benchmark": "text-offline", "method": "exssnet", "model": "kim-cnn", "encoder": encoder})


def test_static_vectors_for_a_language_method_fail_fast_on_the_command_line(no_network, capsys):
    start = time.perf_counter()
    assert main(["run", "--benchmark", "text-offline", "--method", "ft", "--encoder", "glove-6b-50d", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.perf_counter() - start < 5.0
    assert err.count("\n") == 0 and err.startswith("exssnet: error:") and "static word vectors" in err


def test_missing_encoder_fails_before_the_data_is_read(no_network, capsys, tmp_path):
    # the data folder is empty: a resolution after reading would blame the missing data instead
    assert main(["run", "--benchmark", "text-offline", "--model", "kim-cnn", "--data-dir", str(tmp_path),
                 "--encoder", str(tmp_path / "no-such-model"), "--quiet"]) == 2
    assert "not found offline" in capsys.readouterr().err


def test_one_progress_bar_over_feature_encoding_and_each_warning_once(tmp_path, capsys):
    data = write_offline_sources(tmp_path / "text", per_class=12)
    glove = write_glove_txt(tmp_path / "glove.txt")
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(data), "--encoder", str(glove), "--model", "kim-cnn",
            "--text-max-train", "4", "--text-max-test", "2", "--num-tasks", "3", "--mask-epochs", "1", "--weight-epochs",
            "1", "--batch-size", "4", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    captured = capsys.readouterr()
    bars = [line for line in captured.err.replace("\r", "\n").splitlines() if line.startswith("features of text-offline")]
    assert len(bars) >= 1 and all("/54 " in line for line in bars)  # one total: (2 + 5 + 2 classes) x (4 + 2) texts
    assert "task vader-amazon, test" in captured.err  # the bar names the task and split it is on
    warnings = json.loads((tmp_path / "o" / "results.json").read_text())["warnings"]
    assert warnings  # 2 test examples per class: no accuracy is distinguishable from chance
    assert (captured.out + captured.err).count("ended at chance") == len(warnings)
    assert main([*args, "--overwrite", "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "features of" not in quiet.err and quiet.out.count("ended at chance") == len(warnings)


@pytest.mark.slow
def test_the_setup_text_large_models_load_offline(no_network):
    """The real models of `make setup-text-large` (skipped when they are not installed)."""
    pytest.importorskip("gguf")
    try:
        resolve_model("mpnet-base"), resolve_model("smollm2-135m")
    except ExssnetError:
        pytest.skip("run `make setup-text-large` first")
    encoder = load_pretrained("AutoModel", "mpnet-base", "encoder")
    assert sum(p.numel() for p in encoder.parameters()) == 109_486_464
    lm = load_pretrained("AutoModelForCausalLM", "smollm2-135m", "causal language model")
    tokenizer = load_pretrained("AutoTokenizer", "smollm2-135m", "the tokenizer of causal language model")
    ids = tokenizer(["The movie was"], return_tensors="pt")
    out = lm.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_mbpa_test_time_adaptation_draws_a_bar_unless_quiet(tmp_path, capsys):
    pytest.importorskip("transformers")
    import torch

    from exssnet.methods import build_method
    from exssnet.run.runner import load_benchmark, task_to_device

    config = RunConfig.from_dict(dict(
        benchmark="text-offline", method="mbpa", data_dir=str(write_offline_sources(tmp_path / "data", per_class=12)),
        encoder=str(write_tiny_bert(tmp_path / "bert")), text_max_train=4, text_max_test=4, num_tasks=1,
        baseline_epochs=1, batch_size=4, max_length=16, buffer_size=8, mbpa_steps=1, mbpa_test_batch=2))
    benchmark = load_benchmark(config)
    method = build_method(config, benchmark)
    task = task_to_device(benchmark.tasks[0], torch.device("cpu"))
    for progress in (False, True):
        method.learn_task(0, task, progress, None)
        capsys.readouterr()
        method.eval_mode()
        with torch.no_grad():
            method.logits(task.test.x, 0)
        err = capsys.readouterr().err
        assert ("mbpa: test-time adaptation, task 0" in err) is progress
        assert not progress or "/4 " in err  # a total: 8 test texts in chunks of 2
