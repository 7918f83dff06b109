"""`exssnet run`'s config flags: one `--flag` per config key, in argument groups, with defaults and readers shown.

A method-specific flag's help starts with exactly the methods that read it (exssnet.report.method_keys, derived from
the method registry); `--help-method NAME` prints one method's own settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from exssnet.data import benchmark_names
from exssnet.errors import ExssnetError
from exssnet.methods import method_names, method_settings_class
from exssnet.models import model_names
from exssnet.registry import did_you_mean
from exssnet.report.method_keys import readers, supermask_methods, token_methods
from exssnet.run.config import config_fields, config_types, unknown_keys_error  # noqa: F401 (re-exported)

RUN, DATA, SUPERMASK, CLASS_IL, DENSE, LANGUAGE, SYSTEM = (
    "run", "data", "supermask + KKT", "class-IL", "dense baselines", "language methods", "system")
GROUP_HELP = {
    RUN: "what to learn and how long",
    DATA: "the task stream (text keys: text benchmarks only; image keys: imagenet only)",
    SUPERMASK: "supermask methods (supsup, ssnet, exssnet): masks and KNN-based knowledge transfer",
    CLASS_IL: "class-incremental evaluation: infer the task id, then classify",
    DENSE: "dense continual-learning baselines (docs/baselines.md)",
    LANGUAGE: "language baselines that fine-tune the text encoder (docs/language.md)",
    SYSTEM: "where and how it runs, and what it writes besides results.json",
}
CORE_GROUPS = {
    RUN: ("method", "model", "seed", "batch_size", "eval_batch_size", "mask_epochs", "weight_epochs"),
    DATA: ("benchmark", "num_tasks", "classes_per_task", "class_order", "val_fraction", "data_dir", "encoder", "max_length",
           "cache_dir", "text_max_train", "text_max_test", "text_order", "encode_batch_size", "image_size"),
    SUPERMASK: ("density", "keep_scores", "mask_lr", "weight_lr"),
    CLASS_IL: ("scenario", "classil_rule", "classil_mode", "classil_bn", "classil_batch_size", "classil_every_task"),
    SYSTEM: ("device", "threads", "deterministic", "amp", "channels_last", "workers", "log_csv", "tensorboard"),
}
METAVARS = {int: "N", float: "X", str: "TEXT"}
GROUP_OF_CORE = {key: group for group, keys in CORE_GROUPS.items() for key in keys}


def group_of(key: str) -> str:
    """The help group of a config key: core keys by the table above, method keys by the methods that read them."""
    if key in GROUP_OF_CORE:
        return GROUP_OF_CORE[key]
    who = set(readers(key) or ())
    if who and who <= set(token_methods()):
        return LANGUAGE
    if who and who <= set(supermask_methods()):
        return SUPERMASK
    return DENSE


def shown_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "unset" if value is None else str(value)


def flag_help(f: dataclasses.Field) -> str:
    """Help text of a config flag: its readers (when not every method), its text, its default."""
    text = f.metadata.get("help", "")
    if f.name == "method":
        text = f"one of {', '.join(method_names())} (`--help-method NAME` shows a method's settings)"
    elif f.name == "benchmark":
        text = f"one of {', '.join(benchmark_names())}"
    elif f.name == "model":
        text = f"one of {', '.join(model_names())}"
    who = readers(f.name)
    if who is not None:
        text = f"[{readers_text(who)}] {text}"
    if "default" not in text:  # a help text that explains its default already keeps its own words
        text = f"{text} (default: {shown_default(f.default)})"
    return text.replace("%", "%%")


def readers_text(who: list[str]) -> str:
    """The methods that read a flag, or (shorter, as exact) every method but those that do not."""
    others = [m for m in method_names() if m not in who]
    if len(others) < len(who):
        return f"every method but {', '.join(others)}" if others else "every method"
    return ", ".join(who)


def add_config_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> dict[str, Any]:
    """One `--flag` per config key in its group; booleans get `--flag/--no-flag`. Unset flags stay None.

    Given an argument group (as `exssnet sweep` does), every flag goes into that one group.
    """
    if isinstance(parser, argparse.ArgumentParser):
        groups: dict[str, Any] = {name: parser.add_argument_group(name, GROUP_HELP[name]) for name in GROUP_HELP}
    else:
        groups = dict.fromkeys(GROUP_HELP, parser)
    types = config_types()
    by_group: dict[str, list[dataclasses.Field]] = {name: [] for name in GROUP_HELP}
    for f in config_fields():
        by_group[group_of(f.name)].append(f)
    for name, fields in by_group.items():
        for f in fields:
            flag = "--" + f.name.replace("_", "-")
            kinds = [t for t in types[f.name] if t is not type(None)]
            if kinds[0] is bool:
                groups[name].add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                          help=flag_help(f))
            else:
                groups[name].add_argument(flag, dest=f.name, type=kinds[0], default=None,
                                          metavar=METAVARS.get(kinds[0], "VALUE"), help=flag_help(f))
    return groups


def method_settings_text(method: str) -> str:
    """One method's own settings: flag, default and help, one per line."""
    if method not in method_names():
        hint = did_you_mean(method, method_names()) or f" known methods: {', '.join(method_names())}"
        raise ExssnetError(f"unknown method {method!r};{hint}")
    cls = method_settings_class(method)
    lines = [f"{method}: settings of {cls.__name__} (YAML key = flag without dashes, '-' -> '_')"]
    fields = dataclasses.fields(cls)
    for f in fields:
        lines.append(f"  --{f.name.replace('_', '-'):<22} default {shown_default(f.default):<8} {f.metadata.get('help', '')}")
    core = [key for key in sorted(GROUP_OF_CORE) if readers(key) is not None and method in (readers(key) or ())]
    if core:
        lines.append(f"  besides the core keys every method reads, also {', '.join(core)} (see `exssnet run --help`)")
    if not fields:
        lines.append("  (no settings of its own)")
    return "\n".join(lines)


class HelpMethod(argparse.Action):
    """`--help-method NAME`: print the method's settings and exit (an unknown name: one error line, exit 2)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            print(method_settings_text(str(values)))
        except ExssnetError as exc:
            parser.exit(2, f"exssnet: error: {exc}\n")
        parser.exit(0)
