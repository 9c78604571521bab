"""The command line: typer commands over the engine, the analysis and the renderers."""

from gradflow.cli.app import app, main

__all__ = ["app", "main"]
