"""Detached signatures next to the file they sign: OpenPGP (`X.asc`, `X.sig`), Sigstore bundles
(`X.sigstore.json`, `X.sigstore`) and cosign `sign-blob` pairs (`X.sig` holding a base64 signature, with
`X.crt`/`X.pem`/`X.cert` holding the certificate, or nothing and a `--key` to check it with).

The handler sniffs the *signature* file; what it reports is about the signed file `X` (its path and
digest), with the signature file as the location. The signed file is read once, a chunk at a time, hashing
with SHA-256 for the report and, when verifying an OpenPGP signature, with the hash the signature names
(over the canonical text, for a text signature) in the same pass.

The files next to a signature (the signed file, a cosign certificate) are read under the scan's
`Boundary`: a partner that is a symbolic link is followed only when the scan follows links, and then only
to a regular file inside the scanned tree; otherwise the signature is an error row that says why. An
Ed25519 sign-blob signature signs the whole file rather than a digest of it, so checking it means holding
the file in memory: past FileLimits.max_in_memory the file is an error row naming that limit, never a
verdict either way (no streaming form of pure Ed25519 exists, and Ed25519ph signatures are other bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from sigscope.errors import SigscopeError, TooLargeError
from sigscope.files.base import FileSignature, FileTrust, TimestampInfo
from sigscope.formats import bundle as bundle_format
from sigscope.formats import simplesigning as ss
from sigscope.model import CertificateInfo, Check, Outcome, PGPSigner, Signature, Status
from sigscope.sources.localfile import Boundary, check_regular, open_regular, read_bounded
from sigscope.trust import certs, pgp
from sigscope.trust.chain import CODE_SIGNING, verify_chain

CHUNK = 1 << 20
MAX_SIGNATURE_FILE = 1 << 20  # a detached signature or bundle is a few KiB; more is not one
_PGP_SUFFIXES = (".asc", ".sig")
_BUNDLE_SUFFIXES = (".sigstore.json", ".sigstore")
_CERT_SUFFIXES = (".crt", ".pem", ".cert")
_ARMOR = b"-----BEGIN PGP SIGNATURE-----"
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n")


class DetachedSignatureError(SigscopeError):
    """A detached signature file that cannot be read as one."""


def _binary_pgp_signature(head: bytes) -> bool:
    """A binary OpenPGP stream whose first packet is a signature (tag 2), old or new format."""
    if not head:
        return False
    first = head[0]
    if first & 0x80 == 0:
        return False
    tag = first & 0x3F if first & 0x40 else (first >> 2) & 0x0F
    return tag == ss.TAG_SIGNATURE


def _base64_text(head: bytes) -> bool:
    text = head.strip()
    return 40 <= len(text) <= 2048 and all(b in _B64 for b in text)


def _subject_for(path: Path, suffixes: Sequence[str]) -> Path | None:
    name = path.name
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return path.with_name(name[: -len(suffix)])
    return None


def classify(head: bytes, path: Path) -> str | None:
    """Which detached kind `path` is ("openpgp", "cosign-blob", "sigstore-bundle"), from name and bytes."""
    name = path.name
    if name.endswith(_BUNDLE_SUFFIXES):
        return "sigstore-bundle" if head.lstrip()[:1] == b"{" else None
    if not name.endswith(_PGP_SUFFIXES):
        return None
    if head.startswith(_ARMOR) or _binary_pgp_signature(head):
        return "openpgp"
    if name.endswith(".sig") and _base64_text(head):
        return "cosign-blob"
    return None


def _present(path: Path) -> bool:
    """A regular file or a symbolic link (to be judged when read) stands at `path`: nothing is followed."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def subject_of(path: Path) -> Path | None:
    """The file a detached signature signs, when a file or a link by its name stands next to it."""
    subject = _subject_for(path, (*_BUNDLE_SUFFIXES, *_PGP_SUFFIXES))
    return subject if subject is not None and _present(subject) else None


def _partner(path: Path, boundary: Boundary, what: str) -> Path:
    """`path`, once the boundary lets it be read: UnsafeFileError for a link not to be followed or one
    leading out of the tree, before a byte of it is read."""
    check_regular(str(path), boundary, what)
    return path


@dataclass
class DetachedResult:
    signature_file: Path
    subject: Path | None  # None: a bundle whose artifact is not next to it
    digest: str | None  # "sha256:<hex>" of the subject
    size: int = 0
    signatures: list[FileSignature] = field(default_factory=list)


def _read_signature_file(path: Path, boundary: Boundary) -> bytes:
    try:
        return read_bounded(path, MAX_SIGNATURE_FILE, path.name, boundary)
    except TooLargeError:
        raise DetachedSignatureError(
            f"{path.name}: larger than {MAX_SIGNATURE_FILE} bytes for a signature"
        ) from None


class _Canonical:
    """A text signature's canonical form (every line ending CR LF), a chunk at a time: a CR that ends
    one chunk waits for the next, which may start with its LF."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        self._carry = b""
        if data.endswith(b"\r"):
            data, self._carry = data[:-1], b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def end(self) -> bytes:
        return self._carry


def _hash_file(
    path: Path, boundary: Boundary, extra: Sequence[Any] = (), text: Sequence[Any] = ()
) -> tuple[str, int]:
    """SHA-256 of the file, feeding `extra` hash objects the same bytes and `text` ones their canonical
    text form, in one pass."""
    sha = hashlib.sha256()
    size = 0
    canonical = _Canonical()
    with open_regular(path, boundary, "signed file") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            for h in extra:
                h.update(chunk)
            if text:
                lines = canonical.feed(chunk)
                for h in text:
                    h.update(lines)
            size += len(chunk)
    for h in text:
        h.update(canonical.end())
    return f"sha256:{sha.hexdigest()}", size


def _clock(trust: FileTrust) -> datetime:
    return trust.at or datetime.now(UTC)


# ---------------------------------------------------------------- OpenPGP


@dataclass
class _PGPSig:
    info: ss.OpenPGPSignature
    parsed: Any  # pgp._Sig, None when it cannot be verified


def _dearmor_signature(data: bytes, name: str) -> bytes:
    """The packets of a `PGP SIGNATURE` armor block (RFC 4880 §6.2), CRC-24 checked when present."""
    lines = data.strip().splitlines()
    if not lines or lines[0].strip() != _ARMOR:
        raise DetachedSignatureError(f"{name}: armor is not a PGP SIGNATURE block")
    body: list[bytes] = []
    checksum: bytes | None = None
    for line in lines[1:]:
        text = line.strip()
        if text.startswith(b"-----END PGP SIGNATURE-----"):
            break
        if text.startswith(b"=") and len(text) == 5:
            checksum = text[1:]
        elif text and b":" not in text:  # armor headers are the only lines with a colon
            body.append(text)
    else:
        raise DetachedSignatureError(f"{name}: armored signature has no END line (truncated?)")
    try:
        packets = binascii.a2b_base64(b"".join(body), strict_mode=True)
        crc = binascii.a2b_base64(checksum, strict_mode=True) if checksum is not None else None
    except binascii.Error as exc:
        raise DetachedSignatureError(f"{name}: armored signature is not valid base64: {exc}") from None
    if crc is not None and int.from_bytes(crc, "big") != pgp._crc24(packets):
        raise DetachedSignatureError(f"{name}: armored signature fails its CRC-24 checksum")
    return packets


def _pgp_signatures(data: bytes, name: str) -> list[_PGPSig]:
    raw = _dearmor_signature(data, name) if data.lstrip().startswith(b"-----BEGIN PGP") else data
    try:
        packets = ss.read_packets(raw, max_packets=64)
    except (SigscopeError, ValueError) as exc:
        raise DetachedSignatureError(f"{name}: not an OpenPGP signature: {exc}") from None
    found = []
    for tag, body in packets:
        if tag != ss.TAG_SIGNATURE:
            raise DetachedSignatureError(f"{name}: OpenPGP packet {tag} in a detached signature")
        try:
            info = ss.parse_signature_packet(body)
        except ss.SimpleSigningError as exc:
            raise DetachedSignatureError(f"{name}: malformed OpenPGP signature: {exc}") from None
        found.append(_PGPSig(info, pgp._read_sig(body)))
    if not found:
        raise DetachedSignatureError(f"{name}: no OpenPGP signature packet")
    return found


def _pgp_record(sig: _PGPSig, location: str) -> FileSignature:
    info = sig.info
    return FileSignature(
        kind="openpgp",
        pgp=PGPSigner(
            key_id=info.key_id or "unknown",
            fingerprint=info.fingerprint,
            algorithm=info.public_key_algorithm_name,
            created=info.created,
        ),
        digest_algorithm=info.hash_algorithm_name.lower().replace("-", ""),
        location=location,
        details={"signatureType": info.signature_type_name},
    )


def _pgp_trailer_hash(sig: _PGPSig) -> Any:
    """A hash object primed for the document bytes; the signature's hashed part is added afterwards."""
    algorithm = pgp._HASHES.get(sig.info.hash_algorithm)
    return hashlib.new(algorithm[0]) if algorithm else None


def _pgp_finish(sig: _PGPSig, h: Any) -> bytes:
    h.update(sig.parsed.parts.hashed)
    if sig.info.version == 4:
        h.update(b"\x04\xff" + len(sig.parsed.parts.hashed).to_bytes(4, "big"))
    digest: bytes = h.digest()
    return digest


def _judge_pgp(
    record: FileSignature, sig: _PGPSig, h: Any, keyring: pgp.Keyring | None, now: datetime
) -> None:
    """gpg's verdicts (GOODSIG, BADSIG, EXPSIG, NO_PUBKEY, REVKEYSIG, EXPKEYSIG) as named checks."""
    info = sig.info
    if keyring is None or not len(keyring):
        record.checks.append(Check.skipped("signature", "no --gpg-keyring supplied: cannot check the math"))
        record.checks.append(Check.failed("trusted-key", "no OpenPGP keyring was supplied"))
        return
    key_ids = list(info.issuer_key_ids)
    candidates = keyring.lookup(key_ids, info.fingerprint)
    if not candidates:
        named = info.key_id or "unknown"
        record.checks.append(Check.skipped("signature", f"NO_PUBKEY {named}: not in the supplied keyring"))
        record.checks.append(
            Check.failed("trusted-key", f"signed by key {named}, not in the supplied keyring")
        )
        return
    if info.signature_type not in (pgp.SIG_BINARY, pgp.SIG_TEXT):
        record.checks.append(Check.failed("signature", f"a {info.signature_type_name} does not sign a file"))
        return
    if info.hash_algorithm not in pgp._DOCUMENT_HASHES or h is None or sig.parsed is None:
        record.checks.append(
            Check.failed("signature", f"{info.hash_algorithm_name} document signatures are refused")
        )
        return
    if info.unknown_critical:
        record.checks.append(
            Check.failed("signature", f"unknown critical subpackets {info.unknown_critical}")
        )
        return
    digest = _pgp_finish(sig, h)
    verified = None
    if digest[:2] == sig.parsed.parts.left16:
        verified = next((c for c in candidates if pgp._verify_value(c[1].key, sig.parsed, digest)), None)
    cert, key = verified or candidates[0]
    is_subkey = key is not cert.primary
    role = f"subkey {key.key.key_id}" if is_subkey else f"key {key.key.key_id}"
    record.pgp = PGPSigner(
        key_id=info.key_id or key.key.key_id,
        fingerprint=cert.fingerprint,
        user_ids=cert.user_ids,
        algorithm=key.key.algorithm_name,
        created=info.created,
    )
    if verified is None:
        record.checks.append(
            Check.failed(
                "signature", f"BADSIG the file does not match the signature by {role} of {cert.name}"
            )
        )
        return
    if info.expires is not None and now >= info.expires:
        record.checks.append(
            Check.failed(
                "signature", f"EXPSIG good signature by {role}, expired at {info.expires.isoformat()}"
            )
        )
        return
    record.checks.append(Check.passed("signature", f"GOODSIG {key.key.algorithm_name} signature by {role}"))
    refusals = cert.primary.refusals(now, "primary key", signer=False) if is_subkey else []
    refusals += key.refusals(now, "subkey" if is_subkey else "key")
    if refusals:
        record.checks.append(Check.failed("trusted-key", f"signed by {cert.name}: {'; '.join(refusals)}"))
    else:
        record.checks.append(Check.passed("trusted-key", f"signed by {cert.name}"))


def _openpgp(path: Path, subject: Path, verify: bool, trust: FileTrust) -> DetachedResult:
    sigs = _pgp_signatures(_read_signature_file(path, trust.boundary.chosen()), path.name)
    records = [_pgp_record(s, str(path)) for s in sigs]
    kinds = [s.info.signature_type if verify else None for s in sigs]
    hashers = [
        _pgp_trailer_hash(s) if kind in (pgp.SIG_BINARY, pgp.SIG_TEXT) else None
        for s, kind in zip(sigs, kinds, strict=True)
    ]
    binary = [h for h, kind in zip(hashers, kinds, strict=True) if h is not None and kind == pgp.SIG_BINARY]
    text = [h for h, kind in zip(hashers, kinds, strict=True) if h is not None and kind == pgp.SIG_TEXT]
    digest, size = _hash_file(subject, trust.boundary, binary, text)
    result = DetachedResult(path, subject, digest, size, records)
    if not verify:
        return result
    now = _clock(trust)
    for record, sig, h in zip(records, sigs, hashers, strict=True):
        _judge_pgp(record, sig, h, trust.gpg_keyring, now)
        record.settle("trusted-key")
    return result


# ---------------------------------------------------------------- cosign sign-blob


def _blob_certificate(subject: Path, boundary: Boundary) -> tuple[Path, x509.Certificate] | None:
    for suffix in _CERT_SUFFIXES:
        candidate = subject.with_name(subject.name + suffix)
        if not _present(candidate):
            continue
        data = _read_signature_file(_partner(candidate, boundary, "certificate file"), boundary)
        if b"-----BEGIN" not in data:
            # cosign sign-blob --output-certificate writes the PEM base64-encoded once more.
            try:
                data = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise DetachedSignatureError(f"{candidate.name}: neither PEM nor base64 PEM") from None
        try:
            chain = certs.load_pem_chain(data)
        except certs.CertificateError as exc:
            raise DetachedSignatureError(f"{candidate.name}: {exc}") from None
        if chain:
            return candidate, chain[0]
    return None


def _blob_key(
    keys: Sequence[Any], signature: bytes, digest_hex: str, subject: Path, size: int, trust: FileTrust
) -> Any:
    """The first of `keys` the signature verifies under, None when none does. Keys that check a digest
    go first; keys that sign the message itself (Ed25519) need the whole file in memory, read once for
    all of them, and only within the max-in-memory limit."""
    digest = bytes.fromhex(digest_hex)
    whole_message = []
    for key in keys:
        ok = bundle_format.verify_digest(key, signature, "sha256", digest)
        if ok:
            return key
        if ok is None:
            whole_message.append(key)
    if not whole_message:
        return None
    limit = trust.limits.max_in_memory
    if size > limit:
        raise TooLargeError(
            f"{subject.name} is {size} bytes: an Ed25519 signature covers the whole file, which would "
            f"have to be held in memory, over the {limit}-byte max-in-memory limit"
        )
    message = read_bounded(subject, limit, subject.name, trust.boundary)
    return next((k for k in whole_message if certs.verify_with_key(k, signature, message)), None)


def _cosign_blob(path: Path, subject: Path, verify: bool, trust: FileTrust) -> DetachedResult:
    try:
        signature = base64.b64decode(
            _read_signature_file(path, trust.boundary.chosen()).strip(), validate=True
        )
    except (binascii.Error, ValueError):
        raise DetachedSignatureError(f"{path.name}: not a base64 signature") from None
    found = _blob_certificate(subject, trust.boundary)
    digest, size = _hash_file(subject, trust.boundary)
    now = _clock(trust)
    record = FileSignature(kind="cosign-blob", digest_algorithm="sha256", location=str(path))
    result = DetachedResult(path, subject, digest, size, [record])
    hex_digest = digest.split(":", 1)[1]
    if found is not None:
        cert_path, leaf = found
        record.signer = certs.summarize(leaf, now)
        record.details["certificateFile"] = str(cert_path)
        try:
            key: Any = leaf.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            record.error = f"certificate key unreadable: {exc}"
            record.settle()
            return result
        if _blob_key([key], signature, hex_digest, subject, size, trust) is not None:
            record.checks.append(Check.passed("signature", "verified over the file with the certificate key"))
        else:
            record.checks.append(
                Check.failed("signature", "does not verify over the file under the certificate key")
            )
        if verify:
            record.checks.append(_chain_check(leaf, [], trust, now, record))
        record.settle()
        return result
    # Key-only: only a supplied key can say anything about these bytes.
    record.details["keyOnly"] = True
    if not verify and not trust.keys:
        record.checks.append(Check.skipped("signature", "key-only signature: verify with --key"))
        record.settle("trusted-key")
        return result
    match = _blob_key(trust.keys, signature, hex_digest, subject, size, trust)
    if match is None:
        record.checks.append(Check.skipped("signature", "no supplied key verifies it"))
        record.checks.append(
            Check.failed("trusted-key", f"not signed by any of the {len(trust.keys)} supplied key(s)")
        )
    else:
        info = certs.public_key_info(match)
        record.public_key = info
        detail = f"signed by supplied {info.key_type} key sha256:{info.sha256}"
        record.checks.append(Check.passed("signature", detail))
        record.checks.append(Check.passed("trusted-key", detail))
    record.settle("trusted-key")
    return result


def _chain_check(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust: FileTrust,
    now: datetime,
    record: FileSignature,
) -> Check:
    outcome = verify_chain(leaf, intermediates, trust.roots, now, eku=(CODE_SIGNING,))
    if outcome.ok:
        root = outcome.root
        record.chain_status = "trusted"
        who = root.subject.rfc4514_string() if root is not None else "a trusted root"
        return Check.passed("trusted-chain", f"chains to {who}")
    record.chain_status = f"untrusted: {outcome.detail}"
    return Check.failed("trusted-chain", outcome.detail)


# ---------------------------------------------------------------- Sigstore bundles


def _sigstore_check(blob: bytes, digest: str | None, trust: Any, record: FileSignature) -> Check:
    """A keyless bundle under --trusted-root: the sigstore library verifies the Fulcio chain, SCT, log entry
    and signature offline, and our identity policy (--certificate-identity...) must hold, as `verify` judges
    a bundle on an image. One `trusted-chain` check says it all: the bundle's own integrity (its signature
    over this file's digest) is already checked by the parser, so what is left is whom to trust."""
    from sigscope.trust.sigstore_offline import verify_bundle

    algorithm, _, hexdigest = (digest or "").partition(":")
    if algorithm != "sha256":
        record.chain_status = "untrusted: no SHA-256 digest of the signed file to verify against"
        return Check.failed("trusted-chain", "the signed file was not found next to the bundle")
    outcome = verify_bundle(blob, trust.sigstore, trust.policy, digest=bytes.fromhex(hexdigest))
    failed = [c for c in outcome.checks if c.outcome is not Outcome.PASSED]
    if failed:
        record.chain_status = f"untrusted: {failed[0].detail}"
        return Check.failed("trusted-chain", "; ".join(f"{c.name}: {c.detail}" for c in failed))
    passed = "; ".join(c.detail for c in outcome.checks)
    record.chain_status = "trusted"
    if outcome.identity is not None:
        record.details["verifiedIdentity"] = outcome.identity
    return Check.passed("trusted-chain", passed)


def from_signature(signature: Signature, kind: str) -> FileSignature:
    """A registry-style `Signature` (Sigstore bundle, cosign, Notary...) as a file-scan record."""
    signer = signature.signer
    cert: CertificateInfo | None = signer.certificate if signer else None
    record = FileSignature(
        kind=kind,
        signer=cert,
        chain=signer.chain if signer else (),
        pgp=signer.pgp if signer else None,
        public_key=signer.public_key if signer else None,
        digest_algorithm=(signature.signed_digest or "").partition(":")[0],
        location=signature.location,
        checks=list(signature.checks),
        status=signature.status,
        error=signature.error,
        details=dict(signature.claims),
    )
    if signature.signing_time:
        record.details["signingTime"] = signature.signing_time.isoformat()
    if signature.timestamped:
        record.timestamp = TimestampInfo(
            kind="rfc3161", status=Outcome.SKIPPED, detail="RFC 3161 token present, not verified here"
        )
    return record


def _bundle(path: Path, subject: Path | None, verify: bool, trust: FileTrust) -> DetachedResult:
    blob = _read_signature_file(path, trust.boundary.chosen())
    digest, size = _hash_file(subject, trust.boundary) if subject is not None else (None, 0)
    now = _clock(trust)
    parsed = bundle_format.parse_bundle(blob, subject_digest=digest or "", location=str(path), now=now)
    record = from_signature(parsed, "sigstore-bundle")
    result = DetachedResult(path, subject, digest, size, [record])
    if not verify or parsed.status is Status.INVALID:
        return result
    leaf_pem = parsed.evidence.get("certificate")
    if leaf_pem is not None:
        if trust.sigstore is not None:
            record.checks.append(_sigstore_check(blob, digest, trust.sigstore, record))
        else:
            chain = certs.load_pem_chain(leaf_pem + parsed.evidence.get("chain", b""))
            record.checks.append(_chain_check(chain[0], chain[1:], trust, now, record))
        record.settle()
        return result
    # Key-signed bundle: the supplied keys decide.
    raw = parsed.evidence.get("signature")
    signed = parsed.signed_digest
    match = None
    if raw is not None and signed and ":" in signed:
        algorithm, _, hex_digest = signed.partition(":")
        match = next(
            (
                k
                for k in trust.keys
                if bundle_format.verify_digest(k, raw, algorithm, bytes.fromhex(hex_digest))
            ),
            None,
        )
    if match is None:
        record.checks.append(
            Check.failed("trusted-key", f"not signed by any of the {len(trust.keys)} supplied key(s)")
        )
    else:
        info = certs.public_key_info(match)
        record.public_key = info
        record.checks = [
            Check.passed("signature", f"verified under supplied key sha256:{info.sha256}")
            if c.name == "signature" and c.outcome is Outcome.SKIPPED
            else c
            for c in record.checks
        ]
        record.checks.append(Check.passed("trusted-key", f"signed by supplied key sha256:{info.sha256}"))
    record.settle("trusted-key")
    return result


# ---------------------------------------------------------------- the handler


def inspect_detached(path: Path, verify: bool, trust: FileTrust) -> DetachedResult:
    """Read one detached signature file and what it says about the file it signs."""
    boundary = trust.boundary
    try:
        with open_regular(path, boundary.chosen(), "signature file") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise DetachedSignatureError(f"cannot read {path}: {exc.strerror}") from None
    kind = classify(head, path)
    try:
        found = subject_of(path)
        subject = _partner(found, boundary, "signed file") if found is not None else None
        if kind == "sigstore-bundle":
            return _bundle(path, subject, verify, trust)
        if kind is None or subject is None:
            raise DetachedSignatureError(f"{path.name}: not a detached signature next to the file it signs")
        if kind == "openpgp":
            return _openpgp(path, subject, verify, trust)
        return _cosign_blob(path, subject, verify, trust)
    except OSError as exc:
        raise DetachedSignatureError(f"cannot read {exc.filename or path}: {exc.strerror}") from None


class DetachedHandler:
    """The `FileHandler` for detached signatures; the walker reports its results under the signed file."""

    name = "detached"
    suffixes = (*_BUNDLE_SUFFIXES, *_PGP_SUFFIXES)  # registry.Classifier: decided by name first

    def sniff(self, head: bytes, path: Path) -> bool:
        kind = classify(head, path)
        if kind is None:
            return False
        # A bundle is worth reading without its artifact (identity, DSSE subjects); a bare signature is not.
        return kind == "sigstore-bundle" or subject_of(path) is not None

    def inspect(self, path: Path, verify: bool, trust: FileTrust) -> Sequence[FileSignature]:
        return inspect_detached(path, verify, trust).signatures


DETACHED = DetachedHandler()
HANDLERS: tuple[DetachedHandler, ...] = (DETACHED,)
