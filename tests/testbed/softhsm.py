"""SoftHSM2 tokens made per test: a private config and token directory, a token initialized with
softhsm2-util, keys made with pkcs11-tool (OpenSC) or `sigscope key generate`, and the token's own state
changed where SoftHSM2 has no command for it (a locked user PIN)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from . import absent

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "4711-token-pin"
SO_PIN = "so-pin-8086"
# SoftHSM2's own attribute holding the token flags in token.object (CKA_OS_TOKENFLAGS), and the flag a token
# raises after too many wrong PINs (PKCS#11 CKF_USER_PIN_LOCKED).
_TOKEN_FLAGS_ATTRIBUTE = bytes.fromhex("000000008000534b")
_USER_PIN_LOCKED = 0x00040000


def require_softhsm() -> None:
    """Skip (fail under CI) unless SoftHSM2 and OpenSC's pkcs11-tool are installed."""
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if shutil.which(tool) is None:
            absent.unavailable(
                f"{tool} not installed (apt-get install -y softhsm2 opensc; setup.sh does this)"
            )
    if not MODULE.exists():
        absent.unavailable(f"{MODULE} missing (apt-get install -y softhsm2)")


@dataclass
class SoftHsm:
    """One SoftHSM2 installation of its own: SOFTHSM2_CONF → `directory`/softhsm2.conf."""

    directory: Path

    @property
    def conf(self) -> Path:
        return self.directory / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.directory / "tokens"

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    @property
    def pin_file(self) -> Path:
        path = self.directory / "pin.txt"
        if not path.exists():
            path.write_text(PIN + "\n")
        return path

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
        return result

    def init_token(self, label: str) -> None:
        self.run(
            "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN
        )

    def pkcs11_tool(self, token: str, *args: str) -> subprocess.CompletedProcess[str]:
        """pkcs11-tool logged in to `token` as the user."""
        return self.run(
            "pkcs11-tool", "--module", str(MODULE), "--token-label", token, "--login", "--pin", PIN, *args
        )

    def uri(
        self, token: str, obj: str | None = None, *, key_id: bytes | None = None, pin: str = "source"
    ) -> str:
        """A sigscope URI for `obj` on `token`: the PIN from the pin file ("source"), in the URI ("value"),
        or not given ("none")."""
        path = [f"token={quote(token, safe='')}"]
        if obj is not None:
            path.append(f"object={quote(obj, safe='')}")
        if key_id is not None:
            path.append("id=" + "".join(f"%{b:02x}" for b in key_id))
        query = [f"module-path={MODULE}"]
        if pin == "source":
            query.append(f"pin-source=file:{self.pin_file}")
        elif pin == "value":
            query.append(f"pin-value={quote(PIN, safe='')}")
        return "pkcs11:" + ";".join(path) + "?" + "&".join(query)

    def lock_user_pin(self, token: str) -> None:
        """Raise CKF_USER_PIN_LOCKED in the token's stored flags, as a token that counts wrong PINs does
        (SoftHSM2 counts none, so it never locks by itself)."""
        for directory in self.tokens.iterdir():
            path = directory / "token.object"
            data = bytearray(path.read_bytes())
            if token.ljust(32).encode() not in data:
                continue
            at = data.index(_TOKEN_FLAGS_ATTRIBUTE)
            value = at + len(_TOKEN_FLAGS_ATTRIBUTE) + 8  # after the value's type tag (8 bytes)
            flags = int.from_bytes(data[value : value + 8], "big") | _USER_PIN_LOCKED
            data[value : value + 8] = flags.to_bytes(8, "big")
            path.write_bytes(bytes(data))
            return
        raise AssertionError(f"no SoftHSM2 token {token} under {self.tokens}")


def make_softhsm(directory: Path, *tokens: str) -> SoftHsm:
    """A fresh SoftHSM2 with the given tokens initialized (user PIN :data:`PIN`)."""
    require_softhsm()
    hsm = SoftHsm(directory)
    hsm.tokens.mkdir(parents=True)
    hsm.conf.write_text(
        f"directories.tokendir = {hsm.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    for label in tokens:
        hsm.init_token(label)
    return hsm
