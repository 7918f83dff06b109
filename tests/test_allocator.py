"""Freed memory stays in the process: repeated large allocations stop faulting pages in (Linux, glibc)."""

import subprocess
import sys

import pytest

from exssnet.allocator import keep_freed_memory

# The churn allocates with glibc directly (posix_memalign, as torch's CPU allocator does), so that no other
# allocation lands between the blocks: with torch tensors, a small live object above the blocks sometimes pins
# them in the heap (depending on the process's hash seed and address layout, more often on a busy machine), and
# glibc's default settings then keep them too, which made the comparison flaky.
CHURN = """
import ctypes, resource, sys
from exssnet.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 4 << 20
def churn():
    for _ in range(20):  # a training step's pattern: allocate, touch and free blocks of a few MB
        blocks = [ctypes.c_void_p() for _ in range(6)]
        for block in blocks:
            assert libc.posix_memalign(ctypes.byref(block), 64, SIZE) == 0
            ctypes.memset(block, 1, SIZE)
        for block in blocks:
            libc.free(block)
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
