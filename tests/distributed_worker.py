"""Run by tests/test_distributed.py under `torchrun --nproc-per-node 2`: the checks that need a process group.

argv: OUT (a folder; OUT/crashed holds a run cut short after its first task, made in one process;
OUT/imagenet-data a tiny ILSVRC folder).
Each check prints one "ok <name>" line from rank 0; any failure raises (torchrun then exits non-zero).
"""

import contextlib
import io
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from exssnet import distributed
from exssnet.cli import main
from exssnet.errors import ExssnetError


def say(text: str) -> None:
    if distributed.is_main():
        print(text, flush=True)


def check_collectives() -> None:
    rank = distributed.rank()
    # gradients: the row-weighted mean (rank 0 has 3 rows of gradient 1, rank 1 has 1 row of gradient 5 -> 2)
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 1.0 if rank == 0 else 5.0)
    untouched = nn.Parameter(torch.zeros(2))  # no gradient on any rank: stays None
    distributed.DataParallel(nn.Linear(1, 1), [p, untouched]).average_gradients(3 if rank == 0 else 1)
    assert torch.equal(p.grad, torch.full((4,), 2.0)) and untouched.grad is None, p.grad
    # BatchNorm: only statistics the phase updated are averaged; the untouched one keeps its exact bits
    model = nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm1d(3))
    model[1].running_mean.fill_(1 / 3)
    sync = distributed.DataParallel(model, [])
    model.train()
    model[0](torch.full((4, 3), float(rank * 4)) + torch.arange(4.0).view(4, 1))
    sync.average_batchnorm()
    assert torch.allclose(model[0].running_mean, torch.full((3,), 0.1 * (1.5 + 5.5) / 2)), model[0].running_mean
    assert torch.equal(model[1].running_mean, torch.full((3,), 1 / 3)) and int(model[0].num_batches_tracked) == 1
    # a hash mismatch is an error on every rank
    distributed.check_identical({"w": torch.ones(3)}, "a tensor")
    try:
        distributed.check_identical({"w": torch.ones(3) * (rank + 1), "v": torch.zeros(2)}, "the test tensors")
    except ExssnetError as exc:
        assert "w differ" in str(exc) and "v" not in str(exc).split("disagree on")[1].split("differ")[0], exc
    else:
        raise AssertionError("a mismatch was not detected")
    # a decision and its tensors come from rank 0
    decision, tensors = distributed.broadcast_decision({"source": rank}, {"a": torch.full((2,), float(rank))},
                                                       torch.device("cpu"))
    assert decision == {"source": 0} and torch.equal(tensors["a"], torch.zeros(2))
    decision, tensors = distributed.broadcast_decision("none", None if rank == 0 else {"a": torch.ones(1)},
                                                       torch.device("cpu"))
    assert decision == "none" and tensors is None
    calls = []
    tensors, decision = distributed.decide_on_main(lambda: calls.append(rank) or ({"s": torch.full((3,), 7.0)}, "chose 1"),
                                                   torch.device("cpu"))
    assert decision == "chose 1" and torch.equal(tensors["s"], torch.full((3,), 7.0)) and calls == ([0] if rank == 0 else [])
    assert distributed.all_sum(rank, 1) == [1.0, 2.0]
    # augmentation draws come from a rank's own stream; the shared generator (data order) stays in step
    shared = torch.Generator().manual_seed(11)
    own = distributed.DataParallel(nn.Linear(1, 1), []).augment_generator(shared)
    torch.rand(3 + rank, generator=own)  # ranks draw different amounts, as in a last, partial batch
    draws = [None, None]
    dist.all_gather_object(draws, (torch.randperm(10, generator=shared).tolist(), torch.rand(1, generator=own).item()))
    assert draws[0][0] == draws[1][0] and draws[0][1] != draws[1][1], draws
    say("ok collectives")


def check_small_batch_refused(out: Path) -> None:
    """Batch 3 over 2 processes with BatchNorm: one clear error on every rank, before anything is trained."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(["run", "--benchmark", "split-digits", "--model", "lenet-bn", "--num-tasks", "2", "--batch-size", "3",
                     "--quiet", "--out", str(out)])
    lines = errors.getvalue().splitlines()
    assert code == 2 and len(lines) == 1 and "--batch-size 3 is the global batch, cut across 2 processes" in lines[0], lines
    assert not (out / "checkpoints").exists()
    say("ok small batch")


def run(*args: str) -> None:
    code = main(["run", *args, "--quiet"])
    assert code == 0, f"exssnet run {' '.join(args)} exited with {code}"


if __name__ == "__main__":
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")  # a run inside an existing group uses it (launch() sees it is initialised)
    check_collectives()
    # the crashed run learned its first task in one process: continuing it in two is refused (docs/distributed.md)
    assert main(["run", "--out", str(out / "crashed"), "--resume", "--quiet"]) == 2
    say("ok resume refused")
    run("--benchmark", "split-digits", "--method", "er", "--num-tasks", "2", "--mask-epochs", "1",
        "--weight-epochs", "1", "--buffer-size", "50", "--out", str(out / "er"))
    say("ok er")
    run("--benchmark", "imagenet", "--data-dir", str(out / "imagenet-data"), "--classes-per-task", "2", "--image-size", "16",
        "--workers", "1", "--model", "cnn-small", "--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "4",
        "--out", str(out / "imagenet"))
    say("ok imagenet")
    check_small_batch_refused(out / "small-batch")
    dist.destroy_process_group()
