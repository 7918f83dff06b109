"""The imagenet benchmark on tiny generated folders in the official ILSVRC layouts, streamed by DataLoader workers."""

import json

import pytest
import torch
from vision_fixtures import imagenet_color, write_imagenet

from exssnet.cli import main
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.imagenet import IMAGENET_LAYOUT
from exssnet.data.stream import IMAGENET_MEAN, IMAGENET_STD, StreamSplit, random_resized_box
from exssnet.errors import ExssnetError


def spec(root, **kw):
    return BenchmarkSpec(data_dir=str(root), classes_per_task=2, class_order="sequential", val_fraction=0.2,
                         image_size=16, workers=0, **kw)


def expected_pixel(label: int, gray: bool = False) -> torch.Tensor:
    rgb = torch.tensor(imagenet_color(label), dtype=torch.float32) / 255
    if gray:  # the fixture's one grayscale image: PIL's luma, repeated in R, G and B
        rgb = (rgb * torch.tensor([0.299, 0.587, 0.114])).sum().repeat(3)
    return (rgb - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


def matches(image: torch.Tensor, label: int) -> bool:
    colour = image.mean(dim=(1, 2))
    return any(torch.allclose(colour, expected_pixel(label, gray), atol=0.12) for gray in (False, label == 0))


@pytest.mark.parametrize("layout", ["flat-csv", "class-folders", "kaggle"])
def test_reader_labels_every_layout(tmp_path, layout):
    write_imagenet(tmp_path, flat_val=layout != "class-folders", kaggle=layout == "kaggle")
    bench = build_benchmark("imagenet", spec(tmp_path))
    assert bench.name == "imagenet" and len(bench.tasks) == 2 and bench.input_shape == (3, 16, 16)
    assert bench.tasks[1].classes == ["thing 2", "thing 3"]  # names from LOC_synset_mapping.txt, sorted wnids
    for t, task in enumerate(bench.tasks):
        assert isinstance(task.train, StreamSplit) and (len(task.train), len(task.val), len(task.test)) == (8, 2, 4)
        for split in (task.train, task.val, task.test):
            for x, y in split.batches(3):
                assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
                assert all(matches(image, 2 * t + int(label)) for image, label in zip(x, y))


def test_train_pass_is_random_but_seeded_and_same_on_any_number_of_workers(tmp_path):
    write_imagenet(tmp_path, num_classes=2, per_class_train=6)
    task = build_benchmark("imagenet", spec(tmp_path, num_tasks=1)).tasks[0]

    def one_pass(workers, seed, shuffle=True):
        split = StreamSplit(task.train.x, task.train.y, workers)
        batches = list(split.batches(4, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)))
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    x0, y0 = one_pass(0, 5)
    x2, y2 = one_pass(2, 5)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)
    x_other, _ = one_pass(0, 6)
    assert not torch.equal(x0, x_other)
    # ordered passes use the eval transform: the same as indexing x
    x_eval, y_eval = one_pass(1, 0, shuffle=False)
    assert torch.equal(x_eval, task.train.x[torch.arange(len(task.train))]) and torch.equal(y_eval, task.train.y)


def test_sharded_batches_partition_each_global_batch(tmp_path):
    write_imagenet(tmp_path, num_classes=2, per_class_train=6)
    train = build_benchmark("imagenet", spec(tmp_path, num_tasks=1)).tasks[0].train
    whole = list(train.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1)))
    parts = [list(train.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1), shard=(r, 2)))
             for r in range(2)]
    assert len(train) == 10 and len(whole) == 4 and len(parts[0]) == len(parts[1]) == 3  # a last batch of 1 row is dropped
    for b, (x, y) in enumerate(whole[:3]):
        assert torch.equal(torch.cat([parts[0][b][0], parts[1][b][0]]), torch.cat([x[0::2], x[1::2]]))
        assert torch.equal(torch.cat([parts[0][b][1], parts[1][b][1]]), torch.cat([y[0::2], y[1::2]]))


def test_random_resized_box_stays_inside_the_image():
    generator = torch.Generator().manual_seed(0)
    for width, height in [(50, 37), (3, 400), (400, 3), (224, 224)]:
        for _ in range(50):
            left, top, w, h = random_resized_box(width, height, generator)
            assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= width and top + h <= height


def test_missing_or_incomplete_folder_names_the_layout(tmp_path, capsys):
    for data_dir in (tmp_path / "absent", tmp_path):
        with pytest.raises(ExssnetError, match="train/<wnid>/\\*.JPEG"):
            build_benchmark("imagenet", spec(data_dir))
    write_imagenet(tmp_path / "nocsv")
    (tmp_path / "nocsv" / "LOC_val_solution.csv").unlink()
    with pytest.raises(ExssnetError, match="LOC_val_solution.csv"):
        build_benchmark("imagenet", spec(tmp_path / "nocsv"))
    code = main(["run", "--benchmark", "imagenet", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("exssnet: error:") and IMAGENET_LAYOUT in err and "Traceback" not in err


def test_exssnet_runs_on_the_streamed_fixture_with_workers(tmp_path, capsys):
    write_imagenet(tmp_path / "data")
    args = ["run", "--benchmark", "imagenet", "--data-dir", str(tmp_path / "data"), "--classes-per-task", "2",
            "--image-size", "16", "--workers", "1", "--model", "cnn-small", "--mask-epochs", "1", "--weight-epochs", "1",
            "--batch-size", "4", "--kkt", "--kkt-batches", "3", "--kkt-batch-size", "2", "--kkt-k", "1",
            "--threads", "1", "--quiet", "--out", str(tmp_path / "out")]
    assert main(args) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["benchmark"] == "imagenet" and len(results["acc_matrix"]) == 2
    assert results["forgetting"] == 0.0 and results["benchmark_info"]["streamed"] is True
    assert "kkt" in results["tasks"][1]
    assert main(["evaluate", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "ev.json")]) == 0
    assert json.loads((tmp_path / "ev.json").read_text())["test_acc"] == results["acc_matrix"][-1]


@pytest.mark.parametrize("extra", [["--scenario", "class-il"], ["--method", "joint"]])
def test_what_needs_data_in_memory_is_refused_before_training(tmp_path, capsys, extra):
    write_imagenet(tmp_path / "data")
    args = ["run", "--benchmark", "imagenet", "--data-dir", str(tmp_path / "data"), "--classes-per-task", "2",
            "--image-size", "16", "--workers", "0", "--model", "cnn-small", *extra, "--quiet", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "streams its images from disk" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "checkpoints").exists()
