"""`sigscope report`: questions asked of the inventory's history (docs/inventory.md, *Reports*).

report diff       what changed since a run, a time or a while ago
report expiring   certificates (signing, intermediate, TSA) that expire soon, or have
report signers    every signer identity with its images
report serve      all of it as a read-only web page
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sigscope.errors import UsageError
from sigscope.serve.server import listen_options

if TYPE_CHECKING:
    from sigscope.store import Inventory

F = TypeVar("F", bound=Callable[..., Any])
OUTPUT_CHOICES = ("pretty", "json", "csv")


def report_db_option(func: F) -> F:
    return click.option(
        "--db",
        metavar="URL",
        envvar="SIGSCOPE_DB",
        default="default",
        show_default=True,
        help="The inventory: a SQLite PATH, sqlite:///PATH, 'default' (~/.local/share/sigscope/inventory.db) "
        "or postgresql://… [env: SIGSCOPE_DB].",
    )(func)


def output_option(func: F) -> F:
    return click.option(
        "-o", "--output", type=click.Choice(OUTPUT_CHOICES), default="pretty", show_default=True
    )(func)


def open_inventory(db: str) -> Inventory:
    """An inventory that exists: a report never creates an empty one where a scan never wrote."""
    from sigscope.store import Inventory
    from sigscope.store.engine import resolve_url

    url = resolve_url(db)
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).is_file():
        raise UsageError(
            f"--db {url.database}: no inventory there; scans record one with `sigscope scan registry … --db`"
        )
    return Inventory.open(db)


@click.group("report")
def report_group() -> None:
    """Reports from the inventory's history: what changed, what expires, who signs (docs/inventory.md)."""


@report_group.command("diff")
@report_db_option
@click.option(
    "--since",
    metavar="RUN|DATE|DURATION",
    help="Compare with the inventory as it was at run RUN (that run and older), at DATE (2024-05-01, "
    "2024-05-01T12:00Z), or DURATION ago (7d, 12h). Default: before the newest scan.",
)
@output_option
def diff_cmd(db: str, since: str | None, output: str) -> None:
    """What changed: images newly unsigned or signed, signer identity changed, signatures turned invalid
    or untrusted, policy decisions flipped, images added and removed.

    Each tag is compared by name, so a tag moved to an unsigned digest is `newly-unsigned`.

    \b
    Examples:
      sigscope report diff --db inventory.db
      sigscope report diff --since 7d -o json | jq '.changes[] | select(.change == "newly-unsigned")'
      sigscope report diff --since 2024-05-01 -o csv > changes.csv
    """
    from sigscope.report import history
    from sigscope.report import history_render as render
    from sigscope.store import queries
    from sigscope.trust.certs import utcnow

    now = utcnow()
    point = history.parse_since(since, now) if since else None
    with open_inventory(db) as inventory:
        if point is None:
            point = queries.previous_point(inventory)
        before_images = queries.state(inventory, before=point) if point is not None else []
        after_images = queries.state(inventory)
        sigs = inventory.signatures_of(before_images + after_images)
    changes = history.diff(history.entries(before_images, sigs), history.entries(after_images, sigs))
    label = "nothing" if point is None else (f"run {point}" if isinstance(point, int) else point.isoformat())
    if output == "json":
        kind = "none" if point is None else ("run" if isinstance(point, int) else "time")
        render.diff_json(sys.stdout, changes, {"kind": kind, "value": label})
    elif output == "csv":
        render.diff_csv(sys.stdout, changes)
    else:
        from sigscope.cli.progress import stdout_console

        render.diff_pretty(stdout_console(), changes, f"Changes since {label}")


@report_group.command("expiring")
@report_db_option
@click.option(
    "--within",
    metavar="DURATION",
    default="30d",
    show_default=True,
    help="How far ahead: 30d, 12h, 2w (a bare number is days).",
)
@output_option
def expiring_cmd(db: str, within: str, output: str) -> None:
    """Certificates (signing, intermediates, TSA) of the signatures on the inventory's current images that
    expire within DURATION, soonest first; those expired already are marked.

    \b
    Examples:
      sigscope report expiring --within 30d
      sigscope report expiring --within 90d -o csv > expiring.csv
    """
    from sigscope.report import history
    from sigscope.report import history_render as render
    from sigscope.store import queries
    from sigscope.trust.certs import utcnow

    now = utcnow()
    until = now + history.parse_duration(within, "--within")
    with open_inventory(db) as inventory:
        rows = history.expiring_rows(inventory.expiring(until, queries.state(inventory)), now)
    if output == "json":
        render.expiring_json(sys.stdout, rows, now, until)
    elif output == "csv":
        render.expiring_csv(sys.stdout, rows, now)
    else:
        from sigscope.cli.progress import stdout_console

        render.expiring_pretty(stdout_console(), rows, now, f"Certificates expiring before {until:%Y-%m-%d}")


@report_group.command("signers")
@report_db_option
@output_option
def signers_cmd(db: str, output: str) -> None:
    """Every signer identity (certificate SAN or subject, OpenPGP user id, key fingerprint) on the
    inventory's current images, with its issuer, formats, statuses and images.

    \b
    Examples:
      sigscope report signers
      sigscope report signers -o json | jq -r '.signers[] | select(.statuses | index("invalid")) | .identity'
    """
    from sigscope.report import history_render as render
    from sigscope.store import queries

    with open_inventory(db) as inventory:
        identities = inventory.identities(queries.state(inventory))
    if output == "json":
        render.signers_json(sys.stdout, identities)
    elif output == "csv":
        render.signers_csv(sys.stdout, identities)
    else:
        from sigscope.cli.progress import stdout_console

        render.signers_pretty(stdout_console(), identities, "Signer identities")


@report_group.command("serve")
@report_db_option
@listen_options(
    port=8080,
    address_help="Address to listen on (0.0.0.0 for every interface: the report has no login of its own).",
)
def serve_cmd(db: str, port: int, address: str) -> None:
    """A read-only web report of the inventory: signed share per registry and repository over time, the
    image table (filter, sort, pages), signer identities, expiring certificates, the latest changes, and
    each image's evidence (checks, certificate chain). Server-rendered, no script, no external resource:
    works offline.

    \b
    Examples:
      sigscope report serve --db inventory.db            # http://127.0.0.1:8080/
      sigscope report serve --db postgresql://… --address 0.0.0.0 --port 8081
    """
    from sigscope.report.web import ReportApp
    from sigscope.serve.server import Listening, config

    with open_inventory(db) as inventory:
        served = Listening.on(config(ReportApp(inventory)), address, port)
        served.run(f"sigscope: report of {inventory.display} on http://{served.origin}/")
