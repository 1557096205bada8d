"""Offline Sigstore verification against a `trusted_root.json`, through the PyPI `sigstore` library.

What the library verifies we hand to it: a bundle's Rekor inclusion proof, checkpoint and SET, the
Fulcio chain at the verified time, the SCT, the signature and the consistency of the log entry
(`Verifier.verify_dsse` / `verify_artifact`). Its failures become one failed `sigstore` check with its
message; cases it refuses (public-key bundles, `intoto` entries, non-ECDSA signers) fail the same way,
never pass.

The legacy cosign `.sig` annotation (a Rekor SET without an inclusion proof) is outside what the library
accepts as a bundle; its SET is checked here with the library's own Rekor keyring from the trusted root
over the RFC 8785 payload (FORMATS §1.6), and the log entry must already have matched this signature
(the `bundle` integrity check). The verified integratedTime then dates the certificate.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sigscope.errors import UsageError
from sigscope.formats import gojson
from sigscope.model import Check, Outcome, Signature
from sigscope.trust import certs
from sigscope.trust.identity import (
    VERIFIED_IDENTITY_CLAIM,
    CertificateTrust,
    IdentityPolicy,
    identity_check,
    issuer_check,
)


class TrustedRootError(UsageError, ValueError):
    """A trusted_root.json that cannot be used; the message is meant for a user (the CLI shows it as is)."""


@dataclass(frozen=True)
class SigstoreTrust:
    """A loaded trusted root: the library's object plus its Fulcio CAs as cryptography certificates."""

    root: Any  # sigstore.models.TrustedRoot (typed loosely: the library is imported lazily)
    fulcio_roots: tuple[x509.Certificate, ...]
    fulcio_intermediates: tuple[x509.Certificate, ...]
    source: str
    raw: bytes  # the JSON it was read from: what a worker process is handed to rebuild it


def load_trusted_root(data: bytes, source: str = "trusted root") -> SigstoreTrust:
    """Parse a trusted_root.json (or a ClientTrustConfig carrying one)."""
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        document = gojson.read(data, source)
    except ValueError as exc:
        raise TrustedRootError(str(exc)) from None
    try:
        if isinstance(document, dict) and "trustedRoot" in document:
            root = ClientTrustConfig.from_json(data.decode()).trusted_root
        else:
            root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
    except Exception as exc:  # the library raises pydantic, ValueError and its own errors
        # The library's words are a multi-line schema report; the first line of it says where.
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TrustedRootError(f"{source}: not a usable Sigstore trusted root ({detail})") from None
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for authority in root._inner.certificate_authorities:
        chain = [
            x509.load_der_x509_certificate(bytes(c.raw_bytes)) for c in authority.cert_chain.certificates
        ]
        for cert in chain:
            (roots if certs.is_self_signed(cert) else intermediates).append(cert)
    return SigstoreTrust(
        root=root,
        fulcio_roots=tuple(roots),
        fulcio_intermediates=tuple(intermediates),
        source=source,
        raw=data,
    )


def load_trusted_root_file(path: Path) -> SigstoreTrust:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustedRootError(f"cannot read {path}: {exc.strerror}") from None
    return load_trusted_root(data, str(path))


class _Policy:
    """Our identity policy in the shape the library calls (`verify(cert)` raising VerificationError)."""

    def __init__(self, policy: IdentityPolicy) -> None:
        self._policy = policy

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        check, _ = identity_check(cert, self._policy)
        if check.outcome is not Outcome.PASSED:
            raise VerificationError(check.detail)
        if self._policy.has_issuer:
            check, _ = issuer_check(cert, self._policy)
            if check.outcome is not Outcome.PASSED:
                raise VerificationError(check.detail)


@dataclass
class BundleResult:
    checks: list[Check]
    payload_type: str | None = None
    payload: bytes | None = None
    identity: str | None = None


def verify_bundle(
    bundle_bytes: bytes,
    trust: SigstoreTrust,
    policy: IdentityPolicy,
    *,
    artifact: bytes | None = None,
    digest: bytes | None = None,
) -> BundleResult:
    """Verify one bundle offline: `sigstore`, `certificate-identity` and, when asked, `certificate-issuer`.

    DSSE bundles need nothing else (the caller checks the statement's subjects); message-signature
    bundles need the artifact bytes or their SHA-256 `digest`.
    """
    from sigstore.errors import Error as SigstoreLibraryError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    checks: list[Check] = []
    try:
        bundle = Bundle.from_json(bundle_bytes)
    except Exception as exc:  # InvalidBundle, pydantic validation, JSON errors
        return BundleResult([Check.failed("sigstore", f"bundle rejected by sigstore: {_message(exc)}")])
    leaf = bundle.signing_certificate
    identity, matched = identity_check(leaf, policy)
    checks.append(identity)
    issuer_name: str | None = None
    if policy.has_issuer:
        issuer, issuer_name = issuer_check(leaf, policy)
        checks.append(issuer)
    result = BundleResult(checks)
    try:
        # The library refuses a root without a transparency log here, not when loading it
        verifier = Verifier(trusted_root=trust.root)
        if bundle._dsse_envelope is not None:
            result.payload_type, result.payload = verifier.verify_dsse(bundle, _Policy(policy))
            what = "DSSE bundle"
        else:
            if artifact is not None:
                subject: bytes | Hashed = artifact
            elif digest is not None:
                subject = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
            else:
                checks.append(
                    Check.failed("sigstore", "a message-signature bundle needs the signed artifact")
                )
                return result
            verifier.verify_artifact(subject, bundle, _Policy(policy))
            what = "message-signature bundle"
    except (SigstoreLibraryError, ValueError, TypeError) as exc:
        checks.append(Check.failed("sigstore", f"sigstore verification failed: {_message(exc)}"))
        return result
    checks.append(
        Check.passed(
            "sigstore",
            f"{what} verified by sigstore against {trust.source}: Fulcio chain, SCT, log entry, signature",
        )
    )
    if matched is not None:
        result.identity = matched if issuer_name is None else f"{matched} ({issuer_name})"
    return result


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def apply_sigstore_bundle(sig: Signature, trust: CertificateTrust, now: datetime) -> Signature:
    """Trust checks for a Sigstore bundle found on an image: the library's verdict plus our identity."""
    assert trust.sigstore is not None
    raw = sig.evidence.get("bundle")
    if raw is None:
        return sig
    digest: bytes | None = None
    algorithm, _, hexdigest = sig.subject_digest.partition(":")
    if algorithm == "sha256":
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            digest = None
    result = verify_bundle(raw, trust.sigstore, trust.policy, digest=digest)
    sig.checks.extend(result.checks)
    if result.payload is not None and sig.evidence.get("payload") not in (None, result.payload):
        # Our parser read the statement from the same bytes; a difference means two readings of one bundle.
        sig.checks.append(Check.failed("sigstore", "the library and sigscope read different DSSE payloads"))
    if result.identity is not None and all(c.outcome is Outcome.PASSED for c in result.checks):
        sig.claims[VERIFIED_IDENTITY_CLAIM] = result.identity
    return sig.settle()


# ---------------------------------------------------------------- legacy cosign SET


def legacy_bundle_check(sig: Signature, trust: SigstoreTrust) -> tuple[Check, datetime | None]:
    """`transparency-log` for a `.sig` layer's Rekor bundle annotation, and the integratedTime it proves."""
    from sigstore._internal.trust import KeyringPurpose
    from sigstore._utils import KeyID
    from sigstore.errors import Error as SigstoreLibraryError

    name = "transparency-log"
    consistent = next((c for c in sig.checks if c.name == "bundle"), None)
    if consistent is None or consistent.outcome is not Outcome.PASSED:
        why = consistent.detail if consistent is not None else "the Rekor bundle was not compared"
        return Check.failed(name, f"the Rekor entry does not describe this signature: {why}"), None
    try:
        document = gojson.read(sig.evidence["bundle"], "Rekor bundle")
        payload = document["Payload"]
        signed = base64.b64decode(document["SignedEntryTimestamp"], validate=True)
        canonical = {
            "body": payload["body"],
            "integratedTime": payload["integratedTime"],
            "logID": payload["logID"],
            "logIndex": payload["logIndex"],
        }
        if not isinstance(canonical["integratedTime"], int) or not isinstance(canonical["logIndex"], int):
            raise TypeError("integratedTime and logIndex must be integers")
        key_id = KeyID(bytes.fromhex(payload["logID"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return Check.failed(name, f"Rekor bundle annotation unreadable: {exc}"), None
    try:
        keyring = trust.root.rekor_keyring(KeyringPurpose.VERIFY)
        keyring.verify(key_id=key_id, signature=signed, data=rfc8785.dumps(canonical))
    except SigstoreLibraryError as exc:
        return Check.failed(name, f"SET does not verify under the Rekor keys of {trust.source}: {exc}"), None
    when = datetime.fromtimestamp(canonical["integratedTime"], UTC)
    return (
        Check.passed(
            name, f"SET verified (log index {canonical['logIndex']}, integrated {when.isoformat()})"
        ),
        when,
    )


def sct_check(leaf: x509.Certificate, issuers: list[x509.Certificate], trust: SigstoreTrust) -> Check:
    """`certificate-sct`: the Fulcio leaf's embedded SCT verifies under the trusted root's CT keys."""
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import Error as SigstoreLibraryError

    try:
        verify_sct(leaf, issuers, trust.root.ct_keyring(KeyringPurpose.VERIFY))
    except (SigstoreLibraryError, ValueError) as exc:
        return Check.failed("certificate-sct", f"SCT does not verify: {_message(exc)}")
    return Check.passed("certificate-sct", f"embedded SCT verified with the CT keys of {trust.source}")


def is_fulcio_root(root: x509.Certificate, trust: SigstoreTrust) -> bool:
    der = root.public_bytes(serialization.Encoding.DER)
    return any(der == r.public_bytes(serialization.Encoding.DER) for r in trust.fulcio_roots)
