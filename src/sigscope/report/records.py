"""Flat views of scan results: the sigscan-compatible signature entry and table rows."""

from __future__ import annotations

from typing import Any

from sigscope.model import Signature, SignatureFormat
from sigscope.scan.registry import ImageResult

FORMAT_COLUMNS: list[tuple[str, set[SignatureFormat]]] = [
    ("cosign", {SignatureFormat.COSIGN}),
    ("attest", {SignatureFormat.COSIGN_ATTESTATION}),
    ("bundle", {SignatureFormat.SIGSTORE_BUNDLE}),
    ("notation", {SignatureFormat.NOTATION_JWS, SignatureFormat.NOTATION_COSE}),
    ("gpg", {SignatureFormat.SIMPLE_SIGNING}),
]


def thumbprints(signature: Signature) -> str:
    """sigscan's `thumbprints`: the chain's SHA-256 fingerprints, quoted and comma-separated."""
    signer = signature.signer
    if signer is None or signer.certificate is None:
        return ""
    prints = [signer.certificate.sha256, *(c.sha256 for c in signer.chain)]
    return ",".join(f'"{p}"' for p in prints)


def signature_entry(result: ImageResult, signature: Signature) -> dict[str, Any]:
    """One `.registry.signatures[]` entry: sigscan's four fields first, ours alongside."""
    signer = signature.signer
    cert = signer.certificate if signer else None
    entry: dict[str, Any] = {
        "path": result.path,
        "digest": result.digest,
        "thumbprints": thumbprints(signature),
        "subjectname": signer.display_name if signer else "",
        "issuer": signer.issuer_name if signer else "",
        "repository": result.repository,
        "tags": result.tags,
        "format": str(signature.format),
        "status": str(signature.status),
    }
    if result.platform:
        entry["platform"] = result.platform
    if result.parent:
        entry["parent"] = result.parent
    if cert is not None:
        entry.update(
            {
                "selfSigned": cert.self_signed,
                "expired": cert.expired,
                "notAfter": cert.not_after.isoformat(),
                "emails": list(cert.emails),
                "uris": list(cert.uris),
                "oidcIssuer": cert.oidc_issuer,
            }
        )
    entry.update(signature.to_json())
    return entry


def signer_names(result: ImageResult) -> list[str]:
    names: list[str] = []
    for signature in result.signatures:
        name = signature.signer.display_name if signature.signer else ""
        if not name and signature.claims.get("keyOnly"):
            name = "key-only (key not recorded)"
        if name and name not in names:
            names.append(name)
    return names


def format_marks(result: ImageResult) -> dict[str, bool]:
    present = {s.format for s in result.signatures}
    return {column: bool(present & formats) for column, formats in FORMAT_COLUMNS}
