"""Memory a pass frees, kept for the next pass instead of handed back to the system.

glibc's malloc serves a large request (above a threshold that adapts, at most 32 MiB) with its
own mapping and unmaps it when freed; and it returns the top of the heap to the system once more
than a threshold of it is free. A pass allocates its tape and buffers (MiBs each) and frees them
when it ends, so the next pass (compare's next variant, a sweep's next run, a training run's
evaluation) touched every page afresh: a page fault per 4 KiB. On the machine the benchmark runs
on, that was ~2,200 faults and ~10% of a width-256 float32 pass.

``keep_freed_memory`` raises both thresholds, once per process: requests up to 32 MiB come from
the heap, and up to ``KEEP`` of freed heap stays mapped for reuse. Larger arrays are still mapped
and unmapped each time (their faults are a smaller share of their work). The command line calls
it for its own process and its sweep workers; a library caller's process is left as it is. Where
the C library is not glibc, nothing changes.
"""

from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD = -1  # <malloc.h>: free bytes at the heap's top before it is returned
M_MMAP_THRESHOLD = -3  # <malloc.h>: requests at least this large get a mapping of their own
MMAP_FROM = 32 << 20  # glibc's largest allowed threshold on 64-bit systems
KEEP = 256 << 20  # freed heap kept mapped at most


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed memory for reuse (glibc only); True if the C library took the setting."""
    if not _is_glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, as it also moves the trim one
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM) and mallopt(M_TRIM_THRESHOLD, KEEP))


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):  # no such name here: not glibc
        return False
