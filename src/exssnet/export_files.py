"""Write one exported task to a file (PyTorch state dict, safetensors dense or sparse, ONNX) with a JSON sidecar.

    write_export(model, "t2.safetensors", "safetensors", sidecar={...})   # + t2.safetensors.json
    state = read_export("t2.safetensors")                              # the state dict, checked
    fresh.load_state_dict(state)

Formats:
- `pt`: `torch.save(model.state_dict())`; loads with `torch.load(path, weights_only=True)` (no code runs).
- `safetensors`: the state dict as is (tensors reached under two names are stored twice).
- `safetensors` with `sparse=True`: each tensor is stored whichever way is smaller: dense (`dense.<key>`), or
  as its nonzero values in row-major order (`values.<key>`) plus the mask of nonzeros Golomb-coded like
  checkpoint masks (`mask.<key>`, `exssnet.layers.maskcode`). `read_sparse_state_dict` rebuilds the dense
  state dict (the mask decoder is numpy only: `exssnet/layers/maskcode.py` can be copied alone).
- `onnx`: `torch.onnx.export` (the torch.export-based exporter) with a dynamic batch dimension, checked
  in ONNX Runtime against the PyTorch module when onnxruntime is installed. Needs the `onnx` extra.
The sidecar `<file>.json` records the task, its classes, the input shape and names, the model, the
source checkpoint's SHA-256, the exssnet version and the file's own SHA-256, which `read_export` checks.
Every problem is one `ExssnetError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from exssnet import __version__
from exssnet.checkpoint import CONFIG_FILE, TENSORS_FILE, from_pretrained, read_config
from exssnet.errors import ExssnetError
from exssnet.export import export_task
from exssnet.layers.maskcode import decode_mask, encode_mask
from exssnet.models.registry import build_model, lookup_model, model_input_kind

FORMATS = ("pt", "safetensors", "onnx")
SIDECAR_FORMAT = "exssnet-export"
SIDECAR_VERSION = 1
SPARSE_FORMAT = "exssnet-sparse-state-dict"
ONNX_EXTRA = "pip install 'exssnet[onnx]' (onnx, onnxscript, onnxruntime)"
ONNX_OUTPUT = "logits"


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def file_sha256(*paths: Path) -> str:
    """SHA-256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ----- writing ---------------------------------------------------------------------------
def write_export(model: nn.Module, path: str | Path, fmt: str, *, sidecar: dict[str, Any], sparse: bool = False,
                 example_inputs: Sequence[torch.Tensor] | None = None, input_names: Sequence[str] | None = None,
                 overwrite: bool = False) -> Path:
    """Write `model` (an export: see `exssnet.export.export_task`) as `fmt` to `path`, then its sidecar.

    Both are written to temp files and renamed; an existing file is replaced only with `overwrite=True`.
    ONNX needs `example_inputs` (batch of at least 2) and `input_names`.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ExssnetError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if sparse and fmt != "safetensors":
        raise ExssnetError("--sparse is a form of the safetensors format: use --format safetensors")
    for target in (path, sidecar_path(path)):
        if target.exists() and not overwrite:
            raise ExssnetError(f"{target} already exists; pass --overwrite or choose another --out")
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "pt":
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        elif fmt == "safetensors":
            tensors = sparse_tensors(model.state_dict()) if sparse else _plain_tensors(model.state_dict())
            save_file(tensors, str(tmp), metadata={"format": SPARSE_FORMAT if sparse else "pt"})
        else:
            if example_inputs is None or input_names is None:
                raise ExssnetError("ONNX export needs example inputs and their names")
            write_onnx(model, tmp, tuple(example_inputs), list(input_names))
        info = {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "exssnet_version": __version__,
                "file": path.name, "file_format": fmt, "sparse": bool(sparse), "file_sha256": file_sha256(tmp),
                **({"inputs": list(input_names), "output": ONNX_OUTPUT} if fmt == "onnx" and input_names else {}),
                **sidecar}
        side_tmp = sidecar_path(tmp)
        side_tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, path)
        os.replace(side_tmp, sidecar_path(path))
    except OSError as exc:
        raise ExssnetError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_path(tmp).unlink(missing_ok=True)
    return path


def _plain_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, one storage per key (safetensors refuses tensors sharing memory)."""
    return {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}


def sparse_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor of `state` dense (`dense.<key>`) or as nonzero values + coded mask (`values.<key>`, `mask.<key>`),
    whichever is smaller; the shape of a sparse tensor is implied by the model (and stored in `shape.<key>`)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in _plain_tensors(state).items():
        if value.is_floating_point() and value.dim() > 0 and value.numel() > 0:
            mask = value != 0
            code = encode_mask(mask)
            values = value[mask]
            if code.numel() + values.numel() * values.element_size() < value.numel() * value.element_size():
                out[f"values.{key}"], out[f"mask.{key}"] = values, code
                out[f"shape.{key}"] = torch.tensor(value.shape, dtype=torch.int64)
                continue
        out[f"dense.{key}"] = value
    return out


def write_onnx(model: nn.Module, path: Path, example_inputs: tuple[torch.Tensor, ...], input_names: list[str]) -> None:
    """`torch.onnx.export` with a dynamic batch dimension; the ONNX model is checked in ONNX Runtime when installed."""
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise ExssnetError(f"ONNX export needs the {module} package: {ONNX_EXTRA}") from None
    if any(x.shape[0] < 2 for x in example_inputs):
        raise ExssnetError("ONNX export needs example inputs with a batch of at least 2 (a batch of 1 would be fixed)")
    model = model.eval()
    batch = torch.export.Dim("batch")
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example_inputs, str(path), dynamo=True, verbose=False, external_data=False,
                              input_names=input_names, output_names=[ONNX_OUTPUT],
                              dynamic_shapes=tuple({0: batch} for _ in example_inputs))
    except ExssnetError:
        raise
    except Exception as exc:  # the exporter raises many kinds; one line says which model could not be traced
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExssnetError(f"torch.onnx.export failed for {type(model).__name__}: {first}") from None
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    check_onnx(model, path, example_inputs, input_names)


def check_onnx(model: nn.Module, path: Path, example_inputs: tuple[torch.Tensor, ...], input_names: list[str],
               atol: float = 1e-4) -> float | None:
    """Max abs difference of the ONNX model (in ONNX Runtime) from `model` on the example; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: x.cpu().numpy() for name, x in zip(input_names, example_inputs)})[0]
    with torch.no_grad():
        want = model(*example_inputs).cpu()
    diff = float((torch.from_numpy(got) - want).abs().max()) if got.shape == tuple(want.shape) else float("inf")
    if not diff <= atol:
        raise ExssnetError(f"the ONNX export of {type(model).__name__} differs from the PyTorch model by {diff:.3g} "
                           f"(more than {atol}); it was not kept")
    return diff


# ----- reading ---------------------------------------------------------------------------
def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The checked sidecar of export `path`, after checking that the file is the one it describes."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise ExssnetError(f"export file {path} does not exist")
    try:
        info = json.loads(side.read_text())
    except FileNotFoundError:
        raise ExssnetError(f"export file {path} has no sidecar {side.name}: it was not written by exssnet export") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExssnetError(f"export sidecar {side} is corrupted: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != SIDECAR_FORMAT or info.get("file_format") not in FORMATS:
        raise ExssnetError(f"{side} is not an exssnet export sidecar")
    if info.get("format_version") != SIDECAR_VERSION:
        raise ExssnetError(f"{side}: export format version {info.get('format_version')!r} is not supported")
    if file_sha256(path) != info.get("file_sha256"):
        raise ExssnetError(f"export file {path} does not match its sidecar {side.name} (SHA-256 differs): "
                           "it is corrupted or another file")
    return info


def read_export(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a `pt` or `safetensors` (dense or sparse) export, after checking it against its sidecar."""
    path = Path(path)
    info = read_sidecar(path)
    if info["file_format"] == "onnx":
        raise ExssnetError(f"{path} is an ONNX model: run it with onnxruntime.InferenceSession")
    if info["file_format"] == "pt":
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # torch.load raises many kinds on damaged files
            raise ExssnetError(f"export file {path} cannot be read: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ExssnetError(f"export file {path} does not hold a state dict")
        return state
    return read_sparse_state_dict(path) if info.get("sparse") else _read_safetensors(path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExssnetError(f"export file {path} is corrupted or truncated: {exc}") from None


def read_sparse_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The dense state dict of a sparse safetensors export (each sparse tensor: zeros with the values at its mask)."""
    path = Path(path)
    tensors = _read_safetensors(path)
    state: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        kind, _, key = name.partition(".")
        if kind == "dense":
            state[key] = value
        elif kind == "values":
            state[key] = _densify(path, key, tensors)
        elif kind not in ("mask", "shape") or f"values.{key}" not in tensors:
            raise ExssnetError(f"sparse export {path} holds an unexpected tensor {name!r}")
    return state


def _densify(path: Path, key: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    values, code, shape = tensors[f"values.{key}"], tensors.get(f"mask.{key}"), tensors.get(f"shape.{key}")
    if code is None or shape is None or shape.dtype != torch.int64 or shape.dim() != 1 or (shape < 0).any():
        raise ExssnetError(f"sparse export {path}: tensor {key!r} lacks a valid mask or shape")
    try:
        mask = decode_mask(code, tuple(int(d) for d in shape))
    except ValueError as exc:
        raise ExssnetError(f"sparse export {path}: the mask of {key!r} is corrupted ({exc})") from None
    if values.dim() != 1 or int(mask.sum()) != values.numel():
        raise ExssnetError(f"sparse export {path}: {key!r} has {values.numel()} values for a mask of {int(mask.sum())}")
    dense = torch.zeros(mask.shape, dtype=values.dtype)
    dense[mask] = values
    return dense


def load_export(model: nn.Module, path: str | Path) -> nn.Module:
    """Load export `path` into `model` (a freshly built instance of the exported class, with the task's class
    count), strictly; a file that does not fit the model is one clear error."""
    state = read_export(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ExssnetError(f"export file {Path(path)} does not fit {type(model).__name__}: {' '.join(lines[1:3]) or lines[0]}") from None
    return model.eval()


# ----- a checkpoint's tasks to files (what `exssnet export` does) ---------------------------
def example_inputs(input_kind: str | None, input_shape: Sequence[int]) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """A batch of 2 example inputs for tracing and their names: images `input`; token features `tokens` + `lengths`."""
    generator = torch.Generator().manual_seed(0)
    if input_kind == "tokens":
        length = int(input_shape[0])
        return (torch.randn(2, *input_shape, generator=generator), torch.tensor([length, max(1, length // 2)])), ["tokens", "lengths"]
    return (torch.randn(2, *input_shape, generator=generator),), ["input"]


def export_checkpoint(directory: str | Path, task: int | None, fmt: str, out: str | Path, *, sparse: bool = False,
                      overwrite: bool = False) -> list[Path]:
    """Export task `task` (every task when None) of the checkpoint folder `directory` to `out` (a file; with
    every task, a folder receiving `task-<t>.<fmt>`), each with its sidecar. Returns the files written."""
    directory, out = Path(directory), Path(out)
    config = read_config(directory)
    name = config["model_name"]
    try:
        lookup_model(name)
    except ExssnetError:
        raise ExssnetError(f"checkpoint {directory} was made with model {name!r}, which is not registered here, so it "
                           "cannot be rebuilt: register its builder (exssnet.models.register_model) before exporting, "
                           "or call export_task(t) from Python on the SupermaskNet holding it") from None
    net = from_pretrained(directory)
    if task is not None:
        net.check_task(task)
    tasks = list(range(net.num_tasks)) if task is None else [task]
    if not tasks:
        raise ExssnetError(f"checkpoint {directory} has no finished task to export")
    if task is None and out.exists() and not out.is_dir():
        raise ExssnetError(f"--task all writes one file per task into a folder; {out} is a file")
    source = file_sha256(directory / CONFIG_FILE, directory / TENSORS_FILE)
    metadata = config["metadata"]
    kind = model_input_kind(name)
    inputs, names = example_inputs(kind, config["input_shape"])
    written = []
    for t in tasks:
        model = export_task(net, t)
        classes = net.tasks[t].num_classes
        sidecar = {
            "task": t, "task_name": _nth(metadata.get("task_names"), t), "classes": _nth(metadata.get("class_names"), t),
            "num_classes": classes, "input_shape": list(config["input_shape"]), "input_kind": kind,
            "model_name": name, "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "rebuild": f"exssnet.models.build_model({name!r}, {tuple(config['input_shape'])}, {classes})",
            "density": config["density"], "source_checkpoint": str(directory), "source_sha256": source,
        }
        path = out / f"task-{t:03d}.{fmt}" if task is None else out
        written.append(write_export(model, path, fmt, sidecar=sidecar, sparse=sparse, example_inputs=inputs,
                                    input_names=names, overwrite=overwrite))
    return written


def _nth(values: Any, index: int) -> Any:
    return values[index] if isinstance(values, list) and index < len(values) else None


def verify_export(path: str | Path) -> dict[str, Any]:
    """Check export `path` end to end and return its sidecar: the file is the one the sidecar describes, it
    loads (ONNX: in ONNX Runtime; a state dict: strictly into the model the sidecar names, rebuilt from the
    registry), and it maps a batch of example inputs to one logit per class of the task."""
    path = Path(path)
    info = read_sidecar(path)
    shape, classes, kind = info.get("input_shape"), info.get("num_classes"), info.get("input_kind")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape) or not isinstance(classes, int)
            or not isinstance(info.get("model_name"), str)):
        raise ExssnetError(f"{sidecar_path(path)}: input_shape, num_classes or model_name is missing or malformed")
    inputs, names = example_inputs(kind, shape)
    if info["file_format"] == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ExssnetError(f"checking an ONNX export needs onnxruntime: {ONNX_EXTRA}") from None
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            logits = session.run(None, {name: x.numpy() for name, x in zip(names, inputs)})[0]
        except Exception as exc:  # onnxruntime raises its own exception kinds
            raise ExssnetError(f"ONNX Runtime cannot run {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        got = tuple(logits.shape)
    else:
        try:
            model = build_model(info["model_name"], tuple(shape), classes)
        except ExssnetError as exc:
            raise ExssnetError(f"cannot rebuild the model of {path} to check it: {exc}") from None
        with torch.no_grad():
            got = tuple(load_export(model, path)(*inputs).shape)
    if got != (len(inputs[0]), classes):
        raise ExssnetError(f"export {path} outputs shape {got} for a batch of {len(inputs[0])}; its sidecar says {classes} classes")
    return info
