"""Trust in bare public keys (`--key`): the cosign key-pair model.

A signature is verified by a key only when the signature bytes check out under that key; the
face loads the keys, this module only decides.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.formats import dsse
from sigscope.model import Check, Outcome, PublicKeyInfo, Signature, SignatureFormat, SignerIdentity, Status
from sigscope.trust import certs

KEY_FORMATS = frozenset({SignatureFormat.COSIGN, SignatureFormat.COSIGN_ATTESTATION})


class KeyError_(ValueError):
    """Key bytes that are not a usable public key."""


def load_public_key(data: bytes) -> PublicKeyTypes:
    """A PEM `PUBLIC KEY` (PKIX) or `RSA PUBLIC KEY` (PKCS#1), as cosign writes and reads them."""
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"not a PEM public key: {exc}") from None


def _verifies(signature: Signature, key: PublicKeyTypes) -> bool:
    if signature.format is SignatureFormat.COSIGN:
        payload = signature.evidence.get("payload")
        raw = signature.evidence.get("signature")
        return payload is not None and raw is not None and certs.verify_with_key(key, raw, payload)
    envelope_bytes = signature.evidence.get("envelope")
    if envelope_bytes is None:
        return False
    try:
        envelope = dsse.parse_envelope(envelope_bytes)
    except dsse.DSSEError:
        return False
    pae = envelope.pae()
    return any(certs.verify_with_key(key, raw, pae) for _, raw in envelope.signatures)


_KEY_INFO: dict[int, tuple[PublicKeyTypes, PublicKeyInfo]] = {}


def _key_info(key: PublicKeyTypes) -> PublicKeyInfo:
    """The fingerprint of a trusted key, computed once per key object rather than once per signature.

    Keyed by identity (keys are not hashable); the key itself is kept so its id is never reused.
    """
    cached = _KEY_INFO.get(id(key))
    if cached is None or cached[0] is not key:
        cached = (key, certs.public_key_info(key))
        _KEY_INFO[id(key)] = cached
    return cached[1]


def apply_keys(signature: Signature, keys: Sequence[PublicKeyTypes]) -> Signature:
    """Judge `signature` against trusted keys: verified under one of them, or untrusted.

    Signatures already invalid stay invalid, and formats a bare key cannot vouch for
    (Notary, GPG, certificate bundles) are left as they are.
    """
    if not keys or signature.format not in KEY_FORMATS or signature.status is Status.INVALID:
        return signature
    match = next((key for key in keys if _verifies(signature, key)), None)
    if match is None:
        signature.checks.append(
            Check.failed("trusted-key", f"not signed by any of the {len(keys)} supplied key(s)")
        )
        return signature.settle()
    info = _key_info(match)
    detail = f"signed by supplied {info.key_type} key sha256:{info.sha256}"
    signature.checks = [
        Check.passed("signature", detail) if c.name == "signature" and c.outcome is Outcome.SKIPPED else c
        for c in signature.checks
    ]
    signature.checks.append(Check.passed("trusted-key", detail))
    if signature.signer is None:
        signature.signer = SignerIdentity(public_key=info)
        signature.claims.pop("keyOnly", None)
    return signature.settle()
