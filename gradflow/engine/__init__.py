"""The engine: a network specified, built, and run forward and backward."""
