"""Run configuration: the core settings plus every registered method's settings, loaded from YAML and/or CLI flags.

The accepted keys are the core settings' fields and the fields of the settings classes registered with the
methods (exssnet.methods.register_method); `to_dict()` is one flat mapping of them all.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exssnet.data.text_models import is_static_encoder
from exssnet.errors import ExssnetError
from exssnet.methods import method_settings_class, settings_classes
from exssnet.methods.base import method_text_inputs
from exssnet.settings import CoreSettings, Settings, field_types


def config_fields() -> list[dataclasses.Field]:
    """Every accepted config key's field: the core settings', then each registered settings class's (once each)."""
    fields: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(CoreSettings)}
    for cls in settings_classes():
        for f in dataclasses.fields(cls):
            fields.setdefault(f.name, f)
    return list(fields.values())


def config_types() -> dict[str, tuple[type, ...]]:
    """Each config key's allowed types (`int | None` -> (int, NoneType))."""
    types: dict[str, tuple[type, ...]] = {}
    for cls in (CoreSettings, *settings_classes()):
        for name, hint in typing.get_type_hints(cls).items():
            types.setdefault(name, field_types(hint))
    return types


def methods_reading(key: str) -> list[str]:
    """The methods whose settings declare `key` (empty for a core key)."""
    return sorted(m for cls, methods in settings_classes().items() if key in {f.name for f in dataclasses.fields(cls)}
                  for m in methods)


def check_encoder_fits(method: str, encoder: str) -> None:
    """Refuse static word vectors for a method that fine-tunes a contextual encoder on raw text (before any work)."""
    try:
        reads_tokens = method_text_inputs(method) == "tokens"
    except ExssnetError:
        return  # an unknown method is refused with the list of known ones when it is built
    if reads_tokens and is_static_encoder(encoder):
        raise ExssnetError(f"method {method!r} fine-tunes a contextual encoder; {encoder!r} is static word vectors: "
                           "use --encoder minilm, mpnet-base or a Hugging Face model folder")


@dataclass
class RunConfig(CoreSettings):
    """Core settings + `method_settings`: one instance of every registered settings class, built from the flat keys.

    Build it with `RunConfig.from_dict(flat)` (or `RunConfig(**core_keys)` for defaults of the method settings).
    """

    method_settings: dict[type[Settings], Settings] = field(default_factory=dict, repr=False)

    def check(self) -> None:
        """Core checks; fill in defaults for settings classes not given; refuse a switch the method ignores.

        A boolean setting that is off by default, turned on (e.g. `kkt`) for a method whose settings do not declare it is an error;
        other settings of other methods are carried (a sweep's base config serves every method) and unused.
        """
        super().check()
        check_encoder_fits(self.method, self.encoder)
        given = self.method_settings
        self.method_settings = {cls: given.get(cls, None) or cls() for cls in settings_classes()}
        own = self.own_settings_keys()
        defaults = {f.name: f.default for f in config_fields()}
        for key, value in self.method_values().items():
            if value is True and defaults[key] is False and key not in own:
                raise ExssnetError(f"--{key.replace('_', '-')} is not supported for method {self.method!r} "
                                   f"(only {', '.join(methods_reading(key))})")

    def own_settings_keys(self) -> set[str]:
        """The keys this run's method reads from its settings."""
        try:
            return {f.name for f in dataclasses.fields(method_settings_class(self.method))}
        except ExssnetError:
            return set()  # an unknown method is refused with the list of known ones when it is built

    def method_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for settings in self.method_settings.values():
            for key, value in settings.to_dict().items():
                values.setdefault(key, value)
        return values

    def settings_of(self, method: str | None = None) -> Settings:
        """The settings object the method (default: this run's) reads."""
        return self.method_settings[method_settings_class(method or self.method)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a flat mapping, refusing keys that neither the core nor any method's settings declare."""
        known = {f.name for f in config_fields()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExssnetError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        core = {f.name for f in dataclasses.fields(CoreSettings)}
        settings = {}
        for settings_cls in settings_classes():
            names = {f.name for f in dataclasses.fields(settings_cls)}
            settings[settings_cls] = settings_cls(**{k: v for k, v in values.items() if k in names})
        return cls(**{k: v for k, v in values.items() if k in core}, method_settings=settings)

    def to_dict(self) -> dict[str, Any]:
        """One flat mapping of every key (results.json's `config`)."""
        core = {f.name: getattr(self, f.name) for f in dataclasses.fields(CoreSettings)}
        return {**core, **self.method_values()}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys (dashes in keys are accepted as underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ExssnetError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ExssnetError(f"config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ExssnetError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ExssnetError(f"config file {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}{at}") from None
    if not isinstance(values, dict):
        raise ExssnetError(f"config file {path} must hold a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}
