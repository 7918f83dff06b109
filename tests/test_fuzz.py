"""Seeded, bounded fuzzing: random corruptions of IDX files, checkpoints and YAML configs.

Every case must end in exit code 0 (the corruption left a valid file) or in exit code 2 with one
`exssnet: error:` line; an uncaught exception (a traceback) fails the test.
"""

import random
import shutil

import pytest
from test_hostile_input import FAST, finished_run  # noqa: F401 (a fixture)
from test_trust import MNIST_FAST, idx_dir

from exssnet.cli import main

CASES = 10  # per file kind; the seed makes every run of this test try the same corruptions


def corrupt(raw: bytes, rng: random.Random) -> bytes:
    """One random damage: truncation, flipped bytes, inserted or deleted bytes, or a smashed header."""
    data = bytearray(raw)
    kind = rng.choice(["truncate", "flip", "insert", "delete", "header"])
    if kind == "truncate":
        return bytes(data[: rng.randrange(len(data))])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        at = rng.randrange(len(data))
        del data[at: at + rng.randint(1, 16)]
    else:
        for i in range(min(len(data), 24)):
            if rng.random() < 0.3:
                data[i] = rng.randrange(256)
    return bytes(data)


def exits_cleanly(args, capsys) -> int:
    code = main(args)
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("exssnet: error:") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return code


@pytest.mark.parametrize("case", range(CASES))
def test_fuzz_idx_files(case, tmp_path, capsys):
    rng = random.Random(1000 + case)
    (tmp_path / "data").mkdir()
    data = idx_dir(tmp_path / "data")
    target = rng.choice(sorted(data.iterdir()))
    if rng.random() < 0.3:  # damage the uncompressed stream inside a valid gzip file
        import gzip

        target.write_bytes(gzip.compress(corrupt(gzip.decompress(target.read_bytes()), rng)))
    else:
        target.write_bytes(corrupt(target.read_bytes(), rng))
    exits_cleanly(["run", *MNIST_FAST, "--data-dir", str(data)], capsys)


@pytest.mark.parametrize("case", range(CASES))
def test_fuzz_checkpoints(case, finished_run, tmp_path, capsys):  # noqa: F811
    rng = random.Random(2000 + case)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished_run / "checkpoints" / "task-001", ckpt)
    target = ckpt / rng.choice(["config.json", "model.safetensors"])
    target.write_bytes(corrupt(target.read_bytes(), rng))
    exits_cleanly(["evaluate", str(ckpt)], capsys)


VALID_YAML = """\
benchmark: split-digits
method: exssnet
density: 0.2
mask_epochs: 1
weight_epochs: 1
num_tasks: 2
threads: 1
seed: 3
mask_lr: 0.01
scenario: task-il
"""


class Accepted(Exception):
    """Raised instead of training: the config passed every check."""


@pytest.mark.parametrize("case", range(CASES))
def test_fuzz_yaml_configs(case, tmp_path, capsys, monkeypatch):
    import exssnet.run.runner as runner

    def accept(config, **kwargs):
        raise Accepted()

    monkeypatch.setattr(runner, "run_experiment", accept)
    rng = random.Random(3000 + case)
    config = tmp_path / "config.yaml"
    config.write_bytes(corrupt(VALID_YAML.encode(), rng))
    try:
        exits_cleanly(["run", "--config", str(config), "--quiet"], capsys)
    except Accepted:
        pass
