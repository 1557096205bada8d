"""Revocation peers on loopback: a real OpenSSL OCSP responder and a small HTTP server for CRLs.

`OCSPResponder(pki)` runs `openssl ocsp -index … -CA … -rsigner … -rkey … -port P` (it needs a fixed port:
one is bound, released and handed over, and the responder is polled with a real OCSP request until it
answers). `CRLServer()` serves bytes by path and logs every request (so a test can assert a cache hit made
no request). `HangingServer()` accepts TCP connections and never answers (an OCSP/CRL timeout).

`RevocationPKI(dir, ocsp_url, crl_url)` builds, with cryptography, a Notary-conformant PKI whose leaves point
at those URLs (start the servers first: their ports are in the certificates). Entities (each NAME.key,
NAME.crt, NAME.chain.pem — the testbed.pki layout, so testbed.tsa.TSAServer can sign with the TSAs):
  root             self-signed P-256 CA (BC, KU keyCertSign+cRLSign, critical); signs leaves and the CRL
  responder        delegated OCSP responder (EKU OCSPSigning, id-pkix-ocsp-nocheck)
  good             code-signing leaf, OCSP + CRL, good
  revoked          code-signing leaf, OCSP + CRL, revoked (keyCompromise) in both
  crl-good         code-signing leaf, CRL only, not listed
  crl-revoked      code-signing leaf, CRL only, listed
  unlisted         code-signing leaf, OCSP + CRL, absent from the index (OCSP "unknown"), not on the CRL
  dead-ocsp        code-signing leaf, OCSP at a closed port only
  dead-fallback    code-signing leaf, OCSP at a closed port, CRL good
  hang-ocsp        code-signing leaf, OCSP at `hang_url` only (needs hang_url)
  tsa              time-stamping leaf, OCSP, good
  revoked-tsa      time-stamping leaf, OCSP, revoked
  compromised      code-signing leaf, OCSP + CRL, revoked at `revoked_at` (an hour ago) with an
                   invalidityDate `invalid_from` (two hours ago): good for signatures made before that
The CRL (`crl.der`, served at crl_url) lists `revoked`, `crl-revoked`, `revoked-tsa`, `compromised`.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from .registry import free_port, refused_port

CODE = "code"
TSA = "tsa"
# name → (kind, OCSP url key or None, CRL?, revoked?, in the OCSP index?)
ENTITIES: dict[str, tuple[str, str | None, bool, bool, bool]] = {
    "good": (CODE, "ocsp", True, False, True),
    "revoked": (CODE, "ocsp", True, True, True),
    "crl-good": (CODE, None, True, False, True),
    "crl-revoked": (CODE, None, True, True, True),
    "unlisted": (CODE, "ocsp", True, False, False),
    "dead-ocsp": (CODE, "dead", False, False, True),
    "dead-fallback": (CODE, "dead", True, False, True),
    "hang-ocsp": (CODE, "hang", False, False, True),
    "tsa": (TSA, "ocsp", False, False, True),
    "revoked-tsa": (TSA, "ocsp", False, True, True),
    "compromised": (CODE, "ocsp", True, True, True),
}
COMPROMISED = "compromised"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Revocation Tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def closed_port_url() -> str:
    """An http URL nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{refused_port()}/"


@dataclass
class Issued:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    revoked: bool = False
    listed: bool = True


@dataclass
class RevocationPKI:
    dir: Path
    ocsp_url: str
    crl_url: str
    hang_url: str = ""
    dead_url: str = field(default_factory=closed_port_url)
    entities: dict[str, Issued] = field(default_factory=dict)
    revoked_at: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    )
    invalid_from: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    )

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = (
            x509.CertificateBuilder()
            .subject_name(_name("Revocation Root"))
            .issuer_name(_name("Revocation Root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self.root = Issued("root", root_key, root)
        self._write(self.root, [root])
        responder_key = ec.generate_private_key(ec.SECP256R1())
        responder = (
            self._builder("OCSP Responder", responder_key, now)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self.responder = Issued("responder", responder_key, responder)
        self._write(self.responder, [responder, root])
        urls = {"ocsp": self.ocsp_url, "dead": self.dead_url, "hang": self.hang_url}
        for name, (kind, ocsp_key, crl, revoked, listed) in ENTITIES.items():
            if ocsp_key == "hang" and not self.hang_url:
                continue
            key = ec.generate_private_key(ec.SECP256R1())
            builder = self._builder(f"Revocation {name}", key, now).add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            if kind == TSA:
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
                )
            else:
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
                )
            if ocsp_key is not None:
                access = x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls[ocsp_key])
                )
                builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
            if crl:
                point = x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(self.crl_url)], None, None, None
                )
                builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
            issued = Issued(name, key, builder.sign(root_key, hashes.SHA256()), revoked, listed)
            self.entities[name] = issued
            self._write(issued, [issued.cert, root])
        self.write_index()
        self.crl = self.make_crl()
        (self.dir / "crl.der").write_bytes(self.crl)

    def _builder(self, cn: str, key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.root.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=10))
            .not_valid_after(now + timedelta(days=365))
        )

    def _write(self, issued: Issued, chain: list[x509.Certificate]) -> None:
        (self.dir / f"{issued.name}.key").write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.dir / f"{issued.name}.crt").write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / f"{issued.name}.chain.pem").write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        )

    def __getitem__(self, name: str) -> Issued:
        return self.entities[name]

    def chain(self, name: str) -> list[x509.Certificate]:
        return [self.entities[name].cert, self.root.cert]

    @property
    def index_path(self) -> Path:
        return self.dir / "index.txt"

    def write_index(self) -> None:
        """openssl ca's index.txt: V/R, expiry, revocation time[,reason], serial (hex), file, subject."""

        def stamp(when: datetime) -> str:
            return when.strftime("%y%m%d%H%M%SZ")  # UTCTime: openssl ocsp rejects GeneralizedTime

        lines = []
        for issued in self.entities.values():
            if not issued.listed:
                continue
            cert = issued.cert
            serial = format(cert.serial_number, "X")
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            subject = "/" + "/".join(a.rfc4514_string() for a in cert.subject)
            status, revoked = (
                ("R", f"{stamp(self.revoked_at)},keyCompromise") if issued.revoked else ("V", "")
            )
            if issued.name == COMPROMISED:
                # openssl's "keyTime" reason: keyCompromise plus an invalidityDate (GeneralizedTime) it puts
                # into the single response's extensions
                revoked = f"{stamp(self.revoked_at)},keyTime,{self.invalid_from.strftime('%Y%m%d%H%M%SZ')}"
            lines.append(
                f"{status}\t{stamp(cert.not_valid_after_utc)}\t{revoked}\t{serial}\tunknown\t{subject}\n"
            )
        self.index_path.write_text("".join(lines))
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")

    def make_crl(
        self,
        *,
        next_update: timedelta = timedelta(days=1),
        this_update: datetime | None = None,
        signer: ec.EllipticCurvePrivateKey | None = None,
        extra: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
        entries: list[x509.RevokedCertificate] | None = None,
    ) -> bytes:
        """A DER CRL of the revoked entities, signed by root (or `signer`)."""
        now = this_update or datetime.now(UTC) - timedelta(minutes=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.root.cert.subject)
            .last_update(now)
            .next_update(now + next_update)
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        for ext, critical in extra:
            builder = builder.add_extension(ext, critical=critical)
        if entries is None:
            entries = []
            for issued in self.entities.values():
                if not issued.revoked:
                    continue
                entry = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(issued.cert.serial_number)
                    .revocation_date(self.revoked_at)
                    .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                )
                if issued.name == COMPROMISED:
                    entry = entry.add_extension(x509.InvalidityDate(self.invalid_from), critical=False)
                entries.append(entry.build())
        for entry in entries:
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(signer or self.root.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)


class OCSPResponder:
    """`openssl ocsp` serving `pki`'s index on 127.0.0.1 (delegated responder certificate by default)."""

    def __init__(self, pki_dir: Path, *, port: int | None = None, signer: str = "responder") -> None:
        if shutil.which("openssl") is None:
            raise FileNotFoundError("openssl is not installed")
        self.pki_dir = Path(pki_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.signer = signer
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OCSPResponder:
        d = self.pki_dir
        self.process = subprocess.Popen(
            [
                "openssl", "ocsp", "-index", str(d / "index.txt"), "-CA", str(d / "root.crt"),
                "-rsigner", str(d / f"{self.signer}.crt"), "-rkey", str(d / f"{self.signer}.key"),
                "-port", str(self.port), "-ndays", "1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self._wait_ready()
        return self

    def _probe_request(self) -> bytes:
        root = x509.load_pem_x509_certificate((self.pki_dir / "root.crt").read_bytes())
        return (
            ocsp.OCSPRequestBuilder()
            .add_certificate(root, root, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        request = self._probe_request()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"openssl ocsp exited ({self.process.returncode}): {err}")
            try:
                req = urllib.request.Request(
                    self.url, data=request, headers={"Content-Type": "application/ocsp-request"}
                )
                with opener.open(req, timeout=2) as resp:
                    if resp.status == 200 and resp.read():
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"openssl ocsp did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def __enter__(self) -> OCSPResponder:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class CRLServer:
    """Serves `files[path]` over HTTP on 127.0.0.1; every request path is appended to `requests`."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="crl-server", daemon=True)

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def requested(self, path: str) -> int:
        with self._lock:
            return sum(1 for p in self.requests if p == "/" + path.lstrip("/"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.requests.append(self.path)
                    body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> CRLServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class HangingServer:
    """Listens on 127.0.0.1 and never accepts: connections complete in the kernel, answers never come."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/"

    def __enter__(self) -> HangingServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sock.close()


def ocsp_get_path(request: bytes) -> str:
    """The GET path notation would use for a short request (for tests that poke the responder directly)."""
    return urllib.request.quote(base64.b64encode(request).decode(), safe="")
