"""Report renderers on hand-made results: shapes users' pipelines rely on, and every finding present."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from rich.console import Console

from sigscope.model import (
    Attachment,
    CertificateInfo,
    Check,
    Signature,
    SignatureFormat,
    SignerIdentity,
    Status,
)
from sigscope.report.render import make_renderer
from sigscope.report.summary import Summary, findings
from sigscope.scan.registry import ImageResult

NOW = datetime(2026, 11, 25, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def cert(
    subject: str, *, self_signed: bool = False, expired: bool = False, email: str = ""
) -> CertificateInfo:
    return CertificateInfo(
        subject=subject,
        issuer=subject if self_signed else "CN=Test CA",
        serial="1f",
        sha256="ab" * 32,
        not_before=datetime(2024, 1, 1, tzinfo=UTC),
        not_after=datetime(2025, 1, 1, tzinfo=UTC) if expired else datetime(2030, 1, 1, tzinfo=UTC),
        key_type="ECDSA",
        key_size=256,
        curve="P-256",
        self_signed=self_signed,
        is_ca=False,
        expired=expired,
        not_yet_valid=False,
        emails=(email,) if email else (),
    )


def results() -> list[ImageResult]:
    good = Signature(
        format=SignatureFormat.NOTATION_JWS,
        subject_digest=D1,
        location="referrer sha256:…",
        signer=SignerIdentity(certificate=cert("CN=Release Signer,O=Example")),
        checks=[Check.passed("signature")],
    ).settle()
    keyless = Signature(
        format=SignatureFormat.COSIGN,
        subject_digest=D1,
        location="tag sha256-….sig layer 1",
        signer=SignerIdentity(certificate=cert("", email="dev@example.com")),
        checks=[Check.passed("signature")],
    ).settle()
    bad = Signature(
        format=SignatureFormat.COSIGN,
        subject_digest=D2,
        location="tag sha256-….sig layer 1",
        signer=SignerIdentity(certificate=cert("CN=Selfie", self_signed=True, expired=True)),
        checks=[
            Check.passed("signature"),
            Check.failed("payload-digest", f"payload names {D3}, attached to {D2}"),
        ],
    ).settle()
    return [
        ImageResult(
            source="reg:5000",
            repository="team/app",
            digest=D1,
            tags=["1.0", "latest"],
            signatures=[good, keyless],
        ),
        ImageResult(
            source="reg:5000",
            repository="team/app",
            digest=D2,
            tags=["0.9"],
            signatures=[bad],
            attachments=[Attachment(artifact_type="application/spdx+json", digest=D3, location="referrer")],
        ),
        ImageResult(source="reg:5000", repository="team/web", digest=D3, tags=["2.0"]),
        ImageResult(
            source="reg:5000", repository="team/broken", digest="", tags=["x"], error="manifest unknown"
        ),
    ]


def render(output: str, width: int = 240) -> tuple[str, Summary]:
    out = io.StringIO()
    console = Console(file=out, width=width)
    summary = Summary("reg:5000")
    renderer = make_renderer(output, out, console, "reg:5000")
    for result in results():
        summary.add(result)
        renderer.add(result)
    renderer.finish(summary)
    return out.getvalue(), summary


def test_summary_and_findings() -> None:
    _, summary = render("json")
    assert summary.line == "Found 3 signatures on 2 of 3 images (1 could not be read)"
    assert summary.statuses == {"integrity-ok": 2, "invalid": 1}
    app, bad, unsigned, broken = results()
    assert findings(app) == set()
    assert findings(bad) == {"invalid", "self-signed", "expired"}
    assert findings(unsigned) == {"unsigned"}
    assert findings(broken) == {"error"}


def test_json_keeps_sigscan_shape() -> None:
    text, _ = render("json")
    data = json.loads(text)
    assert data["name"] == "reg:5000"
    entries = data["registry"]["signatures"]
    # sigscan's four fields, with the real identity (the SAN for a keyless certificate).
    assert [e["subjectname"] for e in entries] == [
        "CN=Release Signer,O=Example",
        "dev@example.com",
        "CN=Selfie",
    ]
    assert entries[0]["path"] == "team/app:1.0" and entries[0]["digest"] == D1
    assert entries[0]["thumbprints"] == '"' + "ab" * 32 + '"'
    assert entries[2]["status"] == "invalid" and "payload-digest" in entries[2]["reason"]
    assert entries[2]["selfSigned"] is True
    assert {i["path"] for i in data["images"]} >= {"team/web:2.0", "team/broken:x"}
    assert data["summary"]["unsignedImages"] == 1


def test_ndjson_one_line_per_image_then_summary() -> None:
    text, _ = render("ndjson")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["type"] for line in lines] == ["image"] * 4 + ["summary"]
    assert lines[0]["signatures"][1]["subjectname"] == "dev@example.com"
    assert lines[3]["error"] == "manifest unknown"
    assert lines[-1]["signatures"] == 3


def test_csv_has_a_row_for_unsigned_and_broken_images() -> None:
    text, _ = render("csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["status"] for r in rows] == ["integrity-ok", "integrity-ok", "invalid", "unsigned", "error"]
    assert rows[2]["self_signed"] == "true" and rows[2]["expired"] == "true"
    assert rows[4]["error"] == "manifest unknown"


def test_sarif_results() -> None:
    text, _ = render("sarif")
    data = json.loads(text)
    run = data["runs"][0]
    assert data["version"] == "2.1.0"
    rule_ids = sorted(r["ruleId"] for r in run["results"])
    assert rule_ids == ["SIG001", "SIG002", "SIG003", "SIG004", "SIG005"]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} >= set(rule_ids)


def test_html_is_self_contained_and_escaped() -> None:
    text, _ = render("html")
    assert (
        text.startswith("<!DOCTYPE html>") and "<script" not in text and "http" not in text.split("<body>")[0]
    )
    assert "Signed vs unsigned by repository" in text and "team/web" in text
    assert "CN=Release Signer,O=Example" in text


def test_pretty_and_wide_tables() -> None:
    pretty, _ = render("pretty")
    assert "team/app:1.0" in pretty and "invalid" in pretty and "self-signed" in pretty
    assert "Found 3 signatures on 2 of 3 images" in pretty
    wide, _ = render("wide", width=600)
    assert D1 in wide and "payload-digest" in wide and "application/spdx+json (unsigned)" in wide


def test_status_never_verified_without_trust() -> None:
    for result in results():
        for signature in result.signatures:
            assert signature.status is not Status.VERIFIED
