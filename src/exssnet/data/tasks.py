"""The data contract every benchmark returns: tasks of in-memory tensors with per-task labels."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence, Union

import torch

from exssnet.errors import ExssnetError

Inputs = Union[torch.Tensor, tuple[torch.Tensor, ...]]
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def num_examples(x: Inputs) -> int:
    return (x[0] if isinstance(x, tuple) else x).shape[0]


def take(x: Inputs, index: torch.Tensor) -> Inputs:
    """Rows `index` of a tensor or of every tensor of a tuple."""
    return tuple(t[index] for t in x) if isinstance(x, tuple) else x[index]


def pad_tokens(t: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad dimension 1 (the token axis of (N, L, ...) inputs) up to `length`."""
    if t.dim() < 2 or t.shape[1] >= length:
        return t
    padding = [0, 0] * (t.dim() - 2) + [0, length - t.shape[1]]
    return torch.nn.functional.pad(t, padding)


def concat_inputs(parts: list[Inputs]) -> Inputs:
    """Concatenate tensors (or tuples of tensors, field by field) along the batch dimension.

    Fields of a tuple input whose token axis (dimension 1) differs between parts, e.g. text features
    (N, L, D) or token ids / attention masks (N, L) trimmed per split to their longest text, are
    zero-padded to the longest part first: the padded positions lie past each example's length (or
    are 0 in its mask), so every model that reads the padding mask ignores them.
    """
    if not all(isinstance(part, (torch.Tensor, tuple)) for part in parts):
        raise ExssnetError("this needs every example in memory, but the benchmark streams its images from disk "
                           "(class-il evaluation and the joint baseline are not supported on imagenet)")
    if isinstance(parts[0], tuple):
        return tuple(_cat_padded(list(group)) for group in zip(*parts))  # type: ignore[arg-type]
    return torch.cat(parts)  # type: ignore[arg-type]


def _cat_padded(group: list[torch.Tensor]) -> torch.Tensor:
    if group[0].dim() >= 2:
        longest = max(t.shape[1] for t in group)
        group = [pad_tokens(t, longest) for t in group]
    return torch.cat(group)


def to_device(x: Inputs, device: torch.device | str, memory_format: torch.memory_format | None = None) -> Inputs:
    """`x` on `device`; 4-d image tensors also in `memory_format` (e.g. torch.channels_last) when given."""
    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, memory_format=memory_format) if memory_format is not None and t.dim() == 4 else t.to(device)

    return tuple(move(t) for t in x) if isinstance(x, tuple) else move(x)


@dataclass
class Split:
    """Inputs and labels (0..C-1 within the task) of one split."""

    x: Inputs
    y: torch.Tensor

    def __post_init__(self) -> None:
        if num_examples(self.x) != self.y.shape[0]:
            raise ExssnetError(f"split has {num_examples(self.x)} inputs but {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str, memory_format: torch.memory_format | None = None) -> "Split":
        return Split(to_device(self.x, device, memory_format), self.y.to(device))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """Mini-batches in order, or in a seeded random order.

        With `shard` (rank, world size) each batch keeps only rows rank, rank + world, ... (data parallel);
        a shuffled (training) pass then drops a last, partial batch of fewer than 2 rows per process.
        """
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        rank, world = shard or (0, 1)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            if shuffle and shard is not None and len(rows) < min(batch_size, 2 * world):
                break  # a last batch that would leave a process fewer than 2 rows (BatchNorm needs 2 to train)
            index = rows[rank::world]
            yield take(self.x, index), self.y[index]


@dataclass
class TaskData:
    """One task: class names in label order and train / val / test splits."""

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    augment: BatchTransform | None = None  # applied to training batches only

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Benchmark:
    """A sequence of tasks sharing one input shape."""

    name: str
    tasks: list[TaskData]
    input_shape: tuple[int, ...]
    info: dict = field(default_factory=dict)

    @property
    def max_classes(self) -> int:
        return max(task.num_classes for task in self.tasks)


def validation_as_test(benchmark: Benchmark) -> Benchmark:
    """The benchmark with each task's validation split in place of its test split (`eval_split: val`): everything
    a run measures on "test" (the accuracy matrix, class-IL, drift) then reads validation examples only."""
    for t, task in enumerate(benchmark.tasks):
        if len(task.val) == 0:
            raise ExssnetError(f"eval_split 'val': task {t} ({task.name}) has no validation examples; raise val_fraction")
    tasks = [replace(task, test=task.val) for task in benchmark.tasks]
    return replace(benchmark, tasks=tasks, info={**benchmark.info, "eval_split": "val"})


def carve_validation(split: Split, fraction: float, generator: torch.Generator) -> tuple[Split, Split]:
    """Split training data into (train, val) with `fraction` of it, at random, as validation."""
    if not 0.0 <= fraction < 1.0:
        raise ExssnetError(f"val_fraction must be in [0, 1), got {fraction}")
    n = len(split)
    order = torch.randperm(n, generator=generator)
    n_val = int(round(n * fraction))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return Split(take(split.x, train_idx), split.y[train_idx]), Split(take(split.x, val_idx), split.y[val_idx])


def class_incremental_tasks(
    train: Split,
    test: Split,
    class_names: Sequence[str],
    class_order: Sequence[int],
    classes_per_task: int,
    val_fraction: float,
    generator: torch.Generator,
    prefix: str = "task",
    augment: BatchTransform | None = None,
) -> list[TaskData]:
    """Cut a labelled dataset into tasks of `classes_per_task` classes taken in `class_order`.

    Labels are remapped per task to 0..C_t-1 by position in the task's class list.
    """
    if classes_per_task < 1 or len(class_order) < classes_per_task:
        raise ExssnetError(
            f"cannot make tasks of {classes_per_task} classes from {len(class_order)} classes"
        )
    tasks = []
    for t in range(len(class_order) // classes_per_task):
        chosen = list(class_order[t * classes_per_task : (t + 1) * classes_per_task])
        task_train = _select_classes(train, chosen)
        task_train, task_val = carve_validation(task_train, val_fraction, generator)
        tasks.append(
            TaskData(
                name=f"{prefix}{t}",
                classes=[str(class_names[c]) for c in chosen],
                train=task_train,
                val=task_val,
                test=_select_classes(test, chosen),
                augment=augment,
            )
        )
    return tasks


def _select_classes(split: Split, chosen: list[int]) -> Split:
    """Examples of the `chosen` original labels, relabelled 0..len(chosen)-1."""
    labels = torch.as_tensor(chosen, dtype=split.y.dtype)
    keep = torch.isin(split.y, labels)
    index = keep.nonzero().flatten()
    size = max([int(split.y.max()) if len(split) else -1, *chosen]) + 1  # a chosen class may be absent
    remap = torch.full((size,), -1, dtype=torch.long)
    remap[labels] = torch.arange(len(chosen))
    return Split(take(split.x, index), remap[split.y[index]])
