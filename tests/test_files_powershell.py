"""Authenticode signature blocks in PowerShell files, against osslsigncode (which made the fixtures)."""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from testbed import absent
from testbed.file_fixtures import (
    FIXTURES,
    PKI,
    ROOTS,
    SUBJECT,
    TRUST,
    bit_flips,
    inspect_mangled,
    only_signature,
)
from testbed.file_fixtures import check_outcome as check

from sigscope.files import powershell
from sigscope.files.base import HEAD_SIZE, FileSignature, FileTrust
from sigscope.model import Outcome, Status
from sigscope.trust.certs import load_pem_chain

SCRIPTS = FIXTURES / "powershell"
HANDLER = powershell.HANDLERS[0]
OSSL_VERIFY = (
    "osslsigncode",
    "verify",
    "-CAfile",
    str(PKI / "root.crt"),
    "-TSA-CAfile",
    str(PKI / "root.crt"),
)
OSSL_SIGN = ("osslsigncode", "sign", "-pass", "changeit", "-h", "sha256", "-pkcs12")


def only(path: Path, verify: bool = True, trust: FileTrust = TRUST) -> FileSignature:
    return only_signature(HANDLER, path, verify, trust)


EXPECTED = {
    "signed-rsa.ps1": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-utf16.ps1": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-ec.psm1": (Status.VERIFIED, "EC Code Signer", None),
    "signed-bom.psd1": (Status.VERIFIED, "RSA Code Signer", None),
    "signed.ps1xml": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-tsa.ps1": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-bad-tsa.ps1": (Status.VERIFIED, "RSA Code Signer", None),
    "signed-expired.ps1": (Status.UNTRUSTED, "Expired Code Signer", "not valid at that time"),
    "signed-self.ps1": (Status.UNTRUSTED, "Self-Signed Code Signer", "no path to a trusted root"),
    "tampered.ps1": (Status.INVALID, "RSA Code Signer", "digest: the script text does not match"),
    "tampered-utf16.ps1": (Status.INVALID, "RSA Code Signer", "digest: the script text does not match"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdicts(name: str) -> None:
    status, cn, reason = EXPECTED[name]
    sig = only(SCRIPTS / name)
    assert sig.kind == "powershell"
    assert sig.status is status, sig.to_json()
    assert sig.signer is not None and sig.signer.subject == SUBJECT.format(cn)
    assert sig.digest_algorithm == "sha256"
    if reason is None:
        assert check(sig, "digest") is Outcome.PASSED and check(sig, "signature") is Outcome.PASSED
    else:
        assert reason in sig.reason, sig.reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_agrees_with_osslsigncode(name: str) -> None:
    if shutil.which("osslsigncode") is None:
        absent.unavailable("osslsigncode not installed (apt-get install -y osslsigncode)")
    done = subprocess.run(
        [*OSSL_VERIFY, str(SCRIPTS / name)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode == 0) == (only(SCRIPTS / name).status is Status.VERIFIED), done.stdout


def test_encodings_and_comment_styles() -> None:
    assert only(SCRIPTS / "signed-utf16.ps1").details["encoding"] == "utf-16-le"
    assert only(SCRIPTS / "signed-bom.psd1").details["encoding"] == "utf-8"
    assert only(SCRIPTS / "signed.ps1xml", verify=False).signer is not None


def test_timestamp_reported_and_broken_one_is_a_warning() -> None:
    good = only(SCRIPTS / "signed-tsa.ps1")
    assert good.timestamp is not None and good.timestamp.status is Outcome.PASSED
    assert good.timestamp.authority is not None
    assert good.timestamp.authority.subject == SUBJECT.format("sigscope Test TSA")
    assert check(good, "timestamp") is Outcome.PASSED and not good.warnings
    bad = only(SCRIPTS / "signed-bad-tsa.ps1")
    assert bad.timestamp is not None and bad.timestamp.status is Outcome.FAILED
    assert bad.timestamp.authority is not None
    assert bad.timestamp.authority.subject == SUBJECT.format("TSA Without EKU")
    assert "timeStamping" in bad.timestamp.detail
    assert check(bad, "timestamp") is Outcome.SKIPPED
    assert any("timestamp is not valid" in w for w in bad.warnings)


def test_validity_is_judged_at_the_timestamp() -> None:
    later = FileTrust(roots=ROOTS, at=datetime(2040, 1, 1, tzinfo=UTC))
    assert only(SCRIPTS / "signed-tsa.ps1", trust=later).status is Status.VERIFIED
    assert only(SCRIPTS / "signed-rsa.ps1", trust=later).status is Status.UNTRUSTED
    # a timestamp from a TSA that is not valid does not move the clock
    assert only(SCRIPTS / "signed-bad-tsa.ps1", trust=later).status is Status.UNTRUSTED


def test_without_verify_only_identity() -> None:
    sig = only(SCRIPTS / "tampered.ps1", verify=False)
    assert sig.status is Status.UNVERIFIED and not sig.checks
    assert sig.signer is not None and sig.signer.subject == SUBJECT.format("RSA Code Signer")
    assert sig.timestamp is None
    stamped = only(SCRIPTS / "signed-tsa.ps1", verify=False)
    assert stamped.timestamp is not None and stamped.timestamp.status is Outcome.SKIPPED
    assert stamped.timestamp.time is not None


def test_flags() -> None:
    selfsig = only(SCRIPTS / "signed-self.ps1", verify=False).signer
    assert selfsig is not None and selfsig.self_signed
    expired = only(SCRIPTS / "signed-expired.ps1", verify=False).signer
    assert expired is not None and expired.expired


def test_no_roots_never_verifies() -> None:
    assert only(SCRIPTS / "signed-rsa.ps1", trust=FileTrust()).status is Status.UNTRUSTED


def test_unsigned_and_sniff(tmp_path: Path) -> None:
    assert list(HANDLER.inspect(SCRIPTS / "unsigned.ps1", True, TRUST)) == []
    head = (SCRIPTS / "signed-utf16.ps1").read_bytes()[:HEAD_SIZE]
    assert HANDLER.sniff(head, Path("a.PS1"))
    assert not HANDLER.sniff(head, Path("a.txt"))
    assert not HANDLER.sniff(b"MZ\x00\x00binary", Path("a.ps1"))
    big = tmp_path / "big.ps1"
    big.write_bytes(b"# " + b"x" * 100 + b"\r\n" * (powershell.TAIL_SIZE // 2))
    assert list(HANDLER.inspect(big, False, TRUST)) == []


def test_large_script_reads_the_tail(tmp_path: Path) -> None:
    """A block at the end of a script bigger than the tail window is found without verification."""
    if shutil.which("osslsigncode") is None:
        absent.unavailable("osslsigncode not installed")
    script = tmp_path / "big.ps1"
    script.write_bytes(("# padding line\r\n" * (powershell.TAIL_SIZE // 8)).encode())
    signed = _sign(script, tmp_path / "big-signed.ps1")
    assert only(signed, verify=False).signer is not None
    assert only(signed).status is Status.VERIFIED


def _sign(src: Path, dst: Path, entity: str = "rsa-signer") -> Path:
    subprocess.run(
        [*OSSL_SIGN, str(PKI / f"{entity}.p12"), "-in", str(src), "-out", str(dst)],
        check=True,
        capture_output=True,
    )
    return dst


@pytest.mark.parametrize(
    "content",
    [
        b"Write-Output 'lf only'\n",
        b"Write-Output 'no final newline'",
        "Write-Output 'caf\u00e9 \u2713'\r\n".encode(),
        b"\xff\xfe" + "Write-Output 'utf16 caf\u00e9'\r\n".encode("utf-16-le"),
    ],
)
def test_fresh_osslsigncode_signatures(content: bytes, tmp_path: Path) -> None:
    if shutil.which("osslsigncode") is None:
        absent.unavailable("osslsigncode not installed")
    script = tmp_path / "s.ps1"
    script.write_bytes(content)
    signed = _sign(script, tmp_path / "signed.ps1")
    assert only(signed).status is Status.VERIFIED
    changed = tmp_path / "changed.ps1"
    changed.write_bytes(signed.read_bytes().replace(b"W", b"w", 1))
    assert only(changed).status is Status.INVALID


SIGNED = ["signed-rsa.ps1", "signed-utf16.ps1", "signed-tsa.ps1", "signed.ps1xml"]


@pytest.mark.parametrize("name", SIGNED)
def test_truncated_and_bit_flipped_never_crash(name: str, tmp_path: Path) -> None:
    data = (SCRIPTS / name).read_bytes()
    target = tmp_path / name
    rng = random.Random(name)
    variants = [
        data[:cut]
        for cut in sorted({1, 2, 10, len(data) // 2, len(data) - 300, len(data) - 40, len(data) - 1})
    ]

    def still_verified(variant: bytes, _sig: FileSignature) -> None:
        # Only the unsigned parts may change: certificates the block carries beyond the
        # signer's, unsigned attributes (the timestamp: then reported failed), base64 padding.
        assert _script_text(variant, name) == _script_text(data, name)

    inspect_mangled(HANDLER, target, variants + bit_flips(data, rng), still_verified)


def _script_text(data: bytes, name: str) -> str:
    found = powershell.split_block(powershell._decode(data), Path(name))
    assert found is not None
    return found[0] + found[2]


def test_code_appended_after_the_block_is_invalid(tmp_path: Path) -> None:
    """The digest stops at the block; code after it would run unsigned."""
    path = tmp_path / "appended.ps1"
    path.write_bytes((SCRIPTS / "signed-rsa.ps1").read_bytes() + b"Remove-Item -Recurse -Force C:\\\r\n")
    sig = only(path)
    assert sig.status is Status.INVALID
    assert "text after the signature block is not signed" in sig.reason
    assert any("not covered" in w for w in only(path, verify=False).warnings)
    # trailing blank lines are no code
    blank = tmp_path / "blank.ps1"
    blank.write_bytes((SCRIPTS / "signed-rsa.ps1").read_bytes() + b"\r\n\r\n")
    assert only(blank).status is Status.VERIFIED


STAMPED = datetime.now(UTC).replace(microsecond=0)


def _with_countersignature(script: bytes, signer: str, tamper: bool = False) -> bytes:
    """The script's block with a legacy Authenticode (PKCS#9) countersignature added by `signer`.

    No legacy Authenticode timestamp server exists here (osslsigncode -t needs one), so the
    countersignature is assembled as signtool /t receives it: a SignerInfo over the outer signature value.
    """
    from asn1crypto import algos, cms
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    text = powershell._decode(script)
    found = powershell.split_block(text, Path("x.ps1"))
    assert found is not None
    signed_text, block, _ = found
    info = cms.ContentInfo.load(base64.b64decode(block))
    outer = info["content"]["signer_infos"][0]
    value = outer["signature"].native
    key = serialization.load_pem_private_key((PKI / f"{signer}.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = asn1_x509.Certificate.load(
        load_pem_chain((PKI / f"{signer}.crt").read_bytes())[0].public_bytes(serialization.Encoding.DER)
    )
    digest = hashlib.sha256(value + (b"x" if tamper else b"")).digest()
    attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": STAMPED})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        ]
    )
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    counter = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": signature,
        }
    )
    outer["unsigned_attrs"] = cms.CMSAttributes(
        [cms.CMSAttribute({"type": "counter_signature", "values": [counter]})]
    )
    info["content"]["certificates"].append(cms.CertificateChoices({"certificate": cert}))
    b64 = base64.b64encode(info.dump()).decode()
    lines = ["# SIG # Begin signature block", *(f"# {b64[i : i + 64]}" for i in range(0, len(b64), 64))]
    return (
        signed_text + "".join(f"\r\n{line}" for line in lines) + "\r\n# SIG # End signature block\r\n"
    ).encode()


def test_legacy_authenticode_countersignature(tmp_path: Path) -> None:
    path = tmp_path / "countersigned.ps1"
    path.write_bytes(_with_countersignature((SCRIPTS / "signed-rsa.ps1").read_bytes(), "tsa"))
    sig = only(path)
    assert sig.status is Status.VERIFIED, sig.to_json()
    assert sig.timestamp is not None and sig.timestamp.kind == "authenticode"
    assert sig.timestamp.status is Outcome.PASSED
    assert sig.timestamp.time == STAMPED
    assert sig.timestamp.authority is not None
    assert sig.timestamp.authority.subject == SUBJECT.format("sigscope Test TSA")
    # a countersignature over other bytes, or by a certificate without timeStamping, is only a warning
    path.write_bytes(_with_countersignature((SCRIPTS / "signed-rsa.ps1").read_bytes(), "tsa", tamper=True))
    broken = only(path)
    assert broken.timestamp is not None and broken.timestamp.status is Outcome.FAILED
    assert "messageDigest" in broken.timestamp.detail
    assert broken.status is Status.VERIFIED and broken.warnings
    path.write_bytes(_with_countersignature((SCRIPTS / "signed-rsa.ps1").read_bytes(), "tsa-no-eku"))
    no_eku = only(path)
    assert no_eku.timestamp is not None and no_eku.timestamp.status is Outcome.FAILED
    assert "timeStamping" in no_eku.timestamp.detail
