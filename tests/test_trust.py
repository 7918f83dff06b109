"""Issue #16: bad input gives one clear error line (exit 2) before training; a run deletes only what it wrote."""

import errno
import json
import os
import re
from pathlib import Path

import pytest
from test_hostile_input import FAST, finished_run, one_error_line, snapshot  # noqa: F401 (a fixture)

from exssnet.cli import main


@pytest.mark.parametrize("flags, message", [
    (["--mask-lr", "inf"], "mask_lr must be a finite number > 0"),
    (["--weight-lr", "nan"], "weight_lr must be a finite number > 0"),
    (["--threads", "-1"], "threads must be in 1..1024"),
    (["--threads", "0"], "threads must be in 1..1024"),
    (["--device", "mps"], "MPS is not available"),
    (["--device", "meta"], "device 'meta' is not supported"),
    (["--device", "cuda:x"], "unknown device"),
    (["--seed", str(2**64)], "seed must be in 0.."),
    (["--seed", "-1"], "seed must be in 0.."),
])
def test_bad_settings_are_one_error_line(flags, message, tmp_path, capsys):
    err = one_error_line(["run", *FAST, *flags, "--out", str(tmp_path / "out")], capsys)
    assert message in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_yaml_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes("benchmark: split-digits\nmethod: \xe9xssnet\n".encode("latin-1"))
    assert "not UTF-8" in one_error_line(["run", "--config", str(config)], capsys)


class Trained(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """Training raises: an error reported while this is active came before any training."""
    from exssnet.methods.supermask_methods import SupermaskMethod

    def refuse(*args, **kwargs):
        raise Trained()

    monkeypatch.setattr(SupermaskMethod, "learn_task", refuse)


@pytest.mark.parametrize("blocker, flags", [
    ("metrics.csv", []),              # a folder where the CSV log goes
    ("checkpoints", ["--no-log-csv"]),  # a file where the checkpoint folder goes
    ("results.json", ["--no-log-csv", "--no-checkpoints"]),
])
def test_unwritable_output_place_is_refused_before_training(blocker, flags, tmp_path, capsys, no_training):
    out = tmp_path / "out"
    out.mkdir()
    if blocker == "checkpoints":
        (out / blocker).write_text("a file")
    else:
        (out / blocker).mkdir()
    before = snapshot(out)
    err = one_error_line(["run", *FAST, *flags, "--overwrite", "--out", str(out)], capsys)
    assert "cannot write" in err and blocker in err
    assert snapshot(out) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused_before_training(tmp_path, capsys, no_training):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert "cannot write into output folder" in one_error_line(
            ["run", *FAST, "--no-checkpoints", "--no-log-csv", "--out", str(out)], capsys)
    finally:
        out.chmod(0o755)


def test_foreign_checkpoint_folders_survive(tmp_path, capsys):
    out = tmp_path / "out"
    mine = out / "checkpoints" / "my-notes"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("mine")
    (out / "checkpoints" / "readme.txt").write_text("also mine")
    assert main(["run", *FAST, "--num-tasks", "3", "--out", str(out)]) == 0
    assert (mine / "keep.txt").read_text() == "mine"
    assert (out / "checkpoints" / "readme.txt").read_text() == "also mine"
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["my-notes", "readme.txt", "task-002"]


def test_foreign_folder_with_a_checkpoint_name_is_not_replaced(tmp_path, capsys):
    out = tmp_path / "out"
    theirs = out / "checkpoints" / "task-000"
    theirs.mkdir(parents=True)
    (theirs / "data.bin").write_bytes(b"\x01\x02")
    err = one_error_line(["run", *FAST, "--out", str(out)], capsys)
    assert "is not an exssnet checkpoint" in err
    assert (theirs / "data.bin").read_bytes() == b"\x01\x02"


def test_full_disk_while_writing_a_checkpoint(tmp_path, capsys, monkeypatch):
    import exssnet.checkpoint as checkpoint

    out = tmp_path / "out"
    real = checkpoint.save_file
    calls = []

    def fill_up(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"\0" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", fill_up)
    err = one_error_line(["run", *FAST, "--out", str(out)], capsys)
    assert "cannot write checkpoint" in err and "No space left on device" in err
    state = json.loads((out / "run_state.json").read_text())
    assert state["checkpoint"] == "task-000"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["task-000"]
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert main(["run", "--out", str(out), "--resume", "--quiet"]) == 0
    assert len(json.loads((out / "results.json").read_text())["acc_matrix"]) == 2


def idx_dir(tmp_path: Path, labels=None, size: int = 28) -> Path:
    import numpy as np
    from test_data import write_idx

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, size, size)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10 if labels is None else labels(n))
    return tmp_path


MNIST_FAST = ["--benchmark", "split-mnist", "--mask-epochs", "1", "--weight-epochs", "0", "--num-tasks", "2",
              "--quiet", "--no-checkpoints", "--no-log-csv"]


def test_idx_labels_outside_the_class_range(tmp_path, capsys, no_training):
    import numpy as np

    data = idx_dir(tmp_path, labels=lambda n: np.arange(n) % 12)
    err = one_error_line(["run", *MNIST_FAST, "--data-dir", str(data)], capsys)
    assert "label(s) outside 0..9" in err and "train-labels" in err


def test_idx_images_that_are_not_28x28(tmp_path, capsys, no_training):
    err = one_error_line(["run", *MNIST_FAST, "--data-dir", str(idx_dir(tmp_path, size=32))], capsys)
    assert "[32, 32]" in err and "28x28" in err


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_gzip_idx(tmp_path, capsys, no_training, damage):
    data = idx_dir(tmp_path)
    target = data / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2: len(raw) // 2 + 16] = b"\xff" * 16
    target.write_bytes(bytes(raw))
    assert "t10k-images-idx3-ubyte.gz" in one_error_line(["run", *MNIST_FAST, "--data-dir", str(data)], capsys)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(task_classes=[2] * 5000), "lists 5000 task(s)"),
    (lambda c: c.update(input_shape=[1, 100000, 100000]), "beyond what a checkpoint can hold"),
    (lambda c: c.update(num_classes=10**9, task_classes=[2, 2]), "beyond what a checkpoint can hold"),
])
def test_checkpoint_metadata_bounds_the_work(edit, message, finished_run, tmp_path, capsys):  # noqa: F811
    import shutil
    import time

    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run / "checkpoints" / "task-001", ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    edit(config)
    (ckpt / "config.json").write_text(json.dumps(config))
    start = time.perf_counter()
    assert message in one_error_line(["evaluate", str(ckpt)], capsys)
    assert time.perf_counter() - start < 5


def test_task_at_chance_is_flagged_with_its_likely_cause(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", *FAST, "--density", "0.002", "--no-checkpoints", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    flagged = [t for t, record in enumerate(results["tasks"]) if "at_chance" in record]
    assert flagged and len(results["warnings"]) == len(flagged)
    cause = results["tasks"][flagged[0]]["at_chance"]["likely_cause"]
    assert re.search(r"the classifier '\w+' keeps \d+ weight", cause) and "raise --density" in cause
    assert f"warning: task {flagged[0]}" in printed and "likely cause" in printed
    record = results["tasks"][flagged[0]]["at_chance"]
    accuracy = results["acc_matrix"][flagged[0]][flagged[0]]
    assert f"{accuracy:.2f}% on {record['test_examples']} test examples is not clearly above chance " \
           f"({record['chance']:.2f}%)" in results["warnings"][0] and record["test_examples"] > 0


def test_packnet_task_left_without_free_weights_is_told_to_lower_its_share(tmp_path):
    out = tmp_path / "out"
    assert main(["run", *FAST, "--method", "packnet", "--packnet-keep", "1.0", "--no-checkpoints", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    causes = [record["at_chance"]["likely_cause"] for record in results["tasks"] if "at_chance" in record]
    assert causes and all("lower --packnet-keep" in cause and "density" not in cause for cause in causes)


@pytest.mark.parametrize("method, flag, value, warned", [
    ("supsup", "--weight-epochs", "3", True), ("supsup", "--weight-lr", "0.01", True), ("wsn", "--weight-epochs", "3", True),
    ("wsn", "--weight-lr", "0.01", True), ("packnet", "--mask-epochs", "3", True), ("packnet", "--density", "0.3", True),
    ("packnet", "--mask-lr", "0.1", True), ("supsup", "--mask-epochs", "3", False), ("exssnet", "--weight-epochs", "3", False),
    ("packnet", "--weight-lr", "0.01", False)])
def test_a_core_setting_the_method_does_not_read_is_a_warning(tmp_path, capsys, method, flag, value, warned):
    out = tmp_path / "out"
    # the epochs a method does not train with at 0 (no such phase: not flagged), the others at 1
    epochs = {"supsup": ("1", "0"), "wsn": ("1", "0"), "packnet": ("0", "1")}.get(method, ("1", "1"))
    assert main(["run", "--benchmark", "split-digits", "--num-tasks", "1", "--method", method, "--mask-epochs", epochs[0],
                 "--weight-epochs", epochs[1], flag, value, "--no-checkpoints", "--out", str(out)]) == 0
    line = f"method {method!r} does not read {flag} {value}"
    warnings = json.loads((out / "results.json").read_text())["warnings"]
    assert any(line in w for w in warnings) is warned, warnings
    assert (line in capsys.readouterr().out) is warned
    assert len(warnings) == int(warned)


def test_chance_threshold():
    from exssnet.diagnosis import at_chance

    assert at_chance(50.0, 2, 10_000) and at_chance(50.9, 2, 10_000) and not at_chance(52.0, 2, 10_000)
    assert at_chance(60.0, 2, 60) and not at_chance(70.0, 2, 60)  # two standard errors of 60 examples: 12.9 points
    assert at_chance(10.5, 10, 10_000) and not at_chance(95.0, 10, 100) and not at_chance(50.0, 1, 100)
