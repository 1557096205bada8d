"""Notary Project certificate requirements (FORMATS §2.6), independent of any trust store.

Pure: ordered certificates (leaf first, root last) in, the first broken requirement out, with
notation-core-go's semantics (`x509.ValidateCodeSigningCertChain`, `ValidateTimestampingCertChain`):

* the chain is ordered leaf → … → self-signed root, each certificate issued by the next, with no
  self-signed leaf or intermediate; a single certificate must be self-signed and meet the *leaf* rules;
* CA certificates: basicConstraints cA=true, pathLenConstraint (when set) at least the number of CAs
  below, keyUsage present (critical for code signing) with keyCertSign;
* leaves: basicConstraints, when present, cA=false; keyUsage present (critical for code signing) with
  digitalSignature and none of the encipherment/agreement/cert-sign/CRL-sign bits; code-signing EKU,
  when present, without serverAuth, clientAuth, emailProtection, timeStamping, OCSPSigning or
  anyExtendedKeyUsage (the spec forbids the last; notation-core-go forgets it); a timestamping leaf has
  exactly the critical timeStamping EKU;
* key sizes: leaves RSA 2048/3072/4096 or EC P-256/P-384/P-521; CAs at least RSA 2048 / EC 256.

Extensions are read with asn1crypto, because cryptography refuses whole certificates over one
malformed-but-harmless extension (basicConstraints cA=false with a pathLen, which Go and the vectors
accept). Validity is not judged here unless a signing time is given: the verifier decides which time
counts (now, an RFC 3161 timestamp, or the authentic signing time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sigscope.model import Check
from sigscope.trust import certs

CHECK_NAME = "certificate-requirements"

_LEAF_FORBIDDEN_KU = (
    ("key_encipherment", "KeyEncipherment"),
    ("data_encipherment", "DataEncipherment"),
    ("key_agreement", "KeyAgreement"),
    ("key_cert_sign", "CertSign"),
    ("crl_sign", "CRLSign"),
    ("encipher_only", "EncipherOnly"),
    ("decipher_only", "DecipherOnly"),
)
_CODE_SIGNING_FORBIDDEN_EKU = {
    "server_auth": "ServerAuth",
    "client_auth": "ClientAuth",
    "email_protection": "EmailProtection",
    "time_stamping": "Timestamping",
    "ocsp_signing": "OCSPSigning",
    "any_extended_key_usage": "Any",
}


class CertRequirementError(ValueError):
    """A certificate or chain that breaks the Notary Project certificate requirements."""


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


class _Facts:
    """basicConstraints / keyUsage / extendedKeyUsage of one certificate, with criticality."""

    def __init__(self, cert: x509.Certificate) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        try:
            parsed = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
            bc = parsed.basic_constraints_value
            ku = parsed.key_usage_value
            eku = parsed.extended_key_usage_value
            critical = parsed.critical_extensions
        except (ValueError, TypeError, KeyError) as exc:
            raise CertRequirementError(
                f"certificate with subject {_subject(cert)!r}: malformed extensions: {exc}"
            ) from None
        self.has_bc = bc is not None
        self.is_ca = bool(bc is not None and bc["ca"].native)
        self.path_len: int | None = bc["path_len_constraint"].native if bc is not None else None
        self.has_ku = ku is not None
        self.ku_critical = "key_usage" in critical
        self.key_usage: set[str] = set(ku.native) if ku is not None else set()
        self.eku: list[str] | None = list(eku.native) if eku is not None else None
        self.eku_critical = "extended_key_usage" in critical


def _key_size_problem(cert: x509.Certificate, *, leaf: bool) -> str | None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return f"certificate with subject {_subject(cert)!r}: unsupported public key type"
    if isinstance(key, rsa.RSAPublicKey):
        size = key.key_size
        ok = size in (2048, 3072, 4096) if leaf else size >= 2048
        return (
            None
            if ok
            else f"certificate with subject {_subject(cert)!r}: rsa key size {size} bits is not supported"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = key.curve.key_size
        ok = key.curve.name in ("secp256r1", "secp384r1", "secp521r1") if leaf else size >= 256
        return (
            None
            if ok
            else f"certificate with subject {_subject(cert)!r}: ecdsa key size {size} bits is not supported"
        )
    return f"certificate with subject {_subject(cert)!r}: unsupported public key type"


def _check_ca(cert: x509.Certificate, expected_path_len: int, *, ku_must_be_critical: bool) -> None:
    facts = _Facts(cert)
    name = _subject(cert)
    if not facts.is_ca:
        raise CertRequirementError(
            f"certificate with subject {name!r}: ca field in basic constraints must be present, critical, "
            "and set to true"
        )
    if facts.path_len is not None and facts.path_len < expected_path_len:
        raise CertRequirementError(
            f"certificate with subject {name!r}: expected path length of {expected_path_len} but certificate "
            f"has path length {facts.path_len} instead"
        )
    if not facts.has_ku:
        raise CertRequirementError(f"certificate with subject {name!r}: key usage extension must be present")
    if ku_must_be_critical and not facts.ku_critical:
        raise CertRequirementError(
            f"certificate with subject {name!r}: key usage extension must be marked critical"
        )
    if "key_cert_sign" not in facts.key_usage:
        raise CertRequirementError(
            f"certificate with subject {name!r}: key usage must have the bit positions for key cert sign set"
        )
    problem = _key_size_problem(cert, leaf=False)
    if problem:
        raise CertRequirementError(problem)


def _check_leaf_common(cert: x509.Certificate, facts: _Facts, *, ku_must_be_critical: bool) -> None:
    name = _subject(cert)
    if facts.has_bc and facts.is_ca:
        raise CertRequirementError(
            f"certificate with subject {name!r}: if the basic constraints extension is present, "
            "the ca field must be set to false"
        )
    if not facts.has_ku:
        raise CertRequirementError(f"certificate with subject {name!r}: key usage extension must be present")
    if ku_must_be_critical and not facts.ku_critical:
        raise CertRequirementError(
            f"certificate with subject {name!r}: key usage extension must be marked critical"
        )
    if "digital_signature" not in facts.key_usage:
        raise CertRequirementError(
            f"the certificate with subject {name!r} is invalid. The key usage must have the bit positions "
            'for "Digital Signature" set'
        )
    bad = [label for bit, label in _LEAF_FORBIDDEN_KU if bit in facts.key_usage]
    if bad:
        raise CertRequirementError(
            f'the certificate with subject {name!r} is invalid. The key usage must be "Digital Signature" '
            f"only, but found {', '.join(bad)}"
        )


def check_code_signing_leaf(cert: x509.Certificate) -> None:
    facts = _Facts(cert)
    _check_leaf_common(cert, facts, ku_must_be_critical=True)
    for usage in facts.eku or ():
        if usage in _CODE_SIGNING_FORBIDDEN_EKU:
            raise CertRequirementError(
                f"certificate with subject {_subject(cert)!r}: extended key usage must not contain "
                f"{_CODE_SIGNING_FORBIDDEN_EKU[usage]} eku"
            )
    problem = _key_size_problem(cert, leaf=True)
    if problem:
        raise CertRequirementError(problem)


def check_timestamping_leaf(cert: x509.Certificate) -> None:
    facts = _Facts(cert)
    _check_leaf_common(cert, facts, ku_must_be_critical=False)
    # RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, and critical.
    if facts.eku != ["time_stamping"]:
        raise CertRequirementError(
            f"timestamp signing certificate with subject {_subject(cert)!r} must have and only have "
            "Timestamping as extended key usage"
        )
    if not facts.eku_critical:
        raise CertRequirementError(
            f"timestamp signing certificate with subject {_subject(cert)!r} must have extended key usage "
            "extension marked as critical"
        )
    problem = _key_size_problem(cert, leaf=True)
    if problem:
        raise CertRequirementError(problem)


def _check_signing_time(cert: x509.Certificate, signing_time: datetime | None) -> None:
    if signing_time is None:
        return
    if signing_time < cert.not_valid_before_utc or signing_time > cert.not_valid_after_utc:
        raise CertRequirementError(
            f"certificate with subject {_subject(cert)!r} was invalid at signing time of "
            f"{signing_time.isoformat()}. Certificate is valid from "
            f"[{cert.not_valid_before_utc.isoformat()}] "
            f"to [{cert.not_valid_after_utc.isoformat()}]"
        )


def _validate_chain(
    chain: Sequence[x509.Certificate], signing_time: datetime | None, *, timestamping: bool
) -> None:
    check_leaf = check_timestamping_leaf if timestamping else check_code_signing_leaf
    if not chain:
        raise CertRequirementError("certificate chain must contain at least one certificate")
    if len(chain) == 1:
        cert = chain[0]
        if not certs.is_self_signed(cert):
            raise CertRequirementError(
                f"invalid self-signed certificate. subject: {_subject(cert)!r}. The only certificate of the "
                "chain must be self-signed"
            )
        _check_signing_time(cert, signing_time)
        try:
            check_leaf(cert)
        except CertRequirementError as exc:
            raise CertRequirementError(f"invalid self-signed certificate. Error: {exc}") from None
        return
    last = len(chain) - 1
    for position, cert in enumerate(chain):
        _check_signing_time(cert, signing_time)
        if position == last:
            if not certs.is_self_signed(cert):
                raise CertRequirementError(
                    f"root certificate with subject {_subject(cert)!r} is not self-signed. Certificate chain "
                    "must end with a valid self-signed root certificate"
                )
        else:
            if certs.is_self_signed(cert):
                role = "leaf" if position == 0 else "intermediate"
                raise CertRequirementError(
                    f"{role} certificate with subject {_subject(cert)!r} is self-signed. Certificate chain "
                    f"must not contain self-signed {role} certificate"
                )
            parent = chain[position + 1]
            if not certs.issued_by(cert, parent):
                raise CertRequirementError(
                    f"certificate with subject {_subject(cert)!r} is not issued by {_subject(parent)!r}"
                )
        if position == 0:
            check_leaf(cert)
        else:
            _check_ca(cert, position - 1, ku_must_be_critical=not timestamping)


def validate_code_signing_chain(
    chain: Sequence[x509.Certificate], signing_time: datetime | None = None
) -> None:
    """Raise CertRequirementError naming the first broken requirement of a signing chain."""
    _validate_chain(chain, signing_time, timestamping=False)


def validate_timestamping_chain(chain: Sequence[x509.Certificate]) -> None:
    """Raise CertRequirementError naming the first broken requirement of a TSA chain."""
    _validate_chain(chain, None, timestamping=True)


def code_signing_check(chain: Sequence[x509.Certificate], signing_time: datetime | None = None) -> Check:
    try:
        validate_code_signing_chain(chain, signing_time)
    except CertRequirementError as exc:
        return Check.failed(CHECK_NAME, str(exc))
    return Check.passed(CHECK_NAME, f"{len(chain)} certificate(s) meet the Notary Project code-signing rules")


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return _Facts(cert).is_ca
    except CertRequirementError:
        return False
