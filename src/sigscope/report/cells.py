"""Table cells for terminals: names from outside made printable, and values that give way to a narrow window.

Registry names, tags, file names, signer names and reasons come from whoever wrote them: an ESC or CR in
one could repaint the terminal or hide a line, so every cell goes through `printable` (escapes shown as
`\\x1b`), and every cell is a `Text`, never a string, so a `[bold]` in a name is not rich markup. JSON, CSV
and the other machine formats never come here: they keep the exact bytes.

When a pretty table is too wide, its cells give way without folding a word: `Fit` cuts one line with an
ellipsis (in the middle of a path or reference, keeping its start and its file or tag name), `DigestCell` is
the full digest when it fits and `sha256:7f27e3e2…` when not, and `shrink_to_fit` shares the width.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from sigscope.report.escape import printable

__all__ = [
    "ELLIPSIS",
    "UNBOUNDED",
    "DigestCell",
    "Fit",
    "FullOrShort",
    "cell",
    "cut_end",
    "cut_middle",
    "natural_width",
    "print_fields",
    "print_whole",
    "printable",
    "short_digest",
    "shrink_to_fit",
    "status_cell",
]

ELLIPSIS = "…"
# Wider than any line a scan writes: machine-readable `wide` output is laid out at its natural width.
UNBOUNDED = 1_000_000


def cell(text: str, style: StyleType = "") -> Text:
    """A table cell or line of text from outside: printable, and never read as rich markup."""
    return Text(printable(text), style=style)


def _head(text: str, cells: int) -> str:
    """The longest start of `text` that takes at most `cells` terminal cells."""
    used = 0
    for index, char in enumerate(text):
        used += cell_len(char)
        if used > cells:
            return text[:index]
    return text


def _tail(text: str, cells: int) -> str:
    return _head(text[::-1], cells)[::-1]


def cut_end(text: str, width: int) -> str:
    """`text` in at most `width` cells, its end replaced by an ellipsis when it does not fit."""
    if cell_len(text) <= width:
        return text
    return _head(text, width - 1) + ELLIPSIS if width > 0 else ""


def cut_middle(text: str, width: int) -> str:
    """`text` in at most `width` cells, its middle replaced by an ellipsis when it does not fit.

    What tells paths and references apart is at their ends: the registry or top directory at the start,
    the file or `name:tag` at the end. The last `/`-separated part is kept whole while it leaves a third of
    the room to the start; otherwise the end gets two thirds."""
    if cell_len(text) <= width:
        return text
    if width < 2:
        return ELLIPSIS[:width]
    room = width - 1
    slash = text.rfind("/")
    last = text[slash:] if slash > 0 else ""
    keep = cell_len(last) if last and cell_len(last) <= room - room // 3 else room - room // 3
    return _head(text, room - keep) + ELLIPSIS + _tail(text, keep)


def short_digest(digest: str) -> str:
    """`sha256:7f27e3e2…`: the algorithm and 8 hex digits, enough to tell images apart at a glance."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or len(encoded) <= 9:
        return digest
    return f"{algorithm}:{encoded[:8]}{ELLIPSIS}"


class Fit:
    """One line that is whole when the column allows and cut with an ellipsis when it does not; never folded.

    `where` says which part to give up: the middle for paths and references, the end for names."""

    def __init__(
        self,
        text: str,
        style: StyleType = "",
        *,
        where: Literal["middle", "end"] = "middle",
        min_width: int = 12,
    ) -> None:
        self.text = printable(text)
        self.style = style
        self.where = where
        self.min_width = min_width

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = cell_len(self.text)
        return Measurement(min(width, self.min_width), width).with_maximum(options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cut = cut_middle if self.where == "middle" else cut_end
        yield Text(cut(self.text, options.max_width), style=self.style, no_wrap=True, overflow="crop")


class FullOrShort:
    """A value in full when the column has room, else its short form, which rich may shrink to first."""

    def __init__(self, full: str, short: str, style: StyleType = "") -> None:
        self.full = printable(full)
        self.short = printable(short)
        self.style = style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        full, short = cell_len(self.full), cell_len(self.short)
        if full > options.max_width:
            # Offered less than the whole value, the column takes only what the short form needs.
            return Measurement(short, short).with_maximum(options.max_width)
        return Measurement(min(short, full), full)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shown = self.full if cell_len(self.full) <= options.max_width else self.short
        yield Text(cut_end(shown, options.max_width), style=self.style, no_wrap=True, overflow="crop")


class DigestCell(FullOrShort):
    """A digest in full when the column has room, else `sha256:7f27e3e2…`."""

    def __init__(self, digest: str, style: StyleType = "") -> None:
        super().__init__(digest, short_digest(printable(digest)), style)


def status_cell(status: str, style: StyleType, flags: Iterable[str] = (), *, stacked: bool) -> Text:
    """A status word, whole, with its flags (self-signed, expired) beside it or, `stacked`, one per line
    beneath it, so that the column needs no more than the longest word."""
    flags = list(flags)
    if not flags:
        return Text(status, style=style)
    if stacked:
        return Text.assemble((status, style), ("\n" + "\n".join(flags), "dim"))
    return Text.assemble((status, style), f" ({', '.join(flags)})")


def print_fields(console: Console, rows: Iterable[tuple[str, str]]) -> None:
    """`label  value` lines, labels aligned; a value that does not fit beside its label goes whole on the next
    line, indented, wrapped only at words: a digest or reference stays one piece to copy."""
    rows = list(rows)
    indent = max((cell_len(label) for label, _ in rows), default=0) + 2
    for label, value in rows:
        shown = printable(value)
        if indent + cell_len(shown) <= console.width:
            console.print(Text.assemble((label.ljust(indent), "bold"), shown), no_wrap=True, crop=False)
        else:
            console.print(Text(label, style="bold"))
            console.print(Padding(Text(shown), (0, 0, 0, 2), expand=False))


def natural_width(console: Console, renderable: RenderableType) -> int:
    """How wide `renderable` is when nothing in it has to wrap."""
    return Measurement.get(console, console.options.update_width(UNBOUNDED), renderable).maximum


def _fill(room: int, caps: list[int], weights: list[int]) -> list[int]:
    """`room` shared by weight, none given more than its cap; what a capped one leaves goes to the others."""
    given = [0] * len(caps)
    weight = sum(weights)
    for index in sorted(range(len(caps)), key=lambda i: caps[i] / weights[i]):
        given[index] = min(caps[index], room * weights[index] // weight) if weight else 0
        room -= given[index]
        weight -= weights[index]
    return given


def shrink_to_fit(console: Console, table: Table, flexible: Mapping[int, tuple[int, int]]) -> bool:
    """Fix the widths of `table`'s flexible columns (index: (weight, narrowest)) so that it fits the console.

    rich, when a table is too wide, narrows its widest columns first, whatever they hold: a path is cut to
    the width of a status. Here the columns that must stay whole keep their width, and the flexible ones
    (cells that cut themselves, as `Fit`) share what is left by weight, none given more than its longest
    cell. Returns False, changing nothing, when even the narrowest widths do not fit: the caller has a more
    compact table to try."""
    options = console.options.update_width(UNBOUNDED)
    wants = [
        max(Measurement.get(console, options, r).maximum for r in (column.header, *column.cells))
        for column in table.columns
    ]
    overhead = natural_width(console, table) - sum(wants)
    room = console.width - overhead - sum(w for i, w in enumerate(wants) if i not in flexible)
    indexes = sorted(flexible)
    floors = [min(wants[i], flexible[i][1]) for i in indexes]
    if room < sum(floors):
        return False
    caps = [wants[i] - f for i, f in zip(indexes, floors, strict=True)]
    extra = _fill(room - sum(floors), caps, [flexible[i][0] for i in indexes])
    for index, floor, more in zip(indexes, floors, extra, strict=True):
        table.columns[index].width = max(1, floor + more)
    return True


def print_whole(console: Console, renderable: RenderableType) -> None:
    """Print at the renderable's natural width even past the console's, so that nothing wraps or is cut.

    For `-o wide`, the output meant for grep and logs: one row per line, full values. Wider than a terminal,
    the lines are left to it (or to `less -S`), as `kubectl -o wide` does."""
    natural = natural_width(console, renderable)
    width = console.width
    if natural <= width:
        console.print(renderable)
        return
    console.width = natural
    try:
        console.print(renderable)
    finally:
        console.width = width
