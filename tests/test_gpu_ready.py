"""Mixed precision, channels-last and CUDA runs. The CUDA tests skip cleanly without a GPU (scripts/gpu_check.sh)."""

import json
import warnings

import pytest
import torch
from conftest import assert_accuracy_matrix
from torch.optim.optimizer import register_optimizer_step_pre_hook

from exssnet.amp import autocast, grad_scaler
from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SHORT = dict(benchmark="split-digits", method="exssnet", num_tasks=3, mask_epochs=2, weight_epochs=2, threads=1)


def old_tasks_unchanged(results: dict) -> bool:
    matrix = results["acc_matrix"]
    return all(matrix[i][j] == matrix[j][j] for i in range(len(matrix)) for j in range(i + 1))


def test_grad_scaler_only_under_fp16_autocast():
    cpu = torch.device("cpu")
    assert not grad_scaler(cpu).is_enabled()
    with autocast("bf16", "cpu"):
        assert not grad_scaler(cpu).is_enabled() and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast("fp16", "cpu"):
        assert grad_scaler(cpu).is_enabled()
    with pytest.raises(ExssnetError, match="amp must be"):
        RunConfig(amp="fp8")


def test_optimizer_steps_of_a_mixed_precision_run_leave_autocast():
    """--amp covers the forward passes; every optimizer step runs outside autocast (float32 update math)."""
    during_step: list[bool] = []
    handle = register_optimizer_step_pre_hook(
        lambda *_: during_step.append(torch.is_autocast_enabled("cpu")))
    try:
        run_experiment(RunConfig(**{**SHORT, "num_tasks": 2, "mask_epochs": 1, "weight_epochs": 1}, amp="bf16"),
                       out=None, progress=False, checkpoints=False)
    finally:
        handle.remove()
    assert during_step and not any(during_step)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_run_on_cpu_keeps_old_tasks_exact(amp, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_experiment(RunConfig(**SHORT, amp=amp), out=tmp_path, progress=False)
    # a skipped first step under loss scaling is expected: torch's scheduler-order warning stays muted
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert results["forgetting"] == 0.0 and old_tasks_unchanged(results) and results["avg_acc"] > 80
    assert json.loads((tmp_path / "results.json").read_text())["config"]["amp"] == amp


def test_skipped_fp16_steps_keep_the_schedule_quiet(monkeypatch, tmp_path):
    """A loss scale so large that the first steps overflow (and are skipped) draws no scheduler-order warning."""
    from exssnet import amp

    made = []

    def huge_scale(device):
        made.append(torch.amp.GradScaler(device.type, init_scale=2.0**100, enabled=grad_scaler(device).is_enabled()))
        return made[-1]

    monkeypatch.setattr(amp, "grad_scaler", huge_scale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_experiment(RunConfig(**{**SHORT, "num_tasks": 2}, amp="fp16"), out=tmp_path, progress=False)
    assert made and made[0].is_enabled() and made[0].get_scale() < 2.0**100  # steps were skipped
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert results["forgetting"] == 0.0


def test_channels_last_gives_the_same_run(tmp_path):
    """On the CPU, channels-last is a memory layout only: the same logits and gradients up to float rounding
    (summation order). Whole runs then drift apart by rounding (BatchNorm over tiny activations amplifies it), so the
    runs themselves are only checked to train and keep task 0 exactly."""
    import copy

    from exssnet import to_supermask
    from exssnet.models import build_model

    torch.manual_seed(0)
    net = to_supermask(build_model("cnn-small", (1, 8, 8), 10), density=0.1)
    net.add_task(2)
    other = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = torch.randn(32, 1, 8, 8)
    plain_logits, last_logits = net(x), other(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain_logits, last_logits, rtol=0, atol=1e-5)
    plain_logits.sum().backward()
    last_logits.sum().backward()
    for p, q in zip(net.trainable_parameters(), other.trainable_parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=0, atol=1e-4)
    base = dict(SHORT, model="cnn-small", num_tasks=2, mask_epochs=1, weight_epochs=1)
    plain = run_experiment(RunConfig(**base), progress=False)
    last = run_experiment(RunConfig(**base, channels_last=True), progress=False)
    assert last["forgetting"] == 0.0 == plain["forgetting"]
    assert_accuracy_matrix(last, 2)
    assert min(last["acc_matrix"][-1]) > 60 and min(plain["acc_matrix"][-1]) > 60  # both learn each 2-class task


@cuda
@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_cuda_exssnet_run_keeps_old_tasks_bit_identical(amp, tmp_path):
    config = RunConfig(**{**SHORT, "device": "cuda", "model": "cnn-small", "amp": amp, "channels_last": amp is not None})
    results = run_experiment(config, out=tmp_path, progress=False)
    assert results["forgetting"] == 0.0 and old_tasks_unchanged(results)
    assert results["environment"]["device"].startswith("cuda")


@cuda
def test_cuda_cli_run_and_evaluate_reproduce(tmp_path, capsys):
    args = ["run", "--benchmark", "split-digits", "--device", "cuda", "--num-tasks", "2", "--mask-epochs", "1",
            "--weight-epochs", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert main(["evaluate", str(tmp_path), "--device", "cuda", "--out", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())["test_acc"]
    assert max(abs(a - b) for a, b in zip(evaluated, results["acc_matrix"][-1])) < 0.5


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--benchmark", "split-digits", "--device", "cuda", "--quiet", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
