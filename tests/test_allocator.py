"""Freed memory stays in the process: repeated large allocations stop faulting pages in (Linux, glibc)."""

import subprocess
import sys

import pytest

from exssnet.allocator import keep_freed_memory

CHURN = """
import resource, sys
import torch
from exssnet.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def churn():
    for _ in range(20):  # a training step's pattern: allocate, touch and free blocks of a few MB
        blocks = [torch.ones(1 << 20) for _ in range(6)]
        del blocks
churn()  # the first round may fault in the peak once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(setting: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHURN, setting], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not keep_freed_memory(), reason="needs Linux with glibc")
def test_kept_memory_stops_the_page_faults_of_repeated_allocations():
    default, kept = faults("default"), faults("keep")
    assert default > 1000, default  # 20 x 6 blocks of 4 MiB handed back and faulted in again
    assert kept < default / 20, (kept, default)
