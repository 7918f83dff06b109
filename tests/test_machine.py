"""results.json says what CPU a run ran on (its figures depend on the CPU's float rounding)."""

import json

import torch

from exssnet.run.config import RunConfig
from exssnet.run.machine import cpu_environment, cpu_model
from exssnet.run.runner import run_experiment


def test_cpu_model_is_named():
    name = cpu_model()
    assert isinstance(name, str) and name and name != "unknown"


def test_results_record_the_cpu_and_its_vector_instructions(tmp_path):
    config = RunConfig(benchmark="split-digits", method="exssnet", num_tasks=2, mask_epochs=1, weight_epochs=1, threads=1)
    run_experiment(config, out=tmp_path, progress=False, checkpoints=False)
    environment = json.loads((tmp_path / "results.json").read_text())["environment"]
    assert environment["cpu"] == cpu_model() and environment["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert cpu_environment() == {k: environment[k] for k in ("cpu", "cpu_capability")}
