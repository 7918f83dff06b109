"""Experience Replay (reservoir buffer): each step trains on the current batch plus a buffer batch.

The buffer is a reservoir over every training example streamed so far (current task included);
replayed examples are scored by their own task's head. Inputs are stored before augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exssnet.data.tasks import Benchmark, Inputs, concat_inputs
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import DenseMethod
from exssnet.methods.baselines.replay_buffer import BufferSettings, ReservoirBuffer
from exssnet.methods.loops import Step
from exssnet.methods.method_state import MethodState
from exssnet.seeds import BufferStream, buffer_seed
from exssnet.settings import CoreSettings, Settings, at_least_one, setting


@dataclass
class ReplaySettings(BufferSettings):
    """Settings of the methods that replay buffer examples in each step (er, der, derpp)."""

    replay_batch_size: int = setting(64, "buffer examples replayed per step")

    def check(self) -> None:
        super().check()
        at_least_one(self, "replay_batch_size")


class ReplayMethod(DenseMethod):
    """A dense method with a reservoir buffer that current batches are offered to after each step."""

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.buffer = ReservoirBuffer(self.settings.buffer_size, seed=buffer_seed(config.seed, BufferStream.ER))
        self.class_counts: list[int] = []

    def grow(self, task_id: int) -> None:
        super().grow(task_id)
        self.class_counts.append(self.benchmark.tasks[task_id].num_classes)

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        self.buffer.put_state(state, "buffer")
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        self.buffer.load_state(state, "buffer", self.device)

    def task_ids_like(self, y: torch.Tensor, task_id: int) -> torch.Tensor:
        return torch.full_like(y, task_id, dtype=torch.long)

    def with_replay(self, x: Inputs, y: torch.Tensor, task_id: int) -> tuple[Inputs, torch.Tensor, torch.Tensor]:
        """The batch with replay_batch_size buffer examples appended (once the buffer holds any), and each row's task."""
        task_ids = self.task_ids_like(y, task_id)
        if len(self.buffer):
            replay = self.buffer.sample(self.settings.replay_batch_size)
            x, y = concat_inputs([x, replay.x]), torch.cat([y, replay.y])
            task_ids = torch.cat([task_ids, replay.task_ids])
        return x, y, task_ids

    def after_step(self, x: Inputs, y: torch.Tensor, task_id: int, step: Step) -> None:
        self.buffer.add(x, y, self.task_ids_like(y, task_id))

    def summary(self) -> dict:
        return {"buffer_task_counts": {str(t): n for t, n in sorted(self.buffer.task_counts().items())}}


@register_method("er", settings=ReplaySettings)
class ER(ReplayMethod):
    """Cross-entropy on the current batch concatenated with replay_batch_size buffer examples."""

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        x, y, task_ids = self.with_replay(x, y, task_id)
        return self.net.mixed_cross_entropy(self.net.features(x), y, task_ids)
