"""cosign key files: the encrypted private key (`ENCRYPTED SIGSTORE PRIVATE KEY`) and `cosign.pub`.

The private key PEM body is go-securesystemslib's `encrypted` JSON: scrypt (N ∈ {32768, 65536, 131072},
r=8, p=1) derives a 32-byte key that opens a NaCl secretbox holding the PKCS#8 DER key (FORMATS §1.12).
Plain PEM private keys (PKCS#8, SEC1, PKCS#1) are accepted too, for import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from sigscope.errors import SigscopeError, UsageError
from sigscope.keys.signer import KeyFormatError, SigningKey, check_signing_key

SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
ENCRYPTED_LABELS = frozenset({SIGSTORE_LABEL, COSIGN_LABEL})
PLAIN_LABELS = frozenset({"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"})

KDF_NAME = "scrypt"
CIPHER_NAME = "nacl/secretbox"
SCRYPT_N_ALLOWED = frozenset({32768, 65536, 131072})
SCRYPT_N_DEFAULT = 65536
SCRYPT_R = 8
SCRYPT_P = 1
SALT_SIZE = 32
NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE  # 24
KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE  # 32

KeyKind = Literal["ecdsa-p256", "ecdsa-p384", "rsa-3072", "rsa-4096", "ed25519"]
KEY_KINDS: tuple[KeyKind, ...] = ("ecdsa-p256", "ecdsa-p384", "rsa-3072", "rsa-4096", "ed25519")
DEFAULT_KIND: KeyKind = "ecdsa-p256"

Password = str | bytes
PasswordSource = Password | Callable[[], Password] | None

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


class KeyPasswordError(SigscopeError):
    """The password does not open the encrypted private key (or none was given for one)."""


class KeyFileExistsError(UsageError):
    """A key file would be overwritten."""


@dataclass(frozen=True)
class KdfParams:
    name: str
    n: int
    r: int
    p: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "N": self.n, "r": self.r, "p": self.p}


@dataclass(frozen=True)
class PemKeyFile:
    """What the outside of a private key file says, without any password."""

    label: str  # PEM type, e.g. ENCRYPTED SIGSTORE PRIVATE KEY, PRIVATE KEY, EC PRIVATE KEY
    body: bytes  # the DER (or, for cosign, the JSON) inside the PEM

    @property
    def encrypted(self) -> bool:
        return self.label in ENCRYPTED_LABELS

    @property
    def format(self) -> str:
        return {
            SIGSTORE_LABEL: "sigstore-encrypted",
            COSIGN_LABEL: "cosign-encrypted",
            "PRIVATE KEY": "pkcs8",
            "EC PRIVATE KEY": "sec1",
            "RSA PRIVATE KEY": "pkcs1",
        }.get(self.label, self.label.lower())


# -- PEM -----------------------------------------------------------------------------------------------------


def read_pem(data: bytes) -> PemKeyFile:
    """The first private key PEM block in `data` (EC PARAMETERS blocks before it are skipped)."""
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode()
        if label == "EC PARAMETERS":
            continue
        if label == "ENCRYPTED PRIVATE KEY":
            raise KeyFormatError(
                "PKCS#8 PEM encrypted with a passphrase (ENCRYPTED PRIVATE KEY) is not supported; "
                "decrypt it first (openssl pkcs8 -in KEY -out PLAIN.pem)"
            )
        if label in ("PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"):
            raise KeyFormatError(f"this is a {label}, not a private key")
        if label not in ENCRYPTED_LABELS and label not in PLAIN_LABELS:
            raise KeyFormatError(f"unsupported PEM type {label!r} for a private key")
        lines = [ln for ln in match.group(2).splitlines() if ln.strip() and b":" not in ln]
        try:
            body = base64.b64decode(b"".join(ln.strip() for ln in lines), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFormatError(f"malformed PEM {label}: body is not base64") from None
        return PemKeyFile(label, body)
    raise KeyFormatError("no PEM private key found")


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n").encode()


# -- the encrypted envelope ---------------------------------------------------------------------------------


def _password_bytes(password: Password) -> bytes:
    return password.encode() if isinstance(password, str) else password


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib/OpenSSL need ~128·r·N bytes (64 MiB at N=65536, 128 MiB at 131072) plus a little.
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=KEY_SIZE)


def _b64field(obj: Any, *path: str) -> bytes:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            raise KeyFormatError(f"encrypted private key: missing {'.'.join(path)}")
        obj = obj[part]
    if not isinstance(obj, str):
        raise KeyFormatError(f"encrypted private key: {'.'.join(path)} is not a base64 string")
    try:
        return base64.b64decode(obj, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"encrypted private key: {'.'.join(path)} is not base64") from None


def envelope_kdf(body: bytes) -> KdfParams:
    """KDF parameters of a cosign encrypted key body, checked against what cosign accepts."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KeyFormatError("encrypted private key: body is not JSON") from None
    kdf = doc.get("kdf") if isinstance(doc, dict) else None
    params = kdf.get("params") if isinstance(kdf, dict) else None
    if not isinstance(kdf, dict) or not isinstance(params, dict):
        raise KeyFormatError("encrypted private key: missing kdf parameters")
    if kdf.get("name") != KDF_NAME:
        raise KeyFormatError(f"encrypted private key: unsupported kdf {kdf.get('name')!r} (want scrypt)")
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise KeyFormatError("encrypted private key: scrypt N, r, p must be integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if n not in SCRYPT_N_ALLOWED or r != SCRYPT_R or p != SCRYPT_P:
        raise KeyFormatError(
            f"encrypted private key: scrypt parameters N={n} r={r} p={p} not allowed "
            f"(N must be one of {sorted(SCRYPT_N_ALLOWED)}, r=8, p=1)"
        )
    return KdfParams(KDF_NAME, n, r, p)


def encrypt(plaintext: bytes, password: Password, *, n: int = SCRYPT_N_DEFAULT) -> bytes:
    """The go-securesystemslib `encrypted` JSON (compact, Go field order) sealing `plaintext`."""
    if n not in SCRYPT_N_ALLOWED:
        raise ValueError(f"scrypt N={n} not allowed")
    salt = secrets.token_bytes(SALT_SIZE)
    nonce = secrets.token_bytes(NONCE_SIZE)
    key = _scrypt(_password_bytes(password), salt, n, SCRYPT_R, SCRYPT_P)
    sealed = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext
    doc = {
        "kdf": {
            "name": KDF_NAME,
            "params": {"N": n, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": CIPHER_NAME, "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt(body: bytes, password: Password) -> bytes:
    """Open a cosign encrypted key body; a wrong password raises :class:`KeyPasswordError`."""
    kdf = envelope_kdf(body)
    doc = json.loads(body)
    cipher = doc.get("cipher")
    if not isinstance(cipher, dict) or cipher.get("name") != CIPHER_NAME:
        name = cipher.get("name") if isinstance(cipher, dict) else None
        raise KeyFormatError(f"encrypted private key: unsupported cipher {name!r} (want nacl/secretbox)")
    salt = _b64field(doc, "kdf", "salt")
    nonce = _b64field(doc, "cipher", "nonce")
    sealed = _b64field(doc, "ciphertext")
    if len(nonce) != NONCE_SIZE:
        raise KeyFormatError(f"encrypted private key: nonce is {len(nonce)} bytes, want {NONCE_SIZE}")
    key = _scrypt(_password_bytes(password), salt, kdf.n, kdf.r, kdf.p)
    try:
        return nacl.secret.SecretBox(key).decrypt(sealed, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise KeyPasswordError("wrong password for the encrypted private key") from None


# -- private keys --------------------------------------------------------------------------------------------


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the DER element at `offset`."""
    if offset + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first < 0x80:
        return tag, offset, first
    count = first & 0x7F
    if count == 0 or count > 4 or offset + count > len(data):
        raise ValueError("bad length")
    return tag, offset + count, int.from_bytes(data[offset : offset + count], "big")


def is_pkcs8(der: bytes) -> bool:
    """PrivateKeyInfo shape: SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING key, … }.

    (SEC1 has an OCTET STRING second, PKCS#1 an INTEGER; cryptography's DER loader takes all three.)
    """
    try:
        tag, offset, _ = _der_header(der, 0)
        if tag != 0x30:
            return False
        tag, content, length = _der_header(der, offset)
        if tag != 0x02:
            return False
        tag, _, _ = _der_header(der, content + length)
        return tag == 0x30
    except ValueError:
        return False


def _load_der(der: bytes, what: str) -> PrivateKeyTypes:
    try:
        return serialization.load_der_private_key(der, password=None)
    except UnsupportedAlgorithm:
        raise KeyFormatError(f"{what} is of an algorithm sigscope cannot load") from None
    except (ValueError, TypeError):
        # cryptography's words name OpenSSL internals; what the user can act on is that it is damaged.
        raise KeyFormatError(f"{what} does not parse (damaged DER)") from None


def _ensure_signing_key(key: PrivateKeyTypes) -> SigningKey:
    check_signing_key(key)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
    return key


def is_encrypted(data: bytes) -> bool:
    """Whether `data` is a cosign/sigstore encrypted private key (so a password is needed)."""
    return read_pem(data).encrypted


def load_private_key(data: bytes, password: PasswordSource = None) -> SigningKey:
    """A private key from a cosign/sigstore encrypted PEM or a plain PEM (PKCS#8, SEC1, PKCS#1).

    `password` may be a callable, called only when the key is encrypted. Keys cosign would not use
    (P-224, RSA < 2048 or > 4096 bits, DSA, …) raise :class:`KeyFormatError`.
    """
    pem = read_pem(data)
    if not pem.encrypted:
        return _ensure_signing_key(_load_der(pem.body, f"{pem.label} key"))
    if callable(password):
        password = password()
    if password is None:
        raise KeyPasswordError("the private key is encrypted and no password was given")
    der = decrypt(pem.body, password)
    if not is_pkcs8(der):
        raise KeyFormatError(
            "the decrypted private key is not PKCS#8 (it looks like SEC1 `EC PRIVATE KEY` or PKCS#1 DER), "
            "which cosign cannot load either; re-import it from a plain PEM with `sigscope key import`"
        )
    return _ensure_signing_key(_load_der(der, "decrypted PKCS#8 key"))


def generate(kind: str = DEFAULT_KIND) -> SigningKey:
    """A fresh private key: ecdsa-p256 (default), ecdsa-p384, rsa-3072, rsa-4096 or ed25519."""
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind in ("rsa-3072", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise UsageError(f"unknown key type {kind!r} (one of {', '.join(KEY_KINDS)})")


def encrypted_private_pem(
    key: PrivateKeyTypes, password: Password, *, label: str = SIGSTORE_LABEL, n: int = SCRYPT_N_DEFAULT
) -> bytes:
    """The cosign private key file for `key`: PKCS#8 DER sealed under `password`."""
    if label not in ENCRYPTED_LABELS:
        raise ValueError(f"not a cosign private key label: {label}")
    check_signing_key(key)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _pem(label, encrypt(der, password, n=n))


def public_pem(key: PrivateKeyTypes) -> bytes:
    """`cosign.pub`: PEM `PUBLIC KEY` (SubjectPublicKeyInfo)."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def exists_message(paths: list[str]) -> str:
    verb = "exists" if len(paths) == 1 else "exist"
    return f"{' and '.join(paths)} already {verb}; use --force to overwrite"


def key_pair_paths(prefix: str | Path) -> tuple[Path, Path]:
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


def write_key_pair(
    prefix: str | Path,
    key: PrivateKeyTypes,
    password: Password,
    *,
    force: bool = False,
    label: str = SIGSTORE_LABEL,
) -> tuple[Path, Path]:
    """Write `PREFIX.key` (encrypted, mode 0600) and `PREFIX.pub`; refuse to overwrite unless `force`."""
    private_path, public_path = key_pair_paths(prefix)
    if not force:
        existing = [str(p) for p in (private_path, public_path) if p.exists() or p.is_symlink()]
        if existing:
            raise KeyFileExistsError(exists_message(existing))
    private_data = encrypted_private_pem(key, password, label=label)
    public_data = public_pem(key)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(private_path, flags, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(private_data)
        fd = os.open(public_path, flags, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(public_data)
    except FileExistsError as exc:
        raise KeyFileExistsError(exists_message([str(exc.filename)])) from None
    except OSError as exc:
        raise SigscopeError(f"cannot write {exc.filename or private_path}: {exc.strerror}") from None
    return private_path, public_path
