"""Images per second of the imagenet stream (decode + transform + batch), train and eval passes, by worker count.

Writes N synthetic 500x375 JPEGs (ImageNet's typical size; smooth noise so they compress like photos) into a
temporary ILSVRC-style folder, then times full passes, variants interleaved:

    python benchmarks/stream_throughput.py [--images 256] [--workers 0 2] [--size 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from exssnet.data.stream import EvalTransform, FileInputs, ImageFiles, StreamSplit, TrainTransform


def write_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    files = []
    for i in range(count):
        small = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        files.append(folder / f"img_{i:05d}.JPEG")
        image.save(files[-1], quality=90)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_images(Path(tmp) / "train" / "n00000001", args.images)
        inputs = FileInputs(ImageFiles(files, TrainTransform(args.size), EvalTransform(args.size)))
        labels = torch.zeros(len(files), dtype=torch.long)
        rates: dict[tuple[str, int], list[float]] = {}
        for repeat in range(args.repeats):
            for workers in args.workers:
                split = StreamSplit(inputs, labels, workers)
                for name, shuffle in (("train", True), ("eval", False)):
                    start = time.perf_counter()
                    seen = sum(len(y) for _, y in split.batches(args.batch_size, shuffle=shuffle,
                                                               generator=torch.Generator().manual_seed(repeat)))
                    rates.setdefault((name, workers), []).append(seen / (time.perf_counter() - start))
        for (name, workers), values in sorted(rates.items()):
            print(f"{name:5s} pass, {workers} worker(s): {max(values):7.1f} images/s (best of {len(values)}), "
                  f"{args.size}x{args.size} crops from 500x375 JPEGs")


if __name__ == "__main__":
    main()
