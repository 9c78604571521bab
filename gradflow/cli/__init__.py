"""The command line: typer commands over the engine, the analysis and the renderers.

``main`` answers ``gradflow --version`` before typer and the commands are imported (that import
is most of the start-up time), and starts BLAS on one thread unless the user set a thread count
(``engine/threads.py``). The typer app itself is ``gradflow.cli.app.app``.
"""

from __future__ import annotations

import sys

from gradflow import __version__

VERSION_LINE = f"gradflow {__version__}"

__all__ = ["VERSION_LINE", "main"]


def main() -> None:
    """Entry point of the ``gradflow`` command (and ``python -m gradflow``)."""
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(VERSION_LINE + "\n")
        return
    from gradflow.engine.threads import start_on_one_thread

    start_on_one_thread()  # before NumPy loads: passes then need no per-pass thread limit
    from gradflow.cli.app import main as run

    run()
