"""Sigstore bundles (protobuf-specs ``dev.sigstore.bundle.v1.Bundle``, v0.1-v0.3) and Rekor entry bodies.

A bundle is parsed into one :class:`Signature`: who the verification material names, what the content
signs (a message digest or a DSSE in-toto statement), whether the signature holds under the carried key,
and whether each transparency-log entry describes this very signature. Signed entry timestamps, inclusion
proofs and RFC 3161 tokens need trust material (log and TSA keys) and are only recorded here.

The Rekor body helpers are shared with the legacy cosign layers, whose bundle annotation carries the
same entry kinds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sigscope.formats import dsse, gojson
from sigscope.model import Check, Signature, SignatureFormat, SignerIdentity
from sigscope.trust import certs

BUNDLE_MEDIA_TYPE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
BUNDLE_MEDIA_TYPE_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
BUNDLE_MEDIA_TYPE_V03_LEGACY = "application/vnd.dev.sigstore.bundle+json;version=0.3"
BUNDLE_MEDIA_TYPE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE_V01,
    BUNDLE_MEDIA_TYPE_V02,
    BUNDLE_MEDIA_TYPE_V03_LEGACY,
    BUNDLE_MEDIA_TYPE_V03,
)
_VERSIONS = {
    BUNDLE_MEDIA_TYPE_V01: "0.1",
    BUNDLE_MEDIA_TYPE_V02: "0.2",
    BUNDLE_MEDIA_TYPE_V03_LEGACY: "0.3",
    BUNDLE_MEDIA_TYPE_V03: "0.3",
}
_FAMILY = "application/vnd.dev.sigstore.bundle"

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SIGNING_TIME_SOURCE = "rekor integratedTime (unverified)"
NO_DIGEST = "the bundle carries no message digest: the artifact is needed"
UNVERIFIED_LOG_NOTE = "{what} not verified here (needs the Rekor public key)"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class MalformedError(ValueError):
    """Bytes that cannot be read as what they claim to be; the message is meant for a user."""


def _normalize_media_type(media_type: str) -> str:
    return ";".join(part.strip() for part in media_type.strip().lower().split(";"))


def is_bundle_media_type(media_type: str) -> bool:
    """Whether a layer or artifact type belongs to the bundle family.

    Deliberately wider than :data:`BUNDLE_MEDIA_TYPES` (cosign v3 matches the same prefix): a bundle of a
    version we do not know should be found and reported as unsupported, not silently passed over.
    """
    return _normalize_media_type(media_type).startswith(_FAMILY)


def bundle_version(media_type: str) -> str | None:
    """The bundle version ("0.1", "0.2" or "0.3") a known media type spelling stands for, else None."""
    return _VERSIONS.get(_normalize_media_type(media_type))


# ---------------------------------------------------------------- small readers


def b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedError(f"{what} is not a base64 string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what} is not valid base64") from None


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        document = gojson.read(data, what)
    except ValueError as exc:
        raise MalformedError(str(exc)) from None
    if not isinstance(document, dict):
        raise MalformedError(f"{what} is not a JSON object")
    return document


def _object(parent: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise MalformedError(f"{what} has no {key} object")
    return value


def _int(value: Any, what: str) -> int:
    """protobuf JSON writes int64 as strings; older producers wrote numbers."""
    if isinstance(value, bool):
        raise MalformedError(f"{what} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise MalformedError(f"{what} is not an integer")


def epoch(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None
    except (OverflowError, OSError, ValueError):
        return None


def pem_bytes(chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)


_HASH_NAMES = {
    "sha256": "sha256",
    "sha2_256": "sha256",
    "sha384": "sha384",
    "sha2_384": "sha384",
    "sha512": "sha512",
    "sha2_512": "sha512",
}


def _hash_name(name: Any) -> str | None:
    """Rekor writes "sha256", protobuf writes "SHA2_256"; both mean the same hash."""
    return _HASH_NAMES.get(name.strip().lower()) if isinstance(name, str) else None


# ---------------------------------------------------------------- Rekor entry bodies


@dataclass(frozen=True)
class RecordedKey:
    """The verifier a log entry names: a certificate or a bare public key."""

    key: PublicKeyTypes
    certificate: x509.Certificate | None = None


@dataclass
class RekorEntry:
    """The comparable facts of a Rekor entry body, whatever its kind."""

    kind: str
    version: str
    signatures: list[bytes] = field(default_factory=list)
    keys: list[RecordedKey] = field(default_factory=list)
    data_digest: tuple[str, bytes] | None = None  # hashedrekord/rekord: the signed bytes' digest
    payload_digest: tuple[str, bytes] | None = None  # dsse/intoto: digest of the DSSE payload
    envelope_digest: tuple[str, bytes] | None = None  # dsse/intoto: digest of the envelope JSON
    unread: str = ""  # why nothing could be compared (unknown kind)


def _load_recorded_key(data: bytes, what: str) -> RecordedKey:
    """Rekor records PEM (v1) or DER (v2) certificates or SubjectPublicKeyInfo."""
    loaders: list[Any]
    if b"-----BEGIN" in data:
        loaders = [
            lambda d: x509.load_pem_x509_certificate(d),
            lambda d: serialization.load_pem_public_key(d),
        ]
    else:
        loaders = [
            lambda d: x509.load_der_x509_certificate(d),
            lambda d: serialization.load_der_public_key(d),
        ]
    for loader in loaders:
        try:
            loaded = loader(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if isinstance(loaded, x509.Certificate):
            try:
                return RecordedKey(key=loaded.public_key(), certificate=loaded)
            except (ValueError, UnsupportedAlgorithm):
                continue
        return RecordedKey(key=loaded)
    raise MalformedError(f"{what} is neither a certificate nor a public key")


def _hex_digest(value: Any, what: str) -> tuple[str, bytes]:
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is missing")
    algorithm = _hash_name(value.get("algorithm"))
    text = value.get("value")
    if algorithm is None or not isinstance(text, str):
        raise MalformedError(f"{what} has no algorithm or value")
    try:
        return algorithm, bytes.fromhex(text)
    except ValueError:
        raise MalformedError(f"{what} is not hex") from None


def _b64_digest(value: Any, what: str) -> tuple[str, bytes]:
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is missing")
    algorithm = _hash_name(value.get("algorithm"))
    if algorithm is None:
        raise MalformedError(f"{what} names no known hash algorithm")
    return algorithm, b64(value.get("digest"), what)


def _v2_verifier(verifier: Any, what: str) -> RecordedKey:
    if not isinstance(verifier, dict):
        raise MalformedError(f"{what} has no verifier")
    for key in ("x509Certificate", "publicKey"):
        holder = verifier.get(key)
        if isinstance(holder, dict) and "rawBytes" in holder:
            return _load_recorded_key(b64(holder["rawBytes"], f"{what} {key}"), what)
    raise MalformedError(f"{what} verifier has neither a certificate nor a public key")


def read_rekor_body(body: bytes) -> RekorEntry:
    """The facts of a canonicalized Rekor entry body; raises :class:`MalformedError`."""
    document = json_object(body, "Rekor entry body")
    kind = str(document.get("kind", ""))
    version = str(document.get("apiVersion", ""))
    spec = _object(document, "spec", "Rekor entry body")
    entry = RekorEntry(kind=kind, version=version)
    if kind in ("hashedrekord", "rekord") and version == "0.0.1":
        data = _object(spec, "data", f"{kind} entry")
        entry.data_digest = _hex_digest(data.get("hash"), f"{kind} data hash")
        signature = _object(spec, "signature", f"{kind} entry")
        entry.signatures.append(b64(signature.get("content"), f"{kind} signature"))
        public_key = signature.get("publicKey")
        if isinstance(public_key, dict) and "content" in public_key:
            try:
                entry.keys.append(
                    _load_recorded_key(b64(public_key["content"], f"{kind} public key"), f"{kind} public key")
                )
            except MalformedError:
                # rekord also logs PGP, minisign and SSH keys; those say nothing about an X.509 signer.
                if kind == "hashedrekord":
                    raise
    elif kind == "hashedrekord" and version == "0.0.2":
        inner = _object(spec, "hashedRekordV002", "hashedrekord 0.0.2 entry")
        entry.data_digest = _b64_digest(inner.get("data"), "hashedrekord 0.0.2 data")
        signature = _object(inner, "signature", "hashedrekord 0.0.2 entry")
        entry.signatures.append(b64(signature.get("content"), "hashedrekord 0.0.2 signature"))
        entry.keys.append(_v2_verifier(signature.get("verifier"), "hashedrekord 0.0.2 signature"))
    elif kind == "dsse" and version == "0.0.1":
        if "payloadHash" in spec:
            entry.payload_digest = _hex_digest(spec["payloadHash"], "dsse payloadHash")
        if "envelopeHash" in spec:
            entry.envelope_digest = _hex_digest(spec["envelopeHash"], "dsse envelopeHash")
        for position, item in enumerate(spec.get("signatures") or []):
            if not isinstance(item, dict):
                raise MalformedError(f"dsse signature {position} is not an object")
            entry.signatures.append(b64(item.get("signature"), f"dsse signature {position}"))
            if "verifier" in item:
                what = f"dsse verifier {position}"
                entry.keys.append(_load_recorded_key(b64(item["verifier"], what), what))
    elif kind == "dsse" and version == "0.0.2":
        inner = _object(spec, "dsseV002", "dsse 0.0.2 entry")
        if "payloadHash" in inner:
            entry.payload_digest = _b64_digest(inner["payloadHash"], "dsse 0.0.2 payloadHash")
        for position, item in enumerate(inner.get("signatures") or []):
            if not isinstance(item, dict):
                raise MalformedError(f"dsse 0.0.2 signature {position} is not an object")
            entry.signatures.append(b64(item.get("content"), f"dsse 0.0.2 signature {position}"))
            entry.keys.append(_v2_verifier(item.get("verifier"), f"dsse 0.0.2 signature {position}"))
    elif kind == "intoto" and version in ("0.0.1", "0.0.2"):
        content = _object(spec, "content", "intoto entry")
        if "payloadHash" in content:
            entry.payload_digest = _hex_digest(content["payloadHash"], "intoto payloadHash")
        if "hash" in content:
            entry.envelope_digest = _hex_digest(content["hash"], "intoto hash")
        envelope = content.get("envelope")
        if version == "0.0.2" and isinstance(envelope, dict):
            for position, item in enumerate(envelope.get("signatures") or []):
                if not isinstance(item, dict):
                    raise MalformedError(f"intoto signature {position} is not an object")
                # intoto 0.0.2 stores the already-base64 DSSE signature base64-encoded once more.
                once = b64(item.get("sig"), f"intoto signature {position}")
                try:
                    entry.signatures.append(base64.b64decode(once, validate=True))
                except (binascii.Error, ValueError):
                    entry.signatures.append(once)
                if "publicKey" in item:
                    what = f"intoto public key {position}"
                    entry.keys.append(_load_recorded_key(b64(item["publicKey"], what), what))
        if version == "0.0.1" and "publicKey" in spec:
            entry.keys.append(
                _load_recorded_key(b64(spec["publicKey"], "intoto public key"), "intoto public key")
            )
    else:
        entry.unread = f"log entry kind {kind or '?'} {version or '?'} is not one we compare"
    return entry


@dataclass(frozen=True)
class SignedMaterial:
    """What one signature consists of, for comparison with what the log recorded."""

    signature: bytes
    key: PublicKeyTypes | None = None
    certificate: x509.Certificate | None = None
    signed_bytes: bytes | None = None  # the exact bytes the signature covers, when at hand
    signed_digest: tuple[str, bytes] | None = None  # else their digest (a bundle's messageDigest)
    envelope: dsse.Envelope | None = None


def _same_key(recorded: RecordedKey, material: SignedMaterial) -> bool:
    if recorded.certificate is not None and material.certificate is not None:
        return recorded.certificate == material.certificate
    if material.key is None:
        return False
    return certs.spki_sha256(recorded.key) == certs.spki_sha256(material.key)


def compare_rekor_entry(entry: RekorEntry, material: SignedMaterial) -> tuple[list[str], list[str]]:
    """(problems, what matched) between a log entry and the signature it is supposed to record."""
    problems: list[str] = []
    matched: list[str] = []
    if entry.signatures:
        if material.signature in entry.signatures:
            matched.append("signature")
        else:
            problems.append("the log entry records a different signature")
    if entry.keys and (material.key is not None or material.certificate is not None):
        if any(_same_key(k, material) for k in entry.keys):
            matched.append("certificate" if material.certificate is not None else "key")
        else:
            what = "certificate" if material.certificate is not None else "public key"
            problems.append(f"the log entry records a different {what}")
    if entry.data_digest is not None:
        algorithm, recorded = entry.data_digest
        signed = material.signed_bytes
        if signed is None and material.envelope is not None:
            # Rekor v2 logs a DSSE signature as a hashedrekord over the PAE.
            signed = material.envelope.pae()
        actual: bytes | None = None
        if signed is not None and algorithm in _HASHES:
            actual = hashlib.new(algorithm, signed).digest()
        elif material.signed_digest is not None and material.signed_digest[0] == algorithm:
            actual = material.signed_digest[1]
        if actual is None:
            problems.append(f"cannot compare the log entry's {algorithm} digest with this signature")
        elif actual == recorded:
            matched.append(f"{algorithm} digest")
        else:
            problems.append(
                f"the log entry records {algorithm}:{recorded.hex()}, the signed content hashes to "
                f"{algorithm}:{actual.hex()}"
            )
    if entry.payload_digest is not None and material.envelope is not None:
        algorithm, recorded = entry.payload_digest
        if algorithm in _HASHES:
            actual = hashlib.new(algorithm, material.envelope.payload).digest()
            if actual == recorded:
                matched.append("payload digest")
            else:
                problems.append(
                    f"the log entry records payload {algorithm}:{recorded.hex()}, the envelope's payload "
                    f"hashes to {algorithm}:{actual.hex()}"
                )
    if entry.envelope_digest is not None and material.envelope is not None:
        # Rekor hashes the envelope as it re-serializes it; matching is a bonus, a mismatch proves nothing.
        algorithm, recorded = entry.envelope_digest
        if algorithm in _HASHES and hashlib.new(algorithm, material.envelope.go_json()).digest() == recorded:
            matched.append("envelope digest")
    return problems, matched


@dataclass
class TlogFacts:
    kind: str
    version: str
    log_index: int | None
    integrated_time: int
    log_id: str
    promise: bool
    proof: bool
    checkpoint: bool
    entry: RekorEntry | None
    body_error: str | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "version": self.version}
        if self.log_index is not None:
            out["logIndex"] = self.log_index
        when = epoch(self.integrated_time)
        if when is not None:
            out["integratedTime"] = when.isoformat()
        if self.log_id:
            out["logId"] = self.log_id
        out["inclusionPromise"] = self.promise
        out["inclusionProof"] = self.proof
        if self.proof:
            out["checkpoint"] = self.checkpoint
        return out


def rekor_check(name: str, entries: list[TlogFacts], material: SignedMaterial) -> Check:
    """One check over every log entry: each must describe this signature."""
    problems: list[str] = []
    notes: list[str] = []
    compared = 0
    for position, facts in enumerate(entries):
        label = f"entry {position} ({facts.kind} {facts.version}"
        label += f", logIndex {facts.log_index})" if facts.log_index is not None else ")"
        if facts.body_error is not None:
            problems.append(f"{label}: {facts.body_error}")
            continue
        if facts.entry is None:
            continue
        if facts.entry.unread:
            notes.append(f"{label}: {facts.entry.unread}")
            continue
        entry_problems, matched = compare_rekor_entry(facts.entry, material)
        if entry_problems:
            problems.append(f"{label}: {'; '.join(entry_problems)}")
        elif matched:
            compared += 1
            notes.append(f"{label} matches: {', '.join(matched)}")
        else:
            notes.append(f"{label}: nothing comparable")
    if problems:
        return Check.failed(
            name, "transparency log entry is inconsistent with this signature: " + "; ".join(problems)
        )
    if compared:
        proofs = [
            what
            for what, present in (
                ("signed entry timestamp", any(f.promise for f in entries)),
                ("inclusion proof", any(f.proof for f in entries)),
            )
            if present
        ]
        if proofs:
            notes.append(UNVERIFIED_LOG_NOTE.format(what=" and ".join(proofs)))
        return Check.passed(name, "; ".join(notes))
    return Check.skipped(name, "; ".join(notes) or "no transparency log entry to compare")


# ---------------------------------------------------------------- signature checks


def verify_digest(key: PublicKeyTypes, signature: bytes, algorithm: str, digest: bytes) -> bool | None:
    """Verify a signature given only the signed bytes' digest; None when the key type cannot do that.

    certs.verify_with_key needs the message; a bundle's messageSignature gives only its digest.
    """
    factory = _HASHES.get(algorithm)
    if factory is None:
        return None
    hash_algorithm = factory()
    if len(digest) != hash_algorithm.digest_size:
        return False
    prehashed = Prehashed(hash_algorithm)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(prehashed))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, digest, padding.PKCS1v15(), prehashed)
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
                key.verify(signature, digest, pss, prehashed)
            return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    # Ed25519 signs the message itself, never a digest: the artifact is needed.
    return None


def tlog_facts(raw: Any) -> TlogFacts:
    if not isinstance(raw, dict):
        raise MalformedError("tlog entry is not a JSON object")
    kind_version = raw.get("kindVersion")
    kind = version = ""
    if isinstance(kind_version, dict):
        kind = str(kind_version.get("kind", ""))
        version = str(kind_version.get("version", ""))
    log_index = _int(raw["logIndex"], "tlog logIndex") if "logIndex" in raw else None
    integrated = _int(raw["integratedTime"], "tlog integratedTime") if "integratedTime" in raw else 0
    log_id = ""
    log_id_holder = raw.get("logId")
    if isinstance(log_id_holder, dict) and "keyId" in log_id_holder:
        log_id = b64(log_id_holder["keyId"], "tlog logId").hex()
    promise_holder = raw.get("inclusionPromise")
    promise = isinstance(promise_holder, dict) and bool(promise_holder.get("signedEntryTimestamp"))
    proof_holder = raw.get("inclusionProof")
    proof = isinstance(proof_holder, dict)
    checkpoint = False
    if isinstance(proof_holder, dict):
        checkpoint_holder = proof_holder.get("checkpoint")
        checkpoint = isinstance(checkpoint_holder, dict) and bool(checkpoint_holder.get("envelope"))
    entry: RekorEntry | None = None
    body_error: str | None = None
    if "canonicalizedBody" in raw:
        try:
            entry = read_rekor_body(b64(raw["canonicalizedBody"], "tlog canonicalizedBody"))
        except MalformedError as exc:
            body_error = str(exc)
        if entry is not None and not kind:
            body_error = "tlog entry has no kindVersion"
        elif entry is not None and (entry.kind, entry.version) != (kind, version):
            body_error = f"kindVersion says {kind} {version}, the body is {entry.kind} {entry.version}"
    else:
        body_error = "no canonicalizedBody"
    return TlogFacts(
        kind, version, log_index, integrated, log_id, promise, proof, checkpoint, entry, body_error
    )


def record_log_time(sig: Signature, entries: list[TlogFacts]) -> None:
    """The first integratedTime becomes a *claimed* signing time; only a verified SET makes it one."""
    for facts in entries:
        when = epoch(facts.integrated_time)
        if when is not None:
            sig.signing_time = when
            sig.claims["rekorIntegratedTime"] = when.isoformat()
            sig.claims["signingTimeSource"] = SIGNING_TIME_SOURCE
            if facts.log_index is not None:
                sig.claims["logIndex"] = facts.log_index
            return
    for facts in entries:
        if facts.log_index is not None:
            sig.claims["logIndex"] = facts.log_index
            return


def recorded_key(entries: list[TlogFacts]) -> RecordedKey | None:
    """The verifier the first readable log entry names, for signatures that carry no key themselves."""
    for facts in entries:
        if facts.entry is not None and facts.entry.keys:
            return facts.entry.keys[0]
    return None


# ---------------------------------------------------------------- the bundle


def parse_bundle(blob: bytes, *, subject_digest: str, location: str, now: datetime) -> Signature:
    """One Sigstore bundle as a Signature record; never raises."""
    sig = Signature(format=SignatureFormat.SIGSTORE_BUNDLE, subject_digest=subject_digest, location=location)
    sig.evidence["bundle"] = bytes(blob)
    try:
        _parse(sig, blob, now)
    except MalformedError as exc:
        sig.error = str(exc)
    except Exception as exc:  # a scan never dies on one hostile bundle
        sig.error = f"malformed Sigstore bundle: {type(exc).__name__}: {exc}"
    return sig.settle()


def _verification_material(
    material: dict[str, Any],
) -> tuple[list[x509.Certificate], str | None]:
    if "certificate" in material:
        holder = material["certificate"]
        if not isinstance(holder, dict):
            raise MalformedError("verificationMaterial.certificate is not an object")
        return [certs.load_der(b64(holder.get("rawBytes"), "certificate rawBytes"))], None
    if "x509CertificateChain" in material:
        holder = material["x509CertificateChain"]
        listed = holder.get("certificates") if isinstance(holder, dict) else None
        if not isinstance(listed, list) or not listed:
            raise MalformedError("x509CertificateChain carries no certificates")
        chain = []
        for position, item in enumerate(listed):
            if not isinstance(item, dict):
                raise MalformedError(f"x509CertificateChain certificate {position} is not an object")
            chain.append(certs.load_der(b64(item.get("rawBytes"), f"chain certificate {position} rawBytes")))
        return chain, None
    if "publicKey" in material:
        holder = material["publicKey"]
        hint = holder.get("hint") if isinstance(holder, dict) else None
        return [], hint if isinstance(hint, str) else ""
    raise MalformedError("bundle has no certificate, certificate chain or public key hint")


def _parse(sig: Signature, blob: bytes, now: datetime) -> None:
    document = json_object(blob, "Sigstore bundle")
    deferred: list[str] = []
    media_type = document.get("mediaType")
    sig.media_type = media_type if isinstance(media_type, str) else ""
    version = bundle_version(sig.media_type)
    if version is None:
        # Keep reading: who claims to have signed an unsupported bundle is still worth showing.
        deferred.append(f"unsupported Sigstore bundle mediaType {media_type!r}")
    else:
        sig.claims["bundleVersion"] = version

    material = _object(document, "verificationMaterial", "bundle")
    try:
        chain, hint = _verification_material(material)
    except certs.CertificateError as exc:
        raise MalformedError(f"bundle certificate: {exc}") from None
    leaf = chain[0] if chain else None
    if leaf is not None:
        sig.signer = SignerIdentity(
            certificate=certs.summarize(leaf, now), chain=tuple(certs.summarize(c, now) for c in chain[1:])
        )
        sig.evidence["certificate"] = pem_bytes([leaf])
        if len(chain) > 1:
            sig.evidence["chain"] = pem_bytes(chain[1:])
    if hint is not None:
        sig.claims["publicKeyHint"] = hint

    content = _read_content(sig, document, deferred)
    if content.signature is not None:
        sig.evidence["signature"] = content.signature

    # Transparency log entries.
    raw_entries = material.get("tlogEntries") or []
    if not isinstance(raw_entries, list):
        raise MalformedError("tlogEntries is not a list")
    entries = [tlog_facts(raw) for raw in raw_entries]
    if entries:
        sig.claims["tlogEntries"] = [facts.to_json() for facts in entries]
    record_log_time(sig, entries)

    timestamps = material.get("timestampVerificationData")
    tokens = timestamps.get("rfc3161Timestamps") if isinstance(timestamps, dict) else None
    has_tokens = isinstance(tokens, list) and bool(tokens)
    if isinstance(tokens, list) and tokens:
        # A claim until verified against TSA roots; `timestamped` is reserved for verified tokens.
        sig.claims["rfc3161Timestamps"] = len(tokens)

    # Which key the signature is checked with: the certificate's, else the one the log recorded.
    key: PublicKeyTypes | None = None
    key_source = ""
    if leaf is not None:
        try:
            key = leaf.public_key()
            key_source = "with the certificate key"
        except (ValueError, UnsupportedAlgorithm) as exc:
            deferred.append(f"certificate public key unreadable: {exc}")
    elif hint is not None:
        logged = recorded_key(entries)
        if logged is not None:
            key = logged.key
            key_source = "under the key recorded in the Rekor entry"
            if logged.certificate is not None:
                sig.signer = SignerIdentity(certificate=certs.summarize(logged.certificate, now))
            else:
                sig.signer = SignerIdentity(public_key=certs.public_key_info(logged.key))
        else:
            sig.claims["keyOnly"] = True

    sig.checks.extend(content.checks)
    sig.checks.append(_signature_check(content, key, key_source, hint))
    if len(chain) > 1:
        sig.checks.append(certs.chain_links(chain))
    if entries and content.signature is not None:
        signed = SignedMaterial(
            signature=content.signature,
            key=key,
            certificate=leaf,
            signed_digest=content.message_digest,
            envelope=content.envelope,
        )
        sig.checks.append(rekor_check("tlog", entries, signed))
    sig.checks.append(_structure_check(version, entries, has_tokens))
    if deferred:
        sig.error = "; ".join(deferred)


@dataclass
class _Content:
    """What a bundle's signature covers: a message digest, or a DSSE envelope's PAE."""

    signature: bytes | None = None
    message_digest: tuple[str, bytes] | None = None
    envelope: dsse.Envelope | None = None
    checks: list[Check] = field(default_factory=list)


def _read_content(sig: Signature, document: dict[str, Any], deferred: list[str]) -> _Content:
    content = _Content()
    if "messageSignature" in document:
        message = _object(document, "messageSignature", "bundle")
        sig.claims["content"] = "message-signature"
        content.signature = b64(message.get("signature"), "messageSignature signature")
        digest_holder = message.get("messageDigest")
        if isinstance(digest_holder, dict):
            algorithm, digest = _b64_digest(digest_holder, "messageDigest")
            content.message_digest = (algorithm, digest)
            sig.signed_digest = f"{algorithm}:{digest.hex()}"
            content.checks.append(_digest_check(sig.signed_digest, sig.subject_digest))
        else:
            content.checks.append(Check.skipped("payload-digest", NO_DIGEST))
        return content
    if "dsseEnvelope" in document:
        sig.claims["content"] = "dsse-envelope"
        raw_envelope = document["dsseEnvelope"]
        if not isinstance(raw_envelope, dict):
            raise MalformedError("dsseEnvelope is not a JSON object")
        try:
            envelope = dsse.parse_envelope(raw_envelope)
        except dsse.DSSEError as exc:
            raise MalformedError(str(exc)) from None
        content.envelope = envelope
        sig.evidence["payload"] = envelope.payload
        sig.claims["payloadType"] = envelope.payload_type
        if len(envelope.signatures) != 1:
            deferred.append(
                f"DSSE envelope must carry exactly one signature, found {len(envelope.signatures)}"
            )
        if envelope.signatures:
            content.signature = envelope.signatures[0][1]
        content.checks.extend(statement_checks(sig, envelope, deferred))
        return content
    raise MalformedError("bundle has neither a messageSignature nor a dsseEnvelope")


def _digest_check(signed_digest: str, subject_digest: str) -> Check:
    if not subject_digest:
        return Check.skipped("payload-digest", f"signs {signed_digest}; no subject digest to compare")
    if signed_digest.lower() == subject_digest.lower():
        return Check.passed("payload-digest", f"signs {signed_digest}")
    return Check.failed("payload-digest", f"signs {signed_digest}, not {subject_digest}")


def subject_check(
    subjects: list[tuple[str | None, dict[str, str]]], subject_digest: str
) -> tuple[Check, str | None]:
    """The dsse-subject check and the matching subject digest (shared with cosign attestations)."""
    listed = dsse.describe_subjects(subjects)
    if not subject_digest:
        return Check.skipped("dsse-subject", f"no subject digest to compare; statement names {listed}"), None
    match = dsse.matching_subject(subjects, subject_digest)
    if match is not None:
        return Check.passed("dsse-subject", f"statement names {match}"), match
    return Check.failed(
        "dsse-subject", f"no statement subject names {subject_digest}; subjects: {listed}"
    ), None


def statement_checks(
    sig: Signature, envelope: dsse.Envelope, deferred: list[str], *, annotated_type: str | None = None
) -> list[Check]:
    """The in-toto statement inside a DSSE envelope: claims, and the checks that it names this image.

    Shared by bundles and cosign `.att` layers; `annotated_type` is the `.att` layer's unsigned
    predicateType annotation, when there is one.
    """
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        return [
            Check.failed(
                "payload",
                f"payloadType {envelope.payload_type!r} is not {dsse.IN_TOTO_PAYLOAD_TYPE}: "
                "nothing names a digest",
            )
        ]
    try:
        statement = dsse.parse_statement(envelope.payload)
    except dsse.DSSEError as exc:
        deferred.append(str(exc))
        return [Check.failed("payload", str(exc))]
    subjects = dsse.statement_subjects(statement)
    predicate = dsse.predicate_type(statement)
    sig.claims["_type"] = dsse.statement_type(statement)
    sig.claims["predicateType"] = predicate
    sig.claims["subjects"] = dsse.subjects_json(subjects)
    if predicate == COSIGN_SIGN_PREDICATE:
        sig.claims["cosignImageSignature"] = True
    checks = [Check.passed("payload", f"in-toto statement, predicateType {predicate}")]
    if annotated_type and annotated_type != predicate:
        # Policy tools select attestations by this unsigned annotation; a mismatch misleads them.
        sig.claims["annotatedPredicateType"] = annotated_type
        checks.append(
            Check.failed(
                "predicate-type",
                f"layer annotation says {annotated_type}, the signed statement says {predicate}",
            )
        )
    check, match = subject_check(subjects, sig.subject_digest)
    sig.signed_digest = match
    checks.append(check)
    if predicate == COSIGN_SIGN_PREDICATE and match is not None:
        # cosign v3 `sign -a KEY=VALUE` signs its annotations as the image subject's in-toto annotations
        # (what cosign verify shows as "optional" and matches -a against)
        sig.claims["optional"] = _subject_annotations(statement, match)
    return checks


def _subject_annotations(statement: dict[str, Any], digest: str) -> dict[str, str]:
    """String annotations of the first statement subject naming `digest` (in-toto v1 ResourceDescriptor)."""
    algorithm, _, value = digest.partition(":")
    for subject in statement.get("subject") or []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if (
            isinstance(digests, dict)
            and {k.lower(): v.lower() for k, v in digests.items()}.get(algorithm) == value
        ):
            annotations = subject.get("annotations")
            if not isinstance(annotations, dict):
                return {}
            return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}
    return {}


def _signature_check(
    content: _Content, key: PublicKeyTypes | None, key_source: str, hint: str | None
) -> Check:
    signature = content.signature
    if signature is None:
        return Check.skipped("signature", "no signature to verify")
    if content.envelope is None and content.message_digest is None:
        return Check.skipped("signature", NO_DIGEST)
    if key is None:
        if hint is not None:
            return Check.skipped(
                "signature", f"key-only bundle (public key hint {hint!r}): verify with --key"
            )
        return Check.skipped("signature", "no key to verify with")
    if content.envelope is not None:
        ok: bool | None = certs.verify_with_key(key, signature, content.envelope.pae())
        what = "over the DSSE PAE"
    else:
        assert content.message_digest is not None
        algorithm, digest = content.message_digest
        what = f"over the {algorithm} message digest"
        ok = verify_digest(key, signature, algorithm, digest)
        if ok is None:
            return Check.skipped(
                "signature", f"this key type cannot be verified {what} alone: the artifact is needed"
            )
    if ok:
        return Check.passed("signature", f"verified {what} {key_source}")
    return Check.failed("signature", f"does not verify {what} {key_source}")


def _structure_check(version: str | None, entries: list[TlogFacts], timestamped: bool) -> Check:
    """What each bundle version promises to carry (protobuf-specs); a bundle that lacks it is malformed."""
    problems: list[str] = []
    if version == "0.1":
        if not entries:
            problems.append("a v0.1 bundle must carry a transparency log entry")
        elif not all(f.promise for f in entries):
            problems.append("a v0.1 bundle must carry an inclusion promise for every log entry")
    elif version == "0.2" or version == "0.3":
        for position, facts in enumerate(entries):
            if not facts.proof:
                problems.append(f"log entry {position} has no inclusion proof (required since v0.2)")
            elif not facts.checkpoint:
                problems.append(f"log entry {position} has an inclusion proof without a checkpoint")
    if problems:
        return Check.failed("bundle", "; ".join(problems))
    promises = sum(f.promise for f in entries)
    proofs = sum(f.proof for f in entries)
    detail = f"v{version or '?'}: log entries {len(entries)} (with promise {promises}, with proof {proofs})"
    detail += ", RFC 3161 timestamps" if timestamped else ", no RFC 3161 timestamp"
    return Check.passed("bundle", detail)


# ---------------------------------------------------------------- builders (for signing)

CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
CONTENT_MESSAGE_SIGNATURE = "message-signature"
CONTENT_DSSE_ENVELOPE = "dsse-envelope"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def public_key_hint(key: PublicKeyTypes) -> str:
    """The `publicKey.hint` cosign and sigstore-go write: base64(SHA-256(DER SubjectPublicKeyInfo))."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def _material_json(key: PublicKeyTypes, certificates: list[x509.Certificate] | None) -> dict[str, Any]:
    if not certificates:
        return {"publicKey": {"hint": public_key_hint(key)}}
    # The leaf and its intermediates only: a bundle's chain never carries a self-signed root (the verifier
    # brings its own), and sigstore-go refuses a bundle that does ("self-signed certificate found in
    # certificate chain"). cosign drops the root of --certificate-chain the same way.
    leaf, *rest = certificates
    kept = [leaf, *(c for c in rest if c.subject != c.issuer)]
    raw = [{"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in kept]
    if len(raw) == 1:
        return {"certificate": raw[0]}
    return {"x509CertificateChain": {"certificates": raw}}


def _bundle_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def build_message_bundle(
    signature: bytes,
    digest: str,
    key: PublicKeyTypes,
    *,
    certificates: list[x509.Certificate] | None = None,
) -> bytes:
    """A v0.3 bundle whose messageSignature covers the bytes hashing to `digest` ("sha256:<hex>").

    Without `certificates` the verification material is a public-key hint (a managed-key bundle).
    """
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64:
        raise MalformedError(f"a message signature needs a sha256 digest, not {digest!r}")
    return _bundle_bytes(
        {
            "mediaType": BUNDLE_MEDIA_TYPE_V03,
            "verificationMaterial": _material_json(key, certificates),
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(bytes.fromhex(encoded))},
                "signature": _b64(signature),
            },
        }
    )


def cosign_sign_statement(digest: str, annotations: dict[str, str] | None = None) -> bytes:
    """The in-toto v1 statement cosign v3 `sign` signs for an image: one subject naming the manifest digest
    (no name), the `-a` annotations as that subject's annotations (always present, `{}` when none), predicate
    type https://sigstore.dev/cosign/sign/v1 and an empty predicate.

    Field order follows the Statement and ResourceDescriptor protobuf field numbers as protojson writes them
    (`_type`, `subject`, `predicateType`, `predicate`; `digest` before `annotations`), map keys sorted.
    """
    algorithm, _, encoded = digest.partition(":")
    if not algorithm or not encoded:
        raise MalformedError(f"an image signature statement needs an ALGORITHM:HEX digest, not {digest!r}")
    given = annotations or {}
    subject = {"digest": {algorithm: encoded}, "annotations": {k: given[k] for k in sorted(given)}}
    statement = {
        "_type": dsse.STATEMENT_V1,
        "subject": [subject],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()


def build_dsse_bundle(
    envelope: dsse.Envelope, key: PublicKeyTypes, *, certificates: list[x509.Certificate] | None = None
) -> bytes:
    """A v0.3 bundle carrying `envelope` (protobuf JSON names and order; an empty keyid is omitted)."""
    if len(envelope.signatures) != 1:
        raise MalformedError("a Sigstore bundle carries exactly one DSSE signature")
    signatures = []
    for keyid, sig in envelope.signatures:
        entry = {"sig": _b64(sig)}
        if keyid:
            entry["keyid"] = keyid
        signatures.append(entry)
    return _bundle_bytes(
        {
            "mediaType": BUNDLE_MEDIA_TYPE_V03,
            "verificationMaterial": _material_json(key, certificates),
            "dsseEnvelope": {
                "payload": _b64(envelope.payload),
                "payloadType": envelope.payload_type,
                "signatures": signatures,
            },
        }
    )


def referrer_annotations(
    content: str, created: datetime, predicate_type: str | None = None
) -> dict[str, str]:
    """The manifest annotations cosign writes on a bundle referrer (a Go map: sorted keys)."""
    annotations = {
        CONTENT_ANNOTATION: content,
        CREATED_ANNOTATION: created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if predicate_type is not None:
        annotations[PREDICATE_TYPE_ANNOTATION] = predicate_type
    return {k: annotations[k] for k in sorted(annotations)}


def referrer_manifest(
    bundle_blob: bytes,
    subject_media_type: str,
    subject_digest: str,
    subject_size: int,
    annotations: dict[str, str],
) -> bytes:
    """The OCI 1.1 referrer manifest for one bundle, as cosign's WriteReferrer marshals it (ggcr field
    order; the non-standard `artifactType` inside the config descriptor included)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": {
            "mediaType": _OCI_EMPTY,
            "size": len(EMPTY_CONFIG),
            "digest": "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest(),
            "artifactType": BUNDLE_MEDIA_TYPE_V03,
        },
        "layers": [
            {
                "mediaType": BUNDLE_MEDIA_TYPE_V03,
                "size": len(bundle_blob),
                "digest": "sha256:" + hashlib.sha256(bundle_blob).hexdigest(),
            }
        ],
        "annotations": annotations,
        "subject": {"mediaType": subject_media_type, "size": subject_size, "digest": subject_digest},
        "artifactType": BUNDLE_MEDIA_TYPE_V03,
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def verifies_under(blob: bytes, key: PublicKeyTypes) -> bool:
    """Whether a bundle's one signature holds under `key` (a supplied `--key`): over the DSSE PAE, or over
    the message digest. Malformed bundles and key types that need the artifact itself do not verify."""
    try:
        document = json_object(blob, "Sigstore bundle")
        raw_envelope = document.get("dsseEnvelope")
        if isinstance(raw_envelope, dict):
            envelope = dsse.parse_envelope(raw_envelope)
            if len(envelope.signatures) != 1:
                return False
            return certs.verify_with_key(key, envelope.signatures[0][1], envelope.pae())
        message = document.get("messageSignature")
        if not isinstance(message, dict):
            return False
        signature = b64(message.get("signature"), "messageSignature signature")
        algorithm, digest = _b64_digest(message.get("messageDigest"), "messageDigest")
        return verify_digest(key, signature, algorithm, digest) is True
    except (MalformedError, dsse.DSSEError):
        return False
