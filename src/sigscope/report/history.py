"""What the history reports say, from inventory records: what changed between two states, which
certificates expire, which identities sign. Pure: records and a clock in, plain rows out; the renderers
(report/history_render.py) and the web report present them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sigscope.errors import UsageError
from sigscope.store.queries import GroupCounts, covers
from sigscope.store.records import (
    STATUS_ORDER,
    ExpiringCertificate,
    Identity,
    ImageRecord,
    SignatureRecord,
)

# The kinds of change `report diff` lists, in the order it lists them (worst news first).
CHANGE_KINDS = (
    "newly-unsigned",
    "turned-invalid",
    "turned-untrusted",
    "signer-changed",
    "decision-flipped",
    "newly-signed",
    "added",
    "removed",
)
_BAD = {"invalid": "turned-invalid", "untrusted": "turned-untrusted", "rejected": "turned-untrusted"}

_DURATION = re.compile(r"^(\d{1,6})([smhdw]?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(text: str, flag: str) -> timedelta:
    """`30d`, `12h`, `2w`, `90m`, `45s`, or a bare number of days."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise UsageError(f"{flag} {text!r}: expected a duration such as 30d, 12h or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_since(text: str, now: datetime) -> datetime | int:
    """`--since`: a run id (digits), a duration back from now (`7d`), or an ISO 8601 date or time (UTC
    unless it names its zone)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    if _DURATION.match(value.lower()) and not value.isdigit():
        return now - parse_duration(value, "--since")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a run id, a duration (7d) or a date "
            "(2024-05-01 or 2024-05-01T12:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One name in a state: a tag of a repository (or the path of an untagged platform manifest or file),
    with what signs the image it names."""

    source: str
    repository: str
    name: str  # repo:tag, repo@digest, or a file's path
    image: ImageRecord
    identities: frozenset[str]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.image.kind, self.source, self.name, self.image.platform or "")


def _identities(signatures: Sequence[SignatureRecord]) -> frozenset[str]:
    return frozenset(
        s.row.identity or s.row.signer
        for s in signatures
        if not s.row.attachment_digest and (s.row.identity or s.row.signer)
    )


def entries(
    images: Sequence[ImageRecord], signatures: Mapping[int, Sequence[SignatureRecord]]
) -> dict[tuple[str, str, str, str], Entry]:
    """A state by name: each tag of an image is its own entry, so a tag that moved to another digest is
    one entry that changed, not one image gone and another come."""
    out: dict[tuple[str, str, str, str], Entry] = {}
    for image in images:
        who = _identities(signatures.get(image.id, ()))
        base = image.repository or image.source
        names = [f"{base}:{t}" for t in image.tags] if image.tags and image.kind == "image" else [image.path]
        for name in names:
            entry = Entry(image.source, image.repository, name, image, who)
            out[entry.key] = entry
    return out


@dataclass(frozen=True)
class Change:
    kind: str
    source: str
    repository: str
    name: str
    before: str  # what it was (a status, identities, a decision); "" for added
    after: str  # what it is now; "" for removed
    before_digest: str = ""
    after_digest: str = ""
    image_id: int | None = None  # the row to show as evidence (the newer one when there is one)

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.kind,
            "source": self.source,
            "repository": self.repository,
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "beforeDigest": self.before_digest,
            "afterDigest": self.after_digest,
            "imageId": self.image_id,
        }


def _rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _who(identities: frozenset[str]) -> str:
    return ", ".join(sorted(identities))


def _decision(image: ImageRecord) -> str | None:
    return image.decision.decision if image.decision is not None and image.decision.decision else None


def _compare(old: Entry, new: Entry) -> list[tuple[str, str, str]]:
    a, b = old.image, new.image
    if a.error or b.error:
        return []  # an unreadable image says nothing about its signatures
    found: list[tuple[str, str, str]] = []
    if a.signed and not b.signed:
        found.append(("newly-unsigned", a.status, "unsigned"))
    elif b.signed and not a.signed:
        found.append(("newly-signed", "unsigned", b.status))
    elif a.signed and b.signed:
        bad = _BAD.get(b.status)
        if bad and a.status != b.status and _rank(a.status) < _rank(b.status):
            found.append((bad, a.status, b.status))
        if old.identities != new.identities:
            found.append(("signer-changed", _who(old.identities), _who(new.identities)))
    before, after = _decision(a), _decision(b)
    if before and after and before != after:
        found.append(("decision-flipped", before, after))
    return found


def diff(
    before: Mapping[tuple[str, str, str, str], Entry], after: Mapping[tuple[str, str, str, str], Entry]
) -> list[Change]:
    """What changed from `before` to `after`, worst news first, then by name."""
    changes: list[Change] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            changes.append(
                Change(
                    "added",
                    new.source,
                    new.repository,
                    new.name,
                    "",
                    new.image.status,
                    "",
                    new.image.digest,
                    new.image.id,
                )
            )
        elif new is None and old is not None:
            changes.append(
                Change(
                    "removed",
                    old.source,
                    old.repository,
                    old.name,
                    old.image.status,
                    "",
                    old.image.digest,
                    "",
                    old.image.id,
                )
            )
        elif old is not None and new is not None:
            for kind, was, now in _compare(old, new):
                changes.append(
                    Change(
                        kind,
                        new.source,
                        new.repository,
                        new.name,
                        was,
                        now,
                        old.image.digest,
                        new.image.digest,
                        new.image.id,
                    )
                )
    order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    return sorted(changes, key=lambda c: (order[c.kind], c.source, c.name))


def change_counts(changes: Sequence[Change]) -> dict[str, int]:
    counts = dict.fromkeys(CHANGE_KINDS, 0)
    for change in changes:
        counts[change.kind] += 1
    return counts


@dataclass
class ExpiringRow:
    """One certificate (by role and fingerprint) with every image whose signatures rely on it."""

    role: str
    subject: str
    issuer: str
    serial: str
    sha256: str
    not_after: datetime
    expired: bool
    formats: set[str] = field(default_factory=set)
    images: dict[int, ImageRecord] = field(default_factory=dict)

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now) // timedelta(days=1)

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "role": self.role,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "sha256": self.sha256,
            "notAfter": self.not_after.isoformat(),
            "expired": self.expired,
            "daysLeft": self.days_left(now),
            "formats": sorted(self.formats),
            "images": [image_ref(i) for i in self.images.values()],
        }


def image_ref(image: ImageRecord) -> dict[str, Any]:
    return {
        "id": image.id,
        "source": image.source,
        "path": image.path,
        "digest": image.digest,
        "status": image.status,
    }


def expiring_rows(found: Sequence[ExpiringCertificate], now: datetime) -> list[ExpiringRow]:
    """`Inventory.expiring`'s answer by certificate: soonest first, expired ones marked."""
    rows: dict[tuple[str, str], ExpiringRow] = {}
    for item in found:
        cert = item.certificate
        row = rows.setdefault(
            (cert.role, cert.sha256),
            ExpiringRow(
                cert.role,
                cert.subject,
                cert.issuer,
                cert.serial,
                cert.sha256,
                cert.not_after,
                cert.not_after <= now,
            ),
        )
        row.formats.add(item.signature_format)
        row.images[item.image.id] = item.image
    return sorted(rows.values(), key=lambda r: (r.not_after, r.role, r.subject))


def identity_json(identity: Identity) -> dict[str, Any]:
    return {
        "identity": identity.identity,
        "issuer": identity.issuer,
        "formats": list(identity.formats),
        "statuses": list(identity.statuses),
        "images": [image_ref(i) for i in identity.images],
    }


@dataclass
class ShareSeries:
    """Signed share over time: per registry (all its repositories as known after each scan) and per
    repository (after each scan that covered it). Points are (when, signed, images)."""

    registries: dict[str, list[tuple[datetime, int, int]]] = field(default_factory=dict)
    repositories: dict[tuple[str, str], list[tuple[datetime, int, int]]] = field(default_factory=dict)


def share_series(groups: Sequence[GroupCounts]) -> ShareSeries:
    """`groups` oldest first (store.queries.group_counts). A scan of one repository moves that repository
    and its registry's total; a scan of the whole registry replaces every repository it covers, so one
    it no longer lists counts for nothing."""
    known: dict[tuple[str, str], tuple[int, int]] = {}
    out = ShareSeries()
    for group in groups:
        run = group.runs[0]
        touched = set(group.counts) | {k for k in known if covers(run, *k)}
        for key in touched:
            known[key] = group.counts.get(key, (0, 0))
            signed, total = known[key]
            if total or key in group.counts:
                out.repositories.setdefault(key, []).append((group.at, signed, total))
        for source in {k[0] for k in touched}:
            signed = sum(v[0] for k, v in known.items() if k[0] == source)
            total = sum(v[1] for k, v in known.items() if k[0] == source)
            if total:
                out.registries.setdefault(source, []).append((group.at, signed, total))
    return out
