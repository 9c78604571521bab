"""Ctrl-C and SIGTERM held back over a stretch that must not be cut in two: rewriting a file in
place, or starting a sweep's worker processes. A signal that arrives meanwhile takes effect
once the stretch is over."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_held(
    children_too: bool = False, meanwhile: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back; one that arrived is raised afterwards. Python runs signal
    handlers in the main thread whichever thread the kernel gave the signal to, so a thread's
    signal mask would not hold them where other threads are alive (a pass's helpers): the
    handlers themselves are swapped for ones that only note the signal.

    ``children_too``: the main thread also blocks SIGINT, so that a process started meanwhile
    (a process pool's fork server, and the workers it forks) starts with it blocked and never
    sees a Ctrl-C meant for this process: it would print a traceback mid-import. SIGTERM stays
    open to them: it is how a pool ends a worker.
    ``meanwhile``: called at once when one arrives (to cut the stretch short)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run in the main thread: nothing interrupts this one
        return
    arrived: list[int] = []
    previous = {number: signal.getsignal(number) for number in HELD}

    def note(got: int, frame: object) -> None:
        arrived.append(got)
        if meanwhile is not None:
            meanwhile()

    for number in HELD:
        if previous[number] not in (signal.SIG_IGN, None):
            signal.signal(number, note)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if children_too else None
    try:
        yield
    finally:
        if blocked is not None:  # a signal pending meanwhile comes now, to the noting handler
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for number, handler in previous.items():
            if handler is not None:
                signal.signal(number, handler)
        for got in dict.fromkeys(arrived):
            signal.raise_signal(got)
