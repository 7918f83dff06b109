"""Run configuration: the core settings plus the run's own method's settings, loaded from YAML and/or CLI flags.

The accepted keys are the core settings' fields and the fields of the settings classes registered with the
methods (exssnet.methods.register_method). A run reads the core settings and its own method's; a setting only
other methods read, given a value other than its default, is refused (the user would believe it was set).
`to_dict()` is the flat mapping of the keys the run reads (results.json's `config`); `config_diff` compares
two such mappings by the fields' roles (exssnet.settings.Role) for resume, sweep skip and completeness.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from exssnet.data.text_models import is_static_encoder
from exssnet.errors import ExssnetError
from exssnet.methods import method_names, method_settings_class, settings_classes
from exssnet.methods.base import method_text_inputs
from exssnet.registry import did_you_mean
from exssnet.settings import CoreSettings, Role, Settings, field_types, role_of


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


def methods_accepting(key: str, value: Any) -> list[str]:
    """The methods whose settings declare `key` and accept `value` for it (their `check` passes with it)."""
    found = []
    for cls, methods in settings_classes().items():
        if key not in {f.name for f in dataclasses.fields(cls)}:
            continue
        try:
            cls(**{key: value})
        except (ExssnetError, TypeError, ValueError):
            continue
        found += methods
    return sorted(found)


def core_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(CoreSettings)}


def key_roles() -> dict[str, Role]:
    """Each config key's declared role."""
    return {f.name: role_of(f) for f in config_fields()}


def key_defaults() -> dict[str, Any]:
    """Each config key's default value (the first declaration's, as `config_fields`)."""
    return {f.name: f.default for f in config_fields()}


def incidental_keys() -> frozenset[str]:
    """Keys that say where and how a run ran, not what it computes (INCIDENTAL and RESUME_FREE roles)."""
    return frozenset(k for k, role in key_roles().items() if role is not Role.RESULT)


def resume_free_keys() -> frozenset[str]:
    """Keys a resumed run may change."""
    return frozenset(k for k, role in key_roles().items() if role is Role.RESUME_FREE)


class Purpose(Enum):
    """Why two configs are compared; it decides which roles are left out."""

    COMPLETE = frozenset()                                 # is results.json this run's? every setting counts
    RESUME = frozenset({Role.RESUME_FREE})                 # may this run continue that one?
    SKIP = frozenset({Role.RESUME_FREE, Role.INCIDENTAL})  # may a sweep skip that finished cell?


@dataclass(frozen=True)
class Difference:
    key: str
    saved: Any
    now: Any

    def __str__(self) -> str:
        return f"{self.key}: {self.saved!r} -> {self.now!r}"


def config_diff(saved: Mapping[str, Any], now: Mapping[str, Any], purpose: Purpose) -> list[Difference]:
    """The settings whose values differ between two recorded configs, leaving out the roles `purpose` ignores.

    A known key missing from one side had its default value (older versions, or another method's config);
    keys that are no setting (e.g. an older version's `world_size`) are not compared.
    """
    roles, defaults = key_roles(), key_defaults()
    keys = sorted(k for k in set(saved) | set(now) if k in roles and roles[k] not in purpose.value)
    return [Difference(k, saved.get(k, defaults[k]), now.get(k, defaults[k])) for k in keys
            if saved.get(k, defaults[k]) != now.get(k, defaults[k])]


def unknown_keys_error(keys: Sequence[str]) -> ExssnetError:
    """Unknown config keys in one line, each with its close known key when there is one (never every key)."""
    known = [f.name for f in config_fields()]
    hints = {key: did_you_mean(key, known) for key in keys}
    if len(keys) == 1 and hints[keys[0]]:
        return ExssnetError(f"unknown config key(s) {keys[0]};{hints[keys[0]]}")
    close = "".join(f"; {key}:{hint}" for key, hint in hints.items() if hint)
    return ExssnetError(f"unknown config key(s) {', '.join(keys)}{close} (`exssnet run --help` lists every key as a flag)")


def keys_read_by(method: str) -> set[str]:
    """The config keys a run of `method` reads: the core settings and its method's own."""
    return core_keys() | {f.name for f in dataclasses.fields(method_settings_class(method))}


def unread_settings(values: Mapping[str, Any], read: set[str]) -> tuple[list[str], str]:
    """The keys of `values` outside `read` given a value other than their default, and their `--flag value (read by
    ...)` description for an error line."""
    defaults = key_defaults()
    unread = [k for k in values if k not in read and k in defaults and values[k] != defaults[k]]
    details = "; ".join(f"--{k.replace('_', '-')} {values[k]!r} ({reader_list(k, values[k])})" for k in unread)
    return unread, details


def reader_list(key: str, value: Any) -> str:
    """`read by m1, m2` (the methods that accept `value`), or which methods read `key` when none accepts it."""
    accepting = methods_accepting(key, value)
    if accepting:
        return f"read by {', '.join(accepting)}"
    return f"read by {', '.join(methods_reading(key))}, none of which accepts this value"


def refuse_foreign(values: Mapping[str, Any], method: str) -> None:
    """One clear error for a setting only other methods read, given a value other than its default."""
    if method not in method_names():
        return  # an unknown method is refused with the list of known ones when it is built
    foreign, details = unread_settings(values, keys_read_by(method))
    if foreign:
        raise ExssnetError(f"method {method!r} does not read {details}; remove {'it' if len(foreign) == 1 else 'them'} "
                           "or choose a method that reads it")


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
    """Core settings + `method_settings`: the run's own method's settings object, built from the flat keys.

    Build it with `RunConfig.from_dict(flat)` (or `RunConfig(**core_keys)` for the method's default settings).
    """

    method_settings: Settings | None = field(default=None, repr=False)

    def check(self) -> None:
        """Core checks; the method's default settings when none were given.

        After `dataclasses.replace(config, method=other)` the settings are rebuilt for `other`'s class, keeping the
        values of the fields both classes declare.
        """
        super().check()
        check_encoder_fits(self.method, self.encoder)
        own = self.own_settings_class()
        if self.method_settings is None:
            self.method_settings = own()
        elif type(self.method_settings) is not own:
            names = {f.name for f in dataclasses.fields(own)}
            self.method_settings = own(**{k: v for k, v in self.method_settings.to_dict().items() if k in names})

    def own_settings_class(self) -> type[Settings]:
        try:
            return method_settings_class(self.method)
        except ExssnetError:
            return Settings  # an unknown method is refused with the list of known ones when it is built

    def own_settings_keys(self) -> set[str]:
        """The keys this run's method reads from its settings."""
        return {f.name for f in dataclasses.fields(self.own_settings_class())}

    def settings_of(self, method: str | None = None) -> Settings:
        """The settings object the method reads (default: this run's; another method's: its defaults)."""
        if method is None or method_settings_class(method) is self.own_settings_class():
            assert self.method_settings is not None
            return self.method_settings
        return method_settings_class(method)()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        """Build from a flat mapping, refusing unknown keys and settings only other methods read."""
        known = {f.name for f in config_fields()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise unknown_keys_error(unknown)
        core = core_keys()
        method = values.get("method", CoreSettings.method)
        refuse_foreign(values, method)
        config = cls(**{k: v for k, v in values.items() if k in core})
        own = config.own_settings_class()
        names = {f.name for f in dataclasses.fields(own)}
        config.method_settings = own(**{k: v for k, v in values.items() if k in names})
        return config

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping of the keys this run reads: core, then its method's (results.json's `config`)."""
        core = {f.name: getattr(self, f.name) for f in dataclasses.fields(CoreSettings)}
        assert self.method_settings is not None
        return {**core, **self.method_settings.to_dict()}


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
