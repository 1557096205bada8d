"""One signing protocol for every key source.

A file key, a PKCS#11 token and a remote KMS all answer the same three questions: which public key,
which algorithm, and the signature bytes over some data, in exactly the form cosign stores them (DER
ECDSA, PKCS#1 v1.5 RSA, raw Ed25519). Everything that signs goes through :class:`Signer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from sigscope.errors import SigscopeError

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# Curve name (cryptography) → (NIST name, hash cosign pairs with it, sigstore algorithm name).
_EC_CURVES: dict[str, tuple[str, type[hashes.HashAlgorithm], str]] = {
    "secp256r1": ("P-256", hashes.SHA256, "ecdsa-sha2-256-nistp256"),
    "secp384r1": ("P-384", hashes.SHA384, "ecdsa-sha2-384-nistp384"),
    "secp521r1": ("P-521", hashes.SHA512, "ecdsa-sha2-512-nistp521"),
}
_EC_NAMES = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096


class KeyFormatError(SigscopeError):
    """Key bytes that are malformed, or a key type / size sigscope (like cosign) does not sign with."""


def curve_name(curve: ec.EllipticCurve) -> str:
    """`P-256` style name of a curve, or cryptography's name for curves without one."""
    return _EC_NAMES.get(curve.name, curve.name)


def check_signing_key(key: PrivateKeyTypes | PublicKeyTypes) -> None:
    """Refuse what cosign refuses: EC curves other than P-256/384/521, RSA outside 2048..4096 bits,
    and key types other than ECDSA, RSA and Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_CURVES:
            raise KeyFormatError(f"ECDSA curve {curve_name(key.curve)} not allowed")
        return
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise KeyFormatError(f"RSA key size {key.key_size} not allowed: less than {RSA_MIN_BITS} bits")
        if key.key_size > RSA_MAX_BITS:
            raise KeyFormatError(f"RSA key size {key.key_size} not allowed: more than {RSA_MAX_BITS} bits")
        return
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return
    kind = type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey")
    raise KeyFormatError(f"{kind} keys are not supported (use ECDSA P-256/P-384/P-521, RSA or Ed25519)")


def algorithm_name(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """The sigstore signing algorithm name of a supported key (`ecdsa-sha2-256-nistp256`, …)."""
    check_signing_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return _EC_CURVES[key.curve.name][2]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-sign-pkcs1-{key.key_size}-sha256"
    return "ed25519"


class Signer(Protocol):
    """Something that signs with one key: a key file today, PKCS#11 or a remote KMS later."""

    @property
    def algorithm(self) -> str:
        """Sigstore algorithm name: `ecdsa-sha2-256-nistp256`, `rsa-sign-pkcs1-3072-sha256`, `ed25519`, …"""
        ...

    def public_key(self) -> PublicKeyTypes:
        """The public half, as verifiers will see it."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Signature over `data` as cosign stores it: DER ECDSA (SHA-256; SHA-384 for P-384, SHA-512 for
        P-521), RSA PKCS#1 v1.5 with SHA-256, or the 64 raw Ed25519 bytes."""
        ...


@runtime_checkable
class HashSigner(Signer, Protocol):
    """A :class:`Signer` that also signs with a hash and RSA padding the caller names: Notary Project
    envelopes need RSASSA-PSS (salt = hash length) and a hash tied to the key size, not cosign's choices."""

    def sign_with(self, data: bytes, hash_algorithm: hashes.HashAlgorithm, *, pss: bool = False) -> bytes:
        """Signature over `data` hashed with `hash_algorithm`: DER ECDSA, RSA PKCS#1 v1.5 or (with `pss`)
        RSASSA-PSS with MGF1 of the same hash and a salt as long as the hash."""
        ...


@runtime_checkable
class CertifiedSigner(Signer, Protocol):
    """A :class:`Signer` whose key's home also keeps its certificate (a PKCS#11 token's CKO_CERTIFICATE)."""

    def certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The certificate of the key and any chain kept with it, leaf first; empty when there is none."""
        ...


class FileSigner:
    """A :class:`Signer` (and :class:`HashSigner`) over a private key held in memory (loaded from a file)."""

    def __init__(self, private_key: PrivateKeyTypes) -> None:
        check_signing_key(private_key)
        assert isinstance(
            private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        )
        self._key: SigningKey = private_key
        self._algorithm = algorithm_name(private_key)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def private_key(self) -> SigningKey:
        return self._key

    def public_key(self) -> PublicKeyTypes:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(_EC_CURVES[key.curve.name][1]()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)

    def sign_with(self, data: bytes, hash_algorithm: hashes.HashAlgorithm, *, pss: bool = False) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_algorithm))
        if isinstance(key, rsa.RSAPrivateKey):
            if pss:
                return key.sign(
                    data,
                    padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size),
                    hash_algorithm,
                )
            return key.sign(data, padding.PKCS1v15(), hash_algorithm)
        raise KeyFormatError("Ed25519 keys sign without a separate hash algorithm")

    def __repr__(self) -> str:
        return f"FileSigner({self._algorithm})"


def same_public_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    """Whether two public keys are the same key (their SubjectPublicKeyInfo DER)."""
    from cryptography.hazmat.primitives import serialization

    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def chain_for_key(
    public: PublicKeyTypes, kept: Sequence[x509.Certificate], given: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """A key's certificate chain, leaf first: `given` when it starts with the key's own certificate, else the
    certificates the key's home keeps (`kept`: a token's, a signing service's) followed by `given`
    (intermediates…root: a token usually keeps only the leaf). Callers check the leaf is the key's."""
    if given and same_public_key(given[0].public_key(), public):
        return tuple(given)
    return (*kept, *given)
