"""APK Signature Scheme v2, v3 and v3.1: the APK Signing Block between a ZIP's entries and its central
directory.

The block is found from the ZIP's end record, never from the file name: the central directory offset, and
just before it the block's trailing size and the magic "APK Sig Block 42". Its ID-value pairs hold one
scheme each (v2 0x7109871a, v3 0xf05368c0, v3.1 0x1b93ad61; others such as padding and source stamps are
ignored). Every scheme lists signers; each signer gets one FileSignature.

Verification follows apksigner (com.android.apksig):
  1. every signature whose algorithm we support verifies over the signed-data bytes under the signer's
     public key, and at least one is supported (`signature`);
  2. that public key is the first certificate's (`certificate`);
  3. the digests list names the same algorithms as the signatures list, and the chunked content digest
     (1 MiB chunks of the entries, the central directory, and the end record pointing at the block)
     matches the one signed for each supported algorithm (`digest`); verity (Merkle tree) digests are not
     computed, so a signer listing only those is never more than unverified;
  4. v3/v3.1: the SDK range signed equals the one the signer record states (`sdk-versions`);
  5. v2 carrying the stripping-protection attribute for v3: the v3 block must be there (`stripping`);
     v3 carrying a proof-of-rotation lineage: each certificate in it is signed by the one before, and the
     last is the signer's (`lineage`; the nodes are reported in details["lineage"], oldest first);
  6. the certificate chain to the user's roots, with jarsigner's extendedKeyUsage rule (`trusted-chain`).
And across schemes (`match_signers`, called by the JAR handler): a v1 (JAR) signer and a v2 signer of the
same APK must be the same certificates (`signers`).
APK certificates are usually self-signed: without the certificate in the trust store they are untrusted.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import IntegrityError
from sigscope.files import pkcs7
from sigscope.files.base import FileSignature, FileTrust
from sigscope.model import Check, Outcome, Status
from sigscope.trust import certs

MAGIC = b"APK Sig Block 42"
SCHEMES = {0x7109871A: "v2", 0xF05368C0: "v3", 0x1B93AD61: "v3.1"}
_SCHEME_NUMBERS = {"2": "v2", "3": "v3"}  # X-Android-APK-Signed values apksigner knows
MAX_BLOCK_SIZE = 64 * 1024 * 1024  # real blocks are kilobytes; beyond this it is an attack, not a signature
_CHUNK = 1 << 20
# The ZIP end of central directory record (the JAR reader checks its entry count with it too)
EOCD = struct.Struct("<4s4H2LH")
EOCD_MAGIC = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"

_STRIPPING_PROTECTION = 0xBEEFF00D  # v2 signed-data attribute: "also signed with scheme <uint32>"
_PROOF_OF_ROTATION = 0x3BA06F8C  # v3 signed-data attribute: the signing certificate lineage


@dataclass(frozen=True)
class Algorithm:
    name: str
    key: type  # the public key class it needs
    hash: str  # of the signature
    content: str  # of the content digest: "sha256", "sha512" or "verity"
    pss_salt: int = 0  # RSASSA-PSS only


ALGORITHMS = {
    0x0101: Algorithm("RSASSA-PSS-SHA256", rsa.RSAPublicKey, "sha256", "sha256", 32),
    0x0102: Algorithm("RSASSA-PSS-SHA512", rsa.RSAPublicKey, "sha512", "sha512", 64),
    0x0103: Algorithm("RSASSA-PKCS1-v1_5-SHA256", rsa.RSAPublicKey, "sha256", "sha256"),
    0x0104: Algorithm("RSASSA-PKCS1-v1_5-SHA512", rsa.RSAPublicKey, "sha512", "sha512"),
    0x0201: Algorithm("ECDSA-SHA256", ec.EllipticCurvePublicKey, "sha256", "sha256"),
    0x0202: Algorithm("ECDSA-SHA512", ec.EllipticCurvePublicKey, "sha512", "sha512"),
    0x0301: Algorithm("DSA-SHA256", dsa.DSAPublicKey, "sha256", "sha256"),
    # The signature is checked; the digest is a Merkle tree root (fs-verity), which we do not compute.
    0x0421: Algorithm("VERITY-RSASSA-PKCS1-v1_5-SHA256", rsa.RSAPublicKey, "sha256", "verity"),
    0x0423: Algorithm("VERITY-ECDSA-SHA256", ec.EllipticCurvePublicKey, "sha256", "verity"),
    0x0425: Algorithm("VERITY-DSA-SHA256", dsa.DSAPublicKey, "sha256", "verity"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha512": hashes.SHA512}


def algorithm_name(alg_id: int) -> str:
    known = ALGORITHMS.get(alg_id)
    return known.name if known else f"unknown-0x{alg_id:04x}"


@dataclass
class SigningBlock:
    offset: int  # of the block's first byte (its leading size field)
    cd_offset: int
    eocd_offset: int
    eocd: bytes  # the end record with its comment, as in the file
    schemes: dict[str, bytes]  # scheme name → the pair's value (the first pair of an ID wins)


@dataclass
class Signer:
    scheme: str
    index: int  # 1-based, in block order
    signed_data: bytes
    digests: list[tuple[int, bytes]]
    certificates: list[bytes]
    attributes: list[tuple[int, bytes]]
    signatures: list[tuple[int, bytes]]
    public_key: bytes
    signed_sdk: tuple[int, int] | None = None  # v3: (min, max) inside the signed data
    sdk: tuple[int, int] | None = None  # v3: (min, max) in the signer record
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- the block


def _read_at(handle: IO[bytes], offset: int, size: int, what: str) -> bytes:
    try:
        handle.seek(offset)
        data = handle.read(size)
    except OSError as exc:
        raise IntegrityError(f"cannot read {what}: {exc}") from None
    if len(data) != size:
        raise IntegrityError(f"{what} runs past the end of the file")
    return data


def _end_record(handle: IO[bytes], size: int) -> tuple[int, bytes, bool] | None:
    """(offset, bytes, exact) of the end record: the one whose comment length reaches exactly the end of the
    file (exact, as apksig wants), else the last one zipfile would settle for."""
    # The usual case, no comment, costs one small read; otherwise the whole window a comment allows.
    last: tuple[int, bytes, bool] | None = None
    for window in (EOCD.size, EOCD.size + 0xFFFF):
        start = max(0, size - window)
        tail = _read_at(handle, start, size - start, "the ZIP end record")
        at = len(tail) - EOCD.size
        while at >= 0:
            at = tail.rfind(EOCD_MAGIC, 0, at + 4)
            if at < 0:
                break
            (comment,) = struct.unpack_from("<H", tail, at + 20)
            if at + EOCD.size + comment == len(tail):
                return start + at, tail[at:], True
            if last is None:
                last = start + at, tail[at:], False
            at -= 1
        if start == 0:
            break
    return last


def find_block(handle: IO[bytes]) -> SigningBlock | None:
    """The APK Signing Block of a ZIP, None when it has none. A block that is there but malformed is an
    IntegrityError: it was meant to sign the file, and half-reading it would hide that."""
    try:
        size = handle.seek(0, os.SEEK_END)
    except OSError as exc:
        raise IntegrityError(f"cannot read the archive: {exc}") from None
    found = _end_record(handle, size)
    if found is None:
        return None
    eocd_offset, eocd, exact = found
    _sig, _disk, _cd_disk, _here, _total, cd_size, cd_offset, _comment = EOCD.unpack_from(eocd)
    if eocd_offset >= 20 and _read_at(handle, eocd_offset - 20, 4, "the ZIP64 locator") == _ZIP64_LOCATOR:
        return None  # Android refuses ZIP64 APKs; such a file cannot carry a v2+ signature
    if cd_offset < 32 or cd_offset > eocd_offset:
        return None
    trailer = _read_at(handle, cd_offset - 24, 24, "the APK Signing Block trailer")
    if trailer[8:] != MAGIC:
        return None
    if not exact:
        raise IntegrityError("APK Signing Block: the ZIP end record's comment length does not match the file")
    if cd_offset + cd_size != eocd_offset:
        raise IntegrityError(
            "APK Signing Block: the ZIP central directory is not immediately followed by the end record"
        )
    (block_size,) = struct.unpack_from("<Q", trailer)
    if block_size < 24 or block_size + 8 > cd_offset:
        raise IntegrityError(f"APK Signing Block: size {block_size} out of range")
    if block_size > MAX_BLOCK_SIZE:
        raise IntegrityError(f"APK Signing Block is implausibly large ({block_size} bytes)")
    offset = cd_offset - block_size - 8
    block = _read_at(handle, offset, block_size + 8, "the APK Signing Block")
    (leading,) = struct.unpack_from("<Q", block)
    if leading != block_size:
        raise IntegrityError(
            f"APK Signing Block: the sizes at its start and end differ ({leading}, {block_size})"
        )
    schemes: dict[str, bytes] = {}
    at, end, number = 8, len(block) - 24, 0
    while at < end:
        number += 1
        if end - at < 8:
            raise IntegrityError(f"APK Signing Block: pair {number} is truncated")
        (length,) = struct.unpack_from("<Q", block, at)
        if length < 4 or length > end - at - 8:
            raise IntegrityError(f"APK Signing Block: pair {number} has length {length}, out of range")
        (pair_id,) = struct.unpack_from("<I", block, at + 8)
        scheme = SCHEMES.get(pair_id)
        if scheme is not None and scheme not in schemes:
            schemes[scheme] = block[at + 12 : at + 8 + length]
        at += 8 + length
    return SigningBlock(offset, cd_offset, eocd_offset, eocd, schemes)


# -------------------------------------------------------------------------------------------- signers


class _Reader:
    """Little-endian, uint32-length-prefixed fields over bytes; every overrun is an IntegrityError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.at, self.what = data, 0, what

    def remaining(self) -> int:
        return len(self.data) - self.at

    def u32(self, name: str) -> int:
        if self.remaining() < 4:
            raise IntegrityError(f"{self.what}: {name} is truncated")
        (value,) = struct.unpack_from("<I", self.data, self.at)
        self.at += 4
        return int(value)

    def prefixed(self, name: str) -> bytes:
        length = self.u32(f"the length of {name}")
        if length > self.remaining():
            raise IntegrityError(f"{self.what}: {name} claims {length} bytes, {self.remaining()} remain")
        value = self.data[self.at : self.at + length]
        self.at += length
        return value

    def sequence(self, name: str) -> list[bytes]:
        inner = _Reader(self.prefixed(name), f"{self.what}, {name}")
        items: list[bytes] = []
        while inner.remaining():
            items.append(inner.prefixed(f"item {len(items) + 1}"))
        return items


def _id_values(items: list[bytes], what: str, prefixed: bool) -> list[tuple[int, bytes]]:
    """(uint32 id, value) items; the value is length-prefixed (digests, signatures) or the rest of the item
    (attributes)."""
    out = []
    for number, item in enumerate(items, 1):
        reader = _Reader(item, f"{what} {number}")
        ident = reader.u32("the algorithm or attribute id")
        out.append((ident, reader.prefixed("the value") if prefixed else item[4:]))
    return out


def parse_signers(scheme: str, value: bytes) -> list[Signer]:
    """The signers of one scheme's block (v2 layout, or v3's with its SDK ranges)."""
    v3 = scheme != "v2"
    signers = []
    for index, raw in enumerate(_Reader(value, f"APK Signature Scheme {scheme}").sequence("signers"), 1):
        what = f"APK Signature Scheme {scheme} signer {index}"
        reader = _Reader(raw, what)
        signed_data = reader.prefixed("signed data")
        sdk = (reader.u32("minSdkVersion"), reader.u32("maxSdkVersion")) if v3 else None
        signatures = _id_values(reader.sequence("signatures"), f"{what} signature", prefixed=True)
        public_key = reader.prefixed("public key")
        signed = _Reader(signed_data, f"{what} signed data")
        digests = _id_values(signed.sequence("digests"), f"{what} digest", prefixed=True)
        certificates = signed.sequence("certificates")
        signed_sdk = (signed.u32("minSdkVersion"), signed.u32("maxSdkVersion")) if v3 else None
        attributes = _id_values(signed.sequence("additional attributes"), f"{what} attribute", prefixed=False)
        signers.append(
            Signer(
                scheme,
                index,
                signed_data,
                digests,
                certificates,
                attributes,
                signatures,
                public_key,
                signed_sdk,
                sdk,
            )
        )
    if not signers:
        raise IntegrityError(f"APK Signature Scheme {scheme} block lists no signers")
    return signers


# ------------------------------------------------------------------------------------------- lineage

_LINEAGE_VERSION = 1
# apksig's SigningCertificateLineage capabilities, which the platform grants a past certificate
LINEAGE_FLAGS = ((1, "installed data"), (2, "shared uid"), (4, "permission"), (8, "rollback"), (16, "auth"))
# apksig's words for a signer whose certificate is not the lineage's last (Issue.V3_SIG_POR_CERT_MISMATCH)
POR_CERT_MISMATCH = (
    "APK signing certificate differs from the associated certificate found in the signer's "
    "SigningCertificateLineage."
)


@dataclass
class LineageNode:
    """One certificate of a v3 proof-of-rotation record (apksig's SigningCertificateNode)."""

    certificate: x509.Certificate
    der: bytes
    signed_data: bytes  # the certificate and signed_algorithm, as the previous node's key signed them
    signed_algorithm: int  # the algorithm the previous node signed this one with (0 for the first)
    flags: int
    algorithm: int  # the algorithm this node signs the next one with (0 for the last)
    signature: bytes  # by the previous node's key over signed_data (unused for the first)


def parse_lineage(value: bytes) -> list[LineageNode]:
    """The nodes of a proof-of-rotation attribute, oldest first: a uint32 version (1), then length-prefixed
    nodes, each the length-prefixed signed data (length-prefixed certificate, uint32 algorithm), uint32
    flags, uint32 algorithm and the length-prefixed signature. Signatures are not checked here."""
    reader = _Reader(value, "the v3 signing certificate lineage")
    version = reader.u32("the version")
    if version != _LINEAGE_VERSION:
        raise IntegrityError(f"the v3 signing certificate lineage has version {version}, not 1")
    nodes: list[LineageNode] = []
    while reader.remaining():
        what = f"the v3 signing certificate lineage, certificate {len(nodes) + 1}"
        node = _Reader(reader.prefixed(f"certificate {len(nodes) + 1}"), what)
        signed_data = node.prefixed("signed data")
        flags, algorithm = node.u32("flags"), node.u32("signature algorithm")
        signature = node.prefixed("signature")
        signed = _Reader(signed_data, f"{what}, signed data")
        der = signed.prefixed("certificate")
        signed_algorithm = signed.u32("signature algorithm")
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise IntegrityError(f"{what}: unreadable certificate: {exc}") from None
        nodes.append(
            LineageNode(certificate, der, signed_data, signed_algorithm, flags, algorithm, signature)
        )
    return nodes


def lineage_details(nodes: Sequence[LineageNode], now: datetime) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for number, node in enumerate(nodes):
        info = pkcs7.summarize(node.certificate, now)
        entry: dict[str, object] = {
            "subject": info.subject,
            "sha256": info.sha256,
            "flags": [name for bit, name in LINEAGE_FLAGS if node.flags & bit],
            "flagsValue": node.flags,
        }
        if number:
            entry["signatureAlgorithm"] = algorithm_name(node.signed_algorithm)
        out.append(entry)
    return out


def lineage_check(nodes: Sequence[LineageNode], signer_certificate: bytes) -> Check:
    """apksig's proof-of-rotation rules: each certificate after the first is signed by the one before it,
    with the algorithm that one names (and names in the signed data too); no certificate twice; the last
    is the signer's own."""
    seen: set[bytes] = set()
    for number, node in enumerate(nodes, 1):
        if node.der in seen:
            return Check.failed("lineage", f"certificate {number} appears twice in the lineage")
        seen.add(node.der)
        if number == 1:
            continue
        previous = nodes[number - 2]
        if node.signed_algorithm != previous.algorithm:
            return Check.failed(
                "lineage",
                f"certificate {number}: the signed algorithm {algorithm_name(node.signed_algorithm)} is not "
                f"the {algorithm_name(previous.algorithm)} certificate {number - 1} names",
            )
        algorithm = ALGORITHMS.get(previous.algorithm)
        if algorithm is None:
            return Check.failed(
                "lineage",
                f"certificate {number}: unsupported signature algorithm {algorithm_name(previous.algorithm)}",
            )
        try:
            key = previous.certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            return Check.failed("lineage", f"certificate {number - 1}'s key is unusable: {exc}")
        problem = _verify(key, algorithm, node.signature, node.signed_data, f"certificate {number - 1}'s")
        if problem:
            return Check.failed("lineage", f"certificate {number}: {problem} (by certificate {number - 1})")
    if not nodes or nodes[-1].der != signer_certificate:
        return Check.failed("lineage", POR_CERT_MISMATCH)
    return Check.passed(
        "lineage", f"{len(nodes)} certificates, each signed by the one before; the last is the signer's"
    )


def stripped(declared: str | None, block: SigningBlock | None, sf_name: str) -> str | None:
    """apksigner's anti-stripping rule for a v1 signature: an `X-Android-APK-Signed` scheme must be there."""
    if not declared:
        return None
    present = block.schemes if block is not None else {}
    for number in (part.strip() for part in declared.split(",")):
        scheme = _SCHEME_NUMBERS.get(number)
        if scheme is not None and scheme not in present:
            return (
                f"JAR signature {sf_name} indicates the APK is signed using APK Signature Scheme {scheme} "
                "but no such signature was found. Signature stripped?"
            )
    return None


# apksig's words for a signer one of the two schemes lacks (Issue.JAR_SIG_MISSING, Issue.V2_SIG_MISSING)
JAR_SIG_MISSING = "No JAR signature from this signer"
V2_SIG_MISSING = "No APK Signature Scheme v2 signature from this signer"


def match_signers(v1: Sequence[FileSignature], v2: Sequence[FileSignature], verify: bool) -> None:
    """apksig's rule for an APK both JAR-signed and v2-signed: the two signer sets are the same certificates.

    Each row whose leaf certificate the other scheme lacks gets a failed `signers` check (a warning without
    --verify). As apksig, only when both schemes verified (here: no row of either is invalid), and only v1
    against v2: v3 signers are matched by lineage, which apksig checks apart."""
    v2_rows = [s for s in v2 if s.kind == "apk-v2"]
    if not v1 or not v2_rows or any(s.status is Status.INVALID for s in (*v1, *v2_rows)):
        return

    def leaves(rows: Sequence[FileSignature]) -> set[str]:
        # certs.summarize's thumbprint: SHA-256 of the certificate's DER, as apksig compares the encodings
        return {s.signer.sha256 for s in rows if s.signer is not None and s.signer.sha256}

    pairs = ((v1, leaves(v2_rows), V2_SIG_MISSING), (v2_rows, leaves(v1), JAR_SIG_MISSING))
    for rows, others, message in pairs:
        for sig in rows:
            if sig.signer is not None and sig.signer.sha256 in others:
                continue
            if not verify:
                sig.warnings.append(message)
                continue
            # A failed integrity check settles invalid, which _record's UNVERIFIED override never lifts.
            sig.checks.append(Check.failed("signers", message))
            sig.settle()


# ---------------------------------------------------------------------------------------------- records


def inspect(
    handle: IO[bytes], block: SigningBlock | None, verify: bool, trust: FileTrust, now: datetime
) -> list[FileSignature]:
    """One FileSignature per signer of every scheme in the block, in scheme order (v2, v3, v3.1)."""
    if block is None:
        return []
    out: list[FileSignature] = []
    digests: dict[str, bytes] = {}  # content digests, computed once for all signers of this file
    for scheme in ("v2", "v3", "v3.1"):
        value = block.schemes.get(scheme)
        if value is None:
            continue
        try:
            signers = parse_signers(scheme, value)
        except IntegrityError as exc:
            sig = FileSignature(kind=f"apk-{scheme}", location=f"APK Signing Block, scheme {scheme}")
            sig.details["scheme"] = scheme
            sig.error = exc.message
            out.append(sig.settle())
            continue
        for signer in signers:
            out.append(_record(handle, block, signer, verify, trust, now, digests))
    return out


def _record(
    handle: IO[bytes],
    block: SigningBlock,
    signer: Signer,
    verify: bool,
    trust: FileTrust,
    now: datetime,
    digests: dict[str, bytes],
) -> FileSignature:
    sig = FileSignature(
        kind=f"apk-{signer.scheme}",
        location=f"APK Signing Block, scheme {signer.scheme}, signer {signer.index}",
    )
    details = sig.details
    details["scheme"] = signer.scheme
    details["signatureAlgorithms"] = [algorithm_name(a) for a, _ in signer.signatures]
    if signer.sdk is not None:
        details["minSdkVersion"], details["maxSdkVersion"] = signer.sdk
    lineage: list[LineageNode] | None = None
    lineage_error = ""
    if signer.scheme != "v2":
        records = [v for a, v in signer.attributes if a == _PROOF_OF_ROTATION]
        details["proofOfRotation"] = bool(records)
        try:
            if len(records) > 1:
                raise IntegrityError("the signed data holds more than one proof-of-rotation attribute")
            if records:
                lineage = parse_lineage(records[0])
                details["lineage"] = lineage_details(lineage, now)
        except IntegrityError as exc:
            lineage_error = f"malformed lineage: {exc.message}"
            if not verify:
                sig.warnings.append(lineage_error)
    contents = sorted(
        {
            ALGORITHMS[a].content
            for a, _ in signer.signatures
            if a in ALGORITHMS and ALGORITHMS[a].content != "verity"
        }
    )
    sig.digest_algorithm = ",".join(contents)
    if not signer.certificates:
        sig.error = f"APK Signature Scheme {signer.scheme} signer {signer.index} lists no certificates"
        return sig.settle()
    try:
        chain = [x509.load_der_x509_certificate(der) for der in signer.certificates]
    except ValueError as exc:
        sig.error = (
            f"APK Signature Scheme {signer.scheme} signer {signer.index}: unreadable certificate: {exc}"
        )
        return sig.settle()
    leaf, intermediates = chain[0], chain[1:]
    sig.signer = pkcs7.summarize(leaf, now)
    sig.chain = tuple(pkcs7.summarize(c, now) for c in intermediates)
    key: PublicKeyTypes | None = None
    try:
        key = serialization.load_der_public_key(signer.public_key)
        sig.public_key = certs.public_key_info(key)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        sig.warnings.append(f"unreadable public key: {exc}")
    if not verify:
        return sig.settle()

    sig.checks.append(_signature_check(signer, key))
    sig.checks.append(_certificate_check(leaf, key))
    sig.checks.append(_digest_check(handle, block, signer, digests))
    if signer.sdk is not None:
        if signer.signed_sdk == signer.sdk:
            sig.checks.append(
                Check.passed("sdk-versions", "minSdkVersion {} to maxSdkVersion {}".format(*signer.sdk))
            )
        else:
            sig.checks.append(
                Check.failed(
                    "sdk-versions",
                    f"the SDK range signed {signer.signed_sdk} differs from the signer record's {signer.sdk}",
                )
            )
    if lineage_error:
        sig.checks.append(Check.failed("lineage", lineage_error))
    elif lineage is not None:
        sig.checks.append(lineage_check(lineage, signer.certificates[0]))
    for attr_id, attr_value in signer.attributes:
        if signer.scheme == "v2" and attr_id == _STRIPPING_PROTECTION and len(attr_value) >= 4:
            (also,) = struct.unpack_from("<I", attr_value)
            if also == 3 and "v3" not in block.schemes:
                sig.checks.append(
                    Check.failed(
                        "stripping",
                        "the v2 signature says the APK is also signed with APK Signature Scheme v3, "
                        "but no such signature was found. Signature stripped?",
                    )
                )
    pkcs7.record_chain(sig, *pkcs7.chain_check(leaf, intermediates, trust.roots, now, pkcs7.jar_eku(leaf)))
    sig.settle()
    if sig.status is not Status.INVALID and any(
        c.outcome is not Outcome.PASSED for c in sig.checks if c.name in ("signature", "digest")
    ):
        # Integrity was not shown (verity-only digests): no verdict beyond "found".
        sig.status = Status.UNVERIFIED
        sig.warnings.append("the APK contents were not checked, so the signature is not verified")
    return sig


def _signature_check(signer: Signer, key: PublicKeyTypes | None) -> Check:
    if key is None:
        return Check.failed("signature", "the signer's public key is unreadable")
    if not signer.signatures:
        return Check.failed("signature", "no signatures listed")
    supported = [(a, s) for a, s in signer.signatures if a in ALGORITHMS]
    if not supported:
        listed = ", ".join(algorithm_name(a) for a, _ in signer.signatures)
        return Check.failed("signature", f"no supported signature algorithm ({listed})")
    for alg_id, value in supported:
        problem = _verify(key, ALGORITHMS[alg_id], value, signer.signed_data, "the signer's")
        if problem:
            return Check.failed("signature", problem)
    names = ", ".join(ALGORITHMS[a].name for a, _ in supported)
    return Check.passed("signature", f"{_key_name(key)} signature with {names}")


def _verify(key: PublicKeyTypes, algorithm: Algorithm, value: bytes, data: bytes, whose: str) -> str | None:
    """Why `value` is not `algorithm`'s signature over `data` under `key`, None when it is."""
    if not isinstance(key, algorithm.key):
        return f"{algorithm.name} does not fit {whose} {_key_name(key)} key"
    chosen = _HASHES[algorithm.hash]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(_HASHES[algorithm.hash]()), algorithm.pss_salt)
                if algorithm.pss_salt
                else padding.PKCS1v15()
            )
            key.verify(value, data, pad, chosen)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(value, data, ec.ECDSA(chosen))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(value, data, chosen)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return f"the {algorithm.name} signature does not verify over the signed data"
    return None


def _key_name(key: PublicKeyTypes) -> str:
    try:
        info = certs.public_key_info(key)
    except (ValueError, UnsupportedAlgorithm):
        return "unknown"
    return f"{info.key_type}-{info.key_size}"


def _certificate_check(leaf: x509.Certificate, key: PublicKeyTypes | None) -> Check:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        cert_key = leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return Check.failed("certificate", f"the first certificate's key is unusable: {exc}")
    if key is None or key.public_bytes(serialization.Encoding.DER, spki) != cert_key:
        return Check.failed("certificate", "the signer's public key is not the first certificate's")
    return Check.passed("certificate", "the public key is the first certificate's")


def _digest_check(handle: IO[bytes], block: SigningBlock, signer: Signer, cache: dict[str, bytes]) -> Check:
    signature_ids = [a for a, _ in signer.signatures]
    digest_ids = [a for a, _ in signer.digests]
    if signature_ids != digest_ids:
        return Check.failed(
            "digest", "the signature algorithms differ between the digests and signatures records"
        )
    listed = dict(signer.digests)
    wanted = [
        (a, ALGORITHMS[a]) for a in signature_ids if a in ALGORITHMS and ALGORITHMS[a].content != "verity"
    ]
    if not wanted:
        return Check.skipped(
            "digest", "only verity (Merkle tree) digests are listed; the contents were not checked"
        )
    missing = [c for c in {alg.content for _, alg in wanted} if c not in cache]
    if missing:
        try:
            cache.update(content_digests(handle, block, missing))
        except IntegrityError as exc:
            return Check.failed("digest", exc.message)
    for alg_id, algorithm in wanted:
        if cache[algorithm.content] != listed[alg_id]:
            return Check.failed(
                "digest",
                f"{algorithm.content.upper()} digest of the APK contents does not match the signed one",
            )
    names = ", ".join(sorted({alg.content.upper() for _, alg in wanted}))
    return Check.passed("digest", f"the APK contents match the signed {names} digest")


def content_digests(handle: IO[bytes], block: SigningBlock, names: Sequence[str]) -> dict[str, bytes]:
    """The v2 content digest: each 1 MiB chunk of the entries, the central directory and the end record
    (its CD offset pointing at the signing block) hashed as 0xa5 || len || chunk, then 0x5a || count ||
    the chunk digests."""
    eocd = bytearray(block.eocd)
    struct.pack_into("<L", eocd, 16, block.offset)
    sections: list[tuple[int, int]] = [
        (0, block.offset),
        (block.cd_offset, block.eocd_offset - block.cd_offset),
    ]
    chunk_digests: dict[str, list[bytes]] = {name: [] for name in names}

    def add(chunk: bytes) -> None:
        prefix = b"\xa5" + struct.pack("<I", len(chunk))
        for name in names:
            hasher = hashlib.new(name, prefix)
            hasher.update(chunk)
            chunk_digests[name].append(hasher.digest())

    for start, length in sections:
        at = 0
        while at < length:
            size = min(_CHUNK, length - at)
            add(_read_at(handle, start + at, size, "the APK contents"))
            at += size
    add(bytes(eocd))
    out = {}
    for name in names:
        parts = chunk_digests[name]
        top = hashlib.new(name, b"\x5a" + struct.pack("<I", len(parts)))
        for part in parts:
            top.update(part)
        out[name] = top.digest()
    return out
