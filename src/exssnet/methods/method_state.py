"""Resume checkpoints of the methods whose state is plain tensors and JSON values (dense and language baselines).

A folder holds `config.json` (format `exssnet-method-state`: the method's name, its JSON values and the run's
metadata) and `state.safetensors` (its tensors). Loading runs no code. Such a folder continues a run
(`exssnet run --resume`); it is not a model to share (the supermask methods' checkpoints, exssnet.checkpoint, are).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from exssnet.checkpoint import CONFIG_FILE, METHOD_STATE_FORMAT
from exssnet.errors import ExssnetError

STATE_VERSION = 1
STATE_TENSORS_FILE = "state.safetensors"


@dataclass
class MethodState:
    """Named tensors and JSON values; modules and tensor dicts are stored under a prefix ('net.', 'ewc.0.')."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def put(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        """Keep `tensors` (e.g. a module's state_dict) under `prefix`."""
        for name, tensor in tensors.items():
            self.tensors[f"{prefix}.{name}"] = tensor

    def under(self, prefix: str, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """The tensors `put` kept under `prefix`, with their own names (moved to `device` when given)."""
        start = f"{prefix}."
        return {name[len(start):]: t if device is None else t.to(device)
                for name, t in self.tensors.items() if name.startswith(start)}

    def load_module(self, prefix: str, module: torch.nn.Module) -> None:
        """Load the module state kept under `prefix` (every key must match: the method rebuilt the same modules)."""
        try:
            module.load_state_dict(self.under(prefix))
        except RuntimeError as exc:
            raise ExssnetError(f"the checkpoint's {prefix!r} does not fit the rebuilt model: "
                               f"{str(exc).splitlines()[0]}") from None

    def value(self, name: str, kind: type) -> Any:
        """A JSON value of the expected type, or a clear error for a damaged checkpoint."""
        found = self.values.get(name)
        if not isinstance(found, kind) or (kind is int and isinstance(found, bool)):
            raise ExssnetError(f"the checkpoint's value {name!r} is missing or not a {kind.__name__}")
        return found


def python_rng_state(rng: random.Random) -> list:
    """random.Random's state as JSON (version, 625 ints, gauss_next)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_python_rng_state(rng: random.Random, state: Any) -> None:
    try:
        rng.setstate((state[0], tuple(state[1]), state[2]))
    except (TypeError, ValueError, IndexError):
        raise ExssnetError("the checkpoint's random-number state is damaged") from None


def save_method_state(directory: Path, method: str, state: MethodState, metadata: dict) -> None:
    """Write `state` into the new folder `directory` atomically (a temp folder, then a rename)."""
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    config = {"format": METHOD_STATE_FORMAT, "format_version": STATE_VERSION, "method": method, "values": state.values,
              "metadata": metadata}
    seen: set[int] = set()
    tensors = {}
    for name, tensor in state.tensors.items():  # safetensors refuses tensors that share memory (a shared head)
        tensor = tensor.detach().cpu()
        pointer = tensor.untyped_storage().data_ptr()
        tensors[name] = tensor.clone() if pointer in seen or not tensor.is_contiguous() else tensor
        seen.add(pointer)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / STATE_TENSORS_FILE), metadata={"format": METHOD_STATE_FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(config))
        os.replace(tmp, directory)
    except OSError as exc:
        raise ExssnetError(f"cannot write checkpoint {directory}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_method_state(directory: Path, method: str) -> MethodState:
    """The state `save_method_state` wrote for `method`, checked; clear errors for a damaged or foreign folder."""
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExssnetError(f"{directory / CONFIG_FILE} cannot be read ({exc}); start the run again") from None
    if not isinstance(config, dict) or config.get("format") != METHOD_STATE_FORMAT or config.get("format_version") != STATE_VERSION:
        raise ExssnetError(f"{directory} is not an exssnet method-state checkpoint of version {STATE_VERSION}")
    if config.get("method") != method:
        raise ExssnetError(f"{directory} holds the state of method {config.get('method')!r}, not {method!r}")
    if not isinstance(config.get("values"), dict):
        raise ExssnetError(f"{directory / CONFIG_FILE} is damaged: no values")
    try:
        tensors = load_file(str(directory / STATE_TENSORS_FILE))
    except (OSError, SafetensorError) as exc:
        raise ExssnetError(f"{directory / STATE_TENSORS_FILE} is corrupted or truncated ({exc}); start the run again") from None
    return MethodState(tensors, config["values"])
