"""MbPA++ (de Masson d'Autume et al. 2019): sparse experience replay, then local adaptation at test time.

Training: cross-entropy on the current batch; every `mbpa_replay_every` steps one batch of
`replay_batch_size` stored examples (the reservoir buffer of `er`, `buffer_size` examples; MbPA++ keeps
every example) is added. Keys: the pooled features of a frozen copy of the pretrained encoder.
Inference, per chunk of `mbpa_test_batch` test examples of task t: the `mbpa_neighbours` stored
examples of task t nearest (Euclidean, in key space) to each test example are pooled, the encoder and
head t take `mbpa_steps` SGD steps (`mbpa_lr`) on their cross-entropy plus
`mbpa_lambda` * ||theta - theta_base||^2, the chunk is predicted, and the base weights are restored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from exssnet.data.tasks import Benchmark, Inputs, TaskData, concat_inputs, num_examples, take
from exssnet.methods.base import register_method
from exssnet.methods.baselines.er import ER
from exssnet.methods.language.base import LanguageMethod, MbPASettings
from exssnet.methods.language.encoder_net import frozen_copy
from exssnet.methods.loops import EpochCallback
from exssnet.methods.method_state import MethodState
from exssnet.settings import CoreSettings, Settings


@register_method("mbpa", settings=MbPASettings)
class MbPA(LanguageMethod, ER):
    """Sparse replay while training; local adaptation on memory neighbours at test time."""

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.key_net = frozen_copy(self.net.trunk)  # the pretrained encoder, before any task
        self.steps = 0
        self._keys: tuple[int, torch.Tensor] | None = None  # (buffer.seen when computed, keys)
        self.adapted_batches = 0
        self.show_progress = False  # the run's progress setting (a bar over test-time adaptation)

    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        self.show_progress = progress
        return super().learn_task(task_id, task, progress, on_epoch)

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        self.steps += 1
        task_ids = self.task_ids_like(y, task_id)
        if len(self.buffer) and self.steps % self.settings.mbpa_replay_every == 0:
            replay = self.buffer.sample(self.settings.replay_batch_size)
            x, y = concat_inputs([x, replay.x]), torch.cat([y, replay.y])
            task_ids = torch.cat([task_ids, replay.task_ids])
        return self.net.mixed_cross_entropy(self.net.features(x), y, task_ids)

    @torch.no_grad()
    def memory_keys(self) -> torch.Tensor:
        if self._keys is None or self._keys[0] != self.buffer.seen:
            x = tuple(store[: len(self.buffer)] for store in self.buffer.x)
            keys = torch.cat([self.key_net(*take(x, torch.arange(i, min(i + 256, len(self.buffer)), device=x[0].device)))
                              for i in range(0, len(self.buffer), 256)])
            self._keys = (self.buffer.seen, keys)
        return self._keys[1]

    def neighbours(self, x: Inputs, task_id: int) -> torch.Tensor:
        """Buffer rows of task `task_id` nearest to any example of `x` (union over the chunk)."""
        rows = (self.buffer.task_ids[: len(self.buffer)] == task_id).nonzero().flatten()
        if rows.numel() == 0:
            return rows
        with torch.no_grad():
            distances = torch.cdist(self.key_net(*x), self.memory_keys()[rows])
        k = min(self.settings.mbpa_neighbours, rows.numel())
        return rows[distances.topk(k, dim=1, largest=False).indices.flatten().unique()]

    def parameters_of(self, task_id: int) -> list[torch.nn.Parameter]:
        return [*self.net.trunk.parameters(), *self.net.heads[task_id].parameters()]

    def local_logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        rows = self.neighbours(x, task_id)
        if rows.numel() == 0 or self.settings.mbpa_steps == 0:
            return self.net(x, task_id)
        params = [p for p in self.parameters_of(task_id) if p.requires_grad]
        base = [p.detach().clone() for p in params]
        memory_x = tuple(store[rows] for store in self.buffer.x)
        memory_y = self.buffer.y[rows]
        optimizer = torch.optim.SGD(params, lr=self.settings.mbpa_lr)
        try:
            with torch.enable_grad():
                for _ in range(self.settings.mbpa_steps):
                    loss = F.cross_entropy(self.net(memory_x, task_id), memory_y)
                    loss = loss + self.settings.mbpa_lambda * sum(((p - b) ** 2).sum() for p, b in zip(params, base))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            with torch.no_grad():
                out = self.net(x, task_id)
        finally:
            with torch.no_grad():
                for p, b in zip(params, base):
                    p.copy_(b)  # the base weights are back after every test chunk
        self.adapted_batches += 1
        return out

    def logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        task_id = self.check_task(task_id)
        if not len(self.buffer):
            return self.net(x, task_id)
        n, size = num_examples(x), self.settings.mbpa_test_batch
        chunks = [take(x, torch.arange(i, min(i + size, n), device=self.device)) for i in range(0, n, size)]
        bar = tqdm(chunks, desc=f"  mbpa: test-time adaptation, task {task_id}", unit="chunk", leave=False,
                   disable=not self.show_progress or len(chunks) < 2)
        return torch.cat([self.local_logits(chunk, task_id) for chunk in bar])

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        state.values.update(mbpa_steps_taken=self.steps, mbpa_adapted_batches=self.adapted_batches)
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        self.steps = state.value("mbpa_steps_taken", int)
        self.adapted_batches = state.value("mbpa_adapted_batches", int)

    def summary(self) -> dict:
        return {**super().summary(), "mbpa_adapted_batches": self.adapted_batches}
