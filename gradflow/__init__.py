"""gradflow: see how gradients flow back through deep networks with and without skip connections.

The Python API lives in its modules (imported explicitly, so ``gradflow --help`` never pays for
NumPy):

    from gradflow.engine.spec import NetworkSpec       # what to build
    from gradflow.engine.network import build            # its arrays
    from gradflow.analysis.analyze import analyze, compare   # one pass, measured: a Report
"""

__version__ = "0.1.0"
