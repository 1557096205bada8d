"""OpenPGP signing through the `gpg` binary, as containers/image signs simple signatures through gpgme.

The private key stays where the user keeps it (a GnuPG home, a smartcard behind gpg-agent): sigscope never
reads secret key material, it asks gpg for a binary signed message (`gpg --sign`, not detached, not armored:
a one-pass signature, the literal payload and the signature, usually compressed) exactly as skopeo's
`--sign-by` produces. The result is parsed back before it is handed out, so a gpg that signed something else,
or with another key, is an error rather than a bad signature in a lookaside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sigscope.errors import SigscopeError
from sigscope.formats import simplesigning as ss

GPG_TIMEOUT = 120.0
_HEX = frozenset("0123456789ABCDEF")


class GpgError(SigscopeError):
    """gpg is missing, the key is not there, or gpg failed to sign; the message says which."""


@dataclass(frozen=True)
class SecretKey:
    """The signing key gpg resolved the user's key spec to."""

    fingerprint: str  # of the primary key
    user_ids: tuple[str, ...]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("[GNUPG:]")]
    return lines[-1] if lines else "no message"


class GpgSigner:
    """Signs payloads with one secret key of one GnuPG home (`--gnupg-home`, else $GNUPGHOME / ~/.gnupg)."""

    def __init__(self, key: str, *, home: str | Path | None = None, gpg: str | None = None) -> None:
        binary = gpg or shutil.which("gpg")
        if binary is None:
            raise GpgError("gpg is not installed (apt-get install gnupg)")
        if home is not None and not Path(home).is_dir():
            raise GpgError(f"GnuPG home {home} is not a directory")
        if not key.strip():
            raise GpgError("--gpg-key is empty")
        self._gpg = binary
        self._home = str(home) if home is not None else None
        self.key = self._resolve(key.strip())

    def _run(self, args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        cmd = [self._gpg, "--batch", "--no-tty"]
        if self._home is not None:
            cmd += ["--homedir", self._home]
        env = dict(os.environ)
        env.pop("GPG_TTY", None)
        try:
            return subprocess.run(
                cmd + args,
                input=data,
                capture_output=True,
                timeout=GPG_TIMEOUT,
                env=env,
                stdin=None if data is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise GpgError(
                f"gpg did not finish within {GPG_TIMEOUT:.0f} s (waiting for a passphrase?)"
            ) from None
        except OSError as exc:
            raise GpgError(f"cannot run {self._gpg}: {exc.strerror or exc}") from None

    def _resolve(self, spec: str) -> SecretKey:
        """The one secret key `spec` names; none or several is an error (a signature by a surprise key
        would be worse than no signature)."""
        proc = self._run(["--with-colons", "--fixed-list-mode", "--list-secret-keys", "--", spec])
        if proc.returncode != 0:
            where = f" in {self._home}" if self._home else ""
            raise GpgError(
                f"no secret key {spec!r}{where} (gpg: {_first_line(proc.stderr.decode(errors='replace'))})"
            )
        keys: list[tuple[str, list[str]]] = []
        expect_fpr = False
        for line in proc.stdout.decode(errors="replace").splitlines():
            fields = line.split(":")
            if fields[0] == "sec":
                keys.append(("", []))
                expect_fpr = True
            elif fields[0] == "ssb":
                expect_fpr = False
            elif fields[0] == "fpr" and expect_fpr and keys and len(fields) > 9:
                keys[-1] = (fields[9].upper(), keys[-1][1])
                expect_fpr = False
            elif fields[0] == "uid" and keys and len(fields) > 9:
                keys[-1][1].append(fields[9])
        keys = [k for k in keys if k[0]]
        if not keys:
            raise GpgError(f"no secret key {spec!r} (gpg listed none)")
        if len(keys) > 1:
            listed = ", ".join(k[0] for k in keys)
            raise GpgError(
                f"--gpg-key {spec!r} matches {len(keys)} secret keys ({listed}); give a fingerprint"
            )
        fingerprint, uids = keys[0]
        if len(fingerprint) != 40 or not set(fingerprint) <= _HEX:
            raise GpgError(f"gpg reported an unexpected fingerprint {fingerprint!r} for {spec!r}")
        return SecretKey(fingerprint=fingerprint, user_ids=tuple(uids))

    def export_public(self) -> bytes:
        """The public key (binary transferable key), for a `signedBy` keyPath or `--gpg-keyring`."""
        proc = self._run(["--export", self.key.fingerprint])
        if proc.returncode != 0 or not proc.stdout:
            reason = _first_line(proc.stderr.decode(errors="replace"))
            raise GpgError(f"gpg --export {self.key.fingerprint} failed: {reason}")
        return proc.stdout

    def sign(self, payload: bytes) -> bytes:
        """A binary OpenPGP signed message over `payload`, checked to carry exactly `payload` and to name
        the resolved key (or one of its subkeys)."""
        # "!" pins the exact key: without it gpg may pick another signing subkey of the same certificate.
        proc = self._run(["--local-user", f"{self.key.fingerprint}!", "--sign", "--output", "-"], payload)
        if proc.returncode != 0 or not proc.stdout:
            message = _first_line(proc.stderr.decode(errors="replace"))
            raise GpgError(f"gpg could not sign with {self.key.fingerprint}: {message}")
        blob = proc.stdout
        try:
            message_ = ss.parse_message(blob)
        except ss.SimpleSigningError as exc:
            raise GpgError(f"gpg produced something that is not an OpenPGP signed message: {exc}") from None
        if message_.literal != payload or not message_.signatures:
            raise GpgError("gpg's signed message does not carry the payload it was given")
        issuer = message_.signatures[0]
        named = {k.upper() for k in issuer.issuer_key_ids}
        if issuer.fingerprint:
            named.add(issuer.fingerprint.upper()[-16:])
        if issuer.one_pass is not None:
            named.add(issuer.one_pass.key_id.upper())
        if self.key.fingerprint[-16:] not in named and not self._is_subkey_of_key(named):
            raise GpgError(f"gpg signed with key {', '.join(sorted(named))}, not {self.key.fingerprint}")
        if not ss.looks_like_simple_signing(blob):
            raise GpgError(f"containers/image would not recognise gpg's output (first byte {blob[0]:#04x})")
        return blob

    def _is_subkey_of_key(self, key_ids: set[str]) -> bool:
        proc = self._run(["--with-colons", "--fixed-list-mode", "--list-secret-keys", self.key.fingerprint])
        subkeys = {
            line.split(":")[4].upper()
            for line in proc.stdout.decode(errors="replace").splitlines()
            if line.startswith("ssb:") and len(line.split(":")) > 4
        }
        return bool(subkeys & key_ids)

    def __repr__(self) -> str:
        return f"GpgSigner({self.key.fingerprint})"
