"""Authenticode in PE (EXE/DLL/SYS/EFI), MSI and CAB: the committed fixtures made by osslsigncode
(tests/fixtures/files/build_authenticode.py), checked against the values the PKI put in them and against
`osslsigncode verify` itself."""

from __future__ import annotations

import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testbed import absent

from sigscope.errors import SigscopeError
from sigscope.files import authenticode
from sigscope.files.authenticode import HANDLERS
from sigscope.files.base import HEAD_SIZE, FileHandler, FileSignature, FileTrust
from sigscope.model import Outcome, Status
from sigscope.trust.certs import load_pem_chain

FIXTURES = Path(__file__).parent / "fixtures" / "files"
FILES = FIXTURES / "authenticode"
PKI = FIXTURES / "pki"

RSA = "CN=RSA Code Signer,O=sigscope tests,C=US"
EC = "CN=EC Code Signer,O=sigscope tests,C=US"
TSA = "CN=sigscope Test TSA,O=sigscope tests,C=US"
ROOT = "CN=sigscope Test Root CA,O=sigscope tests,C=US"


def _subject(name: str) -> str:
    return load_pem_chain((PKI / f"{name}.crt").read_bytes())[0].subject.rfc4514_string()


@pytest.fixture(scope="module")
def trust() -> FileTrust:
    return FileTrust(roots=tuple(load_pem_chain((PKI / "root.crt").read_bytes())))


def handler_for(path: Path) -> FileHandler | None:
    with path.open("rb") as fp:
        head = fp.read(HEAD_SIZE)
    found = [h for h in HANDLERS if h.sniff(head, path)]
    assert len(found) <= 1, f"{path.name}: more than one handler claims it"
    return found[0] if found else None


def inspect(name: str, verify: bool = False, trust: FileTrust | None = None) -> list[FileSignature]:
    path = FILES / name
    handler = handler_for(path)
    assert handler is not None, f"{name} was not sniffed as signed"
    return list(handler.inspect(path, verify, trust or FileTrust()))


def one(name: str, verify: bool = False, trust: FileTrust | None = None) -> FileSignature:
    signatures = inspect(name, verify, trust)
    assert len(signatures) == 1, signatures
    return signatures[0]


def check(signature: FileSignature, name: str) -> tuple[Outcome, str]:
    found = [c for c in signature.checks if c.name == name]
    assert len(found) == 1, signature.checks
    return found[0].outcome, found[0].detail


# ---------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("name", "handler"),
    [
        ("rsa.exe", "pe"),
        ("ec.dll", "pe"),
        ("pagehash.sys", "pe"),
        ("rsa.efi", "pe"),
        ("rsa.msi", "msi"),
        ("unsigned.msi", "msi"),  # a compound file: whether it is signed needs its directory
        ("rsa.cab", "cab"),
        ("unsigned.exe", None),  # an unsigned PE is never parsed
        ("unsigned.cab", None),
    ],
)
def test_sniff_decides_from_the_head(name: str, handler: str | None) -> None:
    found = handler_for(FILES / name)
    assert (found.name if found else None) == handler


def test_sniff_rejects_other_files(tmp_path: Path) -> None:
    for data in (b"", b"MZ", b"hello world\n" * 100, b"MSCF" + bytes(60), b"PK\x03\x04" + bytes(100)):
        (tmp_path / "f").write_bytes(data)
        assert handler_for(tmp_path / "f") is None, data[:8]


def test_mixed_tree_finds_each_type_with_its_signer(tmp_path: Path) -> None:
    """What the walker does per file: sniff the head, inspect only what a handler claims."""
    for name in ("rsa.exe", "ec.dll", "pagehash.sys", "rsa.efi", "rsa.msi", "rsa.cab", "unsigned.exe"):
        (tmp_path / "bin").mkdir(exist_ok=True)
        shutil.copy(FILES / name, tmp_path / "bin" / name)
    (tmp_path / "README.txt").write_text("not signed\n")
    (tmp_path / "bin" / "unsigned.msi").write_bytes((FILES / "unsigned.msi").read_bytes())
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(tmp_path.rglob("*")):
        if not path.is_file():
            continue
        handler = handler_for(path)
        if handler is None:
            continue
        signatures = handler.inspect(path, False, FileTrust())
        if signatures:
            found[path.name] = (handler.name, [s.signer.subject for s in signatures if s.signer])
    assert found == {
        "rsa.exe": ("pe", [RSA]),
        "ec.dll": ("pe", [EC]),
        "pagehash.sys": ("pe", [RSA]),
        "rsa.efi": ("pe", [RSA]),
        "rsa.msi": ("msi", [RSA]),
        "rsa.cab": ("cab", [RSA]),
    }


# ---------------------------------------------------------------- facts without --verify


def test_facts_without_verify() -> None:
    signature = one("rsa.exe")
    assert signature.kind == "authenticode"
    assert signature.status is Status.UNVERIFIED and not signature.checks
    assert signature.signer is not None and signature.signer.subject == RSA
    assert signature.signer.issuer == ROOT and signature.signer.eku == ("codeSigning",)
    assert [c.subject for c in signature.chain] == [ROOT]
    assert signature.digest_algorithm == "sha256"
    assert signature.location == "signature 1"
    assert signature.timestamp is None
    assert signature.details["programName"] == "sigscope fixture"
    assert signature.details["moreInfo"] == "https://sigscope.invalid/"


def test_dual_signature_nested() -> None:
    first, nested = inspect("dual.exe")
    assert (first.location, nested.location) == ("signature 1", "nested signature 2")
    assert (first.digest_algorithm, nested.digest_algorithm) == ("sha1", "sha256")
    assert first.signer is not None and first.signer.subject == RSA
    assert nested.signer is not None and nested.signer.subject == EC and nested.signer.key_type == "ECDSA"
    assert any("sha1" in w for w in first.warnings)


def test_self_signed_and_expired_are_flagged() -> None:
    self_signed = one("self.exe")
    assert self_signed.signer is not None and self_signed.signer.self_signed
    assert self_signed.signer.subject == _subject("self-signer")
    assert "the signing certificate is self-signed" in self_signed.warnings
    expired = one("expired.exe")
    assert expired.signer is not None and expired.signer.expired
    assert any("expired on 2021-01-01" in w for w in expired.warnings)


def test_page_hashes_are_reported_not_checked() -> None:
    signature = one("pagehash.sys")
    assert "not checked" in signature.details["pageHashes"]


@pytest.mark.parametrize(
    ("name", "kind", "authority"),
    [
        ("ts-rfc3161.exe", "rfc3161", TSA),
        ("ts-rfc3161.msi", "rfc3161", TSA),
        ("ts-legacy.exe", "authenticode", TSA),
        ("ts-ec.cab", "rfc3161", _subject("ec-tsa")),
    ],
)
def test_timestamp_facts(name: str, kind: str, authority: str) -> None:
    signature = one(name)
    assert signature.timestamp is not None
    assert signature.timestamp.kind == kind
    assert signature.timestamp.authority is not None and signature.timestamp.authority.subject == authority
    assert signature.timestamp.time is not None
    assert signature.timestamp.status is Outcome.SKIPPED
    # the signing certificate's validity brackets the timestamp
    assert signature.signer is not None
    assert signature.signer.not_before <= signature.timestamp.time <= signature.signer.not_after


# ---------------------------------------------------------------- --verify


@pytest.mark.parametrize(
    "name", ["rsa.exe", "ec.dll", "pagehash.sys", "rsa.efi", "overlay.exe", "rsa.msi", "dse.msi", "rsa.cab"]
)
def test_verified(name: str, trust: FileTrust) -> None:
    signature = one(name, verify=True, trust=trust)
    assert signature.status is Status.VERIFIED, signature.to_json()
    assert [c.name for c in signature.checks] == ["digest", "signature", "timestamp", "trusted-chain"]
    assert check(signature, "digest")[0] is Outcome.PASSED
    assert check(signature, "signature")[0] is Outcome.PASSED
    assert check(signature, "timestamp")[0] is Outcome.SKIPPED
    assert signature.chain_status == "trusted"


def test_msi_extended_digest_is_checked(trust: FileTrust) -> None:
    signature = one("dse.msi", verify=True, trust=trust)
    assert signature.details.get("msiDigitalSignatureEx") is True
    assert signature.status is Status.VERIFIED


def test_dual_signature_both_verified(trust: FileTrust) -> None:
    signatures = inspect("dual.exe", verify=True, trust=trust)
    assert [s.status for s in signatures] == [Status.VERIFIED, Status.VERIFIED]
    assert "sha1" in check(signatures[0], "digest")[1]
    assert "sha256" in check(signatures[1], "digest")[1]


@pytest.mark.parametrize(
    ("name", "failed", "reason"),
    [
        ("tampered-code.exe", "digest", "does not match the signed digest"),
        ("appended.exe", "digest", "does not match the signed digest"),
        ("tampered.msi", "digest", "does not match the signed digest"),
        ("tampered.cab", "digest", "does not match the signed digest"),
        ("tampered-sig.exe", "signature", "does not verify"),
    ],
)
def test_tampered_is_invalid_with_reason(name: str, failed: str, reason: str, trust: FileTrust) -> None:
    signature = one(name, verify=True, trust=trust)
    assert signature.status is Status.INVALID
    outcome, detail = check(signature, failed)
    assert outcome is Outcome.FAILED and reason in detail
    assert reason in signature.reason
    assert signature.to_json()["reason"] == signature.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("self.exe", "no path to a trusted root"),
        ("untrusted.exe", "no path to a trusted root"),
        ("server-only.exe", "extendedKeyUsage lacks codeSigning"),
        ("expired.exe", "not valid at that time"),
    ],
)
def test_untrusted_chains(name: str, reason: str, trust: FileTrust) -> None:
    signature = one(name, verify=True, trust=trust)
    assert signature.status is Status.UNTRUSTED, signature.to_json()
    assert check(signature, "digest")[0] is Outcome.PASSED
    assert check(signature, "signature")[0] is Outcome.PASSED
    outcome, detail = check(signature, "trusted-chain")
    assert outcome is Outcome.FAILED and reason in detail
    assert signature.chain_status.startswith("untrusted: ")


def test_without_roots_nothing_is_verified() -> None:
    signature = one("rsa.exe", verify=True, trust=FileTrust())
    assert signature.status is Status.UNTRUSTED
    assert check(signature, "trusted-chain") == (Outcome.FAILED, "no trusted roots were supplied (now)")
    timestamped = one("ts-rfc3161.exe", verify=True, trust=FileTrust())
    assert timestamped.status is Status.UNTRUSTED
    assert timestamped.timestamp is not None and timestamped.timestamp.status is Outcome.FAILED
    assert "not trusted" in timestamped.timestamp.detail


def test_other_root_does_not_verify() -> None:
    other = FileTrust(roots=tuple(load_pem_chain((PKI / "other-root.crt").read_bytes())))
    assert one("rsa.exe", verify=True, trust=other).status is Status.UNTRUSTED
    assert one("untrusted.exe", verify=True, trust=other).status is Status.VERIFIED


@pytest.mark.parametrize("name", ["ts-rfc3161.exe", "ts-rfc3161.msi", "ts-legacy.exe", "ts-ec.cab"])
def test_valid_timestamp_is_checked_and_used(name: str, trust: FileTrust) -> None:
    signature = one(name, verify=True, trust=trust)
    assert signature.status is Status.VERIFIED
    assert signature.timestamp is not None and signature.timestamp.status is Outcome.PASSED
    outcome, detail = check(signature, "timestamp")
    assert outcome is Outcome.PASSED and signature.timestamp.kind in detail
    assert "at the timestamp" in check(signature, "trusted-chain")[1]
    assert not signature.warnings


def test_chain_judged_at_the_timestamp_time(trust: FileTrust) -> None:
    """Twenty years on the signer has expired: only the timestamped file still verifies."""
    later = FileTrust(roots=trust.roots, at=datetime.now(UTC) + timedelta(days=365 * 20))
    plain = one("rsa.exe", verify=True, trust=later)
    assert plain.status is Status.UNTRUSTED and "not valid at that time" in plain.reason + plain.chain_status
    stamped = one("ts-rfc3161.exe", verify=True, trust=later)
    assert stamped.status is Status.VERIFIED, stamped.to_json()


def test_broken_timestamp_is_a_warning_not_a_verdict(trust: FileTrust) -> None:
    signature = one("tampered-ts.exe", verify=True, trust=trust)
    assert signature.status is Status.VERIFIED  # the signature itself is intact
    assert signature.timestamp is not None and signature.timestamp.status is Outcome.FAILED
    assert "signature does not verify" in signature.timestamp.detail
    assert check(signature, "timestamp")[0] is Outcome.SKIPPED
    assert "now" in check(signature, "trusted-chain")[1]
    assert any("timestamp is not valid" in w for w in signature.warnings)
    later = FileTrust(roots=trust.roots, at=datetime.now(UTC) + timedelta(days=365 * 20))
    assert one("tampered-ts.exe", verify=True, trust=later).status is Status.UNTRUSTED


# ---------------------------------------------------------------- agreement with osslsigncode


def _osslsigncode_ok(path: Path) -> bool:
    result = subprocess.run(
        ["osslsigncode", "verify", "-CAfile", PKI / "root.crt", "-TSA-CAfile", PKI / "root.crt", "-in", path],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


@pytest.mark.skipif(shutil.which("osslsigncode") is None, reason="osslsigncode is not installed")
def test_verdicts_agree_with_osslsigncode(trust: FileTrust) -> None:
    compared = 0
    for path in sorted(FILES.iterdir()):
        handler = handler_for(path)
        ours = list(handler.inspect(path, True, trust)) if handler else []
        verified = bool(ours) and all(s.status is Status.VERIFIED for s in ours)
        assert verified == _osslsigncode_ok(path), (path.name, [s.to_json() for s in ours])
        compared += 1
    assert compared >= 20


# ---------------------------------------------------------------- bad input


def test_unsigned_compound_file_has_no_signatures() -> None:
    assert inspect("unsigned.msi", verify=True) == []


def test_unreadable_files_are_errors(tmp_path: Path) -> None:
    for handler in HANDLERS:
        with pytest.raises(SigscopeError, match="cannot read"):
            handler.inspect(tmp_path / "missing.exe", False, FileTrust())
        with pytest.raises(SigscopeError, match="cannot read"):
            handler.inspect(tmp_path, False, FileTrust())


@pytest.mark.parametrize("name", ["rsa.exe", "rsa.msi", "rsa.cab"])
def test_truncated_is_an_error(name: str, tmp_path: Path, trust: FileTrust) -> None:
    data = (FILES / name).read_bytes()
    target = tmp_path / name
    target.write_bytes(data[: len(data) - 200])
    handler = handler_for(FILES / name)
    assert handler is not None
    with pytest.raises(SigscopeError):
        signatures = handler.inspect(target, True, trust)
        # a truncation the format cannot notice must still never verify
        assert all(s.status is not Status.VERIFIED for s in signatures)
        raise SigscopeError("no error raised, but not verified")


def _fuzz_one(handler: FileHandler, path: Path, trust: FileTrust) -> str:
    try:
        signatures = handler.inspect(path, True, trust)
    except SigscopeError:
        return "error"
    return ",".join(str(s.status) for s in signatures) or "unsigned"


@pytest.mark.parametrize(
    "name", ["ts-rfc3161.exe", "dual.exe", "ts-rfc3161.msi", "ts-ec.cab", "ts-legacy.exe"]
)
def test_fuzz_truncations_and_bit_flips_never_crash(name: str, tmp_path: Path, trust: FileTrust) -> None:
    original = (FILES / name).read_bytes()
    handler = handler_for(FILES / name)
    assert handler is not None
    rng = random.Random(f"sigscope-{name}")
    target = tmp_path / name
    outcomes: dict[str, int] = {}
    cases = [original[:cut] for cut in range(0, len(original), max(1, len(original) // 60))]
    for _ in range(150):
        flipped = bytearray(original)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        cases.append(bytes(flipped))
    for data in cases:
        target.write_bytes(data)
        # no exception other than SigscopeError escapes; a flip the signature does not cover (padding, an
        # unsigned attribute, the timestamp) may still verify, which test_flips_in_signed_bytes bounds
        outcome = _fuzz_one(handler, target, trust)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("error", 0) > 0, outcomes
    assert sum(outcomes.values()) == len(cases)


def test_flips_in_signed_bytes_never_verify(trust: FileTrust, tmp_path: Path) -> None:
    """Every single-bit flip in the PE's code and headers (the hashed part) must fail verification."""
    original = (FILES / "rsa.exe").read_bytes()
    handler = handler_for(FILES / "rsa.exe")
    assert handler is not None
    target = tmp_path / "rsa.exe"
    skipped = set(range(0xD8, 0xDC)) | set(range(0x128, 0x130))  # checksum, certificate table entry (PE32)
    for offset in range(0, 0x400, 7):
        if offset in skipped:
            continue
        flipped = bytearray(original)
        flipped[offset] ^= 0x10
        target.write_bytes(bytes(flipped))
        try:
            signatures = handler.inspect(target, True, trust)
        except SigscopeError:
            continue
        assert all(s.status is not Status.VERIFIED for s in signatures), hex(offset)


def test_signify_workaround_is_contained() -> None:
    import sys

    assert authenticode.AuthenticodeSignature is not None
    module = sys.modules.get("oscrypto.asymmetric")
    assert module is None or getattr(module, "__file__", None), "the stand-in leaked into sys.modules"


def test_tampered_legacy_countersignature_is_a_warning(trust: FileTrust) -> None:
    signature = one("tampered-legacy-ts.exe", verify=True, trust=trust)
    assert signature.status is Status.VERIFIED
    assert signature.timestamp is not None and signature.timestamp.kind == "authenticode"
    assert signature.timestamp.status is Outcome.FAILED
    assert "countersignature does not verify" in signature.timestamp.detail
    assert any("timestamp is not valid" in w for w in signature.warnings)


# ---------------------------------------------------------------- legacy SHA-1 certificate chains

_LEGACY_EXTENSIONS = """\
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
[server]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
"""


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def legacy_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root, a SHA-1-signed intermediate and SHA-1-signed leaves (cryptography refuses to make or accept
    them, so openssl makes them), and unsigned.exe signed by each leaf with osslsigncode."""
    if shutil.which("osslsigncode") is None:
        absent.unavailable("osslsigncode is not installed")
    d = tmp_path_factory.mktemp("legacy")
    (d / "ext.cnf").write_text(_LEGACY_EXTENSIONS)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "root.key",
        "-out",
        "root.crt",
        "-subj",
        "/CN=Legacy Root",
        "-days",
        "3650",
        "-sha256",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    for name, issuer, section, serial in (
        ("int", "root", "ca", "2"),
        ("leaf", "int", "leaf", "3"),
        ("server", "int", "server", "4"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=Legacy SHA1 {name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{issuer}.crt",
            "-CAkey",
            f"{issuer}.key",
            "-set_serial",
            serial,
            "-days",
            "2000",
            "-sha1",
            "-extfile",
            "ext.cnf",
            "-extensions",
            section,
            "-out",
            f"{name}.crt",
            cwd=d,
        )
    for leaf in ("leaf", "server"):
        (d / f"{leaf}.chain.pem").write_bytes((d / f"{leaf}.crt").read_bytes() + (d / "int.crt").read_bytes())
        subprocess.run(
            [
                "osslsigncode",
                "sign",
                "-certs",
                d / f"{leaf}.chain.pem",
                "-key",
                d / f"{leaf}.key",
                "-in",
                FILES / "unsigned.exe",
                "-out",
                d / f"{leaf}.exe",
            ],
            check=True,
            capture_output=True,
        )
    return d


def test_sha1_chain_verifies_through_the_legacy_fallback(legacy_pki: Path) -> None:
    from sigscope.trust.chain import CODE_SIGNING, verify_chain

    roots = tuple(load_pem_chain((legacy_pki / "root.crt").read_bytes()))
    leaf, intermediate = load_pem_chain((legacy_pki / "leaf.chain.pem").read_bytes())
    # the shared validator refuses SHA-1 certificate signatures by design ...
    assert not verify_chain(leaf, [intermediate], roots, datetime.now(UTC), eku=(CODE_SIGNING,)).ok
    # ... and the Authenticode handler falls back to RFC 5280 validation that accepts them, with a warning
    signature = one_path(legacy_pki / "leaf.exe", FileTrust(roots=roots))
    assert signature.status is Status.VERIFIED, signature.to_json()
    assert "CN=Legacy Root" in check(signature, "trusted-chain")[1]
    assert any("SHA-1" in w for w in signature.warnings)
    assert _osslsigncode_ok_with(legacy_pki / "leaf.exe", legacy_pki / "root.crt")


def test_sha1_fallback_still_enforces_eku_and_roots(legacy_pki: Path, trust: FileTrust) -> None:
    roots = tuple(load_pem_chain((legacy_pki / "root.crt").read_bytes()))
    server = one_path(legacy_pki / "server.exe", FileTrust(roots=roots))
    assert server.status is Status.UNTRUSTED
    assert check(server, "trusted-chain")[0] is Outcome.FAILED
    elsewhere = one_path(legacy_pki / "leaf.exe", trust)  # the project's root, not the legacy one
    assert elsewhere.status is Status.UNTRUSTED


def one_path(path: Path, trust: FileTrust) -> FileSignature:
    handler = handler_for(path)
    assert handler is not None
    signatures = list(handler.inspect(path, True, trust))
    assert len(signatures) == 1
    return signatures[0]


def _osslsigncode_ok_with(path: Path, root: Path) -> bool:
    result = subprocess.run(
        ["osslsigncode", "verify", "-CAfile", root, "-in", path], capture_output=True, check=False
    )
    return result.returncode == 0


def test_signed_attributes_must_cover_the_content(tmp_path: Path, trust: FileTrust) -> None:
    """SpcIndirectDataContent changed outside its digest (the obsolete file link): the file digest still
    matches the content, but the signed messageDigest no longer covers it."""
    data = bytearray((FILES / "rsa.exe").read_bytes())
    at = bytes(data).index("Obsolete".encode("utf-16-be"))
    data[at + 1] ^= 0x01  # 'O' -> 'N', still a valid BMPString
    (tmp_path / "link.exe").write_bytes(bytes(data))
    signature = one_path(tmp_path / "link.exe", trust)
    assert signature.status is Status.INVALID
    outcome, detail = check(signature, "digest")
    assert outcome is Outcome.FAILED and "messageDigest does not cover" in detail
    assert check(signature, "signature")[0] is Outcome.PASSED
    assert not _osslsigncode_ok(tmp_path / "link.exe")


def test_msi_extended_digest_tampered(tmp_path: Path, trust: FileTrust) -> None:
    from sigscope.files import msi

    data = bytearray((FILES / "dse.msi").read_bytes())
    with (FILES / "dse.msi").open("rb") as fp:
        cfb = msi.CompoundFile(fp)
        entry = cfb.find(msi.SIGNATURE_EX_STREAM)
        assert entry is not None
        prehash = cfb.read(entry)
    at = bytes(data).index(prehash)
    data[at] ^= 0x01
    (tmp_path / "dse.msi").write_bytes(bytes(data))
    signature = one_path(tmp_path / "dse.msi", trust)
    assert signature.status is Status.INVALID
    assert "MsiDigitalSignatureEx does not match" in signature.reason
    # osslsigncode 2.9 prints the mismatch but still answers "Succeeded"; signify and Windows refuse it, and
    # a stored pre-hash that disagrees with the package is not a state an honest signer produces.
    printed = subprocess.run(
        ["osslsigncode", "verify", "-CAfile", PKI / "root.crt", "-in", tmp_path / "dse.msi"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    current = [line.split(":")[1].strip() for line in printed.splitlines() if "MsiDigitalSignatureEx" in line]
    assert len(current) == 2 and current[0] != current[1], printed
