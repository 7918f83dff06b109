"""What CPU a run ran on: a training run's figures depend on the float rounding of the CPU's matrix code (MKL's
AVX-512 and AVX2 paths give runs that differ by tenths of a point), so results.json records it."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform.processor()` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_environment() -> dict[str, str]:
    """The CPU's model and the vector instruction set torch's CPU kernels use (e.g. AVX2, AVX512)."""
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
