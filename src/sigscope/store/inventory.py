"""The inventory's typed API: scans write runs and images through it, reports read state back.

Every image is written in one transaction with its tags, signatures, certificates and decision, so a scan
that dies leaves whole images and a run whose `complete` is false, never part of an image. Writing the same
image (same run, kind, source, path, digest, parent) again replaces it in place: re-sending a batch after an
error does not duplicate anything.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine

from sigscope.store import engine as engines
from sigscope.store.records import (
    CertificateRow,
    DecisionRow,
    DigestState,
    ExpiringCertificate,
    Identity,
    ImageRecord,
    ImageRow,
    RunRecord,
    RunStart,
    SignatureRecord,
    SignatureRow,
)
from sigscope.store.schema import (
    certificates,
    decisions,
    digest_state,
    image_tags,
    images,
    scan_runs,
    signatures,
)

_CHUNK = 500  # ids per IN (...): well under SQLite's bound on parameters


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class Inventory:
    """One database. Open with `Inventory.open(url)` (migrates), close with `close()` or `with`."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self._writer = engines.writer(engine)

    @classmethod
    def open(cls, value: str) -> Inventory:
        url = engines.resolve_url(value)
        engine = engines.create(url)
        try:
            engines.migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            from sigscope.errors import SigscopeError

            raise SigscopeError(
                f"inventory {engines.redacted(url)}: cannot open: {first_line(exc)}"
            ) from None
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def display(self) -> str:
        return engines.redacted(self.url)

    # ------------------------------------------------------------------ writes

    def start_run(self, start: RunStart) -> int:
        with self._writer.begin() as conn:
            run_id = conn.execute(
                scan_runs.insert()
                .values(
                    kind=start.kind,
                    target=start.target,
                    source=start.source,
                    scope=start.scope,
                    started_at=start.started_at,
                    complete=False,
                    flags=start.flags,
                    shard=start.shard,
                    policy_version=start.policy_version,
                    trust_fingerprint=start.trust_fingerprint,
                    run_group=start.run_group,
                )
                .returning(scan_runs.c.id)
            ).scalar_one()
            if start.run_group is None:
                conn.execute(
                    scan_runs.update().where(scan_runs.c.id == run_id).values(run_group=f"run-{run_id}")
                )
        return int(run_id)

    def finish_run(self, run_id: int, finished_at: datetime, totals: dict[str, Any]) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                scan_runs.update()
                .where(scan_runs.c.id == run_id)
                .values(complete=True, finished_at=finished_at, totals=totals)
            )

    def write_images(self, run_id: int, rows: Sequence[ImageRow], now: datetime) -> list[int]:
        """Each row whole, all of them in one transaction; returns their ids. A re-scan writes mostly
        rows that reuse earlier evidence, so new rows go in as one multi-row insert."""
        with self._writer.begin() as conn:
            trust, policy = conn.execute(
                sa.select(scan_runs.c.trust_fingerprint, scan_runs.c.policy_version).where(
                    scan_runs.c.id == run_id
                )
            ).one()
            existing = self._existing(conn, run_id, rows)
            ids: list[int | None] = [existing.get(_key(row)) for row in rows]
            fresh = [n for n, image_id in enumerate(ids) if image_id is None]
            seen: dict[tuple[str, str, str, str, str], int] = {}
            to_insert = []
            for n in fresh:  # a row twice in one batch is written once, then replaced in place
                if _key(rows[n]) not in seen:
                    seen[_key(rows[n])] = n
                    to_insert.append(n)
            if to_insert:
                made = conn.execute(
                    images.insert().returning(images.c.id, sort_by_parameter_order=True),
                    [_image_values(run_id, rows[n]) for n in to_insert],
                ).scalars()
                for n, image_id in zip(to_insert, made, strict=True):
                    ids[n] = int(image_id)
            for n, row in enumerate(rows):
                if n in fresh and seen.get(_key(row)) == n:
                    continue
                image_id = ids[n] if ids[n] is not None else ids[seen[_key(row)]]
                assert image_id is not None
                ids[n] = image_id
                conn.execute(
                    images.update().where(images.c.id == image_id).values(**_image_values(run_id, row))
                )
                for table in (image_tags, signatures, decisions):
                    conn.execute(table.delete().where(table.c.image_id == image_id))
            final = {_key(row): ids[n] for n, row in enumerate(rows)}  # the last version of each key
            tags = {(final[_key(r)], t) for r in rows for t in r.tags}
            if tags:
                conn.execute(image_tags.insert(), [{"image_id": i, "tag": t} for i, t in sorted(tags)])
            written: set[int] = set()
            for n in reversed(range(len(rows))):
                row, image_id = rows[n], ids[n]
                assert image_id is not None
                if image_id in written:
                    continue
                written.add(image_id)
                if row.evidence_id is None:
                    for ordinal, signature in enumerate(row.signatures):
                        self._write_signature(conn, image_id, ordinal, signature)
                if row.decision is not None:
                    conn.execute(
                        decisions.insert().values(image_id=image_id, **_decision_values(row.decision))
                    )
                # A reused row's evidence and state stand as they are.
                if row.evidence_id is None and _reusable(row):
                    self._remember(conn, row, image_id, trust, policy, now)
            return [int(i) for i in ids if i is not None]

    def _existing(
        self, conn: sa.Connection, run_id: int, rows: Sequence[ImageRow]
    ) -> dict[tuple[str, str, str, str, str], int]:
        paths = sorted({row.path for row in rows})
        found: dict[tuple[str, str, str, str, str], int] = {}
        for start in range(0, len(paths), _CHUNK):
            for r in conn.execute(
                sa.select(
                    images.c.id,
                    images.c.kind,
                    images.c.source,
                    images.c.path,
                    images.c.digest,
                    images.c.parent_digest,
                ).where(images.c.run_id == run_id, images.c.path.in_(paths[start : start + _CHUNK]))
            ):
                found[(r.kind, r.source, r.path, r.digest, r.parent_digest)] = int(r.id)
        return found

    def _write_signature(self, conn: sa.Connection, image_id: int, ordinal: int, s: SignatureRow) -> None:
        values = {
            name: getattr(s, name)
            for name in (
                "attachment_digest format status location media_type subject_digest signed_digest signer "
                "identity issuer cert_subject cert_issuer cert_serial cert_sha256 not_before not_after "
                "key_sha256 pgp_key_id pgp_fingerprint signing_time expiry timestamped error reason checks "
                "record"
            ).split()
        }
        signature_id = conn.execute(
            signatures.insert()
            .values(image_id=image_id, ordinal=ordinal, **values)
            .returning(signatures.c.id)
        ).scalar_one()
        if s.certificates:
            conn.execute(
                certificates.insert(),
                [{"signature_id": signature_id, **dataclasses.asdict(c)} for c in s.certificates],
            )

    def _remember(
        self, conn: sa.Connection, row: ImageRow, image_id: int, trust: str, policy: str | None, now: datetime
    ) -> None:
        """The digest's state for the next incremental re-scan: the row holding its evidence."""
        assert row.sigset_fingerprint is not None
        values = {
            "sigset_fingerprint": row.sigset_fingerprint,
            "trust_fingerprint": trust,
            "policy_version": policy or "",
            "image_id": image_id,
            "valid_until": row.valid_until,
            "updated_at": now,
        }
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(digest_state)
        conn.execute(
            insert.values(
                source=row.source, repository=row.repository, digest=row.digest, **values
            ).on_conflict_do_update(index_elements=["source", "repository", "digest"], set_=values)
        )

    # ------------------------------------------------------------------ incremental re-scans

    def digest_states(self, source: str, repository: str) -> dict[str, DigestState]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(digest_state).where(
                    digest_state.c.source == source, digest_state.c.repository == repository
                )
            )
            return {
                r.digest: DigestState(
                    digest=r.digest,
                    sigset_fingerprint=r.sigset_fingerprint,
                    trust_fingerprint=r.trust_fingerprint,
                    policy_version=r.policy_version,
                    image_id=r.image_id,
                    valid_until=r.valid_until,
                )
                for r in rows
            }

    def evidence(self, image_ids: Sequence[int]) -> dict[int, tuple[ImageRecord, list[SignatureRecord]]]:
        """The rows holding evidence (by id) with their signatures, for reuse by a re-scan."""
        with self.engine.connect() as conn:
            found = self._images(conn, images.c.id.in_(list(image_ids)) if image_ids else sa.false())
            sigs = self._signatures(conn, [r.id for r in found])
        return {r.id: (r, sigs.get(r.id, [])) for r in found}

    # ------------------------------------------------------------------ reads

    def runs(self, *, source: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first."""
        query = sa.select(scan_runs).order_by(scan_runs.c.id.desc()).limit(limit)
        if source is not None:
            query = query.where(scan_runs.c.source == source)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query)]

    def run(self, run_id: int) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scan_runs).where(scan_runs.c.id == run_id)).first()
        return _run(row) if row is not None else None

    def group(self, run_id: int) -> list[RunRecord]:
        """The runs of `run_id`'s group (its shards), oldest first; [] for an unknown run."""
        with self.engine.connect() as conn:
            group = sa.select(scan_runs.c.run_group).where(scan_runs.c.id == run_id).scalar_subquery()
            rows = conn.execute(
                sa.select(scan_runs).where(scan_runs.c.run_group == group).order_by(scan_runs.c.id)
            )
            return [_run(r) for r in rows]

    def images_of(self, run_ids: Iterable[int]) -> list[ImageRecord]:
        """Every image the given runs wrote."""
        ids = sorted(set(run_ids))
        with self.engine.connect() as conn:
            out: list[ImageRecord] = []
            for chunk in _chunks(ids):
                out += self._images(conn, images.c.run_id.in_(list(chunk)))
        return out

    def state_at(self, run_id: int) -> list[ImageRecord]:
        """What the scan of `run_id` saw: the images of its run group (every shard)."""
        return self.images_of(r.id for r in self.group(run_id))

    def latest_groups(
        self, *, source: str | None = None, before: datetime | int | None = None
    ) -> list[list[RunRecord]]:
        """Per scope, the newest complete run group (every shard complete) started at/before `before`
        (a time, or a run id: that run and older): its complete runs."""
        query = sa.select(scan_runs).order_by(scan_runs.c.id.desc())
        if source is not None:
            query = query.where(scan_runs.c.source == source)
        if isinstance(before, datetime):
            query = query.where(scan_runs.c.started_at <= before)
        elif isinstance(before, int):
            query = query.where(scan_runs.c.id <= before)
        by_group: dict[str, list[RunRecord]] = defaultdict(list)
        order: list[str] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                record = _run(row)
                if record.run_group not in by_group:
                    order.append(record.run_group)
                by_group[record.run_group].append(record)
        chosen: dict[str, list[RunRecord]] = {}
        for name in order:  # newest group first
            runs = by_group[name]
            scope = runs[0].scope
            complete = _complete_runs(runs)
            if scope not in chosen and complete is not None:
                chosen[scope] = complete
        return list(chosen.values())

    def latest_state(
        self, *, source: str | None = None, before: datetime | int | None = None
    ) -> list[ImageRecord]:
        """The inventory as of now (or `before`): the images of each scope's newest complete scan; an
        image two scopes saw comes from the newer run."""
        newest: dict[tuple[str, str, str, str, str], ImageRecord] = {}
        for group in self.latest_groups(source=source, before=before):
            for image in self.images_of(r.id for r in group):
                seen = newest.get(image.location)
                if seen is None or seen.run_id < image.run_id:
                    newest[image.location] = image
        return sorted(newest.values(), key=lambda i: (i.source, i.path, i.parent_digest, i.digest))

    def signatures_of(self, image_list: Sequence[ImageRecord]) -> dict[int, list[SignatureRecord]]:
        """Each image's signatures (those it reused included), keyed by the image's own id."""
        holders = sorted({i.signatures_from for i in image_list})
        with self.engine.connect() as conn:
            held = self._signatures(conn, holders)
        return {i.id: held.get(i.signatures_from, []) for i in image_list}

    def expiring(
        self, until: datetime, image_list: Sequence[ImageRecord] | None = None
    ) -> list[ExpiringCertificate]:
        """Certificates (signing, intermediate, TSA) of signatures on `image_list` (default: the latest
        state) whose not_after is before `until` (those expired already included), soonest first."""
        chosen = list(self.latest_state() if image_list is None else image_list)
        sigs = self.signatures_of(chosen)
        out = []
        for image in chosen:
            for sig in sigs[image.id]:
                for cert in sig.row.certificates:
                    if cert.not_after < until:
                        out.append(ExpiringCertificate(image, sig.id, sig.row.format, sig.row.signer, cert))
        return sorted(out, key=lambda e: (e.certificate.not_after, e.image.path, e.certificate.position))

    def identities(self, image_list: Sequence[ImageRecord] | None = None) -> list[Identity]:
        """Every signer identity on `image_list` (default: the latest state) with the images it signs."""
        chosen = list(self.latest_state() if image_list is None else image_list)
        sigs = self.signatures_of(chosen)
        grouped: dict[tuple[str, str | None], dict[str, Any]] = {}
        for image in chosen:
            for sig in sigs[image.id]:
                name = sig.row.identity or sig.row.signer
                if not name:
                    continue
                entry = grouped.setdefault(
                    (name, sig.row.issuer), {"formats": set(), "statuses": set(), "images": {}}
                )
                entry["formats"].add(sig.row.format)
                entry["statuses"].add(sig.row.status)
                entry["images"][image.id] = image
        return [
            Identity(
                identity=name,
                issuer=issuer,
                formats=tuple(sorted(e["formats"])),
                statuses=tuple(sorted(e["statuses"])),
                images=tuple(sorted(e["images"].values(), key=lambda i: i.path)),
            )
            for (name, issuer), e in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ]

    # ------------------------------------------------------------------ row decoding

    def _images(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[ImageRecord]:
        rows = conn.execute(
            sa.select(images, decisions)
            .select_from(images.outerjoin(decisions, decisions.c.image_id == images.c.id))
            .where(where)
            .order_by(images.c.id)
        ).all()
        ids = [r.id for r in rows]
        tags: dict[int, list[str]] = defaultdict(list)
        for chunk in _chunks(ids):
            for image_id, tag in conn.execute(
                sa.select(image_tags.c.image_id, image_tags.c.tag)
                .where(image_tags.c.image_id.in_(list(chunk)))
                .order_by(image_tags.c.image_id, image_tags.c.tag)
            ):
                tags[image_id].append(tag)
        return [_image(r, tuple(tags.get(r.id, ()))) for r in rows]

    def _signatures(self, conn: sa.Connection, holder_ids: Sequence[int]) -> dict[int, list[SignatureRecord]]:
        out: dict[int, list[SignatureRecord]] = defaultdict(list)
        for chunk in _chunks(list(holder_ids)):
            sig_rows = conn.execute(
                sa.select(signatures)
                .where(signatures.c.image_id.in_(list(chunk)))
                .order_by(signatures.c.image_id, signatures.c.ordinal)
            ).all()
            certs: dict[int, list[CertificateRow]] = defaultdict(list)
            sig_ids = [r.id for r in sig_rows]
            for sub in _chunks(sig_ids):
                for c in conn.execute(
                    sa.select(certificates)
                    .where(certificates.c.signature_id.in_(list(sub)))
                    .order_by(certificates.c.signature_id, certificates.c.id)
                ):
                    certs[c.signature_id].append(_certificate(c))
            for r in sig_rows:
                out[r.image_id].append(
                    SignatureRecord(r.id, r.image_id, r.ordinal, _signature(r, certs[r.id]))
                )
        return out


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _key(row: ImageRow) -> tuple[str, str, str, str, str]:
    return (row.kind, row.source, row.path, row.digest, row.parent_digest)


def _image_values(run_id: int, row: ImageRow) -> dict[str, Any]:
    own = [s for s in row.signatures if not s.attachment_digest]
    return {
        "run_id": run_id,
        "kind": row.kind,
        "source": row.source,
        "repository": row.repository,
        "path": row.path,
        "digest": row.digest,
        "parent_digest": row.parent_digest,
        "media_type": row.media_type,
        "platform": row.platform,
        "file_type": row.file_type,
        "size": row.size,
        "signed": bool(own),
        "signature_count": len(own),
        "status": row.status,
        "error": row.error,
        "problems": list(row.problems),
        "attachments": row.attachments,
        "sigset_fingerprint": row.sigset_fingerprint,
        "evidence_id": row.evidence_id,
        "valid_until": row.valid_until,
    }


def _reusable(row: ImageRow) -> bool:
    """Whether a later re-scan may report this result again: an image read whole, every signature on it
    fetched (a failure to fetch or list may be passing, so it is tried again)."""
    return (
        row.kind == "image"
        and row.sigset_fingerprint is not None
        and bool(row.digest)
        and not row.error
        and not row.problems
        and not any(s.error for s in row.signatures)
    )


def _complete_runs(runs: list[RunRecord]) -> list[RunRecord] | None:
    """The runs that make a group's scan, or None while it is incomplete. A sharded group is complete
    once every shard has a complete run (a shard retried after a crash has an incomplete run beside the
    complete one, left out); any other group, when its run is."""
    sharded = [r for r in runs if r.shard]
    if not sharded:
        return runs if all(r.complete for r in runs) else None
    total = int(sharded[0].shard.split("/")[1])  # type: ignore[union-attr]
    newest: dict[str, RunRecord] = {}
    for run in sorted(sharded, key=lambda r: r.id):
        if run.complete:
            newest[run.shard.split("/")[0]] = run  # type: ignore[union-attr]
    return sorted(newest.values(), key=lambda r: r.id) if len(newest) == total else None


_CERTIFICATE_FIELDS = tuple(f.name for f in dataclasses.fields(CertificateRow))


def _decision_values(d: DecisionRow) -> dict[str, Any]:
    return {"decision": d.decision, "rule": d.rule, "reason": d.reason, "policy_version": d.policy_version}


def _run(r: Any) -> RunRecord:
    return RunRecord(
        id=r.id,
        kind=r.kind,
        target=r.target,
        source=r.source,
        scope=r.scope,
        started_at=r.started_at,
        finished_at=r.finished_at,
        complete=bool(r.complete),
        flags=dict(r.flags or {}),
        shard=r.shard,
        policy_version=r.policy_version,
        trust_fingerprint=r.trust_fingerprint,
        totals=dict(r.totals) if r.totals is not None else None,
        run_group=r.run_group or f"run-{r.id}",
    )


def _image(r: Any, tags: tuple[str, ...]) -> ImageRecord:
    decided = r.image_id is not None  # the outer join found a decision row
    return ImageRecord(
        id=r.id,
        run_id=r.run_id,
        kind=r.kind,
        source=r.source,
        repository=r.repository,
        path=r.path,
        digest=r.digest,
        parent_digest=r.parent_digest,
        media_type=r.media_type,
        platform=r.platform,
        file_type=r.file_type,
        size=r.size,
        tags=tags,
        signed=bool(r.signed),
        signature_count=r.signature_count,
        status=r.status,
        error=r.error,
        problems=tuple(r.problems or ()),
        attachments=list(r.attachments or []),
        sigset_fingerprint=r.sigset_fingerprint,
        valid_until=r.valid_until,
        signatures_from=r.evidence_id if r.evidence_id is not None else r.id,
        reused=r.evidence_id is not None,
        decision=DecisionRow(r.decision, r.rule, r.reason, r.policy_version) if decided else None,
    )


def _certificate(c: Any) -> CertificateRow:
    # A certificates row has the record's fields for columns (and signature_id beside them).
    return CertificateRow(
        **{**{name: getattr(c, name) for name in _CERTIFICATE_FIELDS}, "is_ca": bool(c.is_ca)}
    )


def _signature(r: Any, certs: list[CertificateRow]) -> SignatureRow:
    return SignatureRow(
        format=r.format,
        status=r.status,
        location=r.location,
        checks=list(r.checks or []),
        record=dict(r.record or {}),
        attachment_digest=r.attachment_digest,
        media_type=r.media_type,
        subject_digest=r.subject_digest,
        signed_digest=r.signed_digest,
        signer=r.signer,
        identity=r.identity,
        issuer=r.issuer,
        cert_subject=r.cert_subject,
        cert_issuer=r.cert_issuer,
        cert_serial=r.cert_serial,
        cert_sha256=r.cert_sha256,
        not_before=r.not_before,
        not_after=r.not_after,
        key_sha256=r.key_sha256,
        pgp_key_id=r.pgp_key_id,
        pgp_fingerprint=r.pgp_fingerprint,
        signing_time=r.signing_time,
        expiry=r.expiry,
        timestamped=bool(r.timestamped),
        error=r.error,
        reason=r.reason,
        certificates=certs,
    )
