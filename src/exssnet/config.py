"""Run configuration: one typed dataclass, loaded from YAML and/or CLI flags with strict checks."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exssnet.errors import ExssnetError, check_density


@dataclass
class RunConfig:
    """Everything a continual-learning run needs; every field can be set in YAML or on the CLI."""

    benchmark: str = "split-mnist"
    method: str = "exssnet"
    model: str = "lenet"
    density: float = 0.1
    seed: int = 0
    device: str = "cpu"
    num_tasks: int | None = None
    classes_per_task: int = 2
    class_order: str = "seeded"
    val_fraction: float = 0.1
    data_dir: str | None = None
    batch_size: int = 128
    eval_batch_size: int = 1024
    mask_epochs: int = 5
    weight_epochs: int = 5
    mask_lr: float = 0.01
    weight_lr: float = 0.0005
    keep_scores: bool = True
    deterministic: bool = True
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific settings

    def __post_init__(self) -> None:
        _check_types(self)
        self.density = check_density(self.density)
        for name in ("batch_size", "eval_batch_size", "classes_per_task"):
            if getattr(self, name) < 1:
                raise ExssnetError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("mask_epochs", "weight_epochs"):
            if getattr(self, name) < 0:
                raise ExssnetError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("mask_lr", "weight_lr"):
            if not getattr(self, name) > 0:
                raise ExssnetError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ExssnetError(f"num_tasks must be at least 1, got {self.num_tasks}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ExssnetError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a mapping, refusing unknown keys with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExssnetError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys (dashes in keys are accepted as underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ExssnetError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ExssnetError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ExssnetError(f"config file {path} must hold a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _check_types(config: Any) -> None:
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        allowed = _allowed_types(hints[f.name])
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ExssnetError(f"config key {f.name!r} must be {names}, got {value!r} ({type(value).__name__})")


def _allowed_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _allowed_types(arg))
    return (origin or hint,)
