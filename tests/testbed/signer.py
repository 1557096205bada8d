"""A `sigscope signer serve` process on loopback, and the certificates it and its clients use.

`build_signer_pki(DIR)` writes a TLS CA (`tls-ca.crt`), the server's certificate for 127.0.0.1/localhost
(`server.crt`/`.key`), client certificates `alice` and `bob` under a client CA (`client-ca.crt`), `mallory`
under an unrelated CA, and signing keys with certificate chains under a code-signing CA (`code-ca.crt`):
`ec` (P-256), `rsa` (RSA-3072), `other` (P-256).

`SignerServer(args)` runs the service on a free port (`--port 0`, read back from its stderr) until the
context ends; `.url(NAME)` is the `remote+https://` URI of a key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .pki import issue

_LISTENING = re.compile(r"serving \d+ key\(s\) on https://([^:]+):(\d+)")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigscope tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _issue(
    cn: str,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None,
    signing_key: CertificateIssuerPrivateKeyTypes | None = None,
    *,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """Issued by `issuer`, or self-signed with `signing_key`."""
    now = datetime.now(UTC)
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), signing_key)
    assert issuer_key is not None
    return issue(
        _name(cn),
        public_key,
        issuer_name,
        issuer_key,
        ca=ca,
        eku=eku,
        san=san,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=365),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class SignerPKI:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


def build_signer_pki(directory: Path) -> SignerPKI:
    directory.mkdir(parents=True, exist_ok=True)

    def ca(name: str, cn: str) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(cn, key.public_key(), None, key, ca=True)
        (directory / f"{name}.crt").write_bytes(_pem(cert))
        (directory / f"{name}.key").write_bytes(_key_pem(key))
        return cert, key

    def leaf(
        name: str,
        issuer: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes],
        eku: x509.ObjectIdentifier,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        san: list[x509.GeneralName] | None = None,
    ) -> None:
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key.public_key(), issuer, eku=[eku], san=san)
        (directory / f"{name}.key").write_bytes(_key_pem(key))
        (directory / f"{name}.crt").write_bytes(_pem(cert))
        (directory / f"{name}.chain.pem").write_bytes(_pem(cert) + _pem(issuer[0]))

    tls = ca("tls-ca", "signer TLS CA")
    leaf(
        "server",
        tls,
        ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    clients = ca("client-ca", "signer client CA")
    for client in ("alice", "bob"):
        leaf(client, clients, ExtendedKeyUsageOID.CLIENT_AUTH, san=[x509.DNSName(f"{client}.example")])
    leaf("mallory", ca("rogue-ca", "rogue CA"), ExtendedKeyUsageOID.CLIENT_AUTH)
    code = ca("code-ca", "signer code-signing CA")
    leaf("ec", code, ExtendedKeyUsageOID.CODE_SIGNING)
    leaf("other", code, ExtendedKeyUsageOID.CODE_SIGNING)
    leaf("rsa", code, ExtendedKeyUsageOID.CODE_SIGNING, key=rsa.generate_private_key(65537, 3072))
    for name in ("ec", "rsa", "other"):
        key = serialization.load_pem_private_key((directory / f"{name}.key").read_bytes(), None)
        (directory / f"{name}.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return SignerPKI(directory)


def issue_code_signing(pki: SignerPKI, name: str, public: PublicKeyTypes) -> x509.Certificate:
    """A code-signing certificate for `public` (a key kept elsewhere, say on a token) under `code-ca`."""
    issuer_cert = x509.load_pem_x509_certificate((pki.dir / "code-ca.crt").read_bytes())
    issuer_key = serialization.load_pem_private_key((pki.dir / "code-ca.key").read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)

    assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return _issue(name, public, (issuer_cert, issuer_key), eku=[ExtendedKeyUsageOID.CODE_SIGNING])


class SignerServer:
    """`python -m sigscope signer serve ARGS --port 0` until the context ends."""

    def __init__(self, pki: SignerPKI, *args: str, env: dict[str, str] | None = None) -> None:
        self.pki = pki
        self.args = args
        self.env = env
        self.port = 0
        self.stderr = ""
        self._process: subprocess.Popen[str] | None = None

    def url(self, key: str) -> str:
        return f"remote+https://127.0.0.1:{self.port}/{key}"

    def __enter__(self) -> SignerServer:
        command = [
            sys.executable,
            "-m",
            "sigscope",
            "signer",
            "serve",
            "--tls-cert",
            self.pki.path("server.crt"),
            "--tls-key",
            self.pki.path("server.key"),
            "--port",
            "0",
            *self.args,
        ]
        self._process = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(self.env or {})},
        )
        assert self._process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            if not line:
                break
            self.stderr += line
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                return self
        self._process.kill()
        raise RuntimeError(f"signer did not start: {self.stderr}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def stop(self) -> str:
        """Stop the service; what it said on stderr."""
        process = self._process
        if process is None:
            return self.stderr
        self._process = None
        process.send_signal(signal.SIGTERM)
        try:
            rest = process.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            process.kill()
            rest = process.communicate()[1]
        self.stderr += rest or ""
        return self.stderr

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
