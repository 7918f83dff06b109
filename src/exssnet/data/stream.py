"""Splits streamed from image files by DataLoader workers: the whole set is never held in memory.

`StreamSplit` offers what the training loop uses of an in-memory `Split` (`len`, `batches`, `y`, `x[index]`,
`to(device)`), so loops, evaluation, KKT and the replay baselines run on it unchanged:

- a shuffled pass (`batches(..., shuffle=True)`) is a training pass: each image gets the random train
  transform, seeded per example from the pass's generator (the same images on any number of workers);
- an ordered pass and `x[index]` use the deterministic eval transform.

Transforms are written with PIL + torch (torchvision is not a dependency): the standard ImageNet
random-resized crop + horizontal flip for training, short-side resize + centre crop for evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from exssnet.errors import ExssnetError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _load_rgb(path: Path, draft: int | None = None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if draft is not None:
                image.draft("RGB", (draft, draft))  # JPEG: decode at a reduced scale, still >= draft per side
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ExssnetError(f"cannot read image {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None


def worker_error_line(exc: ExssnetError) -> ExssnetError:
    """The one-line error a DataLoader worker raised, without the worker traceback the loader wraps it in."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 1:
        return exc
    prefix = f"{ExssnetError.__module__}.{ExssnetError.__name__}: "
    own = [line[len(prefix):] for line in lines if line.startswith(prefix)]
    return ExssnetError(own[-1] if own else lines[-1])


def to_normalised_tensor(image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """PIL RGB image -> float32 (3, H, W), (x / 255 - mean) / std per channel."""
    array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return array.sub_(m).div_(s)


def random_resized_box(width: int, height: int, generator: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
                       ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a random crop covering `scale` of the area with aspect in `ratio` (10 tries,
    then the largest centred crop of the nearest allowed aspect), as in the standard ImageNet recipe."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (width - w + 1)), int(u[3] * (height - h + 1)), w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


@dataclass(frozen=True)
class TrainTransform:
    """Random resized crop to `size` x `size`, horizontal flip with probability 1/2, normalise."""

    size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __call__(self, path: Path, seed: int) -> torch.Tensor:
        from PIL import Image

        generator = torch.Generator().manual_seed(seed)
        image = _load_rgb(path)
        left, top, w, h = random_resized_box(image.width, image.height, generator)
        image = image.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + w, top + h))
        if float(torch.rand(1, generator=generator)) < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return to_normalised_tensor(image, self.mean, self.std)


@dataclass(frozen=True)
class EvalTransform:
    """Resize the short side to `resize` (default size * 8/7, i.e. 256 for 224), centre crop `size`, normalise."""

    size: int
    resize: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __call__(self, path: Path, seed: int | None = None) -> torch.Tensor:
        from PIL import Image

        short = self.resize or round(self.size * 8 / 7)
        image = _load_rgb(path, draft=short)
        scale = short / min(image.width, image.height)
        w, h = max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))
        image = image.resize((w, h), Image.BILINEAR)
        left, top = (w - self.size) // 2, (h - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        return to_normalised_tensor(image, self.mean, self.std)


class ImageFiles(Dataset):
    """Items are (index, seed) pairs: seed None -> eval transform, else the train transform with that seed."""

    def __init__(self, files: Sequence[Path], train: TrainTransform, eval: EvalTransform) -> None:
        self.files = list(files)
        self.train, self.eval = train, eval

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int | None]) -> torch.Tensor:
        index, seed = item
        return self.eval(self.files[index]) if seed is None else self.train(self.files[index], seed)


class FileInputs:
    """The `x` of a StreamSplit: `x[index]` loads those rows (eval transform) on the split's device."""

    def __init__(self, dataset: ImageFiles, device: torch.device | str = "cpu",
                 memory_format: torch.memory_format | None = None) -> None:
        self.dataset, self.device, self.memory_format = dataset, torch.device(device), memory_format

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.dataset), 3, self.dataset.eval.size, self.dataset.eval.size)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        rows = [self.dataset[(int(i), None)] for i in torch.as_tensor(index).flatten().tolist()]
        if not rows:
            return torch.empty((0, *self.shape[1:]), device=self.device)
        return self.place(torch.stack(rows))

    def place(self, batch: torch.Tensor) -> torch.Tensor:
        """A loaded batch on the split's device (through pinned memory for CUDA) in its memory format."""
        return batch.to(self.device, non_blocking=True, memory_format=self.memory_format or torch.preserve_format)

    def to(self, device: torch.device | str, memory_format: torch.memory_format | None = None) -> "FileInputs":
        return FileInputs(self.dataset, device, memory_format)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding is the work; one BLAS thread per worker keeps the cores for the workers


class StreamSplit:
    """A split of image files with in-memory labels, read batch by batch by `workers` DataLoader processes."""

    def __init__(self, x: FileInputs, y: torch.Tensor, workers: int = 4) -> None:
        if len(x.dataset) != y.shape[0]:
            raise ExssnetError(f"split has {len(x.dataset)} files but {y.shape[0]} labels")
        self.x, self.y, self.workers = x, y, workers

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str, memory_format: torch.memory_format | None = None) -> "StreamSplit":
        return StreamSplit(self.x.to(device, memory_format), self.y.to(device), self.workers)

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                shard: tuple[int, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches in order (eval transform) or in a seeded random order (train transform).

        With `shard` (rank, world size) each global batch is cut row-wise and only this rank's rows are read;
        a shuffled (training) pass then drops a last, partial batch of fewer than 2 rows per process.
        """
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        seeds = (torch.randint(0, 2**62, (n,), generator=generator).tolist() if shuffle else [None] * n)
        rank, world = shard or (0, 1)
        chunks = []
        for start in range(0, n, batch_size):
            if shuffle and shard is not None and len(order[start : start + batch_size]) < min(batch_size, 2 * world):
                break  # a last batch that would leave a process fewer than 2 rows (BatchNorm needs 2 to train)
            rows = order[start : start + batch_size][rank::world]
            chunks.append((rows, [(int(i), seeds[start + k * world + rank]) for k, i in enumerate(rows.tolist())]))
        device = self.x.device
        loader = DataLoader(self.x.dataset, batch_sampler=[items for _, items in chunks if items],
                            num_workers=self.workers, pin_memory=device.type == "cuda",
                            worker_init_fn=_worker_init if self.workers else None)
        loaded = iter(loader)
        labels = self.y.cpu()
        for rows, items in chunks:
            if not items:
                yield torch.empty((0, *self.x.shape[1:]), device=device), self.y.new_empty((0,))
                continue
            try:
                batch = next(loaded)
            except ExssnetError as exc:  # e.g. a truncated image: one line naming the file, not a worker traceback
                raise worker_error_line(exc) from None
            yield self.x.place(batch), labels[rows].to(device, non_blocking=True)
