"""CIFAR-100 / TinyImageNet readers on tiny fixtures in the standard formats, augmentation, gray-stream."""

import pickle

import pytest
import torch
from vision_fixtures import tiny_color, write_cifar100, write_tiny_imagenet

from exssnet.cli import main
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.augment import RandomCropFlip, RandomFlip
from exssnet.data.vision_benchmarks import CIFAR100_MEAN, CIFAR100_STD, black_value
from exssnet.data.vision_readers import read_cifar100
from exssnet.errors import ExssnetError


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar100(root)
    return root


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_imagenet(root)
    return root


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar100_reader_decodes_channel_planes(tmp_path, bytes_keys):
    train, test, names = read_cifar100(write_cifar100(tmp_path, bytes_keys=bytes_keys))
    assert train.x.shape == (200, 3, 32, 32) and train.x.dtype == torch.uint8 and len(test) == 100
    assert names[:2] == ["class00", "class01"] and len(names) == 100
    row = 7  # class 3, second image
    assert int(train.y[row]) == 3
    assert (train.x[row, 0] == 7).all() and (train.x[row, 1] == 0).all() and (train.x[row, 2] == 255).all()


@pytest.mark.parametrize("classes_per_task,num_tasks", [(20, 5), (5, 20)])
def test_split_cifar100_task_counts_and_sequential_order(cifar_root, classes_per_task, num_tasks):
    spec = BenchmarkSpec(data_dir=str(cifar_root), classes_per_task=classes_per_task, class_order="sequential",
                         val_fraction=0.0)
    bench = build_benchmark("split-cifar100", spec)
    assert len(bench.tasks) == num_tasks and bench.input_shape == (3, 32, 32)
    assert bench.tasks[1].classes == [f"class{c:02d}" for c in range(classes_per_task, 2 * classes_per_task)]
    task = bench.tasks[1]
    assert task.train.x.dtype == torch.float32 and sorted(task.train.y.unique().tolist()) == list(range(classes_per_task))
    assert task.augment is not None and bench.info["class_order"] == list(range(100))
    # Normalised: blue plane 255 -> (1 - mean) / std, green 0 -> -mean / std.
    x = task.train.x
    assert torch.allclose(x[:, 2], torch.tensor((1 - CIFAR100_MEAN[2]) / CIFAR100_STD[2]), atol=1e-5)
    assert torch.allclose(x[:, 1], torch.tensor(-CIFAR100_MEAN[1] / CIFAR100_STD[1]), atol=1e-5)


def test_split_cifar100_seeded_order_and_data_dir_forms(cifar_root):
    def order(seed, data_dir):
        spec = BenchmarkSpec(seed=seed, data_dir=str(data_dir), classes_per_task=20)
        return build_benchmark("split-cifar100", spec).info["class_order"]

    a = order(1, cifar_root)
    assert a == order(1, cifar_root / "cifar-100-python")  # parent or the dataset folder itself
    assert sorted(a) == list(range(100)) and a != list(range(100)) and a != order(2, cifar_root)


def test_cifar100_missing_files_name_the_layout(tmp_path, capsys):
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"")
    with pytest.raises(ExssnetError, match=r"lacks test, meta.*cifar-100-python/\{train,test,meta\}"):
        build_benchmark("split-cifar100", BenchmarkSpec(data_dir=str(tmp_path)))
    with pytest.raises(ExssnetError, match="pass --data-dir"):
        build_benchmark("split-cifar100", BenchmarkSpec())
    assert main(["run", "--benchmark", "split-cifar100", "--data-dir", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "cifar-100-python" in capsys.readouterr().err


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar100_pickles_cannot_run_code(tmp_path):
    folder = write_cifar100(tmp_path)
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": Evil()}, protocol=2))
    with pytest.raises(ExssnetError, match="refusing"):
        read_cifar100(folder)


class OtherCodec:
    def __reduce__(self):
        import codecs

        return (codecs.encode, ("payload", "rot13"))


def test_protocol2_bytes_are_rebuilt_but_other_codecs_refused(tmp_path):
    from exssnet.data.readers import load_numpy_pickle

    path = tmp_path / "p2"
    path.write_bytes(pickle.dumps({b"key": b"\xff\x00bytes"}, protocol=2))
    assert load_numpy_pickle(path) == {b"key": b"\xff\x00bytes"}
    path.write_bytes(pickle.dumps(OtherCodec(), protocol=2))
    with pytest.raises(ExssnetError, match="rot13"):
        load_numpy_pickle(path)


def test_tiny_imagenet_reader_and_task_counts(tiny_root):
    for classes_per_task, num_tasks in ((40, 5), (20, 10), (2, 100)):
        spec = BenchmarkSpec(data_dir=str(tiny_root), classes_per_task=classes_per_task, class_order="sequential",
                             val_fraction=0.0)
        bench = build_benchmark("split-tinyimagenet", spec)
        assert len(bench.tasks) == num_tasks and bench.input_shape == (3, 64, 64)
    task = bench.tasks[0]  # classes 0 and 1 of the sorted wnids
    assert task.classes == ["thing 0", "thing 1"] and len(task.train) == 4 and len(task.test) == 2
    assert task.train.x.dtype == torch.float32 and isinstance(task.augment, RandomFlip)
    mean, std = torch.tensor(bench.info["normalise"]["mean"]), torch.tensor(bench.info["normalise"]["std"])
    pixels = task.test.x[:, :, 32, 32] * std + mean  # back to [0, 1]
    expected = torch.tensor([tiny_color(0), tiny_color(1)], dtype=torch.float32) / 255
    assert torch.allclose(pixels[0], expected[0], atol=0.02)
    gray = 0.299 * expected[1, 0] + 0.587 * expected[1, 1] + 0.114 * expected[1, 2]  # val_1 is grayscale
    assert torch.allclose(pixels[1], gray.expand(3), atol=0.02)
    assert task.test.y.tolist() == [0, 1]


def test_tiny_imagenet_bad_annotations_and_missing_layout(tmp_path):
    folder = write_tiny_imagenet(tmp_path, num_classes=2, per_class_train=1)
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(ExssnetError, match="val_annotations.txt:1"):
        build_benchmark("split-tinyimagenet", BenchmarkSpec(data_dir=str(folder)))
    with pytest.raises(ExssnetError, match=r"train/<wnid>/images/\*\.JPEG"):
        build_benchmark("split-tinyimagenet", BenchmarkSpec(data_dir=str(tmp_path / "empty")))


def test_random_crop_flip_takes_windows_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    fill = [-1.0, -2.0, -3.0]
    augment = RandomCropFlip(padding=2, fill=fill)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out, augment(x, torch.Generator().manual_seed(0)))
    padded = torch.tensor(fill).view(1, 3, 1, 1).expand(2, 3, 10, 10).clone()
    padded[:, :, 2:8, 2:8] = x
    windows = [padded[:, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
    for i in range(2):
        assert any(torch.equal(out[i], w[i]) or torch.equal(out[i], w[i].flip(-1)) for w in windows)
    outs = [augment(x, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(not torch.equal(o, outs[0]) for o in outs)
    assert any((o == -1.0).any() for o in outs)  # some crops show the padding value


def test_random_flip_is_deterministic_and_flips_whole_images():
    x = torch.randn(16, 3, 4, 4)
    out = RandomFlip()(x, torch.Generator().manual_seed(3))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(16)]
    assert all(f or torch.equal(out[i], x[i]) for i, f in enumerate(flipped))
    assert 0 < sum(flipped) < 16
    assert torch.equal(out, RandomFlip()(x, torch.Generator().manual_seed(3)))


def test_black_value_is_normalised_zero():
    assert black_value((0.5,), (0.25,)) == [-2.0]


def test_gray_stream_from_idx_folders(tmp_path):
    from test_data import make_idx_dir

    for sub in ("mnist", "fashion-mnist"):
        (tmp_path / sub).mkdir()
        make_idx_dir(tmp_path / sub)
    spec = BenchmarkSpec(data_dir=str(tmp_path), class_order="sequential", val_fraction=0.0)
    bench = build_benchmark("gray-stream", spec)
    assert len(bench.tasks) == 10 and bench.input_shape == (1, 28, 28)
    assert bench.tasks[0].classes == ["mnist:0", "mnist:1"] and bench.tasks[5].classes == ["fashion:T-shirt", "fashion:Trouser"]
    assert sum(len(t.train) for t in bench.tasks) == 80 and sum(len(t.test) for t in bench.tasks) == 40
    assert all(set(t.train.y.tolist()) == {0, 1} for t in bench.tasks)
    with pytest.raises(ExssnetError, match="fashion-mnist"):
        build_benchmark("gray-stream", BenchmarkSpec(data_dir=str(tmp_path / "mnist")))


@pytest.mark.parametrize("name", ["split-cifar100", "split-tinyimagenet"])
def test_no_augment_gives_the_plain_training_images(cifar_root, tiny_root, name):
    root = cifar_root if name == "split-cifar100" else tiny_root
    spec = dict(data_dir=str(root), classes_per_task=2, num_tasks=1, class_order="sequential", val_fraction=0.0)
    plain = build_benchmark(name, BenchmarkSpec(**spec, augment=False))
    augmented = build_benchmark(name, BenchmarkSpec(**spec))
    assert plain.tasks[0].augment is None and plain.info["augment"] == "none"
    assert augmented.tasks[0].augment is not None
    assert torch.equal(plain.tasks[0].train.x, augmented.tasks[0].train.x)  # same images, only the augmentation differs


def test_imagenet_refuses_no_augment(tmp_path):
    with pytest.raises(ExssnetError, match="cannot be switched off"):
        build_benchmark("imagenet", BenchmarkSpec(data_dir=str(tmp_path), augment=False))


def test_resnet18_reduced_learns_split_cifar100_fixture_end_to_end(cifar_root, tmp_path):
    args = ["run", "--benchmark", "split-cifar100", "--data-dir", str(cifar_root), "--model", "resnet18-reduced",
            "--classes-per-task", "5", "--num-tasks", "2", "--val-fraction", "0", "--method", "exssnet",
            "--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "8", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    import json

    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["acc_matrix"]) == 2 and results["forgetting"] == 0.0
    assert results["benchmark_info"]["augment"].startswith("RandomCropFlip")
