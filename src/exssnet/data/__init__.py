"""Datasets and benchmarks: everything is read from local files, nothing is downloaded."""

from exssnet.data.benchmarks import BenchmarkSpec, benchmark_names, build_benchmark, register_benchmark
from exssnet.data.tasks import Benchmark, Split, TaskData
from exssnet.data import pairs  # noqa: E402,F401  (registers pairs-mnist-fashion)
from exssnet.data import vision_benchmarks  # noqa: F401,E402  (registers split-cifar100, split-tinyimagenet, gray-stream)
from exssnet.data import text_benchmarks  # noqa: F401,E402  (registers text-offline, webnlp, glue)
from exssnet.data import transformed_mnist  # noqa: F401,E402  (registers permuted-mnist, rotated-mnist)

__all__ = ["Benchmark", "BenchmarkSpec", "Split", "TaskData", "benchmark_names", "build_benchmark", "register_benchmark"]
