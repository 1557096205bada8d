"""`report diff`, `report expiring` and `report signers` as pretty tables (fitting the terminal), JSON and
CSV. Names come from registries and certificates: pretty cells go through report/cells (printable), CSV
through the spreadsheet-safe writer, JSON keeps the exact text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from sigscope.report.cells import Fit, cell, natural_width, short_digest, shrink_to_fit
from sigscope.report.history import (
    Change,
    ExpiringRow,
    change_counts,
    identity_json,
    image_ref,
)
from sigscope.report.render import STATUS_STYLE
from sigscope.report.scaffold import csv_writer, write_document
from sigscope.store.records import Identity

HISTORY_OUTPUTS = ("pretty", "json", "csv")
CHANGE_STYLE = {
    "newly-unsigned": "bold red",
    "turned-invalid": "bold red",
    "turned-untrusted": "red",
    "signer-changed": "yellow",
    "decision-flipped": "yellow",
    "newly-signed": "green",
    "added": "cyan",
    "removed": "dim",
}


def _print_table(console: Console, table: Table, flexible: dict[int, tuple[int, int]]) -> None:
    if natural_width(console, table) > console.width:
        shrink_to_fit(console, table, flexible)
    console.print(table)


def _status(text: str) -> Text:
    return Text(text, style=STATUS_STYLE.get(text, ""))


def _names(images: Sequence[Any], limit: int = 3) -> str:
    names = [i.path for i in images]
    more = f" (+{len(names) - limit})" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---------------------------------------------------------------------------------------------- diff


def diff_pretty(console: Console, changes: Sequence[Change], title: str) -> None:
    console.print(Fit(title, style="table.title"))
    if changes:
        table = Table()
        for name in ("Change", "Image", "Before", "After", "Digest"):
            table.add_column(name, no_wrap=name in ("Change", "Digest"))
        for c in changes:
            table.add_row(
                Text(c.kind, style=CHANGE_STYLE.get(c.kind, "")),
                Fit(c.name),
                Fit(c.before, where="end", min_width=8),
                Fit(c.after, where="end", min_width=8),
                cell(short_digest(c.after_digest or c.before_digest), style="dim"),
            )
        _print_table(console, table, {1: (3, 16), 2: (1, 8), 3: (1, 8)})
    counts = change_counts(changes)
    line = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no changes"
    console.print(cell(line))


def diff_json(out: IO[str], changes: Sequence[Change], since: dict[str, Any]) -> None:
    write_document(
        out,
        {"since": since, "counts": change_counts(changes), "changes": [c.to_json() for c in changes]},
    )


def diff_csv(out: IO[str], changes: Sequence[Change]) -> None:
    columns = ["change", "source", "repository", "name", "before", "after", "beforeDigest", "afterDigest"]
    writer = csv_writer(out, columns)
    for change in changes:
        writer.writerow(change.to_json())


# ------------------------------------------------------------------------------------------ expiring


def _when(row: ExpiringRow, now: datetime) -> Text:
    days = row.days_left(now)
    if row.expired:
        return Text(f"EXPIRED {-days}d ago" if days < 0 else "EXPIRED", style="bold red")
    return Text(f"in {days}d", style="yellow" if days < 7 else "")


def expiring_pretty(console: Console, rows: Sequence[ExpiringRow], now: datetime, title: str) -> None:
    console.print(Fit(title, style="table.title"))
    if rows:
        table = Table()
        for name in ("Not after", "When", "Role", "Subject", "Images"):
            table.add_column(name, no_wrap=name in ("Not after", "When", "Role"))
        for row in rows:
            table.add_row(
                Text(row.not_after.strftime("%Y-%m-%d %H:%M")),
                _when(row, now),
                Text(row.role),
                Fit(row.subject, where="end"),
                Fit(_names(list(row.images.values())), where="end"),
            )
        _print_table(console, table, {3: (2, 12), 4: (3, 12)})
    expired = sum(1 for r in rows if r.expired)
    console.print(cell(f"{len(rows)} certificates, {expired} expired already"))


def expiring_json(out: IO[str], rows: Sequence[ExpiringRow], now: datetime, until: datetime) -> None:
    write_document(
        out,
        {"now": now.isoformat(), "until": until.isoformat(), "certificates": [r.to_json(now) for r in rows]},
    )


def expiring_csv(out: IO[str], rows: Sequence[ExpiringRow], now: datetime) -> None:
    columns = ["not_after", "expired", "days_left", "role", "subject", "issuer", "serial", "sha256", "images"]
    writer = csv_writer(out, columns)
    for row in rows:
        writer.writerow(
            {
                "not_after": row.not_after.isoformat(),
                "expired": str(row.expired).lower(),
                "days_left": row.days_left(now),
                "role": row.role,
                "subject": row.subject,
                "issuer": row.issuer,
                "serial": row.serial,
                "sha256": row.sha256,
                "images": " ".join(i.path for i in row.images.values()),
            }
        )


# ------------------------------------------------------------------------------------------- signers


def signers_pretty(console: Console, identities: Sequence[Identity], title: str) -> None:
    console.print(Fit(title, style="table.title"))
    if identities:
        table = Table()
        for name in ("Identity", "Issuer", "Formats", "Status", "Images"):
            table.add_column(name, no_wrap=name == "Status")
        for identity in identities:
            statuses: list[RenderableType] = [_status(s) for s in identity.statuses]
            status = Text(" ").join(statuses) if statuses else Text("")  # type: ignore[arg-type]
            table.add_row(
                Fit(identity.identity, where="end"),
                Fit(identity.issuer or "", where="end", min_width=8),
                Fit(", ".join(identity.formats), where="end", min_width=6),
                status,
                Fit(f"{len(identity.images)}: {_names(identity.images)}", where="end"),
            )
        _print_table(console, table, {0: (3, 16), 1: (2, 8), 2: (1, 6), 4: (3, 12)})
    console.print(cell(f"{len(identities)} signer identities"))


def signers_json(out: IO[str], identities: Sequence[Identity]) -> None:
    write_document(out, {"signers": [identity_json(i) for i in identities]})


def signers_csv(out: IO[str], identities: Sequence[Identity]) -> None:
    writer = csv_writer(out, ["identity", "issuer", "formats", "statuses", "image_count", "images"])
    for identity in identities:
        writer.writerow(
            {
                "identity": identity.identity,
                "issuer": identity.issuer or "",
                "formats": " ".join(identity.formats),
                "statuses": " ".join(identity.statuses),
                "image_count": len(identity.images),
                "images": " ".join(image_ref(i)["path"] for i in identity.images),
            }
        )


Printer = Callable[[], None]
