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


def imagenet_color(label: int) -> tuple[int, int, int]:
    return ((label * 40) % 256, 255 - (label * 40) % 256, 100)


def write_imagenet(root: Path, num_classes: int = 4, per_class_train: int = 5, per_class_val: int = 2,
                   flat_val: bool = True, kaggle: bool = False) -> Path:
    """An ILSVRC-2012 folder: train/<wnid>/<wnid>_<i>.JPEG, val flat + LOC_val_solution.csv (or class folders).

    Kaggle's layout puts train/val under ILSVRC/Data/CLS-LOC and the CSV + LOC_synset_mapping.txt at the top.
    Images have varied sizes (e.g. 50x37, a landscape and a portrait) and are solid `imagenet_color` of the
    sorted-wnid index; one training image of class 0 is grayscale, one of class 1 is a .png.
    """
    wnids = [f"n{1_440_764 + 1000 * c:08d}" for c in range(num_classes)]
    folder = root / "ILSVRC" / "Data" / "CLS-LOC" if kaggle else root
    top = root
    (folder / "val").mkdir(parents=True)
    rows, number = [], 1
    for c, wnid in enumerate(wnids):
        (folder / "train" / wnid).mkdir(parents=True)
        for i in range(per_class_train):
            size = (50 + 3 * i, 37) if i % 2 else (33, 45 + i)
            image = Image.new("RGB", size, imagenet_color(c))
            if c == 0 and i == 1:
                image = image.convert("L")
            name = f"{wnid}_{i}.png" if (c == 1 and i == 0) else f"{wnid}_{i}.JPEG"
            image.save(folder / "train" / wnid / name, quality=95)
        for _ in range(per_class_val):
            image_id = f"ILSVRC2012_val_{number:08d}"
            target = folder / "val" / (wnid if not flat_val else "")
            target.mkdir(exist_ok=True)
            Image.new("RGB", (40, 30), imagenet_color(c)).save(target / f"{image_id}.JPEG", quality=95)
            rows.append(f"{image_id},{wnid} 1 2 30 20 {wnid} 3 4 10 12")
            number += 1
    if flat_val:
        rows = rows[::-1]  # the real CSV is not sorted by class
        (top / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    (top / "LOC_synset_mapping.txt").write_text("".join(f"{w} thing {c}, other\n" for c, w in enumerate(wnids)))
    return folder
