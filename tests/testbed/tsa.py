"""A real RFC 3161 time-stamping authority on loopback: `openssl ts -reply` behind a tiny HTTP front end.

`TSAServer(pki_dir, entity="tsa")` serves `POST application/timestamp-query` → `application/timestamp-reply`
at `url` ("http://127.0.0.1:PORT/"), signing with `pki_dir/ENTITY.key` / `ENTITY.crt` from a directory made by
`testbed.pki.build_pki` (entities `tsa`, `ec-tsa`, `tsa-no-eku`).

`openssl ts -reply` refuses to sign with a certificate lacking the critical timeStamping EKU, which is exactly
the TSA a verifier must be tested against; and it cannot sign with RSA-PSS. For those (`tsa-no-eku`, or
`rsa_pss=True`) the TSTInfo is built here from the query and signed by `openssl cms -sign -cades` (which adds
the ESS signingCertificateV2 attribute), so the CMS signature still comes from OpenSSL.

Fault injection, for the client's error paths (no honest TSA produces these): set `replay` to bytes the server
answers every query with (a replayed or garbage reply), or `http_status` to answer with that HTTP status.
Paths other than "/" answer 404; a Content-Type other than application/timestamp-query answers 415.

Run as `python -m testbed.tsa PKI_DIR [ENTITY]` from tests/: prints the URL, serves until killed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from asn1crypto import cms, tsp

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
POLICY = "1.2.3.4.1"
OTHER_POLICY = "1.2.3.4.5"
MAX_QUERY = 64 * 1024

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {cert}
certs = {chain}
signer_key = {key}
signer_digest = sha256
default_policy = {policy}
other_policies = {other_policy}
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500, microsecs:100
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}
"""


class TSAServer:
    """Context manager: a TSA on 127.0.0.1 signing with `pki_dir/<entity>.{crt,key}`."""

    def __init__(
        self,
        pki_dir: Path,
        entity: str = "tsa",
        workdir: Path | None = None,
        *,
        ess_cert_id_alg: str = "sha256",
        rsa_pss: bool = False,
    ) -> None:
        self.pki_dir = Path(pki_dir)
        self.entity = entity
        self.root_path = self.pki_dir / "root.crt"
        self.cert_path = self.pki_dir / f"{entity}.crt"
        self.key_path = self.pki_dir / f"{entity}.key"
        self.chain_path = self.pki_dir / f"{entity}.chain.pem"
        for path in (self.root_path, self.cert_path, self.key_path, self.chain_path):
            if not path.is_file():
                raise FileNotFoundError(f"TSA material missing: {path}")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="tsa-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ess_cert_id_alg = ess_cert_id_alg
        self.rsa_pss = rsa_pss
        # openssl ts refuses signers without the critical timeStamping EKU; sign those through openssl cms.
        self.use_cms = rsa_pss or entity == "tsa-no-eku"
        self.config_path = self.workdir / "tsa.cnf"
        self.config_path.write_text(
            _CONFIG.format(
                dir=self.workdir,
                cert=self.cert_path,
                chain=self.chain_path,
                key=self.key_path,
                policy=POLICY,
                other_policy=OTHER_POLICY,
                ess_alg=ess_cert_id_alg,
            )
        )
        (self.workdir / "serial").write_text("01\n")
        self.replay: bytes | None = None
        self.http_status: int | None = None
        self.queries: list[bytes] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> TSAServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        self._thread = threading.Thread(target=server.serve_forever, name="tsa", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TSAServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the TSA itself ----------------------------------------------------------------------------------
    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp for a DER TimeStampReq (what the HTTP front end serves)."""
        with self._lock:  # the serial file and scratch files are shared state
            self._counter += 1
            n = self._counter
            query_path = self.workdir / f"q{n}.tsq"
            reply_path = self.workdir / f"r{n}.tsr"
            query_path.write_bytes(query)
            try:
                if self.use_cms:
                    return self._cms_reply(query, n)
                proc = subprocess.run(
                    [
                        "openssl", "ts", "-reply", "-config", str(self.config_path),
                        "-queryfile", str(query_path), "-out", str(reply_path),
                    ],
                    capture_output=True,
                    check=False,
                )  # fmt: skip
                if proc.returncode != 0 or not reply_path.exists():
                    raise RuntimeError(f"openssl ts -reply failed: {proc.stderr.decode(errors='replace')}")
                return reply_path.read_bytes()
            finally:
                query_path.unlink(missing_ok=True)
                reply_path.unlink(missing_ok=True)

    def _cms_reply(self, query: bytes, n: int) -> bytes:
        req = tsp.TimeStampReq.load(query)
        info: dict[str, object] = {
            "version": "v1",
            "policy": POLICY,
            "message_imprint": req["message_imprint"],
            "serial_number": secrets.randbits(63) | 1,
            "gen_time": datetime.now(UTC).replace(microsecond=0),
            "accuracy": {"seconds": 1},
        }
        if req["nonce"].native is not None:
            info["nonce"] = req["nonce"].native
        tst_path = self.workdir / f"tst{n}.der"
        token_path = self.workdir / f"token{n}.der"
        tst_path.write_bytes(tsp.TSTInfo(info).dump())
        args = [
            "openssl", "cms", "-sign", "-binary", "-nodetach", "-cades", "-nosmimecap",
            "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-md", "sha256",
            "-signer", str(self.cert_path), "-inkey", str(self.key_path),
            "-in", str(tst_path), "-outform", "DER", "-out", str(token_path),
        ]  # fmt: skip
        if self.rsa_pss:
            args += ["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32"]
        if req["cert_req"].native:
            args += ["-certfile", str(self.root_path)]
        else:
            args += ["-nocerts"]
        try:
            proc = subprocess.run(args, capture_output=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"openssl cms -sign failed: {proc.stderr.decode(errors='replace')}")
            token = cms.ContentInfo.load(token_path.read_bytes())
        finally:
            tst_path.unlink(missing_ok=True)
            token_path.unlink(missing_ok=True)
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


def _handler(tsa: TSAServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(405, b"POST a timestamp query\n")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_QUERY:
                self._send(413, b"query too large\n")
                return
            body = self.rfile.read(length)
            if self.path != "/":
                self._send(404, b"not found\n")
                return
            if self.headers.get("Content-Type", "").split(";")[0].strip() != QUERY_TYPE:
                self._send(415, b"expected application/timestamp-query\n")
                return
            tsa.queries.append(body)
            if tsa.http_status is not None:
                self._send(tsa.http_status, b"injected failure\n")
                return
            if tsa.replay is not None:
                self._send(200, tsa.replay, REPLY_TYPE)
                return
            try:
                reply = tsa.reply(body)
            except Exception as exc:  # a malformed query: a TSA answers with an HTTP error, not a hang
                self._send(400, f"{exc}\n".encode())
                return
            self._send(200, reply, REPLY_TYPE)

    return Handler


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m testbed.tsa PKI_DIR [ENTITY]", file=sys.stderr)
        return 2
    with TSAServer(Path(argv[0]), argv[1] if len(argv) > 1 else "tsa") as server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
