"""Start a real OCI registry (Debian ``docker-registry``, CNCF distribution 2.8.2) on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .pki import issue
from .tokenserver import TokenServer

REGISTRY_BIN_NAME = "docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: Accept header that makes distribution return OCI manifests and indexes (it 404s them otherwise).
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def registry_binary() -> str | None:
    """Path of ``docker-registry`` or None when it is not installed."""
    return shutil.which(REGISTRY_BIN_NAME)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the tests started, killing it if it does not go within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


_REFUSING: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of the run: bound but never listening, so
    no server started later can be handed it (as it could a port free_port() found and let go)."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    _REFUSING.append(held)
    return int(held.getsockname()[1])


@dataclass
class RegistryHandle:
    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT" or "https://..."
    process: subprocess.Popen[bytes]
    rootdir: Path
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    #: "repo:tag" → digest of what the fixture pushed there
    images: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    log_file: Path | None = None

    @property
    def verify(self) -> bool | str:
        """Value for requests' ``verify=`` (CA file for TLS registries, else True)."""
        return str(self.ca_file) if self.ca_file else True

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo ``--dest-creds``/``--src-creds``."""
        if self.username is None or self.password is None:
            return None
        return f"{self.username}:{self.password}"

    def stop(self) -> None:
        stop_process(self.process)
        if self.token_server is not None:
            self.token_server.stop()


# -- TLS ---------------------------------------------------------------------------------------------


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Write a test CA and a server cert (SAN DNS:localhost, IP:127.0.0.1). Returns (ca, cert, key) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigscope test CA")])
    ca_cert = issue(
        ca_name, ca_key.public_key(), ca_name, ca_key, ca=True, path_length=0, not_before=start, not_after=end
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        key.public_key(),
        ca_name,
        ca_key,
        ca=False,
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        not_before=start,
        not_after=end,
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n" for u, p in users.items()
    ]
    path.write_text("".join(lines))
    return path


# -- registry ----------------------------------------------------------------------------------------


class RegistryExited(RuntimeError):
    """docker-registry died or never answered; the message carries its log (stderr)."""


def _program(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) else args
    return Path(str(first)).name


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, verify: bool | str, log_file: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RegistryExited(
                    f"{_program(proc)} exited with code {proc.returncode}:\n"
                    + log_file.read_text(errors="replace")
                )
            try:
                # any HTTP answer (200, or 401 for auth registries) means it is serving
                session.get(url + "/v2/", timeout=0.5, verify=verify)
                return
            except requests.RequestException as exc:
                last_error = exc
                time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise RegistryExited(
        f"{_program(proc)} did not answer on {url} within {timeout}s ({last_error}):\n"
        + log_file.read_text(errors="replace")
    )


def start_registry(
    workdir: Path,
    *,
    tls: bool = False,
    htpasswd: dict[str, str] | None = None,
    token: bool = False,
    users: dict[str, str] | None = None,
    refresh_tokens: dict[str, str] | None = None,
    token_expires_in: int = 300,
    anonymous_pull: bool = False,
    token_host: str = "127.0.0.1",
    extra_config: dict[str, Any] | None = None,
    timeout: float = 15.0,
    binary: str | Path | None = None,
) -> RegistryHandle:
    """Start ``docker-registry serve`` with its storage under ``workdir`` and wait until ``/v2/`` answers.

    ``htpasswd`` (user → password) enables Basic auth; ``token=True`` starts a :class:`TokenServer` for
    ``users`` (user → password, ``refresh_tokens`` token → user) and enables bearer-token auth.
    ``token_host`` is where the token server listens (another loopback address, e.g. 127.0.0.2, puts the
    realm on another host). ``username``/``password`` on the handle are the first configured user.
    ``binary`` runs another build of distribution with the same config shape instead, e.g. distribution
    v3's ``registry`` (testbed/peers.py).
    """
    binary = str(binary) if binary is not None else registry_binary()
    if binary is None:
        raise FileNotFoundError("docker-registry not installed (apt-get install -y docker-registry)")
    if htpasswd and token:
        raise ValueError("choose one of htpasswd or token auth")
    workdir.mkdir(parents=True, exist_ok=True)
    rootdir = workdir / "storage"
    rootdir.mkdir(exist_ok=True)
    host = f"127.0.0.1:{free_port()}"
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(rootdir)}, "delete": {"enabled": True}},
        "http": {"addr": host, "secret": secrets.token_hex(16)},
    }
    ca_file: Path | None = None
    if tls:
        ca_file, cert_file, key_file = make_tls_files(workdir / "tls")
        config["http"]["tls"] = {"certificate": str(cert_file), "key": str(key_file)}
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    if htpasswd:
        path = write_htpasswd(workdir / "htpasswd", htpasswd)
        config["auth"] = {"htpasswd": {"realm": "sigscope-test", "path": str(path)}}
        username, password = next(iter(htpasswd.items()))
    elif token:
        token_server = TokenServer(
            users=users,
            refresh_tokens=refresh_tokens,
            expires_in=token_expires_in,
            anonymous_pull=anonymous_pull,
            host=token_host,
        ).start()
        bundle = workdir / "token-signer.pem"
        bundle.write_bytes(token_server.cert_pem)
        config["auth"] = {
            "token": {
                "realm": token_server.url,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(bundle),
            }
        }
        if users:
            username, password = next(iter(users.items()))
    if extra_config:
        for key, value in extra_config.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
    config_file = workdir / "config.yml"
    log_file = workdir / "registry.log"
    scheme = "https" if tls else "http"
    verify: bool | str = str(ca_file) if ca_file else True
    try:
        for attempt in range(3):
            if attempt:  # the free port was taken by a neighbour between bind and launch: pick another
                host = f"127.0.0.1:{free_port()}"
                config["http"]["addr"] = host
            url = f"{scheme}://{host}"
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            with log_file.open("wb") as log:
                proc = subprocess.Popen(
                    [binary, "serve", str(config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            try:
                _wait_ready(proc, url, verify, log_file, timeout)
                break
            except RegistryExited:
                if attempt == 2 or "address already in use" not in log_file.read_text(errors="replace"):
                    raise
    except BaseException:
        if token_server is not None:
            token_server.stop()
        raise
    return RegistryHandle(
        host=host,
        url=url,
        process=proc,
        rootdir=rootdir,
        ca_file=ca_file,
        username=username,
        password=password,
        token_server=token_server,
        config_file=config_file,
        log_file=log_file,
    )


def start_olareg(workdir: Path, binary: str | Path, *, timeout: float = 15.0) -> RegistryHandle:
    """Start ``olareg serve`` (regclient's registry: the OCI 1.1 referrers API, no ``_catalog``) on loopback,
    plain HTTP, storing OCI layouts under ``workdir``/storage; wait until ``/v2/`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    rootdir = workdir / "storage"
    rootdir.mkdir(exist_ok=True)
    log_file = workdir / "olareg.log"
    for attempt in range(3):
        port = free_port()
        host = f"127.0.0.1:{port}"
        command = [str(binary), "serve", "--addr", "127.0.0.1", "--port", str(port), "--dir", str(rootdir)]
        with log_file.open("wb") as log:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )
        try:
            _wait_ready(proc, f"http://{host}", True, log_file, timeout)
            break
        except RegistryExited:
            if attempt == 2 or "address already in use" not in log_file.read_text(errors="replace"):
                raise
    return RegistryHandle(host=host, url=f"http://{host}", process=proc, rootdir=rootdir, log_file=log_file)
