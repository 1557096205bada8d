"""The inventory store on real SQLite and real PostgreSQL: the same tests on both dialects.

Round trip of every table, idempotent writes, incomplete runs, sharded groups, migration forward from
revision 0001 with rows in it, the migrations matching the declared schema, and concurrent writer processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from testbed.postgres import PostgresServer, postgres  # noqa: F401

from sigscope.store import Inventory
from sigscope.store import engine as engines
from sigscope.store.records import CertificateRow, DecisionRow, ImageRow, RunStart, SignatureRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inventory.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        yield server.create_database()


def start(kind: str = "registry", **kw: object) -> RunStart:
    values: dict[str, object] = {
        "kind": kind,
        "target": "reg:5000",
        "source": "reg:5000",
        "scope": "registry reg:5000",
        "started_at": NOW,
        "flags": {"platforms": False},
        "trust_fingerprint": "ab" * 32,
    }
    values.update(kw)
    return RunStart(**values)  # type: ignore[arg-type]


def signature(identity: str, not_after: datetime, status: str = "verified") -> SignatureRow:
    certs = [
        CertificateRow(
            "signing",
            0,
            f"CN={identity}",
            "CN=CA",
            "0a",
            "11" * 32,
            NOW - timedelta(days=9),
            not_after,
            False,
        ),
        CertificateRow(
            "intermediate", 1, "CN=CA", "CN=Root", "0b", "22" * 32, NOW, NOW + timedelta(days=400), True
        ),
    ]
    return SignatureRow(
        format="cosign",
        status=status,
        location="tag sha256-x.sig layer 1",
        checks=[{"name": "signature", "outcome": "passed"}],
        record={"format": "cosign", "status": status},
        signer=f"CN={identity}",
        identity=identity,
        issuer="https://issuer.example",
        cert_subject=f"CN={identity}",
        not_before=NOW - timedelta(days=9),
        not_after=not_after,
        certificates=certs,
    )


def image(path: str, digest: str, *sigs: SignatureRow, **kw: object) -> ImageRow:
    repo, _, tag = path.partition(":")
    values: dict[str, object] = {
        "kind": "image",
        "source": "reg:5000",
        "path": path,
        "repository": repo,
        "digest": digest,
        "tags": (tag,),
        "signatures": list(sigs),
        "sigset_fingerprint": "f" * 64,
    }
    values.update(kw)
    return ImageRow(**values)  # type: ignore[arg-type]


def test_round_trip(db_url: str) -> None:
    with Inventory.open(db_url) as inv:
        run = inv.start_run(start(policy_version="p1"))
        soon = NOW + timedelta(days=10)
        inv.write_images(
            run,
            [
                image(
                    "app:1",
                    "sha256:01",
                    signature("dev@example.com", soon),
                    decision=DecisionRow("allow", "r1", "ok", "p1"),
                ),
                image("app:2", "sha256:02"),
                image(
                    "lib:1",
                    "sha256:03",
                    signature("dev@example.com", NOW + timedelta(days=90)),
                    signature("ops@example.com", soon, "invalid"),
                ),
            ],
            NOW,
        )
        inv.finish_run(run, NOW + timedelta(minutes=1), {"images": 3})
        record = inv.run(run)
        assert record is not None and record.complete and record.totals == {"images": 3}
        assert record.started_at == NOW and record.run_group == f"run-{run}" and record.policy_version == "p1"
        state = {i.path: i for i in inv.latest_state()}
        assert set(state) == {"app:1", "app:2", "lib:1"}
        assert state["app:1"].status == "verified" and state["app:1"].tags == ("1",)
        assert state["app:1"].decision == DecisionRow("allow", "r1", "ok", "p1")
        assert (
            state["app:2"].status == "unsigned"
            and not state["app:2"].signed
            and state["app:2"].decision is None
        )
        assert state["lib:1"].status == "verified" and state["lib:1"].signature_count == 2
        sigs = inv.signatures_of(list(state.values()))
        assert [s.row.identity for s in sigs[state["lib:1"].id]] == ["dev@example.com", "ops@example.com"]
        assert sigs[state["lib:1"].id][1].row.status == "invalid"
        expiring = inv.expiring(NOW + timedelta(days=30))
        assert [(e.image.path, e.certificate.role) for e in expiring] == [
            ("app:1", "signing"),
            ("lib:1", "signing"),
        ]
        assert expiring[0].certificate.not_after == soon
        identities = {i.identity: i for i in inv.identities()}
        assert [i.path for i in identities["dev@example.com"].images] == ["app:1", "lib:1"]
        assert identities["ops@example.com"].statuses == ("invalid",)
        assert inv.digest_states("reg:5000", "app")["sha256:01"].image_id == state["app:1"].id


def test_writes_are_idempotent(db_url: str) -> None:
    with Inventory.open(db_url) as inv:
        run = inv.start_run(start())
        row = image("app:1", "sha256:01", signature("a@example.com", NOW + timedelta(days=5)))
        first = inv.write_images(run, [row, row], NOW)
        again = inv.write_images(run, [row], NOW)
        assert first == [first[0], first[0]] == [again[0], again[0]]
        inv.finish_run(run, NOW, {})
        [only] = inv.state_at(run)
        assert only.tags == ("1",) and len(inv.signatures_of([only])[only.id]) == 1
        assert len(inv.expiring(NOW + timedelta(days=30))) == 1


def test_incomplete_runs_and_sharded_groups(db_url: str) -> None:
    with Inventory.open(db_url) as inv:
        done = inv.start_run(start())
        inv.write_images(done, [image("app:1", "sha256:01")], NOW)
        inv.finish_run(done, NOW, {})
        crashed = inv.start_run(start(started_at=NOW + timedelta(hours=1)))
        inv.write_images(crashed, [image("app:1", "sha256:99")], NOW)  # never finished
        assert inv.run(crashed) is not None and not inv.run(crashed).complete  # type: ignore[union-attr]
        assert [i.digest for i in inv.latest_state()] == ["sha256:01"]
        assert [i.digest for i in inv.state_at(crashed)] == ["sha256:99"]  # whole, for whoever asks
        # a sharded scan counts once every shard is complete
        first = inv.start_run(start(shard="0/2", run_group="nightly"))
        second = inv.start_run(start(shard="1/2", run_group="nightly"))
        inv.write_images(first, [image("app:1", "sha256:02")], NOW)
        inv.write_images(second, [image("lib:1", "sha256:03")], NOW)
        inv.finish_run(first, NOW, {})
        assert [i.digest for i in inv.latest_state()] == ["sha256:01"]
        inv.finish_run(second, NOW, {})
        assert [i.digest for i in inv.latest_state()] == ["sha256:02", "sha256:03"]
        assert [r.id for r in inv.group(first)] == [first, second]
        # a shard retried after a crash: its incomplete run is left out, the group still counts
        retried = inv.start_run(start(shard="1/2", run_group="again"))
        inv.write_images(retried, [image("lib:1", "sha256:04")], NOW)
        redo = inv.start_run(start(shard="1/2", run_group="again"))
        other = inv.start_run(start(shard="0/2", run_group="again"))
        inv.write_images(redo, [image("lib:1", "sha256:05")], NOW)
        inv.finish_run(redo, NOW, {})
        inv.finish_run(other, NOW, {})
        assert [i.digest for i in inv.latest_state()] == ["sha256:05"]
        assert [i.digest for i in inv.latest_state(before=done)] == ["sha256:01"]
        assert [i.digest for i in inv.latest_state(before=second)] == ["sha256:02", "sha256:03"]


def test_migration_forward_from_revision_0001(db_url: str) -> None:
    engine = engines.create(engines.resolve_url(db_url))
    engines.migrate(engine, "0001")
    with engine.begin() as conn:
        assert engines.current_revision(conn) == "0001"
        assert "run_group" not in {c["name"] for c in sa.inspect(conn).get_columns("scan_runs")}
        conn.execute(
            sa.text(
                "INSERT INTO scan_runs (kind, target, source, scope, started_at, finished_at, complete, "
                "flags, trust_fingerprint) VALUES ('registry', 'old:5000', 'old:5000', 'registry old:5000', "
                ":t, :t, :yes, '{}', 'aa')"
            ),
            {"t": NOW.replace(tzinfo=None), "yes": True},
        )
        conn.execute(
            sa.text(
                "INSERT INTO images (run_id, kind, source, repository, path, digest, parent_digest, "
                "media_type, signed, signature_count, status, problems, attachments) VALUES (1, 'image', "
                "'old:5000', 'app', 'app:1', 'sha256:01', '', '', :no, 0, 'unsigned', '[]', '[]')"
            ),
            {"no": False},
        )
    engine.dispose()
    with Inventory.open(db_url) as inv:
        with inv.engine.connect() as conn:
            assert engines.current_revision(conn) == engines.HEAD
        [old] = inv.runs()
        assert old.run_group == "run-1" and old.complete
        [row] = inv.latest_state()
        assert row.path == "app:1" and row.valid_until is None


def test_migrations_match_the_declared_schema(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sigscope.store.schema import metadata

    with Inventory.open(db_url) as inv, inv.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from sigscope.store import Inventory
    from sigscope.store.records import ImageRow, RunStart
    url, name = sys.argv[1], sys.argv[2]
    now = datetime.now(UTC)
    with Inventory.open(url) as inv:
        run = inv.start_run(RunStart("registry", "reg", "reg", "registry reg", now, {}, "ab" * 32))
        for n in range(40):
            row = ImageRow("image", "reg", f"{name}:{n}", repository=name, digest=f"sha256:{n:02d}",
                           tags=(str(n),), sigset_fingerprint="f" * 64)
            inv.write_images(run, [row], now)
        inv.finish_run(run, now, {"images": 40})
    """
)


def test_concurrent_writer_processes(db_url: str) -> None:
    # Four processes open one new database at once (the schema is made once) and write side by side.
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, f"repo{n}"], stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    with Inventory.open(db_url) as inv:
        runs = inv.runs()
        assert len(runs) == 4 and all(r.complete for r in runs)
        assert len(inv.images_of(r.id for r in runs)) == 160
        # digest_state rows are keyed per repository: every worker's digests are there
        assert all(len(inv.digest_states("reg", f"repo{n}")) == 40 for n in range(4))


def test_bad_urls_are_usage_errors() -> None:
    from sigscope.errors import UsageError

    for bad in ("", "sqlite://", "sqlite:///:memory:", "mysql://x/y", "://nope"):
        with pytest.raises(UsageError):
            engines.resolve_url(bad)
    assert engines.resolve_url("postgresql://u:secret@h/db").drivername == "postgresql+psycopg"
    assert "secret" not in engines.redacted(engines.resolve_url("postgresql://u:secret@h/db"))
