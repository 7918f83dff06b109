"""Deploying one task: file sizes (dense / sparse safetensors, ONNX) and inference time, exported vs masked net.

For LeNet (SplitMNIST: 784-300-100-2) and the reduced ResNet18 (SplitCIFAR100 inputs 3x32x32, 10-way head),
a supermask net with `--tasks` finished tasks (random masks at `--density`; the last one with an ExSSNeT weight
phase of a few steps) exports its last task. Sizes are of the files `exssnet export` writes. Times: one torch
thread, the same batch, `--repeats` rounds in which the exported PyTorch module, the masked net
(`net.logits(x, t)`, eval mode, no grad) and the ONNX model in ONNX Runtime (one intra-op thread) each run once,
interleaved in a rotating order; medians and their ratios are reported. The exported module's outputs equal the net's bit for bit.

    python benchmarks/export_speed.py [--density 0.1] [--repeats 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from exssnet import to_supermask
from exssnet.export_files import example_inputs, write_export
from exssnet.models import build_model
from exssnet.supermask import WeightRule

MODELS = [("lenet", (1, 28, 28), 2, 256), ("resnet18-reduced", (3, 32, 32), 10, 64)]  # name, input, head, batch


def trained_net(name: str, shape: tuple[int, ...], classes: int, tasks: int, density: float):
    net = to_supermask(build_model(name, shape, classes), density, init="signed-constant")
    x = torch.randn(32, *shape)
    for t in range(tasks):
        net.add_task(classes)
        net.train()
        with torch.no_grad():
            net(x)  # BatchNorm statistics of the task
        if t == tasks - 1:
            net.start_weight_phase(WeightRule.EXCLUSIVE)
            optimizer = torch.optim.Adam(net.trainable_parameters(), lr=0.01)
            for _ in range(3):
                optimizer.zero_grad()
                net(x).square().mean().backward()
                optimizer.step()
        net.finish_task()
    return net.eval()


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def measure(name: str, shape: tuple[int, ...], classes: int, batch: int, density: float, tasks: int, repeats: int,
            folder: Path) -> dict:
    import onnxruntime

    torch.manual_seed(0)
    net = trained_net(name, shape, classes, tasks, density)
    task = tasks - 1
    model = net.export_task(task)
    inputs, names = example_inputs("image", shape)
    sizes = {}
    for label, fmt, sparse in (("dense", "safetensors", False), ("sparse", "safetensors", True), ("onnx", "onnx", False)):
        path = write_export(model, folder / f"{name}-{label}.{fmt}", fmt, sparse=sparse, sidecar={},
                            example_inputs=inputs, input_names=names)
        sizes[label] = path.stat().st_size
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(folder / f"{name}-onnx.onnx"), options, providers=["CPUExecutionProvider"])
    x = torch.randn(batch, *shape)
    feed = {"input": x.numpy()}
    runs = {"exported": lambda: model(x), "masked": lambda: net.logits(x, task), "onnxruntime": lambda: session.run(None, feed)}
    with torch.no_grad():
        assert torch.equal(model(x), net.logits(x, task))
        for run in runs.values():  # warm-up (the masked net computes weight * mask once per selection)
            run()
        times: dict[str, list[float]] = {key: [] for key in runs}
        order = list(runs)
        for round_ in range(repeats):
            for key in order[round_ % 3:] + order[: round_ % 3]:  # each starts a round as often as the others
                run = runs[key]
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
    ms = {key: median_ms(values) for key, values in times.items()}
    return {"model": name, "density": density, "batch": batch, "bytes": sizes,
            "sparse_over_dense": sizes["sparse"] / sizes["dense"], "onnx_over_dense": sizes["onnx"] / sizes["dense"],
            "ms": ms, "masked_over_exported": ms["masked"] / ms["exported"],
            "onnxruntime_over_exported": ms["onnxruntime"] / ms["exported"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print one JSON line per model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, classes, batch in MODELS:
            row = measure(name, shape, classes, batch, args.density, args.tasks, args.repeats, Path(tmp))
            if args.json:
                print(json.dumps(row))
                continue
            b, ms = row["bytes"], row["ms"]
            print(f"{name} (density {row['density']}, batch {row['batch']}, 1 thread)")
            print(f"  files: dense {b['dense'] / 1e6:.3f} MB, sparse {b['sparse'] / 1e6:.3f} MB "
                  f"({row['sparse_over_dense']:.3f} x dense), onnx {b['onnx'] / 1e6:.3f} MB")
            print(f"  time per batch: exported {ms['exported']:.2f} ms, masked net {ms['masked']:.2f} ms "
                  f"({row['masked_over_exported']:.2f} x), onnxruntime {ms['onnxruntime']:.2f} ms "
                  f"({row['onnxruntime_over_exported']:.2f} x)")


if __name__ == "__main__":
    main()
