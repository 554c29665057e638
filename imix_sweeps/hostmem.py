"""Host (CPU) allocator settings for batched tensor work on the CPU.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at start, raised
dynamically up to the largest block freed) with a fresh ``mmap`` and gives the top of the heap
back to the OS once more than the trim threshold (twice the mmap threshold) is free there. A
batched augmentation step on the CPU allocates and frees a few hundred temporaries of about a MB
each, so with the defaults many of them land on pages that are new to the process, and every
page costs a fault. Measured (docs/PERFORMANCE.md): the 224-px streaming device ops on the CPU
gain 20-190 %, the first version of the CIFAR ops 15-20 %; the current CIFAR ops, which allocate
less, no difference beyond noise.

``tune_malloc()`` fixes the mmap threshold at 32 MiB (glibc's maximum; larger blocks are still
mapped) and keeps up to 256 MiB of freed heap before trimming. It is called once per process by
the training entry point and the benchmark; forked DataLoader workers inherit it. It does nothing
where it does not apply (not glibc), where the user set ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` themselves, or with ``IMIX_TUNE_MALLOC=0``.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 256 << 20

_state: dict[str, bool] = {}


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Apply the settings above once per process; return whether they are in effect."""
    if "tuned" in _state:
        return _state["tuned"]
    _state["tuned"] = False
    user_set = any(
        k in os.environ
        for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
    )
    if os.environ.get("IMIX_TUNE_MALLOC", "1") == "0" or user_set:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok = mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    _state["tuned"] = ok
    return ok
