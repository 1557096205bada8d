"""A report (no --verify) reads signatures with pkcs7's DER readers, --verify with asn1crypto's object
model: both must report the same facts — signer, chain, digest algorithm, timestamp time and authority,
details, warnings — for every signed fixture, and a corrupt file must stay an error in both."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sigscope.errors import SigscopeError
from sigscope.files import pkcs7
from sigscope.files.base import HEAD_SIZE, FileSignature, FileTrust
from sigscope.files.registry import HANDLERS
from sigscope.model import Status
from sigscope.trust.certs import load_pem_chain

FIXTURES = Path(__file__).parent / "fixtures" / "files"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SIGNED = sorted(
    p
    for kind in ("authenticode", "jar", "powershell")
    for p in (FIXTURES / kind).iterdir()
    if p.is_file() and not p.name.startswith("unsigned")
)

# What only verification adds; everything else must be equal.
_VERIFY_ONLY = {"checks", "status", "chainStatus", "reason"}


def _inspect(path: Path, verify: bool, trust: FileTrust) -> list[FileSignature]:
    head = path.read_bytes()[:HEAD_SIZE]
    handler = next(h for h in HANDLERS if h.sniff(head, path))
    return list(handler.inspect(path, verify, trust))


def _facts(signature: FileSignature) -> dict[str, Any]:
    out = {k: v for k, v in signature.to_json().items() if k not in _VERIFY_ONLY}
    stamp = out.get("timestamp")
    if stamp is not None:
        out["timestamp"] = {k: v for k, v in stamp.items() if k not in ("status", "detail")}
    # --verify adds warnings about what its checks found (a broken timestamp, a SHA-1 chain, unsigned
    # entries it failed); a report's own warnings must all be among them.
    out.pop("warnings", None)
    return out


@pytest.fixture(scope="module")
def trust() -> FileTrust:
    return FileTrust(roots=tuple(load_pem_chain((FIXTURES / "pki" / "root.crt").read_bytes())), at=NOW)


@pytest.mark.parametrize("path", SIGNED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_report_facts_equal_verify_facts(path: Path, trust: FileTrust) -> None:
    try:
        verified = _inspect(path, True, trust)
    except SigscopeError as exc:
        with pytest.raises(SigscopeError):
            _inspect(path, False, trust)
        pytest.skip(f"corrupt in both modes: {exc}")
    reported = _inspect(path, False, trust)
    assert len(reported) == len(verified)
    for report, verify in zip(reported, verified, strict=True):
        assert report.status is Status.UNVERIFIED and not report.checks
        assert _facts(report) == _facts(verify)
        # what a report warns about, --verify warns about too or fails a check for
        found = set(verify.warnings) | {c.detail for c in verify.checks}
        assert set(report.warnings) <= found, (report.warnings, verify.warnings, verify.checks)


def test_reader_rejects_what_is_not_signed_data() -> None:
    for data in (b"", b"\x30\x00", b"\x30\x03\x06\x01\x2a", b"\x04\x02ab", b"\x30\x80"):
        with pytest.raises(ValueError):
            pkcs7.content_info(data)


@pytest.mark.parametrize(
    "name", ["authenticode/ts-rfc3161.exe", "authenticode/dual.exe", "jar/signed-tsa.jar"]
)
def test_report_never_crashes_on_bit_flips(name: str, tmp_path: Path, trust: FileTrust) -> None:
    """Hostile bytes in report mode: facts or a SigscopeError, nothing else, never a verdict."""
    original = (FIXTURES / name).read_bytes()
    rng = random.Random(f"report-{name}")
    target = tmp_path / Path(name).name
    errors = 0
    for _ in range(120):
        flipped = bytearray(original)
        for _ in range(3):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(flipped))
        try:
            signatures = _inspect(target, False, trust)
        except SigscopeError:
            errors += 1
            continue
        except StopIteration:
            continue  # the flip made it something no handler claims
        assert all(s.status in (Status.UNVERIFIED, Status.INVALID) for s in signatures)
    assert errors > 0
