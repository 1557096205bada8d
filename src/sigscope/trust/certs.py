"""X.509 facts and checks that need no trust store: identity, links of a chain, a signature under a key.

Pure functions of (certificates, bytes, clock). Deciding whether a chain is *trusted*
needs roots the user supplies and lives elsewhere; here we only say whether the chain a
signature carries is internally consistent, which a scan can always report.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import re
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from sigscope.model import CertificateInfo, Check, PublicKeyInfo

# Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
FULCIO_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
FULCIO_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
FULCIO_OTHERNAME_SAN = "1.3.6.1.4.1.57264.1.7"
_FULCIO_V1_NAMES = {
    "1.3.6.1.4.1.57264.1.2": "githubWorkflowTrigger",
    "1.3.6.1.4.1.57264.1.3": "githubWorkflowSha",
    "1.3.6.1.4.1.57264.1.4": "githubWorkflowName",
    "1.3.6.1.4.1.57264.1.5": "githubWorkflowRepository",
    "1.3.6.1.4.1.57264.1.6": "githubWorkflowRef",
}
_FULCIO_V2_NAMES = {
    "1.3.6.1.4.1.57264.1.9": "buildSignerURI",
    "1.3.6.1.4.1.57264.1.10": "buildSignerDigest",
    "1.3.6.1.4.1.57264.1.11": "runnerEnvironment",
    "1.3.6.1.4.1.57264.1.12": "sourceRepositoryURI",
    "1.3.6.1.4.1.57264.1.13": "sourceRepositoryDigest",
    "1.3.6.1.4.1.57264.1.14": "sourceRepositoryRef",
    "1.3.6.1.4.1.57264.1.15": "sourceRepositoryIdentifier",
    "1.3.6.1.4.1.57264.1.16": "sourceRepositoryOwnerURI",
    "1.3.6.1.4.1.57264.1.17": "sourceRepositoryOwnerIdentifier",
    "1.3.6.1.4.1.57264.1.18": "buildConfigURI",
    "1.3.6.1.4.1.57264.1.19": "buildConfigDigest",
    "1.3.6.1.4.1.57264.1.20": "buildTrigger",
    "1.3.6.1.4.1.57264.1.21": "runInvocationURI",
    "1.3.6.1.4.1.57264.1.22": "sourceRepositoryVisibilityAtSigning",
}
_EKU_NAMES = {
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string: "anyExtendedKeyUsage",
}

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class CertificateError(ValueError):
    """Certificate bytes that do not parse."""


def load_pem_chain(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; an empty string gives an empty list."""
    raw = data.encode() if isinstance(data, str) else data
    blocks = _PEM_CERT.findall(raw)
    if not blocks and raw.strip():
        raise CertificateError("no PEM certificate found")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise CertificateError(f"malformed PEM certificate: {exc}") from None


def load_der(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"malformed DER certificate: {exc}") from None


def load_b64_der(text: str) -> x509.Certificate:
    try:
        return load_der(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"certificate is not base64 DER: {exc}") from None


def _key_facts(key: PublicKeyTypes) -> tuple[str, int, str | None]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return "ECDSA", key.curve.key_size, names.get(key.curve.name, key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    return type(key).__name__, 0, None


def spki_sha256(key: PublicKeyTypes) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_key_info(key: PublicKeyTypes) -> PublicKeyInfo:
    key_type, size, curve = _key_facts(key)
    return PublicKeyInfo(key_type=key_type, key_size=size, sha256=spki_sha256(key), curve=curve)


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        # A malformed extension makes the whole list unreadable in cryptography; report what we can.
        return None


def _der_utf8(value: bytes) -> str:
    """Fulcio v2 extensions hold a DER UTF8String; v1 ones hold the raw string."""
    if len(value) >= 2 and value[0] == 0x0C:
        length = value[1]
        offset = 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(value[2 : 2 + count], "big")
            offset = 2 + count
        return value[offset : offset + length].decode(errors="replace")
    return value.decode(errors="replace")


@functools.lru_cache(maxsize=4096)
def summarize(cert: x509.Certificate, now: datetime) -> CertificateInfo:
    """The report-facing facts of one certificate, with expiry judged at `now`.

    Cached: a scan passes one clock for the whole run, and a tree of files (or a registry) is signed by
    few certificates, so this is computed once per certificate rather than once per signature; it
    halved the cost of reading a signed JAR or PE in bench/scan_fs.py. The record is frozen and shared.
    """
    # cryptography warns about non-conforming names (e.g. a 3-letter country) in real certificates;
    # a report shows them as they are rather than printing warnings into the output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _summarize(cert, now)


def _summarize(cert: x509.Certificate, now: datetime) -> CertificateInfo:
    try:
        key: PublicKeyTypes | None = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    key_type, key_size, curve = _key_facts(key) if key is not None else ("unknown", 0, None)

    emails: list[str] = []
    uris: list[str] = []
    dns: list[str] = []
    others: list[str] = []
    san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if san is not None and isinstance(san.value, x509.SubjectAlternativeName):
        emails = list(san.value.get_values_for_type(x509.RFC822Name))
        uris = list(san.value.get_values_for_type(x509.UniformResourceIdentifier))
        dns = list(san.value.get_values_for_type(x509.DNSName))
        for other in san.value.get_values_for_type(x509.OtherName):
            others.append(_der_utf8(other.value))

    eku: list[str] = []
    eku_ext = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku_ext is not None and isinstance(eku_ext.value, x509.ExtendedKeyUsage):
        eku = [_EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in eku_ext.value]

    is_ca = False
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is not None and isinstance(bc.value, x509.BasicConstraints):
        is_ca = bc.value.ca

    fulcio: dict[str, str] = {}
    oidc_issuer: str | None = None
    try:
        extensions = list(cert.extensions)
    except ValueError:
        extensions = []
    for extension in extensions:
        dotted = extension.oid.dotted_string
        if not isinstance(extension.value, x509.UnrecognizedExtension):
            continue
        raw = extension.value.value
        if dotted == FULCIO_ISSUER_V2:
            oidc_issuer = _der_utf8(raw)
        elif dotted == FULCIO_ISSUER_V1 and oidc_issuer is None:
            oidc_issuer = raw.decode(errors="replace")
        elif dotted in _FULCIO_V1_NAMES:
            fulcio[_FULCIO_V1_NAMES[dotted]] = raw.decode(errors="replace")
        elif dotted in _FULCIO_V2_NAMES:
            fulcio[_FULCIO_V2_NAMES[dotted]] = _der_utf8(raw)

    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        self_signed=is_self_signed(cert),
        is_ca=is_ca,
        expired=now > not_after,
        not_yet_valid=now < not_before,
        emails=tuple(emails),
        uris=tuple(uris),
        dns_names=tuple(dns),
        other_names=tuple(others),
        eku=tuple(eku),
        oidc_issuer=oidc_issuer,
        fulcio=fulcio,
    )


@functools.lru_cache(maxsize=4096)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s name and key signed `cert`.

    Cached: a registry holds many signatures by the same few certificates, and the answer depends
    only on the two certificates' bytes (cryptography hashes and compares them by their DER).
    """
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def chain_links(chain: list[x509.Certificate]) -> Check:
    """Each certificate is issued by the next one. Says nothing about whether the top is trusted."""
    if len(chain) < 2:
        return Check.skipped("chain", "no chain carried beyond the signing certificate")
    for position, (child, parent) in enumerate(itertools.pairwise(chain)):
        if not issued_by(child, parent):
            return Check.failed(
                "chain",
                f"certificate {position} ({child.subject.rfc4514_string() or 'no subject'}) "
                f"is not issued by certificate {position + 1} ({parent.subject.rfc4514_string()})",
            )
    return Check.passed("chain", f"{len(chain)} certificates link up")


_KINDS: dict[type, str] = {}


def key_kind(key: object) -> str:
    """The kind of key: "ec", "rsa", "ed25519", "ed448", "dsa" or "other", decided once per key class."""
    kind = _KINDS.get(type(key))
    if kind is None:
        if isinstance(key, ec.EllipticCurvePublicKey):
            kind = "ec"
        elif isinstance(key, rsa.RSAPublicKey):
            kind = "rsa"
        elif isinstance(key, ed25519.Ed25519PublicKey):
            kind = "ed25519"
        elif isinstance(key, ed448.Ed448PublicKey):
            kind = "ed448"
        elif isinstance(key, dsa.DSAPublicKey):
            kind = "dsa"
        else:
            kind = "other"
        _KINDS[type(key)] = kind
    return kind


def verify_with_key(
    key: CertificatePublicKeyTypes | PublicKeyTypes,
    signature: bytes,
    data: bytes,
    *,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    pss: bool = False,
) -> bool:
    """Verify a DER ECDSA / PKCS#1 v1.5 (or PSS) RSA / Ed25519 signature over `data`.

    The hash defaults to what cosign pairs with the key: SHA-256, SHA-384 for P-384, SHA-512 for P-521.
    """
    if hash_algorithm is None and key_kind(key) == "ec":
        # The common case (cosign, P-256) without the ABC isinstance chain: it costs as much as a
        # tenth of the verify itself on a busy machine.
        try:
            key.verify(signature, data, _ec_default_ecdsa(key))  # type: ignore[call-arg, arg-type, union-attr]
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            return False
        return True
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if hash_algorithm is None:
                key.verify(signature, data, _ec_default_ecdsa(key))
            else:
                key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            algorithm = hash_algorithm or hashes.SHA256()
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
                if pss
                else padding.PKCS1v15()
            )
            key.verify(signature, data, pad, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# Built once: constructing ECDSA(SHA256()) costs a tenth of a P-256 verify, paid per signature otherwise.
_ECDSA_BY_SIZE = {
    256: ec.ECDSA(hashes.SHA256()),
    384: ec.ECDSA(hashes.SHA384()),
    521: ec.ECDSA(hashes.SHA512()),
}


def _ec_default_ecdsa(key: ec.EllipticCurvePublicKey) -> ec.ECDSA:
    size = key.curve.key_size
    cached = _ECDSA_BY_SIZE.get(size)
    return cached if cached is not None else ec.ECDSA(_ec_default_hash(key))


def _ec_default_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    if key.curve.key_size >= 521:
        return hashes.SHA512()
    if key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def thumbprints(chain: Iterable[x509.Certificate]) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in chain]


def utcnow() -> datetime:
    return datetime.now(UTC)
