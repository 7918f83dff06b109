import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.readers import load_numpy_pickle, read_idx, read_idx_dataset, read_mnist_pickle
from exssnet.errors import ExssnetError


def write_idx(path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def make_idx_dir(tmp_path, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_idx_dataset_reads_standard_files(tmp_path):
    train, test = read_idx_dataset(make_idx_dir(tmp_path))
    assert train.x.shape == (40, 1, 28, 28) and test.x.shape == (20, 1, 28, 28)
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) < 1.0
    assert train.y.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ExssnetError, match="truncated"):
        read_idx(path)


def test_missing_idx_files_name_the_layout(tmp_path):
    with pytest.raises(ExssnetError, match="train-images-idx3-ubyte.gz"):
        read_idx_dataset(tmp_path)


def test_fashion_benchmark_from_data_dir_fixture(tmp_path):
    bench = build_benchmark("split-fashion-mnist", BenchmarkSpec(data_dir=str(make_idx_dir(tmp_path)), val_fraction=0.0))
    assert len(bench.tasks) == 5 and bench.input_shape == (1, 28, 28)
    assert sum(len(t.train) for t in bench.tasks) == 40


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump(Evil(), handle)
    with pytest.raises(ExssnetError, match="refusing"):
        load_numpy_pickle(path)


def test_mnist_pickle_fixture_in_the_hub_format(tmp_path):
    rng = np.random.default_rng(0)

    def part(n):
        return rng.random((n, 784), dtype=np.float32), (np.arange(n) % 10).astype(np.int64)

    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump((part(30), part(10), part(20)), handle)
    train, test = read_mnist_pickle(path)
    assert train.x.shape == (40, 1, 28, 28) and len(test) == 20


def test_tasks_have_remapped_labels_and_disjoint_classes():
    bench = build_benchmark("split-digits", BenchmarkSpec(seed=3))
    seen = set()
    for task in bench.tasks:
        assert set(task.classes).isdisjoint(seen)
        seen |= set(task.classes)
        for split in (task.train, task.val, task.test):
            assert set(split.y.unique().tolist()) == {0, 1}
    assert len(seen) == 10


def test_class_order_is_seeded():
    a = build_benchmark("split-digits", BenchmarkSpec(seed=1)).info["class_order"]
    b = build_benchmark("split-digits", BenchmarkSpec(seed=1)).info["class_order"]
    c = build_benchmark("split-digits", BenchmarkSpec(seed=2)).info["class_order"]
    assert a == b and a != c
    assert build_benchmark("split-digits", BenchmarkSpec(class_order="sequential")).info["class_order"] == list(range(10))


def test_validation_is_carved_from_training_data():
    bench = build_benchmark("split-digits", BenchmarkSpec(val_fraction=0.25))
    task = bench.tasks[0]
    assert abs(len(task.val) / (len(task.train) + len(task.val)) - 0.25) < 0.02
    train_rows = {tuple(r.flatten().tolist()) for r in task.train.x}
    assert not any(tuple(r.flatten().tolist()) in train_rows for r in task.val.x)
    assert isinstance(task.train.y, torch.Tensor)
