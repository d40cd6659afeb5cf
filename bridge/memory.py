"""Keep a long-running process's memory from stepping up, and its allocator off the page-fault path.

glibc serves large blocks with ``mmap`` and gives them back on ``free``, but by default it
*raises* that threshold after such a block is freed, up to 32 MiB: the next blocks of that size
then come from the heap, which is rarely returned. The ingress's dedup memory is one big dict
(100,000 entities by default) rebuilt under churn every few hundred thousand webhooks; each
rebuild allocates a new ~16 MiB table, and with the raised threshold the old one stays in the
heap: VmRSS rose 126 → 143 MiB from 100,000 to 1,000,000 accepted webhooks in steps of 4 and
7 MiB (``bench/ingress_memory.py``). Setting ``M_MMAP_THRESHOLD`` explicitly turns the dynamic
adjustment off (``mallopt(3)``).

The threshold is fixed at 4 MiB, not at glibc's 128 KiB start value: aiokafka builds each
produce request by joining bytes several times over (tens to hundreds of KiB per request), and
with a 128 KiB threshold every one of those copies was a fresh ``mmap``, page-faulted in and
unmapped again — 110 µs instead of 28 µs to encode a 120 KiB request, measured. For the same
reason the trim threshold (fixed along with it) is 8 MiB: free memory at the top of the heap is
kept up to that much instead of being handed back and faulted in again a moment later. Blocks of
4 MiB and more (the dedup table, the largest webhook bodies) are still mapped and returned.

Only on glibc (the Docker image's Debian, most Linux hosts); elsewhere nothing is changed.

The collector's side: :func:`settle_heap`, called by each service once it has started, keeps
garbage collections from walking the process's long-lived objects again and again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's own adjustment keeps it at


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes and its trim threshold at twice that;
    False where there is no glibc."""
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
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * threshold)
    )


YOUNG_THRESHOLD = 7000  # CPython's default is 700


def settle_heap(young: int = YOUNG_THRESHOLD) -> None:
    """Once a service has started: collect, freeze what is alive, and collect the young
    generation ``young`` allocations apart instead of 700.

    Everything alive by then (modules, config, clients, connections) lives as long as the
    process; frozen, it is left out of every collection, so full collections walk only the work
    in flight. Measured in the relay (``bench/relay.py --quick``, (b): 500 shops x 10 writes),
    garbage collection took 650-790 ms of its ~2.5 s of CPU, six full collections alone
    395-522 ms; settled, 255-300 ms. A webhook's or a delivery's objects either die young or
    stay for the request's whole life, so collecting young objects ten times less often frees
    the same and walks the survivors ten times less.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *gc.get_threshold()[1:])
