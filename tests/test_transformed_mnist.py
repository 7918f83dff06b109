"""permuted-mnist / rotated-mnist: seeded per-task transformations of all ten digits (SupSup's GNu setting)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.transformed_mnist import permute_images, rotate_images, rotation_angles, task_permutations
from exssnet.errors import ExssnetError


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_permutations_are_seeded_and_distinct():
    a, b = task_permutations(3, seed=0), task_permutations(3, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], task_permutations(1, seed=1)[0])
    assert torch.equal(task_permutations(5, seed=0)[2], a[2])  # task t's permutation does not depend on N
    x = torch.rand(4, 1, 28, 28)
    flat = permute_images(x, a[1]).flatten(1)
    assert torch.equal(flat, x.flatten(1)[:, a[1]])


def test_rotation_schedule_and_direction():
    assert rotation_angles(4) == [0.0, 90.0, 180.0, 270.0]
    assert rotation_angles(250)[:3] == [0.0, 1.0, 2.0]
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(rotate_images(x, 90), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert torch.equal(rotate_images(x, 0), x)


@pytest.mark.parametrize("name", ["permuted-mnist", "rotated-mnist"])
def test_benchmark_tasks_are_ten_way_transforms_of_the_same_digits(name, tiny_mnist):
    bench = build_benchmark(name, BenchmarkSpec(seed=0, num_tasks=3, data_dir=str(tiny_mnist), val_fraction=0.1))
    assert len(bench.tasks) == 3 and bench.input_shape == (1, 28, 28)
    for task in bench.tasks:
        assert task.num_classes == 10 and len(task.test) == 20 and len(task.train) + len(task.val) == 60
        assert torch.equal(task.test.y, bench.tasks[0].test.y)
    assert not torch.equal(bench.tasks[1].test.x, bench.tasks[2].test.x)
    if name == "permuted-mnist":  # a permutation keeps each image's pixel values
        first, second = bench.tasks[0].test.x.flatten(1), bench.tasks[1].test.x.flatten(1)
        assert torch.equal(first.sort(dim=1).values, second.sort(dim=1).values)
    with pytest.raises(ExssnetError, match="all 10 digits"):
        build_benchmark(name, BenchmarkSpec(num_tasks=2, classes_per_task=5, data_dir=str(tiny_mnist)))


@pytest.mark.parametrize("name", ["permuted-mnist", "rotated-mnist"])
def test_mnist_normalise_standardises_the_transformed_pixels(name, tiny_mnist):
    """mnist_normalise (GPM's and WSN's inputs): (x - 0.1307) / 0.3081 of the same transformed images, the
    rotation's black padding included; other benchmarks refuse the setting."""
    from exssnet.run.config import RunConfig

    spec = dict(seed=0, num_tasks=2, data_dir=str(tiny_mnist), val_fraction=0.1)
    plain = build_benchmark(name, BenchmarkSpec(**spec))
    normalised = build_benchmark(name, BenchmarkSpec(**spec, mnist_normalise=True))
    for a, b in zip(plain.tasks, normalised.tasks):
        for split in ("train", "val", "test"):
            x, z = getattr(a, split), getattr(b, split)
            assert torch.equal(x.y, z.y) and torch.allclose(z.x, (x.x - 0.1307) / 0.3081)
    assert normalised.info["normalise"] == {"mean": [0.1307], "std": [0.3081]} and "normalise" not in plain.info
    with pytest.raises(ExssnetError, match="mnist_normalise is for permuted-mnist and rotated-mnist, not 'split-mnist'"):
        RunConfig.from_dict({"benchmark": "split-mnist", "mnist_normalise": True})
