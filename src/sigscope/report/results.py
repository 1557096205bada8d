"""Verdict tables of the single-image commands (`verify`, `verify-attestation`, `verify --containers-policy`).

A reason is what a user acts on and what a script greps, so it is never folded inside a table cell: a short
reason stays in the Result column; a long one leaves a short label there (the failing check's name) and is
printed whole beneath the table, one line each, as `(n) reason` (the terminal may wrap it, rich does not).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sigscope.report.cells import cell, printable

#: Reasons up to this many characters stay in the table ("wrong key", "annotation mismatch", …).
SHORT_REASON = 24


def _label(reason: str, note: int) -> str:
    # Reasons read "check: detail"; the check's name is the label when it is a single word.
    head = reason.split(":", 1)[0].strip()
    if not head or len(head) > SHORT_REASON or " " in head:
        return f"see ({note})"
    return f"{head} ({note})"


def print_results(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[tuple[Sequence[str | Text], str | None]],
    *,
    ok: str = "ok",
) -> None:
    """One row per judged item: its cells, then its reason (None when it passed) in the last column."""
    table = Table(box=None, pad_edge=False)
    for index, column in enumerate((*columns, "Result")):
        # The first two columns (format and status) are short words: never cut.
        table.add_column(column, no_wrap=index < 2 or column == "Result")
    notes: list[str] = []
    for cells, reason in rows:
        shown: list[str | Text] = [c if isinstance(c, Text) else cell(c) for c in cells]
        if reason is None:
            result = ok
        elif len(reason) <= SHORT_REASON:
            result = reason
        else:
            notes.append(reason)
            result = _label(reason, len(notes))
        table.add_row(*shown, cell(result))
    console.print(table)
    for number, reason in enumerate(notes, 1):
        console.print(f"({number}) {printable(reason)}", markup=False, highlight=False, soft_wrap=True)
