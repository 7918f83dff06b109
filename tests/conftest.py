"""Shared fixtures: tiny models and a fast benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import torch

from exssnet.cli import main
from exssnet.run.config import RunConfig, keys_read_by
from exssnet.run.hooks import RunHook
from exssnet.supermask import SupermaskNet, WeightRule


def own_keys(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the settings `method` does not read (a run refuses another method's setting)."""
    own = keys_read_by(method)
    return {k: v for k, v in values.items() if k in own}


def own_flags(method: str, values: dict[str, Any]) -> list[str]:
    """`--key value` arguments for the settings in `values` that `method` reads."""
    return [arg for key, value in own_keys(method, values).items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def assert_accuracy_matrix(results: dict, num_tasks: int) -> None:
    """A finished run's matrix: row t holds t + 1 accuracies in [0, 100] (then None), and avg_acc is the last row's mean."""
    matrix = results["acc_matrix"]
    assert [sum(v is not None for v in row) for row in matrix] == list(range(1, num_tasks + 1))
    assert all(row[t + 1 :] == [None] * (num_tasks - t - 1) for t, row in enumerate(matrix))
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for t, row in enumerate(matrix) for v in row[: t + 1])
    assert abs(results["avg_acc"] - sum(matrix[-1]) / num_tasks) < 1e-9


class Crash(RunHook):
    """Raises at the end of task `at`, before that task's checkpoint is written."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_task_end(self, task, method, acc_row, record):
        if task == self.at:
            raise RuntimeError("simulated crash")


def crash_then_resume(config: RunConfig, out: Path, at: int = 1) -> dict:
    """Run `config` into `out` until a crash at the end of task `at` (before its checkpoint), then resume it."""
    from exssnet.run.runner import run_experiment

    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(config, out=out, progress=False, hooks=[Crash(at)])
    return run_experiment(config, out=out, progress=False, resume=True)


def one_error_line(args: list[str], capsys) -> str:
    """Run the CLI on `args`: exit code 2 and exactly one `exssnet: error:` line, no traceback; returns stderr."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("exssnet: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def train_steps(net: SupermaskNet, inputs: torch.Tensor | tuple, steps: int = 2) -> None:
    """A few Adam steps on what the net's current phase trains (any loss will do: the tests compare states)."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    net.train()
    optimizer = torch.optim.Adam(net.trainable_parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        net(*args).square().mean().backward()
        optimizer.step()


def learn_supsup_ssnet_exssnet(net: SupermaskNet, classes: tuple[int, ...], inputs: Callable[[], Any]) -> SupermaskNet:
    """Task 0 SupSup (mask only), task 1 SSNeT (all its weights train), task 2 ExSSNeT (free weights train);
    `inputs()` gives each task's training batch."""
    for num_classes, rule in zip(classes, (None, WeightRule.ALL, WeightRule.EXCLUSIVE)):
        net.add_task(num_classes)
        x = inputs()
        train_steps(net, x)
        if rule is not None:
            net.start_weight_phase(rule)
            train_steps(net, x)
        net.finish_task()
    return net


def load_benchmark_script(name: str) -> ModuleType:
    """Import `benchmarks/<name>.py` as a module (benchmarks/ on sys.path, as when the script runs, for its own imports)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass in the script looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def digits_config() -> RunConfig:
    """A few-second run on scikit-learn digits."""
    return RunConfig(benchmark="split-digits", method="exssnet", density=0.2, mask_epochs=2, weight_epochs=2,
                     batch_size=64, seed=0)
