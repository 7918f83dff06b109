"""Evaluate a saved supermask checkpoint on a benchmark's test sets (task-incremental: task id given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from exssnet.checkpoint import from_pretrained, read_config
from exssnet.data.tasks import Benchmark
from exssnet.errors import ExssnetError
from exssnet.methods.loops import accuracy
from exssnet.run.config import RunConfig, config_fields
from exssnet.run.files import CHECKPOINTS_DIR, RUN_STATE_FILE
from exssnet.run.resume import read_run_state
from exssnet.run.runner import configure_torch, load_benchmark, task_to_device


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or the newest checkpoint of a run folder (one with run_state.json)."""
    if (path / RUN_STATE_FILE).is_file():
        state = read_run_state(path)
        if state.checkpoint is None:
            raise ExssnetError(f"the run in {path} has no finished task to evaluate")
        return path / CHECKPOINTS_DIR / state.checkpoint
    return path


def benchmark_config(saved: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """The run config stored in the checkpoint (if any) with `overrides` (e.g. --benchmark, --seed) on top."""
    run_config = saved["metadata"].get("run_config")
    run_config = run_config if isinstance(run_config, dict) else {}
    known = {f.name for f in config_fields()}
    values = {k: v for k, v in run_config.items() if k in known}  # keys of other versions are ignored
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["num_tasks"] = len(saved["task_classes"]) or None
    values["model"], values["density"] = saved["model_name"], saved["density"]
    if "benchmark" not in values:
        raise ExssnetError("this checkpoint does not record its benchmark; pass --benchmark")
    return RunConfig.from_dict(values)


def check_benchmark(saved: dict[str, Any], benchmark: Benchmark) -> None:
    """The benchmark must have the checkpoint's input shape and, task by task, its classes."""
    if list(benchmark.input_shape) != saved["input_shape"]:
        raise ExssnetError(f"benchmark {benchmark.name} has inputs of shape {list(benchmark.input_shape)}, "
                           f"the checkpoint's model takes {saved['input_shape']}")
    learned = saved["metadata"].get("class_names")
    for t, num_classes in enumerate(saved["task_classes"]):
        task = benchmark.tasks[t]
        if task.num_classes != num_classes or (isinstance(learned, list) and t < len(learned) and task.classes != learned[t]):
            want = learned[t] if isinstance(learned, list) and t < len(learned) else f"{num_classes} classes"
            raise ExssnetError(f"task {t} of {benchmark.name} has classes {task.classes}, the checkpoint learned {want}; "
                               "use the seed, class order and classes per task of training")


def evaluate_checkpoint(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Test accuracy (percent) of every task of the checkpoint at `path`."""
    directory = resolve_checkpoint(path)
    saved = read_config(directory)
    config = benchmark_config(saved, overrides)
    configure_torch(config)
    net = from_pretrained(directory, device=config.device)
    benchmark = load_benchmark(config)
    check_benchmark(saved, benchmark)
    net.eval()
    accs = []
    for t in range(net.num_tasks):
        task = task_to_device(benchmark.tasks[t], torch.device(config.device))
        accs.append(accuracy(lambda x, t=t: net.logits(x, t), task.test, config.eval_batch_size))
    return {"checkpoint": str(directory), "benchmark": benchmark.name, "seed": config.seed,
            "task_names": [task.name for task in benchmark.tasks[: net.num_tasks]],
            "task_classes": [task.classes for task in benchmark.tasks[: net.num_tasks]],
            "test_acc": accs, "avg_acc": sum(accs) / len(accs) if accs else None}
