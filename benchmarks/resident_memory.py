"""Resident memory of many finished tasks vs their floor (shared weights + 1-bit packed masks).

Builds a supermask model, finishes `--tasks` tasks (random masks: memory does not depend on training),
selects one task for inference, and prints what the net holds (`exssnet.footprint.resident_bytes`:
parameters, buffers and speed caches) against the weights + packed masks, plus the process RSS growth.

    python benchmarks/resident_memory.py [--model resnet18-reduced] [--tasks 50] [--keep-scores] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource

import torch

from exssnet import to_supermask
from exssnet.footprint import resident_bytes, weights_and_packed_masks_bytes
from exssnet.models import build_model

MODELS = {"lenet": ((1, 28, 28), 2), "resnet18-reduced": ((3, 32, 32), 20)}


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18-reduced")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--keep-scores", action="store_true", help="keep every finished task's float scores")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    shape, classes = MODELS[args.model]
    start = rss_bytes()
    net = to_supermask(build_model(args.model, shape, classes), args.density, keep_scores=args.keep_scores, init="signed-constant")
    for _ in range(args.tasks):
        net.add_task(classes)
        net.finish_task()
    net.eval()
    with torch.no_grad():
        net.logits(torch.randn(2, *shape), 0)
    resident, floor = resident_bytes(net), weights_and_packed_masks_bytes(net)
    row = {"model": args.model, "tasks": args.tasks, "keep_scores": args.keep_scores, "resident_bytes": resident,
           "weights_and_packed_masks_bytes": floor, "ratio": round(resident / floor, 3),
           "rss_growth_bytes": rss_bytes() - start}
    if args.json:
        print(json.dumps(row))
        return
    for key, value in row.items():
        print(f"{key:<32} {value:,}" if isinstance(value, int) and not isinstance(value, bool) else f"{key:<32} {value}")


if __name__ == "__main__":
    main()
