"""The keys a signing service serves: `NAME=KEYSPEC` pairs opened once at start-up.

A served key signs digests only (:mod:`sigscope.keys.prehashed`). KEYSPEC is a key file, or a `pkcs11:` URI
opened through `sigscope.keys.resolve.open_signer` (the token signs the digest itself; the key never leaves
it). An Ed25519 key is refused: it signs messages, not digests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import UsageError
from sigscope.keys import prehashed
from sigscope.keys.signer import SigningKey, algorithm_name, chain_for_key, curve_name, same_public_key
from sigscope.signerd.access import valid_key_name

if TYPE_CHECKING:
    from sigscope.keys.pkcs11 import Pkcs11Signer


class DigestSigner(Protocol):
    """Signs a digest made elsewhere with one of :func:`prehashed.allowed`'s algorithms."""

    # True when a signature costs less than handing it to a thread (an EC key in memory, ~40 µs): the service
    # signs on its event loop. Otherwise it signs on a thread pool, where the work runs without the GIL
    # (cryptography's RSA, a PKCS#11 call) on every core while the loop keeps serving.
    inline: bool

    def public_key(self) -> PublicKeyTypes: ...

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes: ...


class KeyDigestSigner:
    """A :class:`DigestSigner` over a private key in memory."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self.inline = isinstance(key, ec.EllipticCurvePrivateKey)
        # Each algorithm of the key, checked once here rather than on every request (none for a key that
        # signs no digests: open_served_key refuses it).
        try:
            self._algorithms = {name: prehashed.split(name) for name in prehashed.allowed(key)}
        except prehashed.DigestAlgorithmError:
            self._algorithms = {}

    def public_key(self) -> PublicKeyTypes:
        return self._key.public_key()

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        found = self._algorithms.get(algorithm)
        if found is None or len(digest) != found[1].digest_size:
            return prehashed.sign_digest(self._key, digest, algorithm)  # raises, naming the problem
        return prehashed.sign_checked(self._key, digest, *found)


class TokenDigestSigner:
    """A :class:`DigestSigner` over a PKCS#11 token key: the digest goes to the token (CKM_ECDSA, CKM_RSA_PKCS
    over DigestInfo, CKM_RSA_PKCS_PSS). The service signs on a thread pool and a PKCS#11 session is not to be
    used by two threads at once, so calls take turns (python-pkcs11 0.10 also locks each operation; this
    lock does not rest on that library detail)."""

    inline = False  # the module call lets go of the GIL and a hardware token may take milliseconds

    def __init__(self, signer: Pkcs11Signer) -> None:
        self._signer = signer
        self._lock = threading.Lock()

    def public_key(self) -> PublicKeyTypes:
        return self._signer.public_key()

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        hash_algorithm = prehashed.check(self._signer.public_key(), algorithm)
        scheme, _ = prehashed.split(algorithm)
        with self._lock:
            return self._signer.sign_digest(digest, hash_algorithm, pss=scheme == prehashed.PSS)


@dataclass(frozen=True)
class ServedKey:
    name: str
    signer: DigestSigner
    public_key: PublicKeyTypes
    algorithms: tuple[str, ...]
    algorithm: str  # the sigstore name (Signer.algorithm)
    key_spec: str  # Notation's keySpec: EC-256, RSA-3072, …
    chain: tuple[x509.Certificate, ...] = ()

    def describe(self) -> dict[str, object]:
        """The `GET /v1/keys/{name}` document."""
        return {
            "name": self.name,
            "algorithm": self.algorithm,
            "keySpec": self.key_spec,
            "signingAlgorithms": list(self.algorithms),
            "publicKey": self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii"),
            "certificateChain": [
                c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in self.chain
            ],
        }


def key_spec(key: PublicKeyTypes) -> str:
    """Notation's keySpec of a public key (`EC-256`, `RSA-2048`, …)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC-{curve_name(key.curve).removeprefix('P-')}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    return type(key).__name__.lstrip("_")


def split_pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not value or not valid_key_name(name):
        raise UsageError(f"{flag} {text!r} is not NAME=VALUE (NAME: letters, digits, . _ -, at most 64)")
    return name, value


def open_served_key(
    name: str,
    spec: str,
    load_key: Callable[[str], SigningKey],
    chain: Sequence[x509.Certificate] = (),
) -> ServedKey:
    """Open KEYSPEC for serving under `name`; `load_key` reads a key file (asking for its password)."""
    signer: DigestSigner
    if spec.startswith("pkcs11:"):
        from sigscope.keys.pkcs11 import Pkcs11Signer
        from sigscope.keys.resolve import open_signer

        token = open_signer(spec, role="--key")
        assert isinstance(token, Pkcs11Signer)
        # The token's own certificate leads; --cert may then carry the rest (intermediates…root).
        kept = token.certificate_chain()
        signer = TokenDigestSigner(token)
    else:
        kept = ()
        signer = KeyDigestSigner(load_key(spec))
    public = signer.public_key()
    chain = chain_for_key(public, kept, chain)
    try:
        algorithms = prehashed.allowed(public)
    except prehashed.DigestAlgorithmError as exc:
        raise UsageError(f"--key {name}: {exc.message}") from None
    if chain and not same_public_key(chain[0].public_key(), public):
        raise UsageError(f"--cert {name}: the first certificate is not for the key {spec}")
    return ServedKey(
        name=name,
        signer=signer,
        public_key=public,
        algorithms=algorithms,
        algorithm=algorithm_name(public),
        key_spec=key_spec(public),
        chain=tuple(chain),
    )
