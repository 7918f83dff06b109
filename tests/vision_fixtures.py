"""Tiny CIFAR-100 and TinyImageNet folders written in exactly the standard on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar100(root: Path, per_class_train: int = 2, per_class_test: int = 1, bytes_keys: bool = True) -> Path:
    """root/cifar-100-python/{train,test,meta}: dict pickles (protocol 2) as in cifar-100-python.tar.gz.

    Image i of class c is filled with value (c * 2 + i) in the red plane, 0 in green and 255 in blue.
    """
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    for part, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = np.zeros((len(labels), 3072), dtype=np.uint8)
        for row, c in enumerate(labels):
            data[row, :1024] = c * 2 + row % per_class
            data[row, 2048:] = 255
        entry = {key("batch_label"): key(f"{part} batch"), key("fine_labels"): labels,
                 key("coarse_labels"): [c // 5 for c in labels], key("data"): data,
                 key("filenames"): [key(f"img_{i}.png") for i in range(len(labels))]}
        (folder / part).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {key("fine_label_names"): [key(f"class{c:02d}") for c in range(100)],
            key("coarse_label_names"): [key(f"super{c}") for c in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def tiny_color(label: int) -> tuple[int, int, int]:
    return (label % 256, (label * 7) % 256, 200)


def write_tiny_imagenet(root: Path, num_classes: int = 200, per_class_train: int = 2) -> Path:
    """root/tiny-imagenet-200 with wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/ images + annotations.

    wnids.txt lists the wnids unsorted (as the real file does); every image is a solid `tiny_color`
    of its class index in sorted-wnid order; class 1's val image is stored as grayscale.
    """
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{10_000_000 + 37 * c:08d}" for c in range(num_classes)]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    (folder / "words.txt").write_text("".join(f"{w}\tthing {c}, other name\n" for c, w in enumerate(wnids)))
    annotations = []
    for c, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class_train):
            Image.new("RGB", (64, 64), tiny_color(c)).save(images / f"{wnid}_{i}.JPEG", quality=95)
        image = Image.new("RGB", (64, 64), tiny_color(c))
        (image.convert("L") if c == 1 else image).save(folder / "val" / "images" / f"val_{c}.JPEG", quality=95)
        annotations.append(f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return folder
