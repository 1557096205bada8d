"""The one place a `--key` argument becomes a :class:`~sigscope.keys.signer.Signer`.

A key is named by a path (a cosign or plain PEM private key file) or by a URI whose scheme says where the key
lives: `pkcs11:` for a PKCS#11 token, `remote+https:` for a key of `sigscope signer serve`. Each scheme is one
entry of :data:`SCHEMES`; a spec that looks like a URI with another scheme is refused (unless a file of that
name exists), so a mistyped KMS reference is never read as a missing file, nor a file as a key service.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sigscope.errors import UsageError
from sigscope.keys.cosign_keys import PasswordSource
from sigscope.keys.pkcs11 import PinSource
from sigscope.keys.signer import FileSigner, Signer

if TYPE_CHECKING:
    from sigscope.keys.remote import RemoteSignerOptions

_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class KeySecrets:
    """Where secrets come from when a key needs one; each is called only if needed."""

    password: PasswordSource = None  # for an encrypted key file
    pin: PinSource = None  # for a PKCS#11 token the URI and environment give no PIN for
    role: str | None = None  # the flag that took the key (`--key`), for file errors
    remote: RemoteSignerOptions | None = None  # --signer-ca/--signer-cert/--signer-token-file for remote keys


Opener = Callable[[str, KeySecrets], Signer]


def _open_file(spec: str, secrets: KeySecrets) -> Signer:
    from sigscope.keys.files import load_private_key_file

    return FileSigner(load_private_key_file(spec, secrets.password, secrets.role))


def _open_pkcs11(spec: str, secrets: KeySecrets) -> Signer:
    from sigscope.keys.pkcs11 import open_pkcs11_signer

    return open_pkcs11_signer(spec, secrets.pin)


def _open_remote(spec: str, secrets: KeySecrets) -> Signer:
    from sigscope.keys.remote import RemoteSignerOptions, open_remote_signer

    return open_remote_signer(spec, secrets.remote or RemoteSignerOptions())


# scheme (lower case, without the colon) → opener. A new key home adds one line here.
SCHEMES: dict[str, Opener] = {
    "pkcs11": _open_pkcs11,
    "remote+https": _open_remote,
}


class UnknownKeySchemeError(UsageError):
    """A key named by a URI whose scheme sigscope does not sign with."""


def scheme_of(spec: str) -> str | None:
    """The URI scheme of a key spec (lower case), or None for a plain path."""
    match = _URI.match(spec)
    if match is None or len(match.group(1)) == 1:  # `C:` would be a drive, not a scheme
        return None
    return match.group(1).lower()


def open_signer(
    spec: str,
    *,
    password: PasswordSource = None,
    pin: PinSource = None,
    role: str | None = None,
    remote: RemoteSignerOptions | None = None,
) -> Signer:
    """The :class:`Signer` for a `--key` value: a key file path, a `pkcs11:` or a `remote+https:` URI.

    `password` opens an encrypted key file, `pin` is asked for a token the URI and environment give no PIN
    for; each only when needed. A URI with an unknown scheme is a :class:`UnknownKeySchemeError`.
    """
    secrets = KeySecrets(password=password, pin=pin, role=role, remote=remote)
    scheme = scheme_of(spec)
    if scheme is None:
        return _open_file(spec, secrets)
    opener = SCHEMES.get(scheme)
    if opener is not None:
        return opener(spec, secrets)
    if Path(spec).exists():
        return _open_file(spec, secrets)
    known = ", ".join(f"{name}:" for name in sorted(SCHEMES))
    # Only the scheme is named: the rest of a key URI may carry a PIN or a password.
    where = f" for {role}" if role else ""
    raise UnknownKeySchemeError(
        f"{scheme}: is not a key scheme sigscope knows{where} (it signs with key files and {known} URIs)"
    )
