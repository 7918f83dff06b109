"""Datasets and benchmarks: everything is read from local files, nothing is downloaded."""

# each module registers its benchmarks on import: pairs-mnist-fashion; text-offline, webnlp, glue;
# split-cifar100, split-tinyimagenet, gray-stream; permuted-mnist, rotated-mnist; imagenet (streamed from disk)
# (the split MNIST family is in benchmarks.py)
from exssnet.data import imagenet, pairs, text_benchmarks, transformed_mnist, vision_benchmarks  # noqa: F401
from exssnet.data.benchmarks import BenchmarkSpec, benchmark_names, build_benchmark, register_benchmark
from exssnet.data.tasks import Benchmark, Split, TaskData

__all__ = ["Benchmark", "BenchmarkSpec", "Split", "TaskData", "benchmark_names", "build_benchmark", "register_benchmark"]
