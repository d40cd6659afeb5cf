"""Keep a long-running process's memory from stepping up: glibc's mmap threshold, fixed.

glibc serves large blocks (over 128 KiB) with ``mmap`` and gives them back on ``free``, but by
default it *raises* that threshold after such a block is freed, up to 32 MiB: the next blocks of
that size then come from the heap, which is rarely returned. The ingress's dedup memory is one
big dict (100,000 entities by default) rebuilt under churn every few hundred thousand webhooks;
each rebuild allocates a new ~16 MiB table, and with the raised threshold the old one stays in
the heap: VmRSS rose 126 → 143 MiB from 100,000 to 1,000,000 accepted webhooks in steps of 4 and
7 MiB (``bench/ingress_memory.py``); with the threshold fixed at its default it stays flat.
Setting ``M_MMAP_THRESHOLD`` explicitly turns the dynamic adjustment off (``mallopt(3)``).

Only on glibc (the Docker image's Debian, most Linux hosts); elsewhere nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # <malloc.h>
DEFAULT_THRESHOLD = 128 * 1024  # glibc's own start value


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
