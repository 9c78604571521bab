"""What a pass must hold in memory, estimated before anything is allocated.

Each module that allocates declares its own bytes next to its allocations; this one only sums
the declarations: the network's arrays (shared by every variant of a comparison), the tape,
the gradient flow's buffers, the weight-gradient norms' working memory and the driver's blocks.
A comparison runs its variants side by side where memory allows (``at_once``), each pass with
its own tape. What observes a pass (the statistics, the report) adds its own bytes through
``observer_bytes``.
"""

from __future__ import annotations

import os

from gradflow.engine.gradient import flow_bytes
from gradflow.engine.network import network_bytes
from gradflow.engine.passes import driver_bytes, norm_after_add, order
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.tape import tape_bytes
from gradflow.engine.weight_grads import Method, buffer_bytes


def estimate_bytes(
    spec: NetworkSpec,
    keep_gradients: bool = False,
    *,
    method: Method = Method.AUTO,
    observer_bytes: int = 0,
    at_once: int = 1,
    redraw: bool = False,
) -> int:
    """Bytes one pass of ``spec`` holds at its peak; ``at_once``: so many passes side by side,
    on the one network (compare's variants on threads); ``redraw``: a network whose weights
    the pass draws as it reads them (``build(spec, redraw=True)``)."""
    each_pass = (
        tape_bytes(spec, order(spec), norm_after_add(spec))
        + flow_bytes(spec, keep_gradients)
        + buffer_bytes(spec, keep_gradients, method)
        + driver_bytes(spec)
        + observer_bytes
    )
    return network_bytes(spec, redraw) + at_once * each_pass


def available_bytes() -> int:
    """Memory the machine can give now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse
