"""The page a person sees: the view's sections, in the view's order, as rich renderables.

Returns renderables; only the CLI prints them. Grids are drawn here rather than by rich.Table:
every cell is one line of known width, and a grid too wide for the screen has already been
arranged by the view (optional columns dropped, then variants stacked), so a cell is never
squeezed or cut. Prose is wrapped here too, so that no line ends in spaces.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style

from gradflow.analysis.results import Report
from gradflow.render import chart, view
from gradflow.render.grid import Grid, Layout, Tone

if TYPE_CHECKING:  # the paths page's modules load with it, not with every page
    from gradflow.analysis.paths import Decomposition
    from gradflow.analysis.theory import Prediction

TONE_STYLE = {
    Tone.PLAIN: "",
    Tone.GOOD: "green",
    Tone.BAD: "red",
    Tone.ODD: "yellow",
    Tone.BROKEN: "bold magenta",
}
BOX, TITLE_STYLE, CAPTION_STYLE = box.SIMPLE_HEAD, "bold", "dim"


class Lines:
    """Lines drawn as they are: no wrapping, no padding (rich's Text would measure and wrap
    each again, which costs more than everything else on the page)."""

    def __init__(self, lines: Sequence[str], style: str = "") -> None:
        self.lines, self.style = lines, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        style = console.get_style(self.style) if self.style else None
        for line in self.lines:
            yield Segment(line, style)
            yield Segment.line()


def prose(text: str, width: int, style: str = "", indent: str = "") -> Lines:
    """``text`` wrapped at spaces to ``width`` (later lines indented by ``indent``)."""
    wrap = textwrap.wrap(text, max(width, 1), subsequent_indent=indent, break_on_hyphens=False)
    return Lines(wrap, style)


class LaidOutTable:
    """A grid arranged for the screen: title, panels (one, or one per variant), caption."""

    def __init__(self, layout: Layout, width: int) -> None:
        self.layout = layout
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.layout.title:
            yield prose(self.layout.title, self.width, TITLE_STYLE)
        for i, panel in enumerate(self.layout.panels):
            if i:
                yield Segment.line()
            if panel.title:
                yield prose(panel.title, self.width, TITLE_STYLE)
            yield from _body(panel, console, options)
        if self.layout.caption:
            yield prose(self.layout.caption, self.width, CAPTION_STYLE)


def _body(grid: Grid, console: Console, options: ConsoleOptions) -> Iterable[Segment]:
    """Header lines (bottom-aligned), the rule, then one line per row."""
    columns = grid.columns
    sizes = [c.width for c in columns]
    align = [str.rjust if c.numeric else str.ljust for c in columns]
    header = console.get_style("table.header")
    headers = [c.header.split("\n") for c in columns]
    height = max((len(lines) for lines in headers), default=0)
    for row in range(height):
        pieces = []
        for j, lines in enumerate(headers):
            blank = height - len(lines)  # headers sit at the bottom
            text = "" if row < blank else lines[row - blank]
            pieces.append((" " + align[j](text, sizes[j]) + " ", header))
        yield from _line(pieces)
    rule = BOX.substitute(options, safe=console.safe_box)
    yield from _line([(rule.get_row([size + 2 for size in sizes], "head", edge=False), None)])
    styles = {tone: console.get_style(style) for tone, style in TONE_STYLE.items()}
    for cells in grid.rows:
        yield from _line(
            [(" " + align[j](cell.text, sizes[j]) + " ", styles[cell.tone])
             for j, cell in enumerate(cells)]
        )  # fmt: skip


def _line(pieces: Sequence[tuple[str, Style | None]]) -> Iterable[Segment]:
    """One line of pieces separated by a space, with no trailing whitespace. Neighbouring
    unstyled pieces go out as one segment: rich measures every segment, and an unstyled one
    prints as its bare text, so the bytes are the same."""
    pieces = list(pieces)
    while pieces and not pieces[-1][0].strip():
        pieces.pop()
    plain: list[str] = []  # unstyled text not yet sent
    for j, (text, style) in enumerate(pieces):
        if j:
            plain.append(" ")
        text = text.rstrip() if j == len(pieces) - 1 else text
        if style:
            if plain:
                yield Segment("".join(plain))
                plain = []
            yield Segment(text, style)
        else:
            plain.append(text)
    if plain:
        yield Segment("".join(plain))
    yield Segment.line()


def render(section: view.Section, width: int, unicode: bool) -> list[RenderableType]:
    """One section of the page as renderables."""
    if isinstance(section, view.Heading):
        return [prose(section.text, width, "bold")]
    if isinstance(section, view.Paragraph):
        return [prose(section.text, width, "bold" if section.strong else "")]
    if isinstance(section, view.Items):
        return [prose(line, width, indent="  ") for line in section.lines]
    if isinstance(section, view.ChartData):
        lines = chart.draw(section, width=width, unicode=unicode)
        return [prose(section.title, width, "bold"), Lines(lines)]
    return [LaidOutTable(section.arrange(width), width)]


def page(
    command: str,
    reports: Sequence[Report],
    *,
    max_rows: int | None,
    width: int,
    unicode: bool,
    theory: Sequence[Prediction | str] | None = None,
) -> list[RenderableType]:
    """Everything ``analyze``/``compare`` show on a terminal, top to bottom, in the view's order;
    a blank line between sections (none under the heading). ``theory``: one per report."""
    parts: list[RenderableType] = []
    sections = view.sections(command, reports, max_rows=max_rows, unicode=unicode, theory=theory)
    for i, section in enumerate(sections):
        if i and not isinstance(sections[i - 1], view.Heading):
            parts.append(Lines([""]))
        parts += render(section, width, unicode)
    return parts


def paths_page(
    runs: Sequence[Decomposition], *, max_rows: int | None, width: int
) -> list[RenderableType]:
    """Everything ``paths`` shows on a terminal: per run, the table by path length, the
    histogram beside the binomial counts, and the summary line."""
    from gradflow.render import paths_view

    parts: list[RenderableType] = [prose(paths_view.header_line(runs), width, "bold")]
    for run in runs:
        parts += [Lines([""]), *render(paths_view.paths_grid(run, max_rows), width, False)]
        drawn = paths_view.histogram(run, width=width, max_rows=max_rows, together=runs)
        parts += [Lines([""]), Lines(drawn)]  # grouped as the table is
        parts.append(prose(paths_view.summary_line(run), width, "bold"))
    return parts
