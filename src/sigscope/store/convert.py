"""Scan results to inventory rows, and stored signatures back to the records a report renders.

The way back exists for incremental re-scans: an unchanged image is reported from what an earlier run
fetched and verified, so its signatures must become `Signature`s again. They come back with the status
that run gave them (their raw evidence is not stored; nothing re-judges them without fetching).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from sigscope.model import (
    Attachment,
    CertificateInfo,
    Check,
    Outcome,
    PGPSigner,
    PublicKeyInfo,
    Signature,
    SignatureFormat,
    SignerIdentity,
    Status,
)
from sigscope.store.records import CertificateRow, DecisionRow, ImageRow, SignatureRow

if TYPE_CHECKING:
    from sigscope.files.base import FileResult, FileSignature
    from sigscope.scan.registry import ImageResult

# ------------------------------------------------------------------ results → rows


def certificate_row(cert: CertificateInfo, role: str, position: int) -> CertificateRow:
    return CertificateRow(
        role=role,
        position=position,
        subject=cert.subject,
        issuer=cert.issuer,
        serial=cert.serial,
        sha256=cert.sha256,
        not_before=cert.not_before,
        not_after=cert.not_after,
        is_ca=cert.is_ca,
    )


def _identity(
    cert: CertificateInfo | None, pgp: PGPSigner | None, key: PublicKeyInfo | None
) -> tuple[str | None, str | None]:
    """(identity, issuer) a person would search for: the SAN (keyless) or subject DN; the OpenPGP user
    id; the key's fingerprint."""
    if cert is not None:
        for names in (cert.emails, cert.uris, cert.other_names, cert.dns_names):
            if names:
                return names[0], cert.oidc_issuer or cert.issuer or None
        return cert.subject or f"sha256:{cert.sha256}", cert.oidc_issuer or cert.issuer or None
    if pgp is not None:
        return (pgp.user_ids[0] if pgp.user_ids else pgp.fingerprint or pgp.key_id), None
    if key is not None:
        return f"sha256:{key.sha256}", None
    return None, None


class _SignerColumns(TypedDict):
    identity: str | None
    issuer: str | None
    cert_subject: str | None
    cert_issuer: str | None
    cert_serial: str | None
    cert_sha256: str | None
    not_before: datetime | None
    not_after: datetime | None
    key_sha256: str | None
    pgp_key_id: str | None
    pgp_fingerprint: str | None


def _signer_columns(
    cert: CertificateInfo | None, pgp: PGPSigner | None, key: PublicKeyInfo | None
) -> _SignerColumns:
    """A signature row's columns for who signed, whatever kind of signature named them."""
    identity, issuer = _identity(cert, pgp, key)
    return _SignerColumns(
        identity=identity,
        issuer=issuer,
        cert_subject=cert.subject if cert else None,
        cert_issuer=cert.issuer if cert else None,
        cert_serial=cert.serial if cert else None,
        cert_sha256=cert.sha256 if cert else None,
        not_before=cert.not_before if cert else None,
        not_after=cert.not_after if cert else None,
        key_sha256=key.sha256 if key else None,
        pgp_key_id=pgp.key_id if pgp else None,
        pgp_fingerprint=pgp.fingerprint if pgp else None,
    )


def _chain_rows(leaf: CertificateInfo | None, chain: tuple[CertificateInfo, ...]) -> list[CertificateRow]:
    rows = [certificate_row(leaf, "signing", 0)] if leaf is not None else []
    rows += [
        certificate_row(c, "root" if c.self_signed else "intermediate", n + 1) for n, c in enumerate(chain)
    ]
    return rows


def signature_row(sig: Signature, attachment_digest: str = "") -> SignatureRow:
    signer = sig.signer or SignerIdentity()
    cert = signer.certificate
    certs = _chain_rows(cert, signer.chain)
    tsa = (sig.claims.get("timestamp") or {}).get("tsaCertificate") if isinstance(sig.claims, dict) else None
    if isinstance(tsa, dict):
        certs.append(certificate_row(certificate_from_json(tsa), "tsa", len(certs)))
    return SignatureRow(
        format=str(sig.format),
        status=str(sig.status),
        location=sig.location,
        checks=[c.to_json() for c in sig.checks],
        record=sig.to_json(),
        attachment_digest=attachment_digest,
        media_type=sig.media_type,
        subject_digest=sig.subject_digest,
        signed_digest=sig.signed_digest,
        signer=signer.display_name,
        **_signer_columns(cert, signer.pgp, signer.public_key),
        signing_time=sig.signing_time,
        expiry=sig.expiry,
        timestamped=sig.timestamped,
        error=sig.error,
        reason=sig.reason or None,
        certificates=certs,
    )


def valid_until(sigs: list[Signature]) -> datetime | None:
    """Until when a verdict may be reused: the earliest not_after among the certificates a verified
    signature relied on at the scan's clock. A timestamped signature was judged at its signing time,
    which does not move, so its certificates' expiry does not change its verdict."""
    bound: datetime | None = None
    for sig in sigs:
        if sig.status is not Status.VERIFIED or sig.timestamped or sig.signer is None:
            continue
        certs = [c for c in (sig.signer.certificate, *sig.signer.chain) if c is not None]
        for cert in certs:
            if bound is None or cert.not_after < bound:
                bound = cert.not_after
        if sig.expiry is not None and (bound is None or sig.expiry < bound):
            bound = sig.expiry
    return bound


def image_row(
    result: ImageResult,
    *,
    sigset: str | None = None,
    evidence_id: int | None = None,
    decision: DecisionRow | None = None,
) -> ImageRow:
    sigs = [signature_row(s) for s in result.signatures]
    for attachment in result.attachments:
        sigs += [signature_row(s, attachment.digest) for s in attachment.signatures]
    return ImageRow(
        kind="image",
        source=result.source,
        path=result.path,
        repository=result.repository,
        digest=result.digest,
        parent_digest=result.parent or "",
        media_type=result.media_type,
        platform=result.platform,
        tags=tuple(result.tags),
        error=result.error,
        problems=tuple(result.problems),
        attachments=[a.to_json() for a in result.attachments],
        signatures=sigs,
        decision=decision,
        sigset_fingerprint=sigset,
        valid_until=valid_until(result.signatures),
        evidence_id=evidence_id,
    )


def file_signature_row(sig: FileSignature) -> SignatureRow:
    columns = _signer_columns(sig.signer, sig.pgp, sig.public_key)
    certs = _chain_rows(sig.signer, sig.chain)
    if sig.timestamp is not None and sig.timestamp.authority is not None:
        certs.append(certificate_row(sig.timestamp.authority, "tsa", len(certs)))
    cert = sig.signer
    return SignatureRow(
        format=sig.kind,
        status=str(sig.status),
        location=sig.location,
        checks=[c.to_json() for c in sig.checks],
        record=sig.to_json(),
        signer=cert.display_name if cert else (columns["identity"] or ""),
        **columns,
        signing_time=sig.timestamp.time if sig.timestamp else None,
        timestamped=sig.timestamp is not None and sig.timestamp.status is Outcome.PASSED,
        error=sig.error,
        reason=sig.reason or None,
        certificates=certs,
    )


def file_row(result: FileResult, source: str, decision: DecisionRow | None = None) -> ImageRow:
    return ImageRow(
        kind="file",
        source=source,
        path=result.path,
        digest=result.digest or "",
        file_type=result.type,
        size=result.size,
        error=result.error,
        signatures=[file_signature_row(s) for s in result.signatures],
        decision=decision,
    )


# ------------------------------------------------------------------ stored JSON → records


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def certificate_from_json(d: dict[str, Any]) -> CertificateInfo:
    not_before = _time(d.get("notBefore"))
    not_after = _time(d.get("notAfter"))
    if not_before is None or not_after is None:
        raise ValueError("stored certificate lacks its validity period")
    return CertificateInfo(
        subject=str(d.get("subject", "")),
        issuer=str(d.get("issuer", "")),
        serial=str(d.get("serial", "")),
        sha256=str(d.get("sha256", "")),
        not_before=not_before,
        not_after=not_after,
        key_type=str(d.get("keyType", "")),
        key_size=int(d.get("keySize", 0)),
        curve=d.get("curve"),
        self_signed=bool(d.get("selfSigned")),
        is_ca=bool(d.get("isCA")),
        expired=bool(d.get("expired")),
        not_yet_valid=bool(d.get("notYetValid")),
        emails=_strings(d.get("emails")),
        uris=_strings(d.get("uris")),
        dns_names=_strings(d.get("dnsNames")),
        other_names=_strings(d.get("otherNames")),
        eku=_strings(d.get("eku")),
        oidc_issuer=d.get("oidcIssuer"),
        fulcio=dict(d.get("fulcio") or {}),
    )


def _signer_from_json(d: dict[str, Any]) -> SignerIdentity:
    cert = d.get("certificate")
    key = d.get("publicKey")
    pgp = d.get("pgp")
    return SignerIdentity(
        certificate=certificate_from_json(cert) if isinstance(cert, dict) else None,
        chain=tuple(certificate_from_json(c) for c in d.get("chain") or [] if isinstance(c, dict)),
        public_key=PublicKeyInfo(
            key_type=str(key.get("keyType", "")),
            key_size=int(key.get("keySize", 0)),
            sha256=str(key.get("sha256", "")),
            curve=key.get("curve"),
        )
        if isinstance(key, dict)
        else None,
        pgp=PGPSigner(
            key_id=str(pgp.get("keyId", "")),
            fingerprint=pgp.get("fingerprint"),
            user_ids=_strings(pgp.get("userIds")),
            algorithm=pgp.get("algorithm"),
            created=_time(pgp.get("created")),
        )
        if isinstance(pgp, dict)
        else None,
    )


def signature_from_json(d: dict[str, Any]) -> Signature:
    signer = d.get("signer")
    return Signature(
        format=SignatureFormat(d["format"]),
        subject_digest=str(d.get("subjectDigest", "")),
        location=str(d.get("location", "")),
        media_type=str(d.get("mediaType", "")),
        signer=_signer_from_json(signer) if isinstance(signer, dict) else None,
        signed_digest=d.get("signedDigest"),
        claims=dict(d.get("claims") or {}),
        signing_time=_time(d.get("signingTime")),
        expiry=_time(d.get("expiry")),
        timestamped=bool(d.get("timestamped")),
        checks=[
            Check(str(c["name"]), Outcome(c["outcome"]), str(c.get("detail", "")))
            for c in d.get("checks") or []
        ],
        status=Status(d["status"]),
        error=d.get("error"),
    )


def attachment_from_json(d: dict[str, Any]) -> Attachment:
    return Attachment(
        artifact_type=str(d.get("artifactType", "")),
        digest=str(d.get("digest", "")),
        location=str(d.get("location", "")),
        media_type=str(d.get("mediaType", "")),
        annotations={str(k): str(v) for k, v in (d.get("annotations") or {}).items()},
        signed=bool(d.get("signed")),
        signatures=[signature_from_json(s) for s in d.get("signatures") or []],
    )
