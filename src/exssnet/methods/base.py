"""The interface every continual-learning method implements, and the method registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import torch

from exssnet.config import RunConfig
from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.errors import ExssnetError
from exssnet.methods.loops import EpochCallback
from exssnet.registry import Registry


class ContinualMethod(ABC):
    """Learns tasks one at a time and answers task-given logits for any learned task."""

    name: str = ""
    supports_kkt: bool = False  # True when the method honours config.kkt (supermask methods)

    def __init__(self, config: RunConfig, benchmark: Benchmark) -> None:
        if config.kkt and not self.supports_kkt:
            raise ExssnetError(f"--kkt is not supported for method {config.method!r} (only supermask methods)")
        self.config = config
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

    resumable: bool = False  # True when save_checkpoint/load_checkpoint are implemented

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


MethodFactory = Callable[[RunConfig, Benchmark], ContinualMethod]
METHODS: Registry[MethodFactory] = Registry("method")


def register_method(name: str) -> Callable[[MethodFactory], MethodFactory]:
    """Register a method factory under `name`; a ContinualMethod class registered this way gets `name` as its name."""

    def decorate(factory: MethodFactory) -> MethodFactory:
        METHODS.register(name)(factory)
        if isinstance(factory, type) and issubclass(factory, ContinualMethod):
            factory.name = name
        return factory

    return decorate

method_names = METHODS.names


def method_supports_resume(name: str) -> bool:
    """False for methods registered as a ContinualMethod class that declares `resumable = False`."""
    return bool(getattr(METHODS.get(name), "resumable", True))


def build_method(config: RunConfig, benchmark: Benchmark) -> ContinualMethod:
    return METHODS.get(config.method)(config, benchmark)
