"""APK Signature Scheme v2/v3/v3.1: identities, checks, and agreement with `apksigner verify`.

Fixtures in tests/fixtures/files/apk were made by apksigner (build_jar_ps_xml.py `apk`); the tampered ones
are signed APKs with bytes changed afterwards. The JAR handler reads them: any ZIP may carry the block.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from testbed import absent
from testbed.cli import run_sigscope
from testbed.file_fixtures import FIXTURES, PKI, SUBJECT, TRUST, bit_flips, inspect_mangled
from testbed.file_fixtures import check_outcome as check

from sigscope.errors import SigscopeError
from sigscope.files import apk, jar
from sigscope.files.base import FileSignature, FileTrust
from sigscope.model import Outcome, Status
from sigscope.trust.certs import load_pem_chain

APKS = FIXTURES / "apk"
HANDLER = jar.HANDLERS[0]
# The min SDK each fixture was signed for (build_jar_ps_xml.APKS): `apksigner verify` needs it, as the
# fixtures carry no real AndroidManifest.xml.
MIN_SDK = {
    "signed-v2-rsa.apk": 24,
    "signed-v3-ec.apk": 28,
    "signed-v1v2v3-rsa.apk": 21,
    "signed-v2-self.apk": 24,
    "tampered-entry-v2.apk": 24,
    "tampered-signature-v2.apk": 24,
    "key-mismatch-v2.apk": 24,
    "stripped-v1v2v3.apk": 21,
    "mixed-signers-v1-ec-v2-rsa.apk": 21,
    "signed-v3-rotated-ec-rsa.apk": 28,
    "tampered-lineage-v3.apk": 28,
}
RSA, EC, SELF = (
    SUBJECT.format(cn) for cn in ("RSA Code Signer", "EC Code Signer", "Self-Signed Code Signer")
)

EXPECTED: dict[str, list[tuple[str, Status, str, str | None]]] = {
    # file: [(kind, status, signer subject, reason fragment)] in record order
    "signed-v2-rsa.apk": [("apk-v2", Status.VERIFIED, RSA, None)],
    "signed-v3-ec.apk": [("apk-v3", Status.VERIFIED, EC, None)],
    "signed-v1v2v3-rsa.apk": [
        ("jar", Status.VERIFIED, RSA, None),
        ("apk-v2", Status.VERIFIED, RSA, None),
        ("apk-v3", Status.VERIFIED, RSA, None),
    ],
    "signed-v2-self.apk": [("apk-v2", Status.UNTRUSTED, SELF, "trusted-chain")],
    "tampered-entry-v2.apk": [("apk-v2", Status.INVALID, RSA, "digest: SHA256 digest of the APK contents")],
    "tampered-signature-v2.apk": [("apk-v2", Status.INVALID, RSA, "signature: the RSASSA-PKCS1-v1_5-SHA256")],
    "key-mismatch-v2.apk": [("apk-v2", Status.INVALID, RSA, "certificate: the signer's public key is not")],
    "stripped-v1v2v3.apk": [("jar", Status.INVALID, RSA, "indicates the APK is signed using APK Signature")],
    # v1 by apksigner (EC), a v2 block by another key added after: each holds, the signer sets differ
    "mixed-signers-v1-ec-v2-rsa.apk": [
        ("jar", Status.INVALID, EC, "signers: No APK Signature Scheme v2 signature from this signer"),
        ("apk-v2", Status.INVALID, RSA, "signers: No JAR signature from this signer"),
    ],
    # apksigner rotate from ec-signer to rsa-signer, v3-signed by rsa-signer with that lineage
    "signed-v3-rotated-ec-rsa.apk": [("apk-v3", Status.VERIFIED, RSA, None)],
    # the lineage's signature over the RSA certificate changed, the v3 signed data re-signed by rsa-signer
    "tampered-lineage-v3.apk": [
        ("apk-v3", Status.INVALID, RSA, "lineage: certificate 2: the ECDSA-SHA256 signature does not verify")
    ],
}


def inspect(path: Path, verify: bool = True, trust: FileTrust = TRUST) -> list[FileSignature]:
    return list(HANDLER.inspect(path, verify, trust))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdicts(name: str) -> None:
    found = inspect(APKS / name)
    assert [(s.kind, s.status, s.signer.subject if s.signer else None) for s in found] == [
        (kind, status, subject) for kind, status, subject, _ in EXPECTED[name]
    ], [s.to_json() for s in found]
    for sig, (_kind, _status, _subject, reason) in zip(found, EXPECTED[name], strict=True):
        if reason is None:
            assert sig.reason == "" and sig.chain_status == "trusted"
        else:
            assert reason in sig.reason, sig.reason


def test_records_carry_scheme_facts() -> None:
    v2 = inspect(APKS / "signed-v2-rsa.apk", verify=False)[0]
    assert v2.status is Status.UNVERIFIED and not v2.checks  # a report checks nothing
    assert v2.location == "APK Signing Block, scheme v2, signer 1"
    assert v2.digest_algorithm == "sha256"
    assert v2.details == {"scheme": "v2", "signatureAlgorithms": ["RSASSA-PKCS1-v1_5-SHA256"]}
    assert v2.signer is not None and v2.signer.issuer == SUBJECT.format("sigscope Test Root CA")
    assert not v2.signer.self_signed and not v2.signer.expired and v2.signer.serial and v2.signer.sha256
    assert [c.subject for c in v2.chain] == [SUBJECT.format("sigscope Test Root CA")]
    assert v2.public_key is not None and v2.public_key.key_type == "RSA"
    v3 = inspect(APKS / "signed-v3-ec.apk", verify=False)[0]
    assert v3.details["scheme"] == "v3" and v3.details["signatureAlgorithms"] == ["ECDSA-SHA256"]
    # apksigner writes its v3 signer from API 24 up, whatever --min-sdk-version says
    assert v3.details["minSdkVersion"] == 24 and v3.details["maxSdkVersion"] == 0x7FFFFFFF
    assert v3.details["proofOfRotation"] is False
    checks = {c.name: c.outcome for c in inspect(APKS / "signed-v3-ec.apk")[0].checks}
    assert checks == dict.fromkeys(
        ["signature", "certificate", "digest", "sdk-versions", "trusted-chain"], Outcome.PASSED
    )
    self_signed = inspect(APKS / "signed-v2-self.apk")[0]
    assert self_signed.signer is not None and self_signed.signer.self_signed
    assert self_signed.chain_status.startswith("untrusted")


def test_self_signed_certificate_in_the_trust_store_verifies() -> None:
    own = FileTrust(roots=tuple(load_pem_chain((PKI / "self-signer.crt").read_bytes())))
    (sig,) = inspect(APKS / "signed-v2-self.apk", trust=own)
    assert sig.status is Status.VERIFIED, sig.to_json()


def test_no_roots_never_verifies() -> None:
    for name in ("signed-v2-rsa.apk", "signed-v3-ec.apk", "signed-v1v2v3-rsa.apk"):
        for sig in inspect(APKS / name, trust=FileTrust()):
            assert sig.status is Status.UNTRUSTED and check(sig, "trusted-chain") is Outcome.FAILED


def test_v1_reports_stripping_without_verify_as_a_warning() -> None:
    (sig,) = inspect(APKS / "stripped-v1v2v3.apk", verify=False)
    assert sig.status is Status.UNVERIFIED and any("Signature stripped?" in w for w in sig.warnings)
    assert check(inspect(APKS / "stripped-v1v2v3.apk")[0], "stripping") is Outcome.FAILED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_agrees_with_apksigner(name: str) -> None:
    """apksigner's exit 0 is exactly "no record invalid"; our `verified` additionally needs trust."""
    if shutil.which("apksigner") is None:
        absent.unavailable("apksigner not installed (apt-get install -y apksigner)")
    done = subprocess.run(
        ["apksigner", "verify", "-v", "--min-sdk-version", str(MIN_SDK[name]), str(APKS / name)],
        capture_output=True,
        text=True,
    )
    found = inspect(APKS / name)
    assert (done.returncode == 0) == all(s.status is not Status.INVALID for s in found), (
        done.stdout + done.stderr,
        [s.to_json() for s in found],
    )
    schemes = {s.kind for s in found if s.status is not Status.INVALID}
    for scheme, kind in (("v1 scheme (JAR signing)", "jar"), ("v2", "apk-v2"), ("v3", "apk-v3")):
        line = next((x for x in done.stdout.splitlines() if x.startswith(f"Verified using {scheme}")), None)
        if line is not None:
            assert line.endswith("true") == (kind in schemes), (line, schemes)
    if "Signature stripped?" in done.stdout + done.stderr:
        message = next(x for x in (done.stdout + done.stderr).splitlines() if "Signature stripped?" in x)
        # apksigner's words, for the first scheme it names
        assert message[message.index("JAR signature META-INF") :] in found[0].reason
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("ERROR: ") and line.endswith("from this signer"):
            # apksig's JAR_SIG_MISSING / V2_SIG_MISSING, in its words, on a row of that scheme
            kind = "jar" if line.startswith("ERROR: JAR signer") else "apk-v2"
            words = line.rpartition(": ")[2]
            assert any(s.kind == kind and f"signers: {words}" in s.reason for s in found), (line, found)
    if "proof-of-rotation record with signature(s) that did not verify" in done.stdout + done.stderr:
        # apksig's V3_SIG_POR_DID_NOT_VERIFY: our lineage check fails that row
        assert any(s.kind == "apk-v3" and "lineage: " in s.reason for s in found), found


def _named(sig: FileSignature, name: str) -> bool:
    return any(c.name == name for c in sig.checks)


def test_v1_and_v2_signers_must_match() -> None:
    """Both signatures of the mixed fixture hold on their own; only the signer rule fails them."""
    rows = inspect(APKS / "mixed-signers-v1-ec-v2-rsa.apk")
    for sig in rows:
        assert [c.name for c in sig.checks if c.outcome is Outcome.FAILED] == ["signers"], sig.to_json()
        assert check(sig, "signature") is Outcome.PASSED and check(sig, "digest") is Outcome.PASSED
    report = inspect(APKS / "mixed-signers-v1-ec-v2-rsa.apk", verify=False)
    # apksigner's EC JAR signature names id-ecPublicKey as its algorithm: ECDSA, whichever reader reads it
    assert (
        rows[0].details["signatureAlgorithm"] == report[0].details["signatureAlgorithm"] == "sha256withecdsa"
    )
    assert [(s.kind, s.status, s.warnings) for s in report] == [
        ("jar", Status.UNVERIFIED, [apk.V2_SIG_MISSING]),
        ("apk-v2", Status.UNVERIFIED, [apk.JAR_SIG_MISSING]),
    ]
    # One signer for both schemes (and v3): nothing added, verified as before.
    for verify in (True, False):
        same = inspect(APKS / "signed-v1v2v3-rsa.apk", verify=verify)
        assert [s.kind for s in same] == ["jar", "apk-v2", "apk-v3"]
        assert all(not _named(s, "signers") and not s.warnings for s in same), [s.to_json() for s in same]


def test_match_signers_rule() -> None:
    """apksig compares only v1 with v2, and only when both verified; a mismatch cannot lift a verdict."""
    ec_v1 = inspect(APKS / "mixed-signers-v1-ec-v2-rsa.apk")[0]
    (v3,) = inspect(APKS / "signed-v3-ec.apk")
    rsa_v1 = inspect(APKS / "signed-v1v2v3-rsa.apk")[0]
    apk.match_signers([rsa_v1], [v3], verify=True)  # RSA v1, EC v3: v3 is not compared
    assert rsa_v1.status is Status.VERIFIED and v3.status is Status.VERIFIED
    (broken,) = inspect(APKS / "tampered-signature-v2.apk")  # an invalid v2: no comparison, as apksig
    jar_row = inspect(APKS / "signed-v1v2v3-rsa.apk")[0]
    jar_row.signer = ec_v1.signer
    apk.match_signers([jar_row], [broken], verify=True)
    assert not _named(jar_row, "signers") and not _named(broken, "signers")
    assert (jar_row.status, broken.status) == (Status.VERIFIED, Status.INVALID)
    # A verity-only v2 signer (left unverified) that does not match settles invalid, not back to verified.
    (v2,) = inspect(APKS / "signed-v2-rsa.apk")
    v2.status = Status.UNVERIFIED
    apk.match_signers([jar_row], [v2], verify=True)
    assert (v2.status, jar_row.status) == (Status.INVALID, Status.INVALID)


def _signed_v2(tmp_path: Path) -> tuple[bytes, apk.SigningBlock]:
    data = (APKS / "signed-v2-rsa.apk").read_bytes()
    with (APKS / "signed-v2-rsa.apk").open("rb") as handle:
        block = apk.find_block(handle)
    assert block is not None
    return data, block


def _pairs(data: bytes, block: apk.SigningBlock) -> list[tuple[int, int, int]]:
    """(id, value start, value end) of every pair in the block, as file offsets."""
    out, at, end = [], block.offset + 8, block.cd_offset - 24
    while at < end:
        (length,) = struct.unpack_from("<Q", data, at)
        (pair_id,) = struct.unpack_from("<I", data, at + 8)
        out.append((pair_id, at + 12, at + 8 + length))
        at += 8 + length
    return out


def test_v3_1_block_is_its_own_record(tmp_path: Path) -> None:
    """A v3 signer under the v3.1 ID (what apksigner 33+ writes for rotation): the same checks, its kind."""
    data = bytearray((APKS / "signed-v3-ec.apk").read_bytes())
    with (APKS / "signed-v3-ec.apk").open("rb") as handle:
        block = apk.find_block(handle)
    assert block is not None
    (start,) = [s for i, s, _ in _pairs(bytes(data), block) if i == 0xF05368C0]
    struct.pack_into("<I", data, start - 4, 0x1B93AD61)
    target = tmp_path / "v31.apk"
    target.write_bytes(bytes(data))
    (sig,) = inspect(target)
    assert sig.kind == "apk-v3.1" and sig.details["scheme"] == "v3.1"
    assert sig.status is Status.VERIFIED, sig.to_json()


def test_unknown_pairs_are_ignored_and_padding_is_not_signed(tmp_path: Path) -> None:
    data, block = _signed_v2(tmp_path)
    padding = [(s, e) for i, s, e in _pairs(data, block) if i == 0x42726577]
    assert padding, "apksigner pads the block to 4096 bytes"
    start, end = padding[0]
    changed = bytearray(data)
    changed[start:end] = b"\xff" * (end - start)
    target = tmp_path / "padded.apk"
    target.write_bytes(bytes(changed))
    (sig,) = inspect(target)
    assert sig.status is Status.VERIFIED  # as apksigner: only the scheme blocks are signed


def test_v2_only_apk_is_no_longer_unsigned(tmp_path: Path) -> None:
    tree = tmp_path / "apps"
    tree.mkdir()
    shutil.copy(APKS / "signed-v2-rsa.apk", tree / "app.bin")  # no reliance on the extension
    done = run_sigscope("scan", "fs", str(tree), "--fail-on", "unsigned", "-o", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["unsigned"] == []
    (row,) = document["filesystem"]["signatures"]
    assert row["kind"] == "apk-v2", row
    # ...and a ZIP without any signature still is
    with zipfile.ZipFile(tree / "plain.apk", "w") as plain:
        plain.writestr("classes.dex", b"dex\n035\x00")
    done = run_sigscope("scan", "fs", str(tree), "--fail-on", "unsigned", "-o", "json")
    assert done.returncode == 1 and json.loads(done.stdout)["unsigned"] == [str(tree / "plain.apk")]


def test_no_block_in_ordinary_zips() -> None:
    for path in (FIXTURES / "jar" / "unsigned.jar", FIXTURES / "jar" / "signed-rsa.jar"):
        with path.open("rb") as handle:
            assert apk.find_block(handle) is None


def _malformed(tmp_path: Path, data: bytes, at: int, value: bytes) -> str:
    changed = bytearray(data)
    changed[at : at + len(value)] = value
    target = tmp_path / "malformed.apk"
    target.write_bytes(bytes(changed))
    with pytest.raises(SigscopeError) as caught:
        inspect(target)
    return str(caught.value)


def test_malformed_blocks_are_clear_errors(tmp_path: Path) -> None:
    data, block = _signed_v2(tmp_path)
    trailer = block.cd_offset - 24
    assert "sizes at its start and end differ" in _malformed(tmp_path, data, block.offset, b"\x01")
    assert "out of range" in _malformed(tmp_path, data, trailer, struct.pack("<Q", 1 << 40))
    assert "out of range" in _malformed(tmp_path, data, trailer, struct.pack("<Q", 8))
    pairs = _pairs(data, block)
    first = pairs[0][1] - 12
    assert "pair 1" in _malformed(tmp_path, data, first, struct.pack("<Q", 1 << 33))
    comment = len(data) - 2
    assert "comment length" in _malformed(tmp_path, data, comment, b"\x05\x00")


def test_malformed_signer_is_an_invalid_record(tmp_path: Path) -> None:
    data, block = _signed_v2(tmp_path)
    (start,) = [s for i, s, _ in _pairs(data, block) if i == 0x7109871A]
    changed = bytearray(data)
    struct.pack_into("<I", changed, start + 4, 0xFFFFFF)  # the first signer's length
    target = tmp_path / "bad-signer.apk"
    target.write_bytes(bytes(changed))
    (sig,) = inspect(target)
    assert sig.kind == "apk-v2" and sig.status is Status.INVALID
    assert "signer" in sig.reason and "claims" in sig.reason


SIGNED = [
    "signed-v2-rsa.apk",
    "signed-v3-ec.apk",
    "signed-v1v2v3-rsa.apk",
    "signed-v2-self.apk",
    "signed-v3-rotated-ec-rsa.apk",
]


def _fixture(name: str, tmp_path: Path) -> tuple[bytes, Path, apk.SigningBlock]:
    """A signed fixture's bytes, a path to write its variants to, and its signing block."""
    with (APKS / name).open("rb") as handle:
        block = apk.find_block(handle)
    assert block is not None
    return (APKS / name).read_bytes(), tmp_path / name, block


@pytest.mark.parametrize("name", SIGNED)
def test_truncated_apks_are_errors_not_crashes(name: str, tmp_path: Path) -> None:
    data, target, block = _fixture(name, tmp_path)
    cuts = {1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 22, len(data) - 1}
    cuts |= {block.offset + 10, block.cd_offset - 10, block.cd_offset + 5}
    for cut in sorted(cuts):
        target.write_bytes(data[:cut])
        try:
            result = inspect(target)
        except SigscopeError:
            continue
        assert all(s.status is not Status.VERIFIED for s in result if s.kind.startswith("apk")), cut


@pytest.mark.parametrize("name", SIGNED)
def test_bit_flips_never_crash_or_verify(name: str, tmp_path: Path) -> None:
    data, target, block = _fixture(name, tmp_path)
    # Only the values of pairs no scheme reads (apksigner's padding) may change under a verified signer.
    unsigned = [(s, e) for i, s, e in _pairs(data, block) if i not in apk.SCHEMES]

    def still_verified(variant: bytes, _sig: FileSignature) -> None:
        position = next(i for i, (a, b) in enumerate(zip(data, variant, strict=True)) if a != b)
        assert any(s <= position < e for s, e in unsigned), position

    variants = bit_flips(data, random.Random(name), count=80)
    # ...and a few aimed at the block itself, where the parser has the most to get wrong
    aimed = random.Random(name + "block")
    for _ in range(40):
        flipped = bytearray(data)
        flipped[aimed.randrange(block.offset, block.cd_offset)] ^= 1 << aimed.randrange(8)
        variants.append(bytes(flipped))
    if name.startswith("signed-v1"):
        # The v1 record has its own unsigned bytes (see test_files_jar), and the block itself is outside the
        # content digest: a change to one scheme's pair leaves the other scheme's signer verified.
        own = {apk.SCHEMES[i]: (s - 12, e) for i, s, e in _pairs(data, block) if i in apk.SCHEMES}

        def outside_its_scheme(variant: bytes, sig: FileSignature) -> None:
            if not sig.kind.startswith("apk"):
                return
            position = next(i for i, (a, b) in enumerate(zip(data, variant, strict=True)) if a != b)
            start, end = own[sig.details["scheme"]]
            inside = block.offset <= position < block.cd_offset
            assert inside and not start <= position < end, (position, sig.kind)

        inspect_mangled(HANDLER, target, variants, outside_its_scheme)
        return
    inspect_mangled(HANDLER, target, variants, still_verified)


def test_verity_only_signer_is_never_verified() -> None:
    """A signer listing only a verity algorithm (re-signed here with the fixture's key): the signature
    holds, the contents are not checked, so there is no verdict beyond "found"."""
    path = APKS / "signed-v2-rsa.apk"
    with path.open("rb") as handle:
        block = apk.find_block(handle)
        assert block is not None
        (signer,) = apk.parse_signers("v2", block.schemes["v2"])
        signed = bytearray(signer.signed_data)
        # digests sequence length, first digest's length, its algorithm id
        assert struct.unpack_from("<I", signed, 8) == (0x0103,)
        struct.pack_into("<I", signed, 8, 0x0421)
        key = serialization.load_pem_private_key((PKI / "rsa-signer.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        value = key.sign(bytes(signed), padding.PKCS1v15(), hashes.SHA256())
        signer.signed_data, signer.signatures = bytes(signed), [(0x0421, value)]
        signer.digests = [(0x0421, signer.digests[0][1])]
        sig = apk._record(handle, block, signer, True, TRUST, datetime.now(UTC), {})
    assert check(sig, "signature") is Outcome.PASSED and check(sig, "digest") is Outcome.SKIPPED
    assert check(sig, "trusted-chain") is Outcome.PASSED
    assert sig.status is Status.UNVERIFIED and sig.details["signatureAlgorithms"] == [
        "VERITY-RSASSA-PKCS1-v1_5-SHA256"
    ]


def test_stripped_rule() -> None:
    block = apk.SigningBlock(0, 0, 0, b"", {"v2": b""})
    assert apk.stripped(None, block, "META-INF/A.SF") is None
    assert apk.stripped("2", block, "META-INF/A.SF") is None
    message = apk.stripped("2, 3", block, "META-INF/A.SF")
    assert message is not None and "Scheme v3" in message and "Signature stripped?" in message
    assert apk.stripped("2", None, "META-INF/A.SF") is not None
    assert apk.stripped("7", None, "META-INF/A.SF") is None  # schemes apksigner does not know are ignored


# ------------------------------------------------------------------------------------------ key rotation

ROTATED = APKS / "signed-v3-rotated-ec-rsa.apk"
ROTATION_FLAGS = ["installed data", "shared uid", "permission", "auth"]  # apksigner rotate's defaults


def test_lineage_is_reported_oldest_first() -> None:
    for verify in (False, True):
        (sig,) = inspect(ROTATED, verify=verify)
        assert sig.details["proofOfRotation"] is True
        lineage = sig.details["lineage"]
        assert [n["subject"] for n in lineage] == [EC, RSA]
        assert sig.signer is not None and lineage[-1]["sha256"] == sig.signer.sha256
        assert [n["flags"] for n in lineage] == [ROTATION_FLAGS, ROTATION_FLAGS]
        assert "signatureAlgorithm" not in lineage[0] and lineage[1]["signatureAlgorithm"] == "ECDSA-SHA256"
    assert check(sig, "lineage") is Outcome.PASSED and sig.status is Status.VERIFIED
    (plain,) = inspect(APKS / "signed-v3-ec.apk")
    assert "lineage" not in plain.details and not _named(plain, "lineage")  # no lineage, no check


def test_lineage_agrees_with_apksigner() -> None:
    """`apksigner lineage --print-certs` (31.x's `verify --print-certs` shows only the signer) names the
    same certificates, in the same order, with the same capabilities."""
    if shutil.which("apksigner") is None:
        absent.unavailable("apksigner not installed (apt-get install -y apksigner)")
    done = subprocess.run(
        ["apksigner", "lineage", "--in", str(ROTATED), "--print-certs"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    theirs: list[tuple[str, str, list[str]]] = []  # subject, SHA-256, capabilities
    for line in done.stdout.splitlines():
        name, _, value = (part.strip() for part in line.partition(":"))
        if name.endswith("in lineage certificate DN"):
            theirs.append((value.replace(", ", ","), "", []))
        elif name.endswith("in lineage certificate SHA-256 digest"):
            theirs[-1] = (theirs[-1][0], value, theirs[-1][2])
        elif name.startswith("Has ") and value == "true":
            theirs[-1][2].append(name.removeprefix("Has ").removesuffix(" capability").replace("UID", "uid"))
    (sig,) = inspect(ROTATED)
    ours = [(n["subject"], n["sha256"], n["flags"]) for n in sig.details["lineage"]]
    assert ours == theirs, (ours, done.stdout)


def _lineage() -> tuple[bytes, apk.Signer]:
    """The rotated fixture's proof-of-rotation value and its v3 signer."""
    with ROTATED.open("rb") as handle:
        block = apk.find_block(handle)
    assert block is not None
    (signer,) = apk.parse_signers("v3", block.schemes["v3"])
    (value,) = [v for a, v in signer.attributes if a == 0x3BA06F8C]
    return value, signer


def _node(der: bytes, signed_algorithm: int, flags: int, algorithm: int, signature: bytes) -> bytes:
    signed = struct.pack("<I", len(der)) + der + struct.pack("<I", signed_algorithm)
    body = struct.pack("<I", len(signed)) + signed + struct.pack("<II", flags, algorithm)
    body += struct.pack("<I", len(signature)) + signature
    return struct.pack("<I", len(body)) + body


def _failed(value: bytes, signer: apk.Signer) -> str:
    """The lineage check's failure on a lineage blob (malformed blobs fail as the row would)."""
    try:
        nodes = apk.parse_lineage(value)
    except SigscopeError as exc:
        return f"malformed: {exc}"
    result = apk.lineage_check(nodes, signer.certificates[0])
    assert result.outcome is Outcome.FAILED, result
    return result.detail


def test_lineage_check_negatives() -> None:
    value, signer = _lineage()
    nodes = apk.parse_lineage(value)
    assert apk.lineage_check(nodes, signer.certificates[0]).outcome is Outcome.PASSED
    first, second = nodes
    # a byte of the second certificate's signature (by the first's key) changed
    bad = bytearray(second.signature)
    bad[-5] ^= 1
    tampered = struct.pack("<I", 1) + _node(first.der, 0, first.flags, first.algorithm, first.signature)
    tampered += _node(second.der, second.signed_algorithm, second.flags, second.algorithm, bytes(bad))
    assert "certificate 2: the ECDSA-SHA256 signature does not verify" in _failed(tampered, signer)
    # the signed algorithm is not the one the previous node names
    other = apk.parse_lineage(value)
    other[0].algorithm = 0x0202
    assert "not the ECDSA-SHA512" in apk.lineage_check(other, signer.certificates[0]).detail
    # the last certificate is not the signer's: the EC certificate alone, or the lineage for another signer
    alone = struct.pack("<I", 1) + _node(first.der, 0, first.flags, 0, b"")
    assert _failed(alone, signer) == apk.POR_CERT_MISMATCH
    assert apk.lineage_check(nodes, first.der).detail == apk.POR_CERT_MISMATCH
    assert apk.lineage_check([], signer.certificates[0]).detail == apk.POR_CERT_MISMATCH
    # the same certificate twice
    twice = struct.pack("<I", 1) + _node(first.der, 0, first.flags, first.algorithm, b"") * 2
    assert "appears twice" in _failed(twice, signer)
    # truncated anywhere, an unknown version, an unreadable certificate: malformed, never a traceback
    for cut in (0, 2, 4, 7, 20, len(value) // 2, len(value) - 1):
        assert _failed(value[:cut], signer).startswith(("malformed", "APK signing certificate")), cut
    assert "version 2" in _failed(struct.pack("<I", 2) + value[4:], signer)
    junk = struct.pack("<I", 1) + _node(b"\x30\x03\x02\x01\x01", 0, 0, 0, b"")
    assert "unreadable certificate" in _failed(junk, signer)


def test_broken_lineage_makes_the_row_invalid() -> None:
    """The v3 row with its parsed lineage replaced (the signed bytes untouched, so the signature still holds):
    the lineage check alone makes it invalid; a report only warns."""
    value, signer = _lineage()
    with ROTATED.open("rb") as handle:
        block = apk.find_block(handle)
        assert block is not None
        now = datetime.now(UTC)
        for lineage, reason in (
            (value[:-3], "lineage: malformed lineage: "),
            (struct.pack("<I", 1), "lineage: " + apk.POR_CERT_MISMATCH),
        ):
            signer.attributes = [(0x3BA06F8C, lineage)]  # as parsed: the signed bytes still hold
            sig = apk._record(handle, block, signer, True, TRUST, now, {})
            assert sig.status is Status.INVALID and reason in sig.reason, sig.to_json()
            assert check(sig, "signature") is Outcome.PASSED
            report = apk._record(handle, block, signer, False, TRUST, now, {})
            assert report.status is Status.UNVERIFIED
            if reason.startswith("lineage: malformed"):
                assert "lineage" not in report.details and report.warnings[0].startswith("malformed lineage")
            else:
                assert report.details["lineage"] == [] and not report.warnings
