"""Keep freed CPU memory in the process instead of handing it back to the kernel after every training step.

A training step frees and re-allocates the same large activation and gradient blocks every step. With glibc's
default settings, freed blocks above its (dynamic) mmap threshold and free space above its trim threshold go
back to the kernel, and the next step faults the pages in again: on one core of the reduced ResNet18 at batch 64
that is 10-30k minor page faults and about 10% of a training step, dense or masked alike
(`benchmarks/step_ratio.py --allocator default` vs `keep`). `keep_freed_memory` raises both thresholds with
`mallopt`, so the process keeps its peak heap and steps stop faulting. The CLI calls it once at start; library
users may call it themselves. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free heap at the top instead of trimming it


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when glibc accepted both."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
