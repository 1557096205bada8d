"""`report diff`, `report expiring`, `report signers` on a real SQLite inventory written through the store's
own API (the rows are made up so that every kind of change is there; the scans that write such rows are
tested in test_inventory_scan.py, and listen's real ones in test_listen.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testbed.cli import assert_clean_failure, run_sigscope

from sigscope.report.history import parse_since
from sigscope.store import Inventory, queries
from sigscope.store.records import CertificateRow, DecisionRow, ImageRow, RunStart, SignatureRow

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "evil\x1b[2J=cmd|'/c calc'!A1"


def cert(role: str, subject: str, days: float, position: int = 0) -> CertificateRow:
    return CertificateRow(
        role,
        position,
        subject,
        "CN=Test CA",
        "0a",
        subject.encode().hex()[:64].ljust(64, "0"),
        NOW - timedelta(days=100),
        NOW + timedelta(days=days),
        role != "signing",
    )


def sig(identity: str, status: str = "verified", days: float = 200) -> SignatureRow:
    return SignatureRow(
        format="cosign",
        status=status,
        location="tag sha256-x.sig layer 1",
        checks=[{"name": "signature", "outcome": "pass", "detail": "ECDSA P-256"}],
        record={"format": "cosign", "status": status},
        signer=f"CN={identity}",
        identity=identity,
        issuer="https://issuer.example",
        certificates=[cert("signing", f"CN={identity}", days), cert("intermediate", "CN=Test CA", 400, 1)],
    )


def img(repo: str, tag: str, digest: str, *sigs: SignatureRow, decision: str | None = None) -> ImageRow:
    return ImageRow(
        kind="image",
        source="reg:5000",
        path=f"{repo}:{tag}",
        repository=repo,
        digest="sha256:" + digest * 64,
        tags=(tag,),
        signatures=list(sigs),
        decision=DecisionRow(decision, "rule-1", "why", "v1") if decision else None,
    )


def run(inv: Inventory, rows: list[ImageRow], target: str = "reg:5000", repos: tuple[str, ...] = ()) -> int:
    scope = f"registry {target}" + (f" repo={','.join(repos)}" if repos else "")
    run_id = inv.start_run(
        RunStart("registry", target, "reg:5000", scope, NOW, {"repo_patterns": list(repos)}, "ab" * 32)
    )
    inv.write_images(run_id, rows, NOW)
    inv.finish_run(run_id, NOW, {"images": len(rows)})
    return run_id


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("history") / "inventory.db"
    with Inventory.open(str(path)) as inv:
        run(
            inv,
            [
                img("app/a", "1", "a", sig("alice@example.com")),
                img("app/b", "1", "b"),
                img("app/c", "1", "c", sig("alice@example.com")),
                img("app/d", "1", "d", sig("dave@example.com"), decision="allow"),
                img("app/e", "1", "e", sig("alice@example.com")),
                img("app/g", "1", "9", sig("gone@example.com")),
            ],
        )
        run(
            inv,
            [
                img("app/a", "1", "1"),  # the tag moved to an unsigned digest
                img("app/b", "1", "b", sig(HOSTILE, days=10)),
                img("app/c", "1", "c", sig("bob@example.com", days=-3)),
                img("app/d", "1", "d", sig("dave@example.com", status="invalid"), decision="deny"),
                img("app/f", "1", "f"),
                img("app/g", "1", "9", sig("gone@example.com")),
            ],
        )
        # listen's re-scan of app/g: the repository is empty now, although the broader scan listed it
        run(inv, [], target="reg:5000/app/g", repos=("app/g",))
    return str(path)


def test_diff_names_every_kind_of_change(db: str) -> None:
    result = run_sigscope("report", "diff", "--db", db, "--since", "1", "-o", "json")
    assert result.returncode == 0, result.stderr
    changes = {(c["change"], c["name"]) for c in json.loads(result.stdout)["changes"]}
    assert changes == {
        ("newly-unsigned", "app/a:1"),
        ("newly-signed", "app/b:1"),
        ("signer-changed", "app/c:1"),
        ("turned-invalid", "app/d:1"),
        ("decision-flipped", "app/d:1"),
        ("added", "app/f:1"),
        ("removed", "app/e:1"),
        ("removed", "app/g:1"),
    }
    # default --since: before the newest scan (listen's of app/g): only its removal
    result = run_sigscope("report", "diff", "--db", db, "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["change"], r["name"]) for r in rows] == [("removed", "app/g:1")]


def test_state_is_per_repository(db: str) -> None:
    with Inventory.open(db) as inv:
        now = {i.path for i in queries.state(inv)}
        then = {i.path for i in queries.state(inv, before=1)}
    assert now == {"app/a:1", "app/b:1", "app/c:1", "app/d:1", "app/f:1"}
    assert then == {"app/a:1", "app/b:1", "app/c:1", "app/d:1", "app/e:1", "app/g:1"}


def test_expiring_marks_expired_and_honours_the_window(db: str) -> None:
    result = run_sigscope("report", "expiring", "--db", db, "--within", "30d", "-o", "json")
    assert result.returncode == 0, result.stderr
    certs = json.loads(result.stdout)["certificates"]
    assert [(c["subject"], c["expired"]) for c in certs] == [
        ("CN=bob@example.com", True),
        (f"CN={HOSTILE}", False),
    ]
    assert certs[1]["images"][0]["path"] == "app/b:1"
    wider = json.loads(
        run_sigscope("report", "expiring", "--db", db, "--within", "500d", "-o", "json").stdout
    )
    assert {c["role"] for c in wider["certificates"]} == {"signing", "intermediate"}


def test_signers_pretty_fits_and_escapes_csv_is_spreadsheet_safe(db: str) -> None:
    pretty = run_sigscope("report", "signers", "--db", db, env={"COLUMNS": "80"})
    assert pretty.returncode == 0, pretty.stderr
    assert "\x1b" not in pretty.stdout and "\\x1b" in pretty.stdout
    assert max(len(line) for line in pretty.stdout.splitlines()) <= 80
    assert "bob@example.com" in pretty.stdout and "alice@example.com" not in pretty.stdout
    rows = list(
        csv.DictReader(io.StringIO(run_sigscope("report", "signers", "--db", db, "-o", "csv").stdout))
    )
    hostile = [r for r in rows if "calc" in r["identity"]]
    assert hostile and hostile[0]["identity"].startswith("evil")
    diff = run_sigscope("report", "diff", "--db", db, "--since", "1", env={"COLUMNS": "80"})
    assert max(len(line) for line in diff.stdout.splitlines()) <= 80
    assert "newly-unsigned" in diff.stdout and "app/a:1" in diff.stdout


def test_usage_errors(tmp_path: Path, db: str) -> None:
    assert_clean_failure(run_sigscope("report", "diff", "--db", str(tmp_path / "none.db")), "no inventory")
    assert not (tmp_path / "none.db").exists()
    assert_clean_failure(run_sigscope("report", "diff", "--db", db, "--since", "last tuesday"), "--since")
    assert_clean_failure(run_sigscope("report", "expiring", "--db", db, "--within", "soon"), "--within")


def test_parse_since() -> None:
    assert parse_since("12", NOW) == 12
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2024-05-01", NOW) == datetime(2024, 5, 1, tzinfo=UTC)
