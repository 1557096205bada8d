"""Certificate-based trust: own PKI roots and keyless (Fulcio) identities, with cosign's semantics.

Pure: (signature record, trust material, clock) -> named trust checks appended to the record. The
checks are `certificate-chain` (path to a supplied root at the signing time, EKU codeSigning),
`certificate-validity` (the leaf was valid at the verified signing time, else now),
`certificate-identity` (a SAN matches --certificate-identity[-regexp]) and `certificate-issuer` (the
Fulcio OIDC issuer extension matches --certificate-oidc-issuer[-regexp], when asked); a leaf under a
Sigstore trusted root's Fulcio CAs also needs `certificate-sct` and `transparency-log` (its Rekor SET,
whose integratedTime is then the signing time). A signature is
trusted through its certificate only when all of them pass (model.TRUST_GROUPS).

Matching follows cosign (pkg/cosign/verify.go validateCertIdentity): exact strings compare for
equality; regular expressions are *unanchored* searches (Go's regexp.MatchString), so write `^…$`
to pin them. Identities are the SANs cosign reads (cryptoutils.GetSubjectAlternateNames): e-mail,
URI, DNS, IP and the Fulcio otherName (1.3.6.1.4.1.57264.1.7). The issuer is the v2 extension
(1.3.6.1.4.1.57264.1.8) when present, else v1 (…1.1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from sigscope.formats.bundle import SIGNING_TIME_SOURCE
from sigscope.model import Check, Outcome, Signature, SignatureFormat, Status
from sigscope.trust import certs
from sigscope.trust.chain import CODE_SIGNING, verify_chain

if TYPE_CHECKING:
    from sigscope.trust.sigstore_offline import SigstoreTrust

CERT_FORMATS = frozenset(
    {SignatureFormat.COSIGN, SignatureFormat.COSIGN_ATTESTATION, SignatureFormat.SIGSTORE_BUNDLE}
)
VERIFIED_IDENTITY_CLAIM = "verifiedIdentity"


class PolicyError(ValueError):
    """An identity policy that cannot be used (a regular expression that does not compile)."""


@dataclass(frozen=True)
class IdentityPolicy:
    """Who must have signed: one of identity / identity_regexp, optionally an issuer constraint."""

    identity: str | None = None
    identity_regexp: re.Pattern[str] | None = None
    issuer: str | None = None
    issuer_regexp: re.Pattern[str] | None = None

    @classmethod
    def build(
        cls,
        identity: str | None = None,
        identity_regexp: str | None = None,
        issuer: str | None = None,
        issuer_regexp: str | None = None,
    ) -> IdentityPolicy:
        if identity is not None and identity_regexp is not None:
            raise PolicyError("give --certificate-identity or --certificate-identity-regexp, not both")
        if issuer is not None and issuer_regexp is not None:
            raise PolicyError("give --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both")
        return cls(
            identity=identity,
            identity_regexp=_compile(identity_regexp, "--certificate-identity-regexp"),
            issuer=issuer,
            issuer_regexp=_compile(issuer_regexp, "--certificate-oidc-issuer-regexp"),
        )

    @property
    def has_identity(self) -> bool:
        return self.identity is not None or self.identity_regexp is not None

    @property
    def has_issuer(self) -> bool:
        return self.issuer is not None or self.issuer_regexp is not None

    def describe_identity(self) -> str:
        if self.identity is not None:
            return repr(self.identity)
        assert self.identity_regexp is not None
        return f"/{self.identity_regexp.pattern}/"

    def describe_issuer(self) -> str:
        if self.issuer is not None:
            return repr(self.issuer)
        assert self.issuer_regexp is not None
        return f"/{self.issuer_regexp.pattern}/"


def _compile(pattern: str | None, flag: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PolicyError(f"{flag}: not a regular expression: {exc}") from None


@dataclass(frozen=True)
class CertificateTrust:
    """Everything the certificate flags supply: roots, intermediates, identity policy, Sigstore root."""

    policy: IdentityPolicy
    roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    sigstore: SigstoreTrust | None = field(default=None, compare=False)

    def all_roots(self) -> list[x509.Certificate]:
        extra = list(self.sigstore.fulcio_roots) if self.sigstore is not None else []
        return [*self.roots, *extra]

    def all_intermediates(self) -> list[x509.Certificate]:
        extra = list(self.sigstore.fulcio_intermediates) if self.sigstore is not None else []
        return [*self.intermediates, *extra]


# ---------------------------------------------------------------- identities


def subject_alternative_names(cert: x509.Certificate) -> list[tuple[str, str]]:
    """(kind, value) of every SAN cosign compares identities with, in certificate order."""
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except (x509.ExtensionNotFound, ValueError):
        return []
    assert isinstance(ext.value, x509.SubjectAlternativeName)
    out: list[tuple[str, str]] = []
    for name in ext.value:
        if isinstance(name, x509.RFC822Name):
            out.append(("email", name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(("uri", name.value))
        elif isinstance(name, x509.DNSName):
            out.append(("dns", name.value))
        elif isinstance(name, x509.IPAddress):
            out.append(("ip", str(name.value)))
        elif isinstance(name, x509.OtherName) and name.type_id.dotted_string == certs.FULCIO_OTHERNAME_SAN:
            value = _der_utf8_strict(name.value)
            if value is not None:
                out.append(("otherName", value))
    return out


def _der_utf8_strict(value: bytes) -> str | None:
    """A DER UTF8String's text, or None: an identity is never matched against bytes we cannot read."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            return None
        length = int.from_bytes(value[2 : 2 + count], "big")
        offset = 2 + count
    if offset + length != len(value):
        return None
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def oidc_issuer(cert: x509.Certificate) -> str | None:
    """The Fulcio OIDC issuer: the v2 extension (DER UTF8String) when present, else v1 (raw string)."""
    v1: str | None = None
    v2: str | None = None
    try:
        extensions = list(cert.extensions)
    except ValueError:
        return None
    for extension in extensions:
        if not isinstance(extension.value, x509.UnrecognizedExtension):
            continue
        dotted = extension.oid.dotted_string
        if dotted == certs.FULCIO_ISSUER_V2:
            v2 = _der_utf8_strict(extension.value.value)
        elif dotted == certs.FULCIO_ISSUER_V1:
            try:
                v1 = extension.value.value.decode("utf-8")
            except UnicodeDecodeError:
                v1 = None
    return v2 if v2 is not None else v1


def identity_check(cert: x509.Certificate, policy: IdentityPolicy) -> tuple[Check, str | None]:
    """certificate-identity, and the SAN that matched."""
    names = subject_alternative_names(cert)
    listed = ", ".join(f"{kind}:{value}" for kind, value in names) or "none"
    if not policy.has_identity:
        return Check.failed("certificate-identity", "no identity policy was given"), None
    for kind, value in names:
        if policy.identity is not None:
            hit = value == policy.identity
        else:
            assert policy.identity_regexp is not None
            hit = policy.identity_regexp.search(value) is not None
        if hit:
            return Check.passed("certificate-identity", f"SAN {kind}:{value} matches"), value
    return (
        Check.failed(
            "certificate-identity",
            f"no subject alternative name matches {policy.describe_identity()} (SANs: {listed})",
        ),
        None,
    )


def issuer_check(cert: x509.Certificate, policy: IdentityPolicy) -> tuple[Check, str | None]:
    issuer = oidc_issuer(cert)
    if issuer is None:
        return (
            Check.failed(
                "certificate-issuer",
                f"the certificate has no OIDC issuer extension; {policy.describe_issuer()} required",
            ),
            None,
        )
    if policy.issuer is not None:
        hit = issuer == policy.issuer
    else:
        assert policy.issuer_regexp is not None
        hit = policy.issuer_regexp.search(issuer) is not None
    if hit:
        return Check.passed("certificate-issuer", f"OIDC issuer {issuer} matches"), issuer
    return Check.failed(
        "certificate-issuer", f"OIDC issuer {issuer} does not match {policy.describe_issuer()}"
    ), None


# ---------------------------------------------------------------- time


def verified_time(sig: Signature) -> tuple[datetime | None, str]:
    """The signing time a verifier may rely on, and where it came from; (None, why not) without one.

    Only a timestamp verified against trust roots counts (`timestamped`, set by the RFC 3161 and
    transparency-log checks); a Rekor integratedTime read from an unverified bundle never does.
    """
    if not sig.timestamped or sig.signing_time is None:
        return None, "no verified timestamp"
    if sig.claims.get("signingTimeSource") == SIGNING_TIME_SOURCE:
        return None, "the only signing time is an unverified Rekor integratedTime"
    source = sig.claims.get("signingTimeSource")
    return sig.signing_time, str(source) if isinstance(source, str) and source else "verified timestamp"


def validity_check(leaf: x509.Certificate, at: datetime, where: str) -> Check:
    before, after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if at < before:
        return Check.failed("certificate-validity", f"not valid until {before.isoformat()} ({where})")
    if at > after:
        return Check.failed("certificate-validity", f"expired {after.isoformat()} ({where})")
    return Check.passed(
        "certificate-validity", f"valid {before.isoformat()} .. {after.isoformat()} ({where})"
    )


# ---------------------------------------------------------------- applying trust


def _leaf_and_carried(sig: Signature) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    text = sig.evidence.get("certificate")
    if not text:
        return None, []
    try:
        leaf = certs.load_pem_chain(text)
        carried = certs.load_pem_chain(sig.evidence.get("chain", b""))
    except certs.CertificateError:
        return None, []
    return (leaf[0] if leaf else None), carried


def leaf_certificate(sig: Signature) -> x509.Certificate | None:
    """The certificate a record says signed it (parsed from its evidence), or None."""
    return _leaf_and_carried(sig)[0]


def certificate_checks(
    leaf: x509.Certificate,
    carried: Sequence[x509.Certificate],
    trust: CertificateTrust,
    at: datetime,
    where: str,
) -> tuple[list[Check], str | None]:
    """The four certificate checks for one leaf at one time; also the matched identity."""
    checks: list[Check] = []
    validity = validity_check(leaf, at, where)
    checks.append(validity)
    # A leaf outside its validity at `at` fails certificate-validity; judge its path where the leaf
    # was valid (cosign validates the path at NotBefore) so each failure is reported by its own name.
    chain_at = at if validity.outcome is Outcome.PASSED else leaf.not_valid_before_utc
    roots = trust.all_roots()
    # A self-signed certificate can only be an anchor, and anchors come from the user, never from the
    # signature; as an "intermediate" it only sends the path builder round in circles.
    intermediates = [c for c in [*carried, *trust.all_intermediates()] if not certs.is_self_signed(c)]
    result = verify_chain(leaf, intermediates, roots, chain_at, eku=(CODE_SIGNING,))
    if result.ok:
        root = result.root
        name = root.subject.rfc4514_string() if root is not None else "?"
        checks.append(
            Check.passed("certificate-chain", f"{len(result.chain)} certificates to trusted root {name}")
        )
        if trust.sigstore is not None and root is not None:
            from sigscope.trust.sigstore_offline import is_fulcio_root, sct_check

            if is_fulcio_root(root, trust.sigstore):
                # cosign requires the CT log's promise for Fulcio leaves (no --insecure-ignore-sct here).
                checks.append(sct_check(leaf, list(result.chain[1:]), trust.sigstore))
    elif certs.is_self_signed(leaf) and leaf not in roots:
        checks.append(
            Check.failed(
                "certificate-chain", f"self-signed certificate not among the trusted roots ({result.detail})"
            )
        )
    else:
        checks.append(Check.failed("certificate-chain", result.detail))
    identity, matched = identity_check(leaf, trust.policy)
    checks.append(identity)
    issuer_name: str | None = None
    if trust.policy.has_issuer:
        issuer, issuer_name = issuer_check(leaf, trust.policy)
        checks.append(issuer)
    label = None
    if matched is not None:
        label = matched if issuer_name is None else f"{matched} ({issuer_name})"
    return checks, label


def apply_certificates(sig: Signature, trust: CertificateTrust | None, now: datetime) -> Signature:
    """Judge a certificate-bearing signature against supplied roots and the identity policy.

    Signatures without a certificate, already invalid ones, and formats certificates cannot vouch
    for are left untouched (a bare key's signature is --key's business).
    """
    if trust is None or sig.format not in CERT_FORMATS or sig.status is Status.INVALID:
        return sig
    if sig.format is SignatureFormat.SIGSTORE_BUNDLE and trust.sigstore is not None:
        from sigscope.trust.sigstore_offline import apply_sigstore_bundle

        return apply_sigstore_bundle(sig, trust, now)
    leaf, carried = _leaf_and_carried(sig)
    if leaf is None:
        return sig
    if not any(c.name == "signature" and c.outcome is Outcome.PASSED for c in sig.checks):
        # The certificate says nothing about a signature its key has not been shown to make.
        sig.checks.append(
            Check.failed("certificate-chain", "the signature was not verified with this certificate")
        )
        return sig.settle()
    at, where = verified_time(sig)
    tlog: Check | None = None
    if trust.sigstore is not None and "bundle" in sig.evidence:
        from sigscope.trust.sigstore_offline import legacy_bundle_check

        tlog, logged = legacy_bundle_check(sig, trust.sigstore)
        sig.checks.append(tlog)
        if at is None and logged is not None:
            at, where = logged, "Rekor integratedTime, SET verified"
    if at is None:
        at, where = now, f"now; {where}"
    else:
        where = f"at {at.isoformat()}, {where}"
    checks, label = certificate_checks(leaf, carried, trust, at, where)
    if tlog is None and any(c.name == "certificate-sct" for c in checks):
        # A Fulcio leaf (the SCT check is made only for those) counts only with its Rekor entry, as cosign
        # and the policy-controller require: without one nothing dates the ten-minute certificate but the
        # caller's clock, and nothing made the signing public.
        checks.append(
            Check.failed("transparency-log", "a Fulcio certificate needs its Rekor entry; none given")
        )
    sig.checks.extend(checks)
    if label is not None and all(c.outcome is Outcome.PASSED for c in checks):
        sig.claims[VERIFIED_IDENTITY_CLAIM] = label
    return sig.settle()
