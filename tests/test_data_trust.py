"""Data options a run must obey or refuse: text task orders, image sizes, ImageNet val folders, unreadable images."""

from __future__ import annotations

import json

import pytest
import torch
from text_fixtures import write_glove_txt, write_offline_sources
from vision_fixtures import write_imagenet

from exssnet.cli import main
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.errors import ExssnetError

FAST = ["--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "8", "--threads", "1", "--quiet"]


# ----- text-offline obeys --text-order ---------------------------------------------------------------
def test_text_offline_learns_the_requested_order_or_refuses_a_preset(tmp_path, capsys):
    data = write_offline_sources(tmp_path / "text", per_class=6)
    glove = write_glove_txt(tmp_path / "glove.txt")
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(data), "--encoder", str(glove), "--model", "kim-cnn",
            "--text-max-train", "4", "--text-max-test", "2", *FAST]
    assert main([*args, "--text-order", "spam,vader-movie", "--out", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["task_names"] == ["spam", "vader-movie"] and len(results["acc_matrix"]) == 2
    assert results["config"]["text_order"] == "spam,vader-movie"
    assert list(results["benchmark_info"]["task_sizes"]) == ["spam", "vader-movie"]
    capsys.readouterr()
    assert main([*args, "--text-order", "S2", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "task order S2 is a webnlp order" in err and "vader-movie" in err and not (tmp_path / "p" / "results.json").exists()


# ----- ImageNet: the val CSV against every class, missing listed images, sizes recorded, image size bounded ------
def imagenet_spec(root, **kw) -> BenchmarkSpec:
    return BenchmarkSpec(data_dir=str(root), classes_per_task=2, class_order="sequential", val_fraction=0.2,
                         image_size=16, workers=0, **kw)


def test_imagenet_flat_val_with_fewer_tasks_than_classes_allow(tmp_path):
    write_imagenet(tmp_path, num_classes=6)
    bench = build_benchmark("imagenet", imagenet_spec(tmp_path, num_tasks=1))  # the CSV also lists classes 2..5
    assert len(bench.tasks) == 1 and len(bench.tasks[0].test) == 4
    assert bench.info["task_sizes"] == {"task0": {"train": 8, "val": 2, "test": 4}}


def test_imagenet_refuses_val_images_the_csv_lists_but_the_folder_lacks(tmp_path):
    write_imagenet(tmp_path, num_classes=4)
    (tmp_path / "val" / "ILSVRC2012_val_00000002.JPEG").unlink()  # class 0's second image
    with pytest.raises(ExssnetError, match="1 validation image\\(s\\) that .*LOC_val_solution.csv lists .* missing "
                                           ".*ILSVRC2012_val_00000002"):
        build_benchmark("imagenet", imagenet_spec(tmp_path))
    (tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG").unlink()
    with pytest.raises(ExssnetError, match="2 validation image"):
        build_benchmark("imagenet", imagenet_spec(tmp_path))


def test_image_size_is_bounded(tmp_path, capsys):
    for size in ("100000", "4"):
        assert main(["run", "--benchmark", "imagenet", "--image-size", size, "--quiet", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"exssnet: error: --image-size {size} is out of range") and "8..1024" in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_an_image_a_dataloader_worker_cannot_read_is_one_line_naming_the_file(tmp_path):
    from PIL import Image

    from exssnet.data.stream import EvalTransform, FileInputs, ImageFiles, StreamSplit, TrainTransform

    files = []
    for i in range(3):
        files.append(tmp_path / f"img{i}.JPEG")
        Image.effect_noise((64, 48), 60 + i).convert("RGB").save(files[-1], quality=90)
    files[1].write_bytes(files[1].read_bytes()[:400])  # truncated, as a copy cut short leaves it
    split = StreamSplit(FileInputs(ImageFiles(files, TrainTransform(16), EvalTransform(16))), torch.arange(3), workers=1)
    with pytest.raises(ExssnetError) as caught:
        list(split.batches(2))
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"cannot read image {files[1]}")
    assert "Traceback" not in message and "worker" not in message
