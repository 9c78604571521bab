"""The figure file formats ``--plot`` writes, chosen by the file's suffix (no matplotlib here)."""

from __future__ import annotations

from gradflow.engine.spec import Choice


class FigureFormat(Choice):
    PNG = "png"  # for slides, pull-request comments and the README
    SVG = "svg"  # text as paths: looks the same without our fonts
    PDF = "pdf"  # for papers


# Metadata each format would otherwise stamp with the date or the library version: dropped, so
# that the same command writes the same bytes (PNG carries no date, only the Software key).
DROPPED_METADATA: dict[FigureFormat, dict[str, None]] = {
    FigureFormat.PNG: {"Software": None},
    FigureFormat.SVG: {"Date": None, "Creator": None},
    FigureFormat.PDF: {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}


def format_for(suffix: str) -> FigureFormat | None:
    """The format a file suffix (``.PNG``, ``.svg``; any case) names, or None."""
    name = suffix.lower().removeprefix(".")
    return next((f for f in FigureFormat if f.value == name), None)
