"""Signing and verifying a digest, not the data: what a signer that never sees the data speaks.

A remote signing service, a Notation plugin host and an HSM all receive a hash made elsewhere. One table
names what may be signed that way: the algorithm names are the Notary Project's (`ECDSA-SHA-256`,
`RSASSA-PSS-SHA-384`) plus `RSASSA-PKCS1-v1_5-SHA-*` for cosign's RSA signatures. An EC key signs with the
hash of its curve only (P-256 with SHA-256 …), as both cosign and Notation pair them. Ed25519 signs the
message itself (no pre-hash variant is used by any peer), so it is not on the list.

Signatures travel in the :class:`~sigscope.keys.Signer` convention: DER ECDSA, raw RSA.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sigscope.keys.signer import KeyFormatError, check_signing_key

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-256": hashes.SHA256,
    "SHA-384": hashes.SHA384,
    "SHA-512": hashes.SHA512,
}
_CURVE_HASH = {"secp256r1": "SHA-256", "secp384r1": "SHA-384", "secp521r1": "SHA-512"}
ECDSA = "ECDSA"
PKCS1 = "RSASSA-PKCS1-v1_5"
PSS = "RSASSA-PSS"


class DigestAlgorithmError(KeyFormatError):
    """An algorithm name that is unknown, or not one the key signs with."""


def algorithm(scheme: str, hash_name: str) -> str:
    """`ECDSA-SHA-256`, `RSASSA-PSS-SHA-384`, …"""
    return f"{scheme}-{hash_name}"


def split(name: str) -> tuple[str, hashes.HashAlgorithm]:
    """(scheme, hash) of an algorithm name; unknown names raise :class:`DigestAlgorithmError`."""
    for scheme in (ECDSA, PKCS1, PSS):
        if name.startswith(scheme + "-"):
            hash_class = _HASHES.get(name[len(scheme) + 1 :])
            if hash_class is not None:
                return scheme, hash_class()
    raise DigestAlgorithmError(f"unknown signing algorithm {name[:64]!r}")


def hash_name(hash_algorithm: hashes.HashAlgorithm) -> str:
    """`SHA-256` for hashes.SHA256(), …; other hashes raise :class:`DigestAlgorithmError`."""
    for name, hash_class in _HASHES.items():
        if isinstance(hash_algorithm, hash_class):
            return name
    raise DigestAlgorithmError(f"hash {hash_algorithm.name} is not used for signing (SHA-256/384/512)")


def allowed(key: PrivateKeyTypes | PublicKeyTypes) -> tuple[str, ...]:
    """The algorithm names `key` signs digests with."""
    check_signing_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return (algorithm(ECDSA, _CURVE_HASH[key.curve.name]),)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return tuple(algorithm(scheme, name) for scheme in (PKCS1, PSS) for name in _HASHES)
    raise DigestAlgorithmError("Ed25519 keys sign the message itself, never a digest")


def default(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """What :meth:`Signer.sign` means for `key`: cosign's choice (the curve's hash; RSA PKCS#1 v1.5 with
    SHA-256)."""
    return allowed(key)[0]


def for_hash(key: PrivateKeyTypes | PublicKeyTypes, hash_algorithm: hashes.HashAlgorithm, pss: bool) -> str:
    """The algorithm name for :meth:`HashSigner.sign_with` arguments, checked against `key`."""
    scheme = PSS if pss else PKCS1
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        scheme = ECDSA
    name = algorithm(scheme, hash_name(hash_algorithm))
    check(key, name)
    return name


def check(key: PrivateKeyTypes | PublicKeyTypes, name: str) -> hashes.HashAlgorithm:
    """The hash of `name` when `key` signs with it; else :class:`DigestAlgorithmError`."""
    _, hash_algorithm = split(name)
    if name not in allowed(key):
        raise DigestAlgorithmError(f"{name} is not an algorithm of this key (it signs with {allowed(key)})")
    return hash_algorithm


def _padding(scheme: str, hash_algorithm: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if scheme == PSS:
        return padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
    return padding.PKCS1v15()


def sign_digest(key: PrivateKeyTypes, digest: bytes, name: str) -> bytes:
    """Signature over `digest` (already hashed with `name`'s hash) by the private `key`."""
    hash_algorithm = check(key, name)
    if len(digest) != hash_algorithm.digest_size:
        raise DigestAlgorithmError(
            f"{name} signs a {hash_algorithm.digest_size}-byte digest, not {len(digest)}"
        )
    scheme, _ = split(name)
    return sign_checked(key, digest, scheme, hash_algorithm)


def sign_checked(
    key: PrivateKeyTypes, digest: bytes, scheme: str, hash_algorithm: hashes.HashAlgorithm
) -> bytes:
    """:func:`sign_digest` once the caller has checked the algorithm against `key` and the digest's length
    (a signing service does so once per key, not per request)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(Prehashed(hash_algorithm)))
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(digest, _padding(scheme, hash_algorithm), Prehashed(hash_algorithm))


def verify_digest(key: PublicKeyTypes, signature: bytes, digest: bytes, name: str) -> bool:
    """Whether `signature` is `key`'s signature over `digest` with algorithm `name`."""
    try:
        hash_algorithm = check(key, name)
    except DigestAlgorithmError:
        return False
    if len(digest) != hash_algorithm.digest_size:
        return False
    scheme, _ = split(name)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hash_algorithm)))
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, digest, _padding(scheme, hash_algorithm), Prehashed(hash_algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


def digest_of(data: bytes, name: str) -> bytes:
    """`data` hashed as algorithm `name` hashes it."""
    _, hash_algorithm = split(name)
    hasher = hashes.Hash(hash_algorithm)
    hasher.update(data)
    return hasher.finalize()
