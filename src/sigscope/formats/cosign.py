"""Legacy cosign attachments: ``sha256-<hex>.sig`` simple-signing layers and ``.att`` DSSE layers.

Each layer of a ``.sig``/``.att`` manifest is one signature. The caller has already checked the layer
digest; here the payload, the annotations (signature, certificate, chain, Rekor bundle, RFC 3161 token)
and the relations between them become a :class:`Signature`. Nothing is trusted: a certificate or a key
recorded in Rekor only lets us say the signature is self-consistent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.formats import dsse
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
        sig.timestamped = True
        sig.evidence["timestamp"] = stamp.encode()
    return attached


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
            sig.checks.append(Check.skipped("signature", "key-only signature: verify with --key"))
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
    sig = Signature(
        format=SignatureFormat.COSIGN,
        subject_digest=subject_digest,
        location=location,
        media_type=layer.media_type,
    )
    return _guarded(
        sig, lambda deferred: _parse_signature(sig, layer, bytes(blob), now, deferred), "signature"
    )


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

    sig.checks.extend(_simple_signing_checks(sig, blob, deferred))
    attached = _read_attached(sig, annotations, now, deferred)
    payload_digest = hashlib.sha256(blob).digest()

    def material(signature: bytes, key: PublicKeyTypes | None) -> SignedMaterial:
        return SignedMaterial(
            signature=signature,
            key=key,
            certificate=attached.leaf,
            signed_bytes=blob,
            signed_digest=("sha256", payload_digest),
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


def _simple_signing_checks(sig: Signature, blob: bytes, deferred: list[str]) -> list[Check]:
    """Payload facts: the critical section names a manifest digest; nothing else binds the image."""
    try:
        payload = json.loads(blob)
    except (ValueError, UnicodeDecodeError) as exc:
        message = f"payload is not valid JSON: {exc}"
        deferred.append(message)
        return [Check.failed("payload", message)]
    if not isinstance(payload, dict):
        deferred.append("payload is not a JSON object")
        return [Check.failed("payload", "payload is not a JSON object")]
    critical = payload.get("critical")
    if not isinstance(critical, dict):
        deferred.append("payload has no critical section")
        return [Check.failed("payload", "payload has no critical section")]
    identity = critical.get("identity")
    image = critical.get("image")
    kind = critical.get("type")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if isinstance(reference, str):
        sig.claims["docker-reference"] = reference
    if isinstance(kind, str):
        sig.claims["type"] = kind
    optional = payload.get("optional")
    if isinstance(optional, dict) and optional:
        sig.claims["optional"] = optional
    if isinstance(digest, str) and digest:
        sig.signed_digest = digest

    problems = []
    if kind not in PAYLOAD_TYPES:
        problems.append(f"critical.type is {kind!r}, not a cosign or atomic container signature")
    if not isinstance(digest, str) or not digest:
        problems.append("critical.image.docker-manifest-digest is missing")
    if not isinstance(identity, dict):
        problems.append("critical.identity is missing")
    if optional is not None and not isinstance(optional, dict):
        problems.append("optional is neither null nor an object")
    if problems:
        return [Check.failed("payload", "; ".join(problems))]
    checks = [Check.passed("payload", f"{kind} payload")]
    assert isinstance(digest, str)
    if not sig.subject_digest:
        checks.append(Check.skipped("payload-digest", f"signs {digest}; no subject digest to compare"))
    elif digest.lower() == sig.subject_digest.lower():
        checks.append(Check.passed("payload-digest", f"signs {digest}"))
    else:
        checks.append(Check.failed("payload-digest", f"payload signs {digest}, not {sig.subject_digest}"))
    return checks


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
