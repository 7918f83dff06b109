"""A fixed-size replay buffer filled by reservoir sampling over the stream of training examples.

Every example seen so far has the same chance, capacity / seen, to be in the buffer. Each slot holds
an input, its label, its task id and optionally the logits the model gave it when it was stored (DER).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from exssnet.data.tasks import Inputs, num_examples, pad_tokens
from exssnet.errors import ExssnetError
from exssnet.methods.baselines.dense import BaselineSettings
from exssnet.methods.method_state import MethodState, python_rng_state, set_python_rng_state
from exssnet.settings import at_least_one, setting


@dataclass
class BufferSettings(BaselineSettings):
    """Settings of every method that keeps a replay buffer (er, der, derpp, agem)."""

    buffer_size: int = setting(500, "examples kept in the replay buffer (reservoir)")

    def check(self) -> None:
        super().check()
        at_least_one(self, "buffer_size")


@dataclass
class ReplayBatch:
    x: Inputs
    y: torch.Tensor
    task_ids: torch.Tensor
    logits: torch.Tensor | None


class ReservoirBuffer:
    """At most `capacity` examples; `add` inserts by reservoir sampling, `sample` draws without replacement."""

    def __init__(self, capacity: int, seed: int) -> None:
        if capacity < 1:
            raise ExssnetError(f"buffer_size must be at least 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0
        self.size = 0
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.x: list[torch.Tensor] = []  # one storage tensor per input tensor (a tuple input has several)
        self.y: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.tuple_inputs = False

    def __len__(self) -> int:
        return self.size

    def slots_for(self, count: int) -> tuple[list[int], list[int]]:
        """(batch rows kept, buffer slots they go to) for the next `count` streamed examples."""
        rows, slots = [], []
        for row in range(count):
            if self.seen < self.capacity:
                slot = self.seen
            else:
                slot = self.rng.randint(0, self.seen)  # inclusive: seen + 1 candidates
            self.seen += 1
            if slot < self.capacity:
                rows.append(row)
                slots.append(slot)
        return rows, slots

    def add(self, x: Inputs, y: torch.Tensor, task_ids: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        """Offer a batch to the buffer (each example is kept with the reservoir probability)."""
        rows, slots = self.slots_for(num_examples(x))
        if not rows:
            return
        if self.y is None:
            self.allocate(x, y, logits)
        index = torch.tensor(rows, device=y.device)
        where = torch.tensor(slots, device=self.y.device)
        parts = x if isinstance(x, tuple) else (x,)
        if self.tuple_inputs:  # text: token axes differ between tasks; store at the longest seen
            self.x = [pad_tokens(store, part.shape[1]) if part.dim() >= 2 else store for store, part in zip(self.x, parts)]
        for store, part in zip(self.x, parts):
            kept = part[index].detach()
            if self.tuple_inputs and kept.dim() >= 2:
                kept = pad_tokens(kept, store.shape[1])
            store[where] = kept
        self.y[where] = y[index]
        self.task_ids[where] = task_ids[index].to(self.task_ids.device)
        if self.logits is not None and logits is not None:
            self.logits[where] = logits[index].detach()
        self.size = min(self.seen, self.capacity)

    def allocate(self, x: Inputs, y: torch.Tensor, logits: torch.Tensor | None) -> None:
        self.tuple_inputs = isinstance(x, tuple)
        parts = x if isinstance(x, tuple) else (x,)
        self.x = [part.new_zeros((self.capacity, *part.shape[1:])) for part in parts]
        self.y = y.new_zeros(self.capacity)
        self.task_ids = torch.zeros(self.capacity, dtype=torch.long, device=y.device)
        if logits is not None:
            self.logits = logits.new_zeros((self.capacity, logits.shape[1]))

    def sample(self, count: int) -> ReplayBatch:
        """Up to `count` distinct stored examples chosen at random."""
        if self.size == 0:
            raise ExssnetError("cannot sample from an empty replay buffer")
        index = torch.randperm(self.size, generator=self.generator)[:count].to(self.y.device)
        stored = tuple(store[index] for store in self.x)
        x = stored if self.tuple_inputs else stored[0]
        return ReplayBatch(x, self.y[index], self.task_ids[index],
                           self.logits[index] if self.logits is not None else None)

    def put_state(self, state: MethodState, prefix: str) -> None:
        """Keep the buffer (stored examples, counters, both random streams) in `state` under `prefix`."""
        tensors = {f"x{i}": store for i, store in enumerate(self.x)}
        tensors.update({name: t for name, t in (("y", self.y), ("task_ids", self.task_ids), ("logits", self.logits))
                        if t is not None})
        tensors["generator"] = self.generator.get_state()
        state.put(prefix, tensors)
        state.values[prefix] = {"seen": self.seen, "size": self.size, "tuple_inputs": self.tuple_inputs,
                                "rng": python_rng_state(self.rng)}

    def load_state(self, state: MethodState, prefix: str, device: torch.device) -> None:
        """Take back what `put_state` kept."""
        values, tensors = state.values.get(prefix), state.under(prefix)
        try:
            self.seen, self.size, self.tuple_inputs = int(values["seen"]), int(values["size"]), bool(values["tuple_inputs"])
            rng, generator = values["rng"], tensors["generator"]
        except (KeyError, TypeError, ValueError):
            raise ExssnetError(f"the checkpoint's replay buffer {prefix!r} is missing or damaged") from None
        set_python_rng_state(self.rng, rng)
        self.generator.set_state(generator)
        self.x = [tensors[f"x{i}"].to(device) for i in range(sum(name.startswith("x") for name in tensors))]
        for name in ("y", "task_ids", "logits"):
            setattr(self, name, tensors[name].to(device) if name in tensors else None)
        if self.size > self.capacity or (self.size and self.y is None):
            raise ExssnetError(f"the checkpoint's replay buffer {prefix!r} is damaged")

    def task_counts(self) -> dict[int, int]:
        """How many stored examples each task has."""
        if self.task_ids is None:
            return {}
        ids, counts = self.task_ids[: self.size].unique(return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))
