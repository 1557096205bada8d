"""Key and certificate files, read in one place and judged in sigscope's own words.

Every flag that names a key or certificate file (`--key`, `--certificate`, `--certificate-chain`, `--cert`,
`--ca-roots`, `--ca-file`, `--gpg-keyring`, `--trusted-root`, …) reads it through this module, so a wrong
file reads the same whichever verb it was given to: which file, what it is, what was expected. The parsers
underneath (cryptography, cosign_keys, certs) are never quoted: their words name PEM delimiters and OpenSSL
internals, not the user's mistake.

`role` is the face's name for the slot the file was given to (the CLI passes `--key for verify`); the
library never names flags itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sigscope.errors import KeyFileError, os_problem

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from sigscope.keys.cosign_keys import PasswordSource
    from sigscope.keys.signer import SigningKey

PUBLIC_KEY = "a public key"
PRIVATE_KEY = "a private key"
CERTIFICATES = "PEM certificates"
CERTIFICATES_ANY = "PEM or DER certificates"
OPENPGP_KEYS = "OpenPGP public keys"
TRUSTED_ROOT = "a Sigstore trusted root in JSON"

_PRIVATE_LABELS = frozenset(
    {
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "RSA PRIVATE KEY",
        "DSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        "ENCRYPTED COSIGN PRIVATE KEY",
    }
)
_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
_CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _labels(data: bytes) -> list[str]:
    # EC PARAMETERS blocks precede SEC1 keys (openssl ecparam -genkey); they say nothing of the kind.
    return [m.group(1).decode() for m in _BEGIN.finditer(data) if m.group(1) != b"EC PARAMETERS"]


def describe(data: bytes) -> str:
    """What the bytes of a key or certificate file are, as a noun phrase: `a private key`, `a certificate`,
    `an empty file`, `not PEM`, …; the first PEM block decides."""
    labels = _labels(data)
    if not labels:
        stripped = data.strip()
        if not stripped:
            return "an empty file"
        if stripped[:1] in (b"{", b"["):
            return "JSON, not PEM"
        if stripped[:1] == b"\x30":
            return "binary DER, not PEM"
        return "not PEM"
    first = labels[0]
    if first in _PRIVATE_LABELS:
        return "an encrypted private key" if first.startswith("ENCRYPTED") else PRIVATE_KEY
    if first in _PUBLIC_LABELS:
        return PUBLIC_KEY
    if first in _CERTIFICATE_LABELS:
        count = sum(label in _CERTIFICATE_LABELS for label in labels)
        return "a certificate" if count == 1 else f"{count} certificates"
    if first.startswith("PGP PUBLIC KEY"):
        return "an OpenPGP public key"
    if first.startswith("PGP PRIVATE KEY"):
        return "an OpenPGP private key"
    if first.endswith("CERTIFICATE REQUEST"):
        return "a certificate request"
    return f"a PEM {first} block"


def _hint(path: str, data: bytes, expected: str) -> str | None:
    labels = _labels(data)
    first = labels[0] if labels else ""
    if expected == PUBLIC_KEY and first in _PRIVATE_LABELS:
        return f"`sigscope key public {path}` prints its public key"
    if expected == PUBLIC_KEY and first in _CERTIFICATE_LABELS:
        return f"`openssl x509 -pubkey -noout -in {path}` prints its public key"
    if expected == PRIVATE_KEY and (first in _PUBLIC_LABELS or first in _CERTIFICATE_LABELS):
        return "the private half of the key pair is needed (cosign.key, not cosign.pub)"
    return None


def read_file(path: str, expected: str, role: str | None = None) -> bytes:
    """The bytes of a key or certificate file; a missing or unreadable one is a :class:`KeyFileError`."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise KeyFileError(path, "a directory", expected=expected, role=role) from None
    except OSError as exc:
        raise KeyFileError(path, os_problem(exc), expected=expected, role=role, unread=True) from None


def _wrong_kind(path: str, data: bytes, expected: str, role: str | None) -> KeyFileError:
    return KeyFileError(path, describe(data), expected=expected, role=role, hint=_hint(path, data, expected))


def load_public_key_file(path: str, role: str | None = None) -> PublicKeyTypes:
    """A PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`, as cosign.pub) from `path`."""
    from sigscope.trust.keys import KeyError_, load_public_key

    data = read_file(path, PUBLIC_KEY, role)
    labels = _labels(data)
    if not labels or labels[0] not in _PUBLIC_LABELS:
        raise _wrong_kind(path, data, PUBLIC_KEY, role)
    try:
        return load_public_key(data)
    except KeyError_:
        raise KeyFileError(path, "a public key that does not parse (damaged PEM or DER)") from None


def load_private_key_file(path: str, password: PasswordSource = None, role: str | None = None) -> SigningKey:
    """A signing key from `path`: cosign's encrypted format or plain PEM (PKCS#8, SEC1, PKCS#1).

    `password` may be a callable, called only when the key is encrypted. A wrong password is a
    :class:`KeyPasswordError`; anything else wrong with the file a :class:`KeyFileError`.
    """
    from sigscope.keys.cosign_keys import KeyPasswordError, load_private_key
    from sigscope.keys.signer import KeyFormatError

    data = read_file(path, PRIVATE_KEY, role)
    labels = _labels(data)
    if not labels or labels[0] not in _PRIVATE_LABELS:
        raise _wrong_kind(path, data, PRIVATE_KEY, role)
    try:
        return load_private_key(data, password)
    except KeyPasswordError as exc:
        raise KeyPasswordError(f"{path}: {exc.message}") from None
    except KeyFormatError as exc:
        raise KeyFileError(path, exc.message) from None


def load_certificates_file(
    path: str, role: str | None = None, *, der: bool = False
) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle at `path`, in order (a lone DER certificate too, with `der`);
    a file holding none is a :class:`KeyFileError` saying what it holds instead."""
    from sigscope.trust import certs

    expected = CERTIFICATES_ANY if der else CERTIFICATES
    data = read_file(path, expected, role)
    labels = _labels(data)
    if any(label in _CERTIFICATE_LABELS for label in labels):
        try:
            return certs.load_pem_chain(data)
        except certs.CertificateError:
            raise KeyFileError(path, "a certificate that does not parse (damaged PEM or DER)") from None
    if der and not labels and data[:1] == b"\x30":
        try:
            return [certs.load_der(data)]
        except certs.CertificateError:
            raise KeyFileError(path, "binary data that is not a DER certificate") from None
    raise _wrong_kind(path, data, expected, role)


def read_keyring_file(path: str, role: str | None = None) -> bytes:
    """The bytes of an OpenPGP key file (binary or armored); a PEM key or certificate is refused here,
    before the OpenPGP parser would call it malformed."""
    data = read_file(path, OPENPGP_KEYS, role)
    labels = _labels(data)
    if labels and not labels[0].startswith("PGP "):
        raise _wrong_kind(path, data, OPENPGP_KEYS, role)
    return data


def read_trusted_root_file(path: str, role: str | None = None) -> bytes:
    """The bytes of a Sigstore trusted_root.json; a PEM file is refused here, naming what it is."""
    data = read_file(path, TRUSTED_ROOT, role)
    if _labels(data) or not data.strip():
        raise _wrong_kind(path, data, TRUSTED_ROOT, role)
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(path, "not JSON", expected=TRUSTED_ROOT, role=role) from None
    return data
