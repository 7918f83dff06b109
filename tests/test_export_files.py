"""Export files (pt, safetensors dense/sparse, ONNX) with their sidecar, and `exssnet export`."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import one_error_line
from test_export import dense, inputs_for, trained

from exssnet import ExssnetError, save_pretrained
from exssnet.cli import main
from exssnet.export_files import (
    load_export,
    read_export,
    read_sparse_state_dict,
    sidecar_path,
    verify_export,
    write_export,
)

SIDECAR = {"task": 0, "num_classes": 3, "input_shape": [1, 8, 8], "input_kind": "image", "model_name": "lenet"}


@pytest.mark.parametrize("name", ["lenet", "resnet18-reduced", "kim-cnn", "reused"])
def test_onnx_export_runs_in_onnxruntime_within_1e_5_of_the_net(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = trained(name)
    task = 2  # the ExSSNeT task (a weight phase)
    example = inputs_for(name, 2, torch.Generator().manual_seed(6))
    names = ["tokens", "lengths"] if name == "kim-cnn" else ["input"]
    path = write_export(net.export_task(task), tmp_path / "t.onnx", "onnx", sidecar={}, example_inputs=example,
                        input_names=names)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = inputs_for(name, 7, torch.Generator().manual_seed(7))  # another batch size: the batch dimension is dynamic
    got = torch.from_numpy(session.run(None, {n: v.numpy() for n, v in zip(names, x)})[0])
    with torch.no_grad():
        want = net.eval().logits(x, task)
    # 1e-5 at unit scale: float32 rounding grows with the logits' size (a ResNet's reach ~70 with exact BN statistics)
    assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize("fmt, sparse", [("pt", False), ("safetensors", False), ("safetensors", True)])
def test_state_dict_files_load_into_a_fresh_instance_bit_for_bit(fmt, sparse, tmp_path):
    net = trained("reused")  # a module under two names: stored under both, loaded into one
    path = write_export(net.export_task(1), tmp_path / f"t.{fmt}", fmt, sparse=sparse, sidecar={})
    fresh = load_export(dense("reused", 3), path)
    x = inputs_for("reused", 5, torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert torch.equal(fresh(*x), net.eval().logits(x, 1))
    assert fresh.mix is fresh.again
    info = json.loads(sidecar_path(path).read_text())
    assert info["file_format"] == fmt and info["sparse"] is sparse and info["exssnet_version"]


def test_sparse_file_holds_about_density_of_the_dense_size_and_decodes_exactly(tmp_path):
    net = trained("lenet")  # density 0.3
    model = net.export_task(2)
    dense_file = write_export(model, tmp_path / "d.safetensors", "safetensors", sidecar={})
    sparse_file = write_export(model, tmp_path / "s.safetensors", "safetensors", sparse=True, sidecar={})
    ratio = sparse_file.stat().st_size / dense_file.stat().st_size
    assert 0.3 < ratio < 0.3 * 1.25, ratio  # values of the kept weights + a mask code of ~H(0.3) bits per weight
    state = read_sparse_state_dict(sparse_file)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_damaged_sparse_mask_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path = write_export(trained("lenet").export_task(0), tmp_path / "s.safetensors", "safetensors", sparse=True, sidecar={})
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.startswith("mask."))
    tensors[key][30] ^= 0x10
    save_file(tensors, str(path))
    with pytest.raises(ExssnetError, match="mask of .* is corrupted"):
        read_sparse_state_dict(path)


def test_corrupt_or_mismatched_export_files_are_refused_with_one_error_line(tmp_path, capsys):
    net = trained("lenet")
    for t in (0, 1):
        write_export(net.export_task(t), tmp_path / f"t{t}.safetensors", "safetensors", sidecar={**SIDECAR, "task": t})
    assert verify_export(tmp_path / "t0.safetensors")["task"] == 0
    assert main(["export", str(tmp_path / "t1.safetensors"), "--check"]) == 0
    assert "--check takes only" in one_error_line(["export", str(tmp_path / "t1.safetensors"), "--check", "--task", "1"], capsys)
    # a flipped byte
    data = bytearray((tmp_path / "t0.safetensors").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "t0.safetensors").write_bytes(bytes(data))
    assert "SHA-256 differs" in one_error_line(["export", str(tmp_path / "t0.safetensors"), "--check"], capsys)
    # another export's file under this sidecar
    (tmp_path / "t0.safetensors").write_bytes((tmp_path / "t1.safetensors").read_bytes())
    assert "does not match its sidecar" in one_error_line(["export", str(tmp_path / "t0.safetensors"), "--check"], capsys)
    # a sidecar that names another model than the file holds
    info = json.loads(sidecar_path(tmp_path / "t1.safetensors").read_text())
    sidecar_path(tmp_path / "t1.safetensors").write_text(json.dumps({**info, "num_classes": 5}))
    assert "does not fit Sequential" in one_error_line(["export", str(tmp_path / "t1.safetensors"), "--check"], capsys)
    # a file without sidecar, a garbage sidecar
    (tmp_path / "lone.pt").write_bytes(b"x")
    assert "no sidecar" in one_error_line(["export", str(tmp_path / "lone.pt"), "--check"], capsys)
    sidecar_path(tmp_path / "lone.pt").write_text("{not json")
    assert "corrupted" in one_error_line(["export", str(tmp_path / "lone.pt"), "--check"], capsys)
    with pytest.raises(ExssnetError, match="does not fit"):
        load_export(dense("lenet", 2), tmp_path / "t1.safetensors")  # the sidecar check passes, the shapes do not
    with pytest.raises(ExssnetError, match="--sparse is a form of the safetensors format"):
        write_export(net.export_task(0), tmp_path / "x.pt", "pt", sparse=True, sidecar={})


def test_a_truncated_pt_export_is_refused(tmp_path):
    path = write_export(trained("lenet").export_task(0), tmp_path / "t.pt", "pt", sidecar={})
    info = json.loads(sidecar_path(path).read_text())
    path.write_bytes(path.read_bytes()[:100])
    from exssnet.export_files import file_sha256

    sidecar_path(path).write_text(json.dumps({**info, "file_sha256": file_sha256(path)}))  # a consistent but cut file
    with pytest.raises(ExssnetError, match="cannot be read"):
        read_export(path)


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """A short SplitMNIST ExSSNeT run (3 tasks, 1 + 1 epochs), as `make run` makes a longer one."""
    out = tmp_path_factory.mktemp("runs") / "split-mnist-exssnet"
    code = main(["run", "--benchmark", "split-mnist", "--method", "exssnet", "--density", "0.1", "--seed", "0",
                 "--num-tasks", "3", "--mask-epochs", "1", "--weight-epochs", "1", "--threads", "1", "--out", str(out),
                 "--quiet"])
    assert code == 0
    return out


def test_cli_exports_task_2_of_a_split_mnist_run_to_onnx(mnist_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    from exssnet.checkpoint import from_pretrained
    from exssnet.run.evaluate import resolve_checkpoint

    out = tmp_path / "t2.onnx"
    assert main(["export", str(mnist_run), "--task", "2", "--format", "onnx", "--out", str(out)]) == 0
    info = json.loads(sidecar_path(out).read_text())
    assert info["task"] == 2 and info["num_classes"] == 2 and info["input_shape"] == [1, 28, 28]
    assert len(info["classes"]) == 2 and len(info["source_sha256"]) == 64 and info["inputs"] == ["input"]
    net = from_pretrained(resolve_checkpoint(mnist_run))
    x = torch.rand(16, 1, 28, 28)
    got = torch.from_numpy(ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert float((got - net.logits(x, 2)).abs().max()) <= 1e-5
    assert main(["export", str(out), "--check"]) == 0
    # the output exists: refused, nothing overwritten
    before = out.read_bytes()
    assert "already exists" in one_error_line(["export", str(mnist_run), "--task", "2", "--format", "onnx", "--out", str(out)], capsys)
    assert out.read_bytes() == before
    assert "out of range" in one_error_line(["export", str(mnist_run), "--task", "3", "--out", str(tmp_path / "x.pt")], capsys)
    assert "--task and --out" in one_error_line(["export", str(mnist_run)], capsys)


def test_cli_exports_every_task_into_a_folder(mnist_run, tmp_path):
    assert main(["export", str(mnist_run), "--task", "all", "--format", "safetensors", "--sparse", "--out", str(tmp_path / "all")]) == 0
    files = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert files == [f"task-00{t}.safetensors{ext}" for t in range(3) for ext in ("", ".json")]
    for t in range(3):
        assert verify_export(tmp_path / "all" / f"task-00{t}.safetensors")["task"] == t


def test_cli_refuses_a_checkpoint_of_an_unregistered_model_saying_what_to_do(tmp_path, capsys):
    net = trained("reused")
    save_pretrained(net, tmp_path / "ckpt", model_name="my-mlp", input_shape=(8,))
    err = one_error_line(["export", str(tmp_path / "ckpt"), "--task", "0", "--out", str(tmp_path / "t.pt")], capsys)
    assert "'my-mlp'" in err and "register_model" in err and "export_task" in err


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_export_without_the_extra_is_one_clear_error(missing, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # `import missing` now raises ImportError
    with pytest.raises(ExssnetError, match=rf"needs the {missing} package: pip install 'exssnet\[onnx\]'"):
        write_export(trained("lenet").export_task(0), tmp_path / "t.onnx", "onnx", sidecar={},
                     example_inputs=inputs_for("lenet", 2, torch.Generator()), input_names=["input"])
    assert not list(tmp_path.iterdir())
