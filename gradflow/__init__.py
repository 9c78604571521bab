"""gradflow: see how gradients flow back through deep networks with and without skip connections.

The public API is imported lazily so that ``gradflow --help`` never pays for NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gradflow.analyze import analyze, compare
    from gradflow.build import Network, build
    from gradflow.report import Report
    from gradflow.spec import NetworkSpec, Thresholds

_EXPORTS = {
    "NetworkSpec": "gradflow.spec",
    "Network": "gradflow.build",
    "build": "gradflow.build",
    "analyze": "gradflow.analyze",
    "compare": "gradflow.analyze",
    "Report": "gradflow.report",
    "Thresholds": "gradflow.spec",
}

__all__ = [
    "Network",
    "NetworkSpec",
    "Report",
    "Thresholds",
    "__version__",
    "analyze",
    "build",
    "compare",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gradflow' has no attribute {name!r}")
