"""Readers for CIFAR-100 (python pickles) and TinyImageNet (JPEG folders) in their standard layouts.

Images come back as uint8 tensors (N, 3, H, W) with int64 labels; normalisation is the benchmark's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from exssnet.data.readers import load_numpy_pickle
from exssnet.data.tasks import Split
from exssnet.errors import ExssnetError

CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_FILES = ("train", "test", "meta")
CIFAR100_LAYOUT = (
    "DATA_DIR/cifar-100-python/{train,test,meta} (the python-pickle version, cifar-100-python.tar.gz unpacked); "
    "DATA_DIR may also be that folder itself"
)
TINY_FOLDER = "tiny-imagenet-200"
TINY_FILES = ("wnids.txt", "train", "val/val_annotations.txt", "val/images")
TINY_LAYOUT = (
    "DATA_DIR/tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
    "val/val_annotations.txt (tiny-imagenet-200.zip unpacked); DATA_DIR may also be that folder itself"
)
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def locate_dataset(data_dir: str | Path | None, folder: str, required: Sequence[str], layout: str, name: str) -> Path:
    """The dataset folder: `data_dir/folder` or `data_dir` itself, whichever holds every `required` entry."""
    if data_dir is None:
        raise ExssnetError(f"{name} does not install offline: pass --data-dir with the expected layout: {layout}")
    root = Path(data_dir).expanduser()
    for candidate in (root / folder, root):
        if all((candidate / entry).exists() for entry in required):
            return candidate
    base = root / folder if (root / folder).is_dir() else root
    missing = [entry for entry in required if not (base / entry).exists()]
    raise ExssnetError(f"{name} not found: {base} lacks {', '.join(missing)}; expected layout: {layout}")


def _text_keys(mapping: Any, path: Path) -> dict[str, Any]:
    """A pickled dict with bytes (Python 3) or str (Python 2, latin1) keys, as a dict of str keys."""
    if not isinstance(mapping, dict):
        raise ExssnetError(f"{path} is not a CIFAR pickle: expected a dict, got {type(mapping).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in mapping.items()}


def _cifar_part(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    entries = _text_keys(load_numpy_pickle(path), path)
    if "data" not in entries or "fine_labels" not in entries:
        raise ExssnetError(f"{path} lacks the 'data' and 'fine_labels' entries of a CIFAR-100 pickle")
    data = np.asarray(entries["data"])
    labels = np.asarray(entries["fine_labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ExssnetError(f"{path}: 'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if data.shape[0] != labels.shape[0]:
        raise ExssnetError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and not (0 <= labels.min() and labels.max() < 100):
        raise ExssnetError(f"{path}: fine labels must be in 0..99")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def read_cifar100(directory: Path) -> tuple[Split, Split, list[str]]:
    """(train, test, fine class names) from the `train`, `test`, `meta` pickles in `directory`."""
    meta = _text_keys(load_numpy_pickle(directory / "meta"), directory / "meta")
    names = meta.get("fine_label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 100:
        raise ExssnetError(f"{directory / 'meta'} must hold 'fine_label_names', a list of 100 names")
    names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    train, test = (Split(*_cifar_part(directory / part)) for part in ("train", "test"))
    return train, test, names


def _read_images(files: Sequence[Path]) -> torch.Tensor:
    """RGB images of one common size as a uint8 tensor (N, 3, H, W)."""
    from PIL import Image, UnidentifiedImageError

    out: np.ndarray | None = None
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise ExssnetError(f"cannot read image {path}: {exc}") from None
        if out is None:
            out = np.empty((len(files), *array.shape), dtype=np.uint8)
        if array.shape != out.shape[1:]:
            raise ExssnetError(f"{path} is {array.shape[1]}x{array.shape[0]}, but the first image is {out.shape[2]}x{out.shape[1]}")
        out[i] = array
    if out is None:
        raise ExssnetError("no images found")
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _class_names(directory: Path, wnids: list[str]) -> list[str]:
    """First synonym of each wnid from words.txt when present, else the wnid itself."""
    words = {}
    if (directory / "words.txt").is_file():
        for line in (directory / "words.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


def read_tiny_imagenet(directory: Path) -> tuple[Split, Split, list[str]]:
    """(train, val, class names) from a tiny-imagenet-200 folder; classes are the sorted wnids.

    The official test split has no labels, so the labelled val split serves as the test set.
    """
    wnids = sorted({w.strip() for w in (directory / "wnids.txt").read_text().split() if w.strip()})
    if not wnids:
        raise ExssnetError(f"{directory / 'wnids.txt'} lists no wnids")
    index = {w: i for i, w in enumerate(wnids)}
    train_files, train_labels = [], []
    for wnid in wnids:
        folder = directory / "train" / wnid / "images"
        files = sorted(f for f in folder.glob("*") if f.suffix.lower() in _IMAGE_SUFFIXES) if folder.is_dir() else []
        if not files:
            raise ExssnetError(f"no training images in {folder}; expected train/<wnid>/images/*.JPEG for every wnid")
        train_files += files
        train_labels += [index[wnid]] * len(files)
    val_files, val_labels = [], []
    annotations = directory / "val" / "val_annotations.txt"
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ExssnetError(f"{annotations}:{number}: expected 'file<TAB>wnid<TAB>...' with a wnid from wnids.txt")
        val_files.append(directory / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    if not val_files:
        raise ExssnetError(f"{annotations} lists no images")
    train = Split(_read_images(train_files), torch.tensor(train_labels, dtype=torch.long))
    val = Split(_read_images(val_files), torch.tensor(val_labels, dtype=torch.long))
    return train, val, _class_names(directory, wnids)
