"""The command line: typer commands over the engine, the analysis and the renderers.

``main`` answers ``gradflow --version`` before typer and the commands are imported (that import
is most of the start-up time), and starts BLAS on one thread unless the user set a thread count
(``engine/threads.py``). The typer app itself is ``gradflow.cli.app.app``.

The cyclic garbage collector is kept off start-up and shut-down. Loading NumPy, rich, typer and
the engine makes some 30,000 container objects that live until the process ends, and the
collector walked them again and again while they were made (~20 ms of ``compare --depth 50``),
then in full, more than once, as the interpreter finalized (~40 ms more on a busy machine).
``main`` pauses the collector; ``start_collecting``, called once a command's modules are loaded,
moves everything made so far to the permanent generation and resumes collecting; and ``main``
freezes what is left as it returns, so that finalization does not walk it (a cycle left at exit
is then freed by the system; Python never promised its ``__del__`` would run). Code that calls
the typer app in-process, as the tests do, leaves the collector as it is.
"""

from __future__ import annotations

import errno
import gc
import io
import os
import sys

from gradflow import __version__

VERSION_LINE = f"gradflow {__version__}"

__all__ = ["VERSION_LINE", "main", "start_collecting"]


class _ClosedStdout(io.TextIOBase):
    """What Python leaves as None when the process starts with stdout closed (``>&-``): every
    write fails as a full disk's does, so the command says so in one line and exits 3."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def _stderr_to_devnull() -> None:
    """A process started with stderr closed (``2>&-``, as some daemons run): its lines go to
    /dev/null, as a shell's would, instead of a traceback on stdout from the first one. The exit
    code still tells how the run ended."""
    fd = os.open(os.devnull, os.O_WRONLY)
    if fd != 2:
        os.dup2(fd, 2)
        os.close(fd)
    sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115


def main() -> None:
    """Entry point of the ``gradflow`` command (and ``python -m gradflow``)."""
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()
    if sys.stderr is None:
        _stderr_to_devnull()
    if sys.argv[1:] == ["--version"]:
        try:
            sys.stdout.write(VERSION_LINE + "\n")
            sys.stdout.flush()
        except OSError as error:  # a full disk is exit 3, a reader that has gone is none
            import contextlib

            with contextlib.suppress(OSError):  # what is buffered goes nowhere at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if error.errno != errno.EPIPE:
                sys.stderr.write(f"gradflow: error: could not write stdout: {error.strerror}\n")
                sys.exit(3)
        return
    gc.disable()  # until start_collecting, or the exit (for --help and bad flags)
    try:
        try:
            from gradflow.engine.threads import start_on_one_thread

            start_on_one_thread()  # before NumPy loads: passes then need no per-pass thread limit
            from gradflow.cli.app import main as run
        except KeyboardInterrupt:  # Ctrl-C while typer loads: one line, as later on
            sys.stderr.write("gradflow: interrupted\n")
            sys.exit(130)
        run()
    finally:
        gc.freeze()  # the interpreter's finalization need not walk what is about to be freed


def start_collecting() -> None:
    """Once a command's modules are loaded: if ``main`` paused the collector, leave what start-up
    made (modules, classes, typer's objects) to the permanent generation and collect from here
    on, so a long run's cycles are still freed."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
