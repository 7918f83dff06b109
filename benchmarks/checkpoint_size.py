"""Bytes on disk per finished task of a supermask checkpoint, as bits per masked parameter.

For LeNet (SplitMNIST: 784-300-100-2) and a reduced ResNet18 (SplitCIFAR100: widths 20/40/80/160,
BasicBlocks [2, 2, 2, 2], 3x3 stem, no max-pool, 20-way head), a checkpoint is saved with
0..N finished tasks; the growth per task divided by the number of masked weights is the cost of
one more task. Shared weights are paid once and reported apart.

Masks are Golomb-coded (checkpoint format 2): the entropy of a density-0.1 mask is 0.469 bit per
weight; the rest of a task's growth is its BatchNorm statistics and the safetensors header entries.

    python benchmarks/checkpoint_size.py [--tasks 5] [--density 0.1] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch
from torch import nn

from exssnet import save_pretrained, to_supermask
from exssnet.checkpoint import checkpoint_bytes
from exssnet.layers.maskcode import encode_mask
from exssnet.models import build_model


def measure(name: str, dense: nn.Module, input_shape: tuple[int, ...], tasks: int, density: float,
            scores: bool, folder: Path) -> dict:
    """Checkpoint bytes with 0 and `tasks` finished tasks, and the per-task growth in bits per weight."""
    net = to_supermask(dense, density, keep_scores=scores, init="signed-constant")
    sizes = []
    for t in range(tasks + 1):
        sizes.append(checkpoint_bytes(save_pretrained(net, folder / f"{name}-{scores}-{t}", name, input_shape,
                                                      save_scores=scores)))
        if t < tasks:
            net.add_task(2)
            net.finish_task()
    params = net.num_maskable()
    per_task = (sizes[-1] - sizes[0]) / tasks
    mask_bytes = sum(encode_mask(layer.mask_of(t)).numel() for layer in net.masked_layers() for t in range(tasks))
    return {"model": name, "scores": scores, "masked_params": params, "base_bytes": sizes[0],
            "per_task_bytes": per_task, "bits_per_param": 8 * per_task / params,
            "mask_bits_per_param": 8 * mask_bytes / tasks / params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--json", action="store_true",
                        help='print one JSON line: [{"model", "bits_per_param"}] (checkpoints without scores)')
    args = parser.parse_args()
    torch.manual_seed(0)
    models = [("lenet", (1, 28, 28), 2), ("resnet18-reduced", (3, 32, 32), 20)]
    if args.json:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [measure(name, build_model(name, shape, classes), shape, args.tasks, args.density, False, Path(tmp))
                    for name, shape, classes in models]
        print(json.dumps([{"model": r["model"], "bits_per_param": round(r["bits_per_param"], 4)} for r in rows]))
        return
    p = args.density
    entropy = -(p * math.log2(p) + (1 - p) * math.log2(1 - p)) if 0 < p < 1 else 0.0
    print(f"entropy of a density-{p} mask: {entropy:.4f} bit per weight")
    print(f"density {args.density}, {args.tasks} finished tasks; 'per task' = checkpoint growth per finished task")
    print(f"{'model':<24} {'scores':>6} {'masked params':>13} {'shared bytes':>12} {'bytes/task':>11} "
          f"{'bits/param/task':>15} {'mask code only':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, classes in models:
            for scores in (False, True):
                r = measure(name, build_model(name, shape, classes), shape, args.tasks, args.density, scores, Path(tmp))
                print(f"{r['model']:<24} {str(r['scores']):>6} {r['masked_params']:>13,} {r['base_bytes']:>12,} "
                      f"{r['per_task_bytes']:>11,.0f} {r['bits_per_param']:>15.4f} {r['mask_bits_per_param']:>14.4f}")


if __name__ == "__main__":
    main()
