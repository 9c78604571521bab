"""Figures with matplotlib, for ``--plot`` and the ``.plot()`` methods.

This ``__init__`` imports no matplotlib, so that the command line can check for it (and read
``file_format``) cheaply; only the figure modules (``gradients``, ``path_lengths``, ``sweep``,
``training``) and ``style`` import it.
"""

from __future__ import annotations

INSTALL = "pip install 'gradflow-cli[plot]'"


def require_matplotlib() -> None:
    """Import matplotlib, or raise ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(f"figures need matplotlib: {INSTALL}") from error
