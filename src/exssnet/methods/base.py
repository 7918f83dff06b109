"""The interface every continual-learning method implements, and the method registry."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.errors import ExssnetError
from exssnet.methods.loops import EpochCallback
from exssnet.registry import Registry
from exssnet.settings import CoreSettings, Settings


class ContinualMethod(ABC):
    """Learns tasks one at a time and answers task-given logits for any learned task."""

    name: str = ""
    text_inputs: str = "features"  # what a text benchmark gives it: frozen-encoder "features" or raw "tokens"
    settings_class: type[Settings] = Settings  # set by register_method
    # core settings it never reads (e.g. SupSup has no weight phase): a value other than the default is a warning
    ignored_core_keys: tuple[str, ...] = ()

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        """`config`: the core settings of the run; `settings`: this method's own (default: its class's defaults)."""
        self.config = config
        self.settings = settings if settings is not None else self.settings_class()
        self.benchmark = benchmark
        self.device = torch.device(config.device)
        self.num_learned = 0

    @abstractmethod
    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        """Train on `task` (id `task_id`, learned in order); return per-task info for results.json."""

    @abstractmethod
    def logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        """Logits over `task_id`'s classes for a batch already on the device."""

    @abstractmethod
    def eval_mode(self) -> None:
        """Put every module in eval mode (before evaluation)."""

    def summary(self) -> dict:
        """Method-level facts for results.json (e.g. sparse overlap)."""
        return {}

    def unread_core_settings(self) -> list[str]:
        """A line for each core setting in `ignored_core_keys` given a value other than its default (an epoch
        count of 0, no such phase, is what the method does anyway)."""
        defaults = {f.name: f.default for f in dataclasses.fields(CoreSettings)}
        unread = [(key, getattr(self.config, key)) for key in self.ignored_core_keys]
        return [f"method {self.name!r} does not read --{key.replace('_', '-')} {value}; the run goes on without it"
                for key, value in unread if value != defaults[key] and not (key.endswith("_epochs") and value == 0)]

    resumable: bool = False  # True when save_checkpoint/load_checkpoint are implemented (read by register_method)
    # False: its state differs between data-parallel processes (a replay buffer fills from each one's shard), so
    # only a one-process run of it writes checkpoints
    resumable_data_parallel: bool = True

    def save_checkpoint(self, directory: Path, metadata: dict) -> None:
        """Write everything needed to continue after the learned tasks into the new folder `directory`."""
        raise ExssnetError(f"checkpoints and --resume are not supported for method {self.config.method!r} yet")

    def load_checkpoint(self, directory: Path) -> None:
        """Restore the state `save_checkpoint` wrote (the learned tasks become learned again)."""
        raise ExssnetError(f"checkpoints and --resume are not supported for method {self.config.method!r} yet")

    def check_task(self, task_id: int) -> int:
        if not isinstance(task_id, int) or not 0 <= task_id < self.num_learned:
            raise ExssnetError(f"task id {task_id!r} is out of range: {self.num_learned} task(s) learned")
        return task_id


MethodFactory = Callable[[CoreSettings, Benchmark, Settings], ContinualMethod]


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: how to build it, the settings class it reads, whether it writes checkpoints."""

    factory: MethodFactory
    settings: type[Settings]
    resumable: bool


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(name: str, settings: type[Settings] = Settings,
                    resumable: bool | None = None) -> Callable[[MethodFactory], MethodFactory]:
    """Register a method factory under `name` with its settings dataclass (its fields become config keys and flags).

    A ContinualMethod class registered this way gets `name` and `settings_class`; `resumable` (whether the method
    writes checkpoints, so --resume can continue it) defaults to the class's `resumable` attribute (False for a
    plain function factory). `method_supports_resume` reads it: the one place that decides.
    """

    def decorate(factory: MethodFactory) -> MethodFactory:
        can_resume = resumable if resumable is not None else bool(getattr(factory, "resumable", False))
        METHODS.register(name)(MethodEntry(factory, settings, can_resume))
        if isinstance(factory, type) and issubclass(factory, ContinualMethod):
            factory.name = name
            factory.settings_class = settings
        return factory

    return decorate


method_names = METHODS.names


def method_settings_class(name: str) -> type[Settings]:
    """The settings dataclass the method `name` reads."""
    return METHODS.get(name).settings


def settings_classes() -> dict[type[Settings], list[str]]:
    """Every registered settings class, with the methods that read it (in registration order)."""
    classes: dict[type[Settings], list[str]] = {}
    for name in method_names():
        classes.setdefault(METHODS.get(name).settings, []).append(name)
    return classes


def method_supports_resume(name: str, world_size: int = 1) -> bool:
    """The one place that decides whether a method's run of `world_size` processes writes checkpoints (so
    --resume can continue it)."""
    entry = METHODS.get(name)
    return entry.resumable and (world_size == 1 or bool(getattr(entry.factory, "resumable_data_parallel", True)))


def method_text_inputs(name: str) -> str:
    """'tokens' for methods that train the encoder on raw text, else 'features' (frozen-encoder features)."""
    return str(getattr(METHODS.get(name).factory, "text_inputs", "features"))


def method_ignored_core_keys(name: str) -> tuple[str, ...]:
    """The core settings method `name` never reads (`ContinualMethod.ignored_core_keys`)."""
    return tuple(getattr(METHODS.get(name).factory, "ignored_core_keys", ()))


def build_method(config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> ContinualMethod:
    """Build `config.method` with its own settings (default: its settings class's defaults)."""
    entry = METHODS.get(config.method)
    if settings is None:  # a run's config carries every method's settings (exssnet.run.config.RunConfig)
        settings = config.settings_of() if hasattr(config, "settings_of") else entry.settings()
    return entry.factory(config, benchmark, settings)
