"""Averaged GEM (Chaudhry et al. 2019): never let a step increase the loss on remembered examples (to first order).

Memory: a reservoir buffer over the training examples of FINISHED tasks (each task is offered to it when
it ends), so during task t it holds only tasks < t. Each step, the gradient g of the current batch is
compared with the reference gradient g_ref of agem_mem_batch memory examples (each on its own head);
if g . g_ref < 0 it is replaced by g - (g . g_ref / g_ref . g_ref) g_ref.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exssnet.data.tasks import Benchmark, TaskData
from exssnet.methods.base import register_method
from exssnet.methods.baselines.dense import DenseMethod
from exssnet.methods.baselines.replay_buffer import BufferSettings, ReservoirBuffer
from exssnet.methods.method_state import MethodState
from exssnet.seeds import BufferStream, buffer_seed
from exssnet.settings import CoreSettings, Settings, at_least_one, setting

OFFER_BATCH = 1024  # examples offered to the buffer at once at a task's end


def project_gradient(grad: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`grad` unchanged if it does not oppose `reference`, else its projection orthogonal to `reference`."""
    dot = torch.dot(grad, reference)
    if dot >= 0:
        return grad
    return grad - dot / torch.dot(reference, reference).clamp_min(1e-12) * reference


def flat_grad(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def write_flat_grad(params: list[torch.nn.Parameter], flat: torch.Tensor) -> None:
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


@dataclass
class AGEMSettings(BufferSettings):
    """Settings of agem."""

    agem_mem_batch: int = setting(256, "buffer examples in the reference gradient")

    def check(self) -> None:
        super().check()
        at_least_one(self, "agem_mem_batch")


@register_method("agem", settings=AGEMSettings)
class AGEM(DenseMethod):
    """Projects each step's gradient so that it does not oppose the memory's average gradient."""


    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.buffer = ReservoirBuffer(self.settings.buffer_size, seed=buffer_seed(config.seed, BufferStream.AGEM))
        self.projections = 0

    def after_backward(self, task_id: int) -> None:
        if not len(self.buffer):
            return
        params = [p for p in self.net.parameters() if p.requires_grad]
        grad = flat_grad(params)
        memory = self.buffer.sample(self.settings.agem_mem_batch)
        for p in params:
            p.grad = None
        self.net.mixed_cross_entropy(self.net.features(memory.x), memory.y, memory.task_ids).backward()
        reference = flat_grad(params)
        projected = project_gradient(grad, reference)
        self.projections += int(projected is not grad)
        write_flat_grad(params, projected)

    def after_task(self, task_id: int, task: TaskData) -> None:
        for x, y in task.train.batches(OFFER_BATCH):
            self.buffer.add(x, y, torch.full_like(y, task_id, dtype=torch.long))

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        self.buffer.put_state(state, "buffer")
        state.values["agem_projected_steps"] = self.projections
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        self.buffer.load_state(state, "buffer", self.device)
        self.projections = state.value("agem_projected_steps", int)

    def summary(self) -> dict:
        return {"agem_projected_steps": self.projections,
                "buffer_task_counts": {str(t): n for t, n in sorted(self.buffer.task_counts().items())}}
