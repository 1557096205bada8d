"""What the web report shows, derived once per inventory revision: the current state with its signatures,
the latest diff, the signed share over time, signers and expiring certificates; and the image table's
filter, sort and page (server-side, from query parameters, so the page needs no script)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sigscope.report.history import (
    Change,
    ExpiringRow,
    ShareSeries,
    diff,
    entries,
    expiring_rows,
    share_series,
)
from sigscope.store import queries
from sigscope.store.inventory import Inventory
from sigscope.store.records import Identity, ImageRecord, SignatureRecord

EXPIRING_WINDOW = timedelta(days=30)
PAGE_SIZE = 50
MAX_QUERY = 200  # characters of a filter a request may send
SORTS = ("path", "registry", "status", "signers", "scanned")


@dataclass(frozen=True)
class ImageRow:
    image: ImageRecord
    signers: tuple[str, ...]
    formats: tuple[str, ...]
    scanned: datetime | None


@dataclass
class Model:
    revision: tuple[int, int]
    now: datetime
    rows: list[ImageRow]
    changes: list[Change]
    since: int | None
    series: ShareSeries
    identities: list[Identity]
    expiring: list[ExpiringRow]
    sources: list[str] = field(default_factory=list)


def _row(image: ImageRecord, sigs: Sequence[SignatureRecord], times: Mapping[int, datetime]) -> ImageRow:
    own = [s.row for s in sigs if not s.row.attachment_digest]
    signers = tuple(dict.fromkeys(s.identity or s.signer for s in own if s.identity or s.signer))
    formats = tuple(dict.fromkeys(s.format for s in own))
    return ImageRow(image, signers, formats, times.get(image.run_id))


def build(inventory: Inventory, now: datetime) -> Model:
    """Everything the dashboard needs, read in one go (the caller caches it by `revision`)."""
    revision = queries.revision(inventory)
    current = queries.state(inventory)
    since = queries.previous_point(inventory)
    earlier = queries.state(inventory, before=since) if since is not None else []
    sigs = inventory.signatures_of(current + earlier)
    times = queries.run_times(inventory, {i.run_id for i in current})
    rows = [_row(i, sigs[i.id], times) for i in current]
    return Model(
        revision=revision,
        now=now,
        rows=rows,
        changes=diff(entries(earlier, sigs), entries(current, sigs)),
        since=since,
        series=share_series(queries.group_counts(inventory)),
        identities=inventory.identities(current),
        expiring=expiring_rows(inventory.expiring(now + EXPIRING_WINDOW, current), now),
        sources=sorted({i.source for i in current}),
    )


@dataclass(frozen=True)
class TableQuery:
    q: str = ""
    status: str = ""
    registry: str = ""
    sort: str = "path"
    desc: bool = False
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, list[str]]) -> TableQuery:
        """From query parameters; anything out of range falls back to its default, never an error."""

        def one(name: str) -> str:
            values = params.get(name) or [""]
            return values[0][:MAX_QUERY]

        page = one("page")
        sort = one("sort")
        return cls(
            q=one("q").strip(),
            status=one("status"),
            registry=one("registry"),
            sort=sort if sort in SORTS else "path",
            desc=one("dir") == "desc",
            page=int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        )

    def params(self, **changes: str | int | bool) -> dict[str, str]:
        values: dict[str, str | int | bool] = {
            "q": self.q,
            "status": self.status,
            "registry": self.registry,
            "sort": self.sort,
            "dir": "desc" if self.desc else "asc",
            "page": self.page,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in ("", None)}


def _sort_key(sort: str, row: ImageRow) -> tuple[object, ...]:
    image = row.image
    if sort == "registry":
        return (image.source, image.path)
    if sort == "status":
        return (image.status, image.path)
    if sort == "signers":
        return (", ".join(row.signers), image.path)
    if sort == "scanned":
        return (row.scanned.timestamp() if row.scanned else 0.0, image.path)
    return (image.path, image.source, image.platform or "")


def select(rows: Sequence[ImageRow], query: TableQuery) -> tuple[list[ImageRow], int, int]:
    """The page of rows the query asks for, the number of rows that match, and the number of pages."""
    needle = query.q.lower()
    matched = [
        r
        for r in rows
        if (not query.status or r.image.status == query.status)
        and (not query.registry or r.image.source == query.registry)
        and (
            not needle
            or needle in r.image.path.lower()
            or needle in r.image.digest.lower()
            or any(needle in s.lower() for s in r.signers)
        )
    ]
    matched.sort(key=lambda r: _sort_key(query.sort, r), reverse=query.desc)
    pages = max(1, -(-len(matched) // PAGE_SIZE))
    page = min(query.page, pages)
    start = (page - 1) * PAGE_SIZE
    return matched[start : start + PAGE_SIZE], len(matched), pages
