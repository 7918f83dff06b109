"""Data-parallel runs under torchrun on 2 CPU processes (gloo): the CI check of docs/distributed.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vision_fixtures import write_imagenet

from exssnet.run.config import RunConfig
from exssnet.run.hooks import RunHook
from exssnet.run.runner import run_experiment

ROOT = Path(__file__).parents[1]
FLAGS = ["--benchmark", "split-digits", "--method", "exssnet", "--mask-epochs", "2", "--weight-epochs", "2",
         "--num-tasks", "3", "--kkt", "--kkt-batches", "3", "--kkt-k", "5"]


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_torchrun_two_processes_exssnet_zero_forgetting(tmp_path):
    out = tmp_path / "dp"
    proc = torchrun("-m", "exssnet", "run", *FLAGS, "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("average accuracy") == 1  # only rank 0 prints, writes and logs
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["world_size"] == 2 and results["forgetting"] == 0.0
    assert "world_size" not in results["config"]  # how it ran, not a setting
    matrix = results["acc_matrix"]
    assert all(matrix[i][j] == matrix[j][j] for i in range(3) for j in range(i + 1))  # old tasks never change
    assert "kkt" in results["tasks"][1] and sorted(p.name for p in (out / "checkpoints").iterdir()) == ["task-002"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    single = run_experiment(RunConfig.from_dict({**results["config"], "threads": 1}), progress=False)
    assert abs(single["avg_acc"] - results["avg_acc"]) < 5.0  # same data order and steps, batch cut in two
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * (2 + 2)  # header + one row per epoch of each phase, written once


class Crash(RunHook):
    """Dies at the end of task 1, before its checkpoint: task 0 is saved."""

    def on_task_end(self, task, method, acc_row, record):
        if task == 1:
            raise RuntimeError("killed")


def test_torchrun_resume_refused_baselines_imagenet_and_collectives(tmp_path):
    config = RunConfig(benchmark="split-digits", method="exssnet", num_tasks=2, mask_epochs=1, weight_epochs=1)
    with pytest.raises(RuntimeError):
        run_experiment(config, out=tmp_path / "crashed", progress=False, hooks=[Crash()])
    write_imagenet(tmp_path / "imagenet-data")
    proc = torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert [line for line in proc.stdout.splitlines() if line.startswith("ok ")] == [
        "ok collectives", "ok resume refused", "ok er", "ok imagenet", "ok small batch"]
    assert "learned with 1" in proc.stderr and not (tmp_path / "crashed" / "results.json").exists()
    assert json.loads((tmp_path / "crashed" / "run_state.json").read_text())["world_size"] == 1
    er = json.loads((tmp_path / "er" / "results.json").read_text())
    assert er["method"] == "er" and er["environment"]["world_size"] == 2
    streamed = json.loads((tmp_path / "imagenet" / "results.json").read_text())
    assert streamed["environment"]["world_size"] == 2 and streamed["forgetting"] == 0.0 and len(streamed["acc_matrix"]) == 2


def test_split_shards_partition_every_batch_and_drop_a_too_small_last_training_batch():
    import torch

    from exssnet.data.tasks import Split

    split = Split(torch.arange(11.0).view(11, 1), torch.arange(11))
    whole = [y for _, y in split.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    parts = [[y for _, y in split.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3), shard=(r, 3))]
             for r in range(3)]
    assert [len(b) for b in whole] == [4, 4, 3] and all(len(p) == 2 for p in parts)  # 3 rows < 2 x 3 processes
    for b in range(2):
        assert sorted(torch.cat([p[b] for p in parts]).tolist()) == sorted(whole[b].tolist())
    small = [len(y) for _, y in Split(torch.zeros(11, 1), torch.arange(11)).batches(4, shuffle=True, shard=(1, 2))]
    assert small == [2, 2]  # the last global batch has 3 rows: one process would train BatchNorm on 1 row
    ordered = [len(y) for _, y in Split(torch.zeros(9, 1), torch.arange(9)).batches(4, shard=(1, 2))]
    assert ordered == [2, 2, 0]  # evaluation keeps every row (rank 0 scores the last one)


def test_a_global_batch_that_leaves_a_process_too_few_rows_is_refused_before_training(monkeypatch):
    """Under torchrun (world size patched to 2 here) batch 3 would give one process 1 row: BatchNorm cannot train."""
    from torch import nn

    from exssnet import distributed
    from exssnet.errors import ExssnetError

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    trained = []

    class Trained(RunHook):
        def on_epoch(self, task, epoch):
            trained.append(task)

    config = RunConfig(benchmark="split-digits", model="lenet-bn", num_tasks=2, mask_epochs=1, weight_epochs=1,
                       batch_size=3)
    with pytest.raises(ExssnetError, match="--batch-size 3 is the global batch, cut across 2 processes: BatchNorm "
                                           "needs at least 2 rows per process .* use --batch-size 4 or more"):
        run_experiment(config, progress=False, hooks=[Trained()])
    assert not trained
    # without BatchNorm one row per process is fine, none is not (batch 1 used to end as "loss became nan")
    distributed.check_batch_size(3, nn.Linear(2, 2), world=2)
    with pytest.raises(ExssnetError, match="a process would get no rows; use --batch-size 2"):
        distributed.check_batch_size(1, nn.Linear(2, 2), world=2)
    distributed.check_batch_size(1, nn.BatchNorm1d(2), world=1)  # one process: nothing to check
