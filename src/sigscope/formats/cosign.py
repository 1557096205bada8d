"""Legacy cosign attachments: ``sha256-<hex>.sig`` simple-signing layers and ``.att`` DSSE layers.

Each layer of a ``.sig``/``.att`` manifest is one signature. The caller has already checked the layer
digest; here the payload, the annotations (signature, certificate, chain, Rekor bundle, RFC 3161 token)
and the relations between them become a :class:`Signature`. Nothing is trusted: a certificate or a key
recorded in Rekor only lets us say the signature is self-consistent.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.formats import dsse
from sigscope.formats import payload as payload_format
from sigscope.formats.bundle import (
    MalformedError,
    SignedMaterial,
    TlogFacts,
    b64,
    json_object,
    read_rekor_body,
    record_log_time,
    recorded_key,
    rekor_check,
    statement_checks,
)
from sigscope.model import Check, Descriptor, Signature, SignatureFormat, SignerIdentity
from sigscope.trust import certs

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
PREDICATE_TYPE_ANNOTATION = "predicateType"

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"

SIGNATURE_TAG_SUFFIX = "sig"
ATTESTATION_TAG_SUFFIX = "att"
SBOM_TAG_SUFFIX = "sbom"
# cosign writes the first; the second is the containers/image (atomic) spelling of the same payload.
PAYLOAD_TYPES = frozenset({"cosign container image signature", "atomic container signature"})

_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_ATTACHMENT_TAG = re.compile(r"^(sha256|sha384|sha512)-([0-9a-f]+)\.(sig|att|sbom)$")


def attachment_tag(digest: str, suffix: str) -> str:
    """The tag cosign attaches `suffix` objects under: "sha256:<hex>", "sig" -> "sha256-<hex>.sig".

    Raises ValueError for something that is not a digest: that is a caller's bug, not bad input.
    """
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm or not encoded:
        raise ValueError(f"not a digest: {digest!r}")
    return f"{algorithm}-{encoded}.{suffix}"


def parse_attachment_tag(tag: str) -> tuple[str, str] | None:
    """("sha256:<hex>", "sig"|"att"|"sbom") for a cosign attachment tag, else None."""
    match = _ATTACHMENT_TAG.match(tag)
    if match is None:
        return None
    algorithm, encoded, suffix = match.groups()
    if len(encoded) != _HEX_LENGTHS[algorithm]:
        return None
    return f"{algorithm}:{encoded}", suffix


# ---------------------------------------------------------------- what every layer may carry


@dataclass
class _Attached:
    """Certificate, chain and Rekor bundle read from a layer's annotations."""

    leaf: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)
    has_chain: bool = False
    entries: list[TlogFacts] = field(default_factory=list)


def _read_attached(
    sig: Signature, annotations: dict[str, str], now: datetime, deferred: list[str]
) -> _Attached:
    attached = _Attached()
    cert_text = annotations.get(CERTIFICATE_ANNOTATION, "")
    if cert_text.strip():
        sig.evidence["certificate"] = cert_text.encode()
        loaded = _load_pem(cert_text, "certificate annotation", deferred)
        if loaded:
            attached.leaf = loaded[0]
    if CHAIN_ANNOTATION in annotations:
        attached.has_chain = True
        chain_text = annotations[CHAIN_ANNOTATION]
        if chain_text.strip():
            sig.evidence["chain"] = chain_text.encode()
        attached.chain = _load_pem(chain_text, "chain annotation", deferred)
    if attached.leaf is not None:
        sig.signer = SignerIdentity(
            certificate=certs.summarize(attached.leaf, now),
            chain=tuple(certs.summarize(c, now) for c in attached.chain),
        )

    bundle_text = annotations.get(BUNDLE_ANNOTATION, "")
    if bundle_text.strip():
        sig.evidence["bundle"] = bundle_text.encode()
        try:
            attached.entries = [_legacy_bundle(bundle_text)]
        except MalformedError as exc:
            deferred.append(f"bundle annotation: {exc}")
        record_log_time(sig, attached.entries)

    stamp = annotations.get(TIMESTAMP_ANNOTATION, "")
    if stamp.strip():
        # Presence is only a claim: `timestamped` is set once the token verifies against TSA roots.
        sig.evidence["timestamp"] = stamp.encode()
    return attached


def timestamp_annotation(response: bytes) -> str:
    """The rfc3161timestamp annotation value as cosign writes it: Go's JSON of
    `struct{SignedRFC3161Timestamp []byte}` (standard base64 with padding)."""
    return json.dumps({"SignedRFC3161Timestamp": base64.b64encode(response).decode()}, separators=(",", ":"))


def read_timestamp_annotation(text: str) -> bytes:
    """The DER TimeStampResp inside an rfc3161timestamp annotation; MalformedError otherwise."""
    document = json_object(text, "rfc3161timestamp annotation")
    # Go's decoder matches field names case-insensitively (FORMATS §0).
    value = next((v for k, v in document.items() if k.lower() == "signedrfc3161timestamp"), None)
    if not isinstance(value, str) or not value:
        raise MalformedError("rfc3161timestamp annotation has no SignedRFC3161Timestamp")
    return b64(value, "rfc3161timestamp annotation")


def _record_timestamp(sig: Signature, data: bytes | None) -> None:
    """The carried RFC 3161 timestamp over `data` (cosign: the raw signature, or for attestations the
    layer blob): claimed time and TSA recorded, checked for consistency; trusted only with TSA roots."""
    text = sig.evidence.get("timestamp")
    if text is None:
        return
    # Imported here: only a layer carrying a timestamp needs the CMS machinery (~35 ms of every start).
    from sigscope.trust import timestamp as timestamps

    try:
        response = read_timestamp_annotation(text.decode())
    except (MalformedError, UnicodeDecodeError) as exc:
        sig.checks.append(Check.failed(timestamps.TIMESTAMP_CHECK, str(exc)))
        return
    timestamps.record_timestamp(sig, response, data)


def _load_pem(text: str, what: str, deferred: list[str]) -> list[x509.Certificate]:
    try:
        loaded = certs.load_pem_chain(text)
    except certs.CertificateError as exc:
        deferred.append(f"{what}: {exc}")
        return []
    # load_pem_chain skips what is not a whole PEM block; a cut-off certificate must not pass unnoticed.
    if _PEM_BLOCK.sub("", text).strip():
        deferred.append(f"{what}: text outside complete PEM certificate blocks (truncated?)")
    return loaded


def _legacy_bundle(text: str) -> TlogFacts:
    """cosign's Rekor bundle annotation: a SET over {body, integratedTime, logIndex, logID}."""
    document = json_object(text, "Rekor bundle")
    payload = document.get("Payload")
    if not isinstance(payload, dict):
        raise MalformedError("Rekor bundle has no Payload object")
    body_error: str | None = None
    entry = None
    try:
        entry = read_rekor_body(b64(payload.get("body"), "Rekor bundle body"))
    except MalformedError as exc:
        body_error = str(exc)

    def integer(key: str) -> int | None:
        value = payload.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    log_id = payload.get("logID")
    return TlogFacts(
        kind=entry.kind if entry is not None else "",
        version=entry.version if entry is not None else "",
        log_index=integer("logIndex"),
        integrated_time=integer("integratedTime") or 0,
        log_id=log_id if isinstance(log_id, str) else "",
        promise=bool(document.get("SignedEntryTimestamp")),
        proof=False,
        checkpoint=False,
        entry=entry,
        body_error=body_error,
    )


def _settle_signer(
    sig: Signature,
    attached: _Attached,
    signatures: list[bytes],
    verify: Callable[[PublicKeyTypes, bytes], bool],
    what: str,
    material: Callable[[bytes, PublicKeyTypes | None], SignedMaterial],
    now: datetime,
    deferred: list[str],
) -> None:
    """The signature, chain and bundle checks every layer kind shares."""
    key: PublicKeyTypes | None = None
    source = ""
    if attached.leaf is not None:
        try:
            key = attached.leaf.public_key()
            source = "with the certificate key"
        except (ValueError, UnsupportedAlgorithm) as exc:
            deferred.append(f"certificate public key unreadable: {exc}")
    else:
        logged = recorded_key(attached.entries)
        if logged is not None:
            key = logged.key
            source = "under the key recorded in the Rekor entry"
            if logged.certificate is not None:
                sig.signer = SignerIdentity(certificate=certs.summarize(logged.certificate, now))
            else:
                sig.signer = SignerIdentity(public_key=certs.public_key_info(logged.key))

    chosen = signatures[0] if signatures else None
    if signatures:
        if key is None:
            sig.claims["keyOnly"] = True
            sig.checks.append(_KEY_ONLY)
        else:
            good = next((s for s in signatures if verify(key, s)), None)
            if good is not None:
                chosen = good
                sig.checks.append(Check.passed("signature", f"verified {what} {source}"))
            else:
                sig.checks.append(Check.failed("signature", f"does not verify {what} {source}"))
    if chosen is not None:
        sig.evidence["signature"] = chosen

    if attached.has_chain:
        if attached.leaf is not None:
            sig.checks.append(certs.chain_links([attached.leaf, *attached.chain]))
        else:
            sig.checks.append(Check.skipped("chain", "chain annotation without a certificate annotation"))
    if attached.entries and chosen is not None:
        sig.checks.append(rekor_check("bundle", attached.entries, material(chosen, key)))


# ---------------------------------------------------------------- .sig layers


def parse_signature_layer(
    layer: Descriptor, blob: bytes, *, subject_digest: str, location: str, now: datetime
) -> Signature:
    """One simple-signing layer of a ``.sig`` manifest; never raises."""
    blob = bytes(blob)
    fast = _key_only_layer(layer, blob, subject_digest, location)
    if fast is not None:
        return fast
    sig = Signature(
        format=SignatureFormat.COSIGN,
        subject_digest=subject_digest,
        location=location,
        media_type=layer.media_type,
    )
    return _guarded(sig, lambda deferred: _parse_signature(sig, layer, blob, now, deferred), "signature")


def _key_only_layer(layer: Descriptor, blob: bytes, subject_digest: str, location: str) -> Signature | None:
    """The common layer (`cosign sign --key`: a signature annotation and nothing attached) over a sound
    payload, built directly: the same record _parse_signature makes for it, without its per-layer
    closures and error collection (bench/verify.py). None for anything else, which takes the full path.
    """
    annotations = layer.annotations
    text = annotations.get(SIGNATURE_ANNOTATION)
    if not text or len(blob) > _MEMO_PAYLOAD_MAX or not _ATTACHED_ANNOTATIONS.isdisjoint(annotations):
        return None
    try:
        raw = b64(text, "signature annotation")
        facts = _memo_payload_facts(blob, subject_digest)
    except Exception:  # the full path reports it
        return None
    if facts.problems or not raw:
        return None
    sig = Signature(
        format=_COSIGN,
        subject_digest=subject_digest,
        location=location,
        media_type=layer.media_type,
        claims=dict(facts.claims),
        checks=[*facts.checks, _KEY_ONLY],
        evidence={"payload": blob, "signature": raw},
    )
    if facts.signed_digest is not None:
        sig.signed_digest = facts.signed_digest
    sig.claims["keyOnly"] = True
    return sig.settle()


def _guarded(sig: Signature, body: Callable[[list[str]], None], what: str) -> Signature:
    deferred: list[str] = []
    try:
        body(deferred)
    except MalformedError as exc:
        deferred.append(str(exc))
    except Exception as exc:  # a scan never dies on one hostile layer
        deferred.append(f"malformed cosign {what} layer: {type(exc).__name__}: {exc}")
    if deferred:
        sig.error = "; ".join(deferred)
    return sig.settle()


def _parse_signature(
    sig: Signature, layer: Descriptor, blob: bytes, now: datetime, deferred: list[str]
) -> None:
    annotations = layer.annotations
    sig.evidence["payload"] = blob

    signatures: list[bytes] = []
    text = annotations.get(SIGNATURE_ANNOTATION)
    if text is None:
        deferred.append(f"layer has no {SIGNATURE_ANNOTATION} annotation")
    elif not text.strip():
        deferred.append(f"the {SIGNATURE_ANNOTATION} annotation is empty")
    else:
        try:
            signatures.append(b64(text, "signature annotation"))
        except MalformedError as exc:
            deferred.append(str(exc))

    _apply_payload_facts(sig, blob, deferred)
    if _ATTACHED_ANNOTATIONS.isdisjoint(annotations):
        # Key-only (`cosign sign --key`), the common layer: what _read_attached and _settle_signer
        # conclude when nothing is attached, without building their records (bench/verify.py).
        if signatures:
            sig.claims["keyOnly"] = True
            sig.checks.append(_KEY_ONLY)
            sig.evidence["signature"] = signatures[0]
        return
    attached = _read_attached(sig, annotations, now, deferred)

    def material(signature: bytes, key: PublicKeyTypes | None) -> SignedMaterial:
        # Only a Rekor bundle needs the payload digest; most layers have none.
        return SignedMaterial(
            signature=signature,
            key=key,
            certificate=attached.leaf,
            signed_bytes=blob,
            signed_digest=("sha256", hashlib.sha256(blob).digest()),
        )

    _settle_signer(
        sig,
        attached,
        signatures,
        lambda key, signature: certs.verify_with_key(key, signature, blob),
        "over the payload",
        material,
        now,
        deferred,
    )
    _record_timestamp(sig, sig.evidence.get("signature"))


# Checks are immutable: the ones every layer of a scan repeats are built once (a measurable share of
# the per-signature cost next to one ECDSA verify; bench/verify.py).
_KEY_ONLY = Check.skipped("signature", "key-only signature: verify with --key")
_COSIGN = SignatureFormat.COSIGN
_PAYLOAD_OK = {kind: Check.passed("payload", f"{kind} payload") for kind in PAYLOAD_TYPES}


@functools.lru_cache(maxsize=256)
def _signs(digest: str) -> Check:
    return Check.passed("payload-digest", f"signs {digest}")


# The annotations that attach a signer or evidence to a layer; a layer with none is key-only.
_ATTACHED_ANNOTATIONS = frozenset(
    {CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, BUNDLE_ANNOTATION, TIMESTAMP_ANNOTATION}
)
# Payloads larger than this are parsed every time rather than kept (blobs may be up to 128 MiB).
_MEMO_PAYLOAD_MAX = 64 * 1024


class _PayloadFacts(NamedTuple):
    """What a simple-signing payload says, given the digest of the image it was found on."""

    checks: tuple[Check, ...]
    problems: tuple[str, ...]  # for Signature.error
    claims: tuple[tuple[str, Any], ...]
    signed_digest: str | None


@functools.lru_cache(maxsize=1024)
def _memo_payload_facts(blob: bytes, subject_digest: str) -> _PayloadFacts:
    # Keyed by the payload bytes themselves (compared exactly on a hit) and the subject: cosign appends
    # one layer per signature over the same payload blob, and those layers are then parsed once.
    return _payload_facts(blob, subject_digest)


def _apply_payload_facts(sig: Signature, blob: bytes, deferred: list[str]) -> None:
    facts = (
        _memo_payload_facts(blob, sig.subject_digest)
        if len(blob) <= _MEMO_PAYLOAD_MAX
        else _payload_facts(blob, sig.subject_digest)
    )
    sig.checks.extend(facts.checks)
    if facts.problems:
        deferred.extend(facts.problems)
    # A fresh top-level dict per signature; nested claim values (`optional`) are shared, read-only.
    sig.claims.update(facts.claims)
    if facts.signed_digest is not None:
        sig.signed_digest = facts.signed_digest


def clear_caches() -> None:
    """Forget parsed payloads (benchmarks measure cold parsing)."""
    _memo_payload_facts.cache_clear()


def _payload_failed(message: str) -> _PayloadFacts:
    return _PayloadFacts((Check.failed("payload", message),), (message,), (), None)


def _payload_facts(blob: bytes, subject_digest: str) -> _PayloadFacts:
    """Payload facts: the critical section names a manifest digest; nothing else binds the image."""
    try:
        read = payload_format.read(blob)
    except payload_format.PayloadError as exc:
        return _payload_failed(str(exc))
    payload = read.document
    critical = read.critical
    if not isinstance(critical, dict):
        return _payload_failed("payload has no critical section")
    identity, kind, reference, digest = read.identity, read.type, read.reference, read.digest
    claims: list[tuple[str, Any]] = []
    if isinstance(reference, str):
        claims.append(("docker-reference", reference))
    if isinstance(kind, str):
        claims.append(("type", kind))
    optional = payload.get("optional")
    if isinstance(optional, dict) and optional:
        claims.append(("optional", optional))
    signed_digest = digest if isinstance(digest, str) and digest else None

    problems = []
    if kind not in PAYLOAD_TYPES:
        problems.append(f"critical.type is {kind!r}, not a cosign or atomic container signature")
    if signed_digest is None:
        problems.append("critical.image.docker-manifest-digest is missing")
    if not isinstance(identity, dict):
        problems.append("critical.identity is missing")
    if optional is not None and not isinstance(optional, dict):
        problems.append("optional is neither null nor an object")
    if problems:
        # A payload check failure, not a parse error: the record keeps no error of its own for it.
        return _PayloadFacts(
            (Check.failed("payload", "; ".join(problems)),), (), tuple(claims), signed_digest
        )
    assert signed_digest is not None
    check = _PAYLOAD_OK.get(str(kind)) or Check.passed("payload", f"{kind} payload")
    if not subject_digest:
        digest_check = Check.skipped("payload-digest", f"signs {signed_digest}; no subject digest to compare")
    elif signed_digest == subject_digest:  # both go-digest strings: lower-case hex, compared as cosign does
        digest_check = _signs(signed_digest)
    else:
        digest_check = Check.failed("payload-digest", f"payload signs {signed_digest}, not {subject_digest}")
    return _PayloadFacts((check, digest_check), (), tuple(claims), signed_digest)


# ---------------------------------------------------------------- .att layers


def parse_attestation_layer(
    layer: Descriptor, blob: bytes, *, subject_digest: str, location: str, now: datetime
) -> Signature:
    """One DSSE in-toto layer of a ``.att`` manifest; never raises."""
    sig = Signature(
        format=SignatureFormat.COSIGN_ATTESTATION,
        subject_digest=subject_digest,
        location=location,
        media_type=layer.media_type,
    )
    return _guarded(
        sig, lambda deferred: _parse_attestation(sig, layer, bytes(blob), now, deferred), "attestation"
    )


def _parse_attestation(
    sig: Signature, layer: Descriptor, blob: bytes, now: datetime, deferred: list[str]
) -> None:
    annotations = layer.annotations
    sig.evidence["envelope"] = blob
    try:
        envelope = dsse.parse_envelope(blob)
    except dsse.DSSEError as exc:
        raise MalformedError(str(exc)) from None
    sig.evidence["payload"] = envelope.payload
    sig.claims["payloadType"] = envelope.payload_type
    if not envelope.signatures:
        deferred.append("DSSE envelope carries no signature")

    sig.checks.extend(
        statement_checks(sig, envelope, deferred, annotated_type=annotations.get(PREDICATE_TYPE_ANNOTATION))
    )
    attached = _read_attached(sig, annotations, now, deferred)
    pae = envelope.pae()

    def material(signature: bytes, key: PublicKeyTypes | None) -> SignedMaterial:
        return SignedMaterial(signature=signature, key=key, certificate=attached.leaf, envelope=envelope)

    _settle_signer(
        sig,
        attached,
        [signature for _, signature in envelope.signatures],
        lambda key, signature: certs.verify_with_key(key, signature, pae),
        "over the DSSE PAE",
        material,
        now,
        deferred,
    )
    _record_timestamp(sig, blob)
