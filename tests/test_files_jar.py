"""Signed JAR/WAR/APK-v1 archives: identities, checks, and agreement with `jarsigner -verify -strict`.

Fixtures in tests/fixtures/files/jar were made by jarsigner (build_jar_ps_xml.py); a few tests also sign a
fresh archive with the jarsigner on this machine.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
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

from sigscope.errors import SigscopeError
from sigscope.files import jar, pkcs7
from sigscope.files.base import HEAD_SIZE, FileTrust
from sigscope.model import Outcome, Status
from sigscope.trust.certs import load_pem_chain
from sigscope.trust.chain import verify_chain

JARS = FIXTURES / "jar"
HANDLER = jar.HANDLERS[0]
P12 = ("-storetype", "PKCS12", "-storepass", "changeit")
JARSIGNER_VERIFY = ("jarsigner", "-verify", "-strict", *P12, "-keystore", str(PKI / "root.p12"))
JARSIGNER_SIGN = ("jarsigner", *P12, "-keystore")
KEYTOOL_DSA = ("keytool", "-genkeypair", "-keyalg", "DSA", "-keysize", "2048", "-validity", "30")
KEYTOOL_DSA += ("-alias", "dsa", "-dname", "CN=DSA Signer")


def inspect(name: str, verify: bool = True, trust: FileTrust = TRUST) -> list[jar.FileSignature]:
    return list(HANDLER.inspect(JARS / name, verify, trust))  # an absolute name replaces JARS


def only(name: str, verify: bool = True, trust: FileTrust = TRUST) -> jar.FileSignature:
    return only_signature(HANDLER, JARS / name, verify, trust)  # an absolute name replaces JARS


EXPECTED = {
    # file: (status, signer CN, block, reason fragment)
    "signed-rsa.jar": (Status.VERIFIED, "RSA Code Signer", "META-INF/RSA-SIGN.RSA", None),
    "signed-ec.jar": (Status.VERIFIED, "EC Code Signer", "META-INF/EC-SIGNE.EC", None),
    "signed-ec.war": (Status.VERIFIED, "EC Code Signer", "META-INF/EC-SIGNE.EC", None),
    "signed-apk-v1.apk": (Status.VERIFIED, "RSA Code Signer", "META-INF/CERT.RSA", None),
    "signed-tsa.jar": (Status.VERIFIED, "RSA Code Signer", "META-INF/RSA-SIGN.RSA", None),
    "signed-expired.jar": (Status.UNTRUSTED, "Expired Code Signer", "META-INF/EXPIRED-.RSA", "not valid"),
    "signed-self.jar": (Status.UNTRUSTED, "Self-Signed Code Signer", "META-INF/SELF-SIG.RSA", "trusted root"),
    "signed-untrusted.jar": (
        Status.UNTRUSTED,
        "Untrusted Code Signer",
        "META-INF/UNTRUSTE.RSA",
        "trusted-chain",
    ),
    "signed-server-only.jar": (Status.UNTRUSTED, "Server Auth Only", "META-INF/SERVER-O.RSA", "codeSigning"),
    "signed-sha1.jar": (Status.INVALID, "RSA Code Signer", "META-INF/RSA-SIGN.RSA", "SHA-1"),
    "tampered-class.jar": (
        Status.INVALID,
        "RSA Code Signer",
        "META-INF/RSA-SIGN.RSA",
        "SHA-256 digest error for com/example/Hello.class",
    ),
    "tampered-manifest.jar": (
        Status.INVALID,
        "RSA Code Signer",
        "META-INF/RSA-SIGN.RSA",
        "invalid SHA-256 signature file digest for com/example/data.txt",
    ),
    "unsigned-entry.jar": (
        Status.INVALID,
        "RSA Code Signer",
        "META-INF/RSA-SIGN.RSA",
        "com/example/Evil.class",
    ),
    "unsigned-in-manifest.jar": (
        Status.INVALID,
        "RSA Code Signer",
        "META-INF/RSA-SIGN.RSA",
        "com/example/Late.txt",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdicts(name: str) -> None:
    status, cn, location, reason = EXPECTED[name]
    sig = only(name)
    assert sig.kind == "jar"
    assert sig.status is status, sig.to_json()
    assert sig.signer is not None and sig.signer.subject == SUBJECT.format(cn)
    assert sig.location == location
    if reason is None:
        assert sig.reason == "" and sig.chain_status == "trusted"
    else:
        assert reason in sig.reason, sig.reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_agrees_with_jarsigner_strict(name: str, tmp_path: Path) -> None:
    """Our `verified` is exactly jarsigner's exit 0 with the test root in its keystore."""
    if shutil.which("jarsigner") is None:
        absent.unavailable("jarsigner not installed (apt-get install -y openjdk-17-jdk-headless)")
    done = subprocess.run(
        [*JARSIGNER_VERIFY, str(JARS / name)],
        capture_output=True,
        text=True,
    )
    sig = only(name)
    assert (done.returncode == 0) == (sig.status is Status.VERIFIED), (done.stdout, sig.to_json())
    if "SecurityException" in done.stdout + done.stderr:
        # jarsigner's own message for a tampered archive is our reason, word for word.
        message = (done.stdout + done.stderr).split("SecurityException: ")[1].strip()
        assert message in sig.reason


def test_scan_without_verify_reports_identity_only() -> None:
    sig = only("tampered-class.jar", verify=False)
    assert sig.status is Status.UNVERIFIED and not sig.checks
    assert sig.signer is not None and sig.signer.subject == SUBJECT.format("RSA Code Signer")
    assert sig.digest_algorithm == "sha256"
    assert sig.details["signatureFile"] == "META-INF/RSA-SIGN.SF"
    assert sig.details["signatureAlgorithm"] == "sha256withrsassa_pkcs1v15"
    # the chain the block carries, leaf excluded
    assert [c.subject for c in sig.chain] == [SUBJECT.format("sigscope Test Root CA")]


def test_unsigned_entries_are_listed_even_without_verify() -> None:
    sig = only("unsigned-entry.jar", verify=False)
    assert sig.details["unsignedEntries"] == ["com/example/Evil.class"]
    assert sig.details["signedEntries"] == 3
    assert any("not covered" in w for w in sig.warnings)


def test_flags_self_signed_and_expired() -> None:
    selfsig = only("signed-self.jar", verify=False)
    assert selfsig.signer is not None and selfsig.signer.self_signed and not selfsig.signer.expired
    expired = only("signed-expired.jar", verify=False)
    assert expired.signer is not None and expired.signer.expired and not expired.signer.self_signed
    assert check(only("signed-expired.jar"), "signature") is Outcome.PASSED


def test_timestamp_authority_and_time() -> None:
    sig = only("signed-tsa.jar")
    assert sig.timestamp is not None
    assert sig.timestamp.kind == "rfc3161"
    assert sig.timestamp.status is Outcome.PASSED
    assert sig.timestamp.authority is not None
    assert sig.timestamp.authority.subject == SUBJECT.format("sigscope Test TSA")
    assert sig.timestamp.time is not None and sig.timestamp.time.year >= 2026
    assert check(sig, "timestamp") is Outcome.PASSED
    unstamped = only("signed-rsa.jar")
    assert unstamped.timestamp is None and check(unstamped, "timestamp") is Outcome.SKIPPED


def test_validity_is_judged_at_the_timestamp() -> None:
    """In 2040 the signer has expired: a timestamped signature still verifies, an unstamped one does not."""
    later = FileTrust(roots=ROOTS, at=datetime(2040, 1, 1, tzinfo=UTC))
    assert only("signed-tsa.jar", trust=later).status is Status.VERIFIED
    unstamped = only("signed-rsa.jar", trust=later)
    assert unstamped.status is Status.UNTRUSTED
    assert "not valid" in unstamped.reason


def test_timestamp_against_other_roots_is_a_warning() -> None:
    """TSA not trusted: the timestamp is reported failed with a warning; the signature is not invalid."""
    other = tuple(load_pem_chain((PKI / "other-root.crt").read_bytes()))
    sig = only("signed-tsa.jar", trust=FileTrust(roots=other))
    assert sig.timestamp is not None and sig.timestamp.status is Outcome.FAILED
    assert any("timestamp is not valid" in w for w in sig.warnings)
    assert sig.status is Status.UNTRUSTED  # the signer does not chain to other-root either
    assert check(sig, "signature") is Outcome.PASSED and check(sig, "digest") is Outcome.PASSED


def test_no_roots_never_verifies() -> None:
    sig = only("signed-rsa.jar", trust=FileTrust())
    assert sig.status is Status.UNTRUSTED
    assert check(sig, "trusted-chain") is Outcome.FAILED
    assert check(sig, "signature") is Outcome.PASSED


def test_unsigned_archive_has_no_signature() -> None:
    assert inspect("unsigned.jar") == []


def test_sniff() -> None:
    head = (JARS / "signed-rsa.jar").read_bytes()[:HEAD_SIZE]
    assert HANDLER.sniff(head, Path("x.bin"))
    assert not HANDLER.sniff(b"MZ\x90\x00", Path("x.jar"))
    assert not HANDLER.sniff(b"", Path("x.jar"))


def test_fresh_jarsigner_signature(tmp_path: Path) -> None:
    """The jarsigner on this machine, now: RSA-signed with an extra directory entry and a nested jar."""
    if shutil.which("jarsigner") is None:
        absent.unavailable("jarsigner not installed")
    path = tmp_path / "fresh.ear"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        archive.writestr("lib/", b"")
        archive.writestr("lib/inner.jar", (JARS / "signed-ec.jar").read_bytes())
        archive.writestr("a" * 100 + ".txt", b"a long name wraps in the manifest\n")
    subprocess.run(
        [*JARSIGNER_SIGN, str(PKI / "ec-signer.p12"), str(path), "ec-signer"],
        check=True,
        capture_output=True,
    )
    sig = HANDLER.inspect(path, True, TRUST)
    assert [s.status for s in sig] == [Status.VERIFIED], sig[0].to_json()
    assert sig[0].details["signedEntries"] == 2


def test_manifest_parser_continuations_and_line_ends() -> None:
    raw = b"Manifest-Version: 1.0\nCreated-By: x\n\nName: a/very/long/na\n me.txt\nSHA-256-Digest: QUJD\n\n"
    manifest = jar.parse_manifest(raw)
    assert set(manifest.sections) == {"a/very/long/name.txt"}
    assert manifest.sections["a/very/long/name.txt"].raw.endswith(b"QUJD\n\n")
    assert manifest.main.raw == b"Manifest-Version: 1.0\nCreated-By: x\n\n"
    with pytest.raises(SigscopeError):
        jar.parse_manifest(b"Manifest-Version: 1.0\r\n\r\nSHA-256-Digest: QUJD\r\n\r\n")


SIGNED = ["signed-rsa.jar", "signed-ec.jar", "signed-tsa.jar"]


@pytest.mark.parametrize("name", SIGNED)
def test_truncated_archives_are_errors_not_crashes(name: str, tmp_path: Path) -> None:
    data = (JARS / name).read_bytes()
    target = tmp_path / name
    for cut in sorted(
        {1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 22, len(data) - 1}
    ):
        target.write_bytes(data[:cut])
        try:
            result = HANDLER.inspect(target, True, TRUST)
        except SigscopeError:
            continue
        assert all(s.status is not Status.VERIFIED for s in result), cut


@pytest.mark.parametrize("name", SIGNED)
def test_bit_flips_never_crash_or_verify(name: str, tmp_path: Path) -> None:
    data = (JARS / name).read_bytes()
    target = tmp_path / name

    def still_verified(variant: bytes, _sig: jar.FileSignature) -> None:
        # Only bytes no check covers may change: ZIP metadata (times, extra fields, comments)
        # and the unsigned parts of the PKCS#7 block (e.g. the carried root certificate).
        position = next(i for i, (a, b) in enumerate(zip(data, variant, strict=True)) if a != b)
        assert _same_signed_content(JARS / name, target), position

    inspect_mangled(HANDLER, target, bit_flips(data, random.Random(name)), still_verified)


def _same_signed_content(original: Path, changed: Path) -> bool:
    """Every entry reads the same, and the blocks keep their signer and signature value."""
    with zipfile.ZipFile(original) as old, zipfile.ZipFile(changed) as new:
        if sorted(old.namelist()) != sorted(new.namelist()):
            return False
        for name in old.namelist():
            before, after = old.read(name), new.read(name)
            if name.endswith((".RSA", ".EC", ".DSA")):
                a, b = pkcs7.load_signed_data(before), pkcs7.load_signed_data(after)
                if a.signer_cert != b.signer_cert or a.signature_value != b.signature_value:
                    return False
            elif before != after:
                return False
    return True


def _sha1_chain(tmp: Path, eku: str | None) -> tuple[x509.Certificate, x509.Certificate]:
    """A root and a leaf it signed with SHA-1, made by openssl (cryptography no longer signs SHA-1)."""
    if shutil.which("openssl") is None:
        absent.unavailable("openssl not installed")
    tmp.mkdir(exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    new_key = ("-newkey", "rsa:2048", "-nodes")
    ssl("req", "-x509", *new_key, "-keyout", "root.key", "-out", "root.crt", "-subj", "/CN=Legacy Root")
    ssl("req", "-new", *new_key, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=Legacy Signer")
    (tmp / "ext.cnf").write_text("basicConstraints=CA:FALSE\n" + (f"extendedKeyUsage={eku}\n" if eku else ""))
    ca = ("-CA", "root.crt", "-CAkey", "root.key", "-set_serial", "2", "-days", "30", "-extfile", "ext.cnf")
    ssl("x509", "-req", "-sha1", "-in", "leaf.csr", *ca, "-out", "leaf.crt")
    return load_pem_chain((tmp / "root.crt").read_bytes())[0], load_pem_chain(
        (tmp / "leaf.crt").read_bytes()
    )[0]


def test_sha1_chains_fall_back_to_pyhanko_certvalidator(tmp_path: Path) -> None:
    root, leaf = _sha1_chain(tmp_path / "code", "codeSigning")
    other_root, server = _sha1_chain(tmp_path / "server", "serverAuth")
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == "sha1"
    now = datetime.now(UTC) + timedelta(minutes=1)
    assert not verify_chain(leaf, [], [root], now).ok  # cryptography refuses SHA-1
    result, chain = pkcs7.chain_check(leaf, [], [root], now, (ExtendedKeyUsageOID.CODE_SIGNING,))
    assert result.outcome is Outcome.PASSED and "SHA-1" in result.detail, result
    assert chain.chain[-1] == root
    # ... with the same rules: the EKU, the clock, the roots
    refused, _ = pkcs7.chain_check(server, [], [other_root], now, (ExtendedKeyUsageOID.CODE_SIGNING,))
    assert refused.outcome is Outcome.FAILED and "code signing" in refused.detail
    later = now + timedelta(days=60)
    assert (
        pkcs7.chain_check(leaf, [], [root], later, (ExtendedKeyUsageOID.CODE_SIGNING,))[0].outcome
        is Outcome.FAILED
    )
    assert pkcs7.chain_check(leaf, [], list(ROOTS), now, None)[0].outcome is Outcome.FAILED


def test_two_signers_and_dsa(tmp_path: Path) -> None:
    """Signed twice (RSA from the test PKI, then a DSA key keytool makes): one row per signer."""
    if shutil.which("jarsigner") is None or shutil.which("keytool") is None:
        absent.unavailable("jarsigner/keytool not installed")
    store = tmp_path / "dsa.p12"
    subprocess.run(
        [*KEYTOOL_DSA, "-keystore", str(store), *P12],
        check=True,
        capture_output=True,
    )
    path = tmp_path / "twice.jar"
    shutil.copy(JARS / "unsigned.jar", path)
    for keystore, alias in ((PKI / "rsa-signer.p12", "rsa-signer"), (store, "dsa")):
        subprocess.run([*JARSIGNER_SIGN, str(keystore), str(path), alias], check=True, capture_output=True)
    signatures = {s.location: s for s in HANDLER.inspect(path, True, TRUST)}
    assert set(signatures) == {"META-INF/RSA-SIGN.RSA", "META-INF/DSA.DSA"}
    assert signatures["META-INF/RSA-SIGN.RSA"].status is Status.VERIFIED
    dsa_sig = signatures["META-INF/DSA.DSA"]
    assert dsa_sig.signer is not None and dsa_sig.signer.subject == "CN=DSA Signer"
    assert dsa_sig.signer.key_type == "DSA" and dsa_sig.signer.self_signed
    assert check(dsa_sig, "signature") is Outcome.PASSED and check(dsa_sig, "digest") is Outcome.PASSED
    assert dsa_sig.status is Status.UNTRUSTED


def test_removed_signed_entry_is_reported_as_jarsigner_sees_it(tmp_path: Path) -> None:
    """java.util.jar verifies the entries present: removing a signed one is a warning, not a failure."""
    if shutil.which("jarsigner") is None:
        absent.unavailable("jarsigner not installed")
    path = tmp_path / "removed.jar"
    with zipfile.ZipFile(JARS / "signed-rsa.jar") as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            if info.filename != "com/example/data.txt":
                new.writestr(info, old.read(info.filename))
    done = subprocess.run([*JARSIGNER_VERIFY, str(path)], capture_output=True, text=True)
    sig = only(str(path))
    assert (done.returncode == 0) == (sig.status is Status.VERIFIED)
    assert sig.details["missingEntries"] == ["com/example/data.txt"]
    assert any("missing from the archive" in w for w in sig.warnings)


def test_central_directory_count_mismatch_is_an_error(tmp_path: Path) -> None:
    """A directory zipfile reads only partly (jarsigner: "invalid CEN header") is corrupt: an error."""
    data = bytearray((JARS / "signed-rsa.jar").read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 10] += 1  # total entries
    path = tmp_path / "count.jar"
    path.write_bytes(data)
    with pytest.raises(SigscopeError, match="entries declared"):
        HANDLER.inspect(path, False, TRUST)


def test_sha1_rule_follows_the_jdk() -> None:
    sha1 = jar.parse_manifest(b"Signature-Version: 1.0\r\nSHA1-Digest-Manifest: QUJD\r\n\r\n")
    sha256 = jar.parse_manifest(b"Signature-Version: 1.0\r\nSHA-256-Digest-Manifest: QUJD\r\n\r\n")
    md5 = jar.parse_manifest(b"Signature-Version: 1.0\r\n\r\nName: a\r\nMD5-Digest: QUJD\r\n\r\n")
    old = datetime(2018, 6, 1, tzinfo=UTC)
    assert jar._algorithm_check(sha1, "sha256", None).outcome is Outcome.FAILED
    assert jar._algorithm_check(sha1, "sha256", old).outcome is Outcome.PASSED
    assert jar._algorithm_check(sha1, "sha256", datetime(2019, 6, 1, tzinfo=UTC)).outcome is Outcome.FAILED
    assert jar._algorithm_check(sha256, "sha1", None).outcome is Outcome.FAILED
    assert jar._algorithm_check(sha256, "sha256", None).outcome is Outcome.PASSED
    assert "MD5" in jar._algorithm_check(md5, "sha256", old).detail
