"""ImageNet (ILSVRC-2012) from its standard folder layout, streamed from disk: 10 tasks of 100 classes by default.

Layout (DATA_DIR, DATA_DIR/imagenet or the Kaggle DATA_DIR/ILSVRC/Data/CLS-LOC):
    train/<wnid>/*.JPEG                      one folder per class; classes are the sorted wnids
    val/<wnid>/*.JPEG                        validation images sorted into class folders, or
    val/*.JPEG + LOC_val_solution.csv        flat, labelled by the official CSV (ImageId,PredictionString;
                                             the first token of PredictionString is the wnid), found in the
                                             dataset folder or DATA_DIR
    LOC_synset_mapping.txt (optional)        "<wnid> <names>": class names for reports

The labelled val set is the test set; each task's validation split is carved from its training images.
Only file names and labels are held in memory; images are decoded by DataLoader workers batch by batch.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from exssnet.data.benchmarks import BenchmarkSpec, class_order, register_benchmark
from exssnet.data.stream import EvalTransform, FileInputs, ImageFiles, StreamSplit, TrainTransform
from exssnet.data.tasks import Benchmark, TaskData
from exssnet.errors import ExssnetError

IMAGENET_LAYOUT = (
    "DATA_DIR (or DATA_DIR/imagenet, or Kaggle's DATA_DIR/ILSVRC/Data/CLS-LOC) with train/<wnid>/*.JPEG and "
    "either val/<wnid>/*.JPEG or flat val/*.JPEG plus the official LOC_val_solution.csv"
)
SOLUTION_CSV = "LOC_val_solution.csv"
SYNSET_MAPPING = "LOC_synset_mapping.txt"
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
# --image-size bounds: a crop below 8 pixels leaves no image for a network's downsampling; above 1024 (4x the
# usual 224-256 and beyond any published ImageNet recipe) one batch of 256 float32 crops is over 3 GiB before a
# single activation, so a typo such as 100000 would end in the out-of-memory killer instead of an error.
IMAGE_SIZE_RANGE = (8, 1024)


def check_image_size(size: int) -> int:
    low, high = IMAGE_SIZE_RANGE
    if not isinstance(size, int) or not low <= size <= high:
        raise ExssnetError(f"--image-size {size!r} is out of range: the crop side must be {low}..{high} pixels "
                           "(224 is the usual ImageNet size)")
    return size


def locate_imagenet(data_dir: str | None) -> Path:
    """The folder holding train/ and val/, or a clear error naming the expected layout."""
    if data_dir is None:
        raise ExssnetError(f"imagenet does not install offline: pass --data-dir with the expected layout: {IMAGENET_LAYOUT}")
    root = Path(data_dir).expanduser()
    for candidate in (root, root / "imagenet", root / "ILSVRC" / "Data" / "CLS-LOC"):
        if (candidate / "train").is_dir() and (candidate / "val").is_dir():
            return candidate
    raise ExssnetError(f"ImageNet not found: {root} has no train/ and val/ folders; expected layout: {IMAGENET_LAYOUT}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def train_wnids(directory: Path) -> list[str]:
    wnids = sorted(p.name for p in (directory / "train").iterdir() if p.is_dir())
    if not wnids:
        raise ExssnetError(f"{directory / 'train'} has no class folders; expected layout: {IMAGENET_LAYOUT}")
    return wnids


def _solution_csv(directory: Path, data_dir: Path) -> Path | None:
    for candidate in (directory / SOLUTION_CSV, directory / "val" / SOLUTION_CSV, data_dir / SOLUTION_CSV):
        if candidate.is_file():
            return candidate
    return None


def read_val_solution(path: Path) -> dict[str, str]:
    """ImageId -> wnid from the official LOC_val_solution.csv."""
    labels = {}
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise ExssnetError(f"{path}: expected the header 'ImageId,PredictionString' of {SOLUTION_CSV}")
        for number, row in enumerate(rows, 2):
            if not row:
                continue
            if len(row) < 2 or not row[1].split():
                raise ExssnetError(f"{path}:{number}: expected 'ImageId,<wnid> x y x y ...'")
            labels[row[0].strip()] = row[1].split()[0]
    return labels


def val_files(directory: Path, data_dir: Path, wnids: list[str], chosen: list[str]) -> dict[str, list[Path]]:
    """Validation files of each `chosen` wnid: from class folders, or flat files labelled by the solution CSV.

    The CSV is checked against every class of train/ (`wnids`), whichever classes this run uses; an image the
    CSV lists for a chosen class but val/ lacks is refused (a partial copy would give a partial test set).
    """
    val = directory / "val"
    known = set(wnids)
    folders = [p for p in val.iterdir() if p.is_dir() and p.name in known]
    per_class: dict[str, list[Path]] = {w: [] for w in chosen}
    if folders:
        for folder in folders:
            if folder.name in per_class:
                per_class[folder.name] = _images(folder)
        return per_class
    solution = _solution_csv(directory, data_dir)
    if solution is None:
        raise ExssnetError(f"{val} has no class folders and no {SOLUTION_CSV} was found in {directory} or {data_dir}; "
                           f"expected layout: {IMAGENET_LAYOUT}")
    labels = read_val_solution(solution)
    present = set()
    for path in _images(val):
        wnid = labels.get(path.stem)
        if wnid is None:
            raise ExssnetError(f"{path.name} is not listed in {solution}")
        if wnid not in known:
            raise ExssnetError(f"{solution} labels {path.stem} with {wnid}, which has no folder in {directory / 'train'}")
        present.add(path.stem)
        if wnid in per_class:
            per_class[wnid].append(path)
    missing = sorted(image for image, wnid in labels.items() if wnid in per_class and image not in present)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ExssnetError(f"{len(missing)} validation image(s) that {solution} lists for this run's classes are "
                           f"missing from {val} ({shown}): the test set would be incomplete; copy them, or use the "
                           "class-folder layout val/<wnid>/ with only the images you have")
    return per_class


def class_names(directory: Path, data_dir: Path, wnids: list[str]) -> list[str]:
    """First name of each wnid from LOC_synset_mapping.txt when present, else the wnid."""
    names: dict[str, str] = {}
    for candidate in (directory / SYNSET_MAPPING, data_dir / SYNSET_MAPPING):
        if candidate.is_file():
            for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, _, text = line.strip().partition(" ")
                names[wnid] = text.split(",")[0].strip()
            break
    return [names.get(w) or w for w in wnids]


def _stream(files: list[Path], labels: list[int], train: TrainTransform, eval: EvalTransform, workers: int) -> StreamSplit:
    return StreamSplit(FileInputs(ImageFiles(files, train, eval)), torch.tensor(labels, dtype=torch.long), workers)


@register_benchmark("imagenet", input_kind="image")
def imagenet(spec: BenchmarkSpec) -> Benchmark:
    """ILSVRC-2012 from local folders: --classes-per-task 100 gives 10 tasks (configs/table8-imagenet-exssnet.yaml)."""
    check_image_size(spec.image_size)
    if not spec.augment:
        raise ExssnetError("imagenet's training transform (random resized crop + flip) cannot be switched off: "
                           "drop --no-augment")
    directory = locate_imagenet(spec.data_dir)
    data_dir = Path(spec.data_dir).expanduser()  # type: ignore[arg-type]
    wnids = train_wnids(directory)
    per_task = spec.classes_per_task
    order = class_order(len(wnids), spec)
    available = len(order) // per_task
    num_tasks = available if spec.num_tasks is None else spec.num_tasks
    if not 1 <= num_tasks <= available:
        raise ExssnetError(f"imagenet: {num_tasks} tasks of {per_task} classes need {num_tasks * per_task} classes, "
                           f"but {directory / 'train'} has {len(wnids)}")
    order = order[: num_tasks * per_task]
    tests = val_files(directory, data_dir, wnids, [wnids[c] for c in order])
    names = class_names(directory, data_dir, wnids)
    train_tf, eval_tf = TrainTransform(spec.image_size), EvalTransform(spec.image_size)
    generator = torch.Generator().manual_seed(spec.seed + 1)
    tasks = []
    for t in range(num_tasks):
        chosen = order[t * per_task : (t + 1) * per_task]
        train, val, test = ([], []), ([], []), ([], [])
        for label, c in enumerate(chosen):
            files = _images(directory / "train" / wnids[c])
            if not files:
                raise ExssnetError(f"no training images in {directory / 'train' / wnids[c]}")
            if not tests[wnids[c]]:
                raise ExssnetError(f"no validation images of class {wnids[c]} in {directory / 'val'}")
            shuffled = torch.randperm(len(files), generator=generator).tolist()
            n_val = int(round(len(files) * spec.val_fraction))
            for part, picks in ((val, sorted(shuffled[:n_val])), (train, sorted(shuffled[n_val:]))):
                part[0].extend(files[i] for i in picks)
                part[1].extend([label] * len(picks))
            test[0].extend(tests[wnids[c]])
            test[1].extend([label] * len(tests[wnids[c]]))
        tasks.append(TaskData(name=f"task{t}", classes=[names[c] for c in chosen],
                              train=_stream(*train, train_tf, eval_tf, spec.workers),  # type: ignore[arg-type]
                              val=_stream(*val, train_tf, eval_tf, spec.workers),  # type: ignore[arg-type]
                              test=_stream(*test, train_tf, eval_tf, spec.workers)))  # type: ignore[arg-type]
    info = {"class_order": order, "classes_per_task": per_task, "data_dir": str(directory), "streamed": True,
            "image_size": spec.image_size, "augment": "random resized crop (0.08-1) + flip; eval: resize 8/7, centre crop",
            "normalise": {"mean": list(train_tf.mean), "std": list(train_tf.std)},
            # images per split of each task: results.json shows which test set an accuracy was measured on
            "task_sizes": {task.name: {"train": len(task.train), "val": len(task.val), "test": len(task.test)}
                           for task in tasks}}
    return Benchmark(name="imagenet", tasks=tasks, input_shape=(3, spec.image_size, spec.image_size), info=info)
