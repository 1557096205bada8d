"""`sigscope signer serve` and `--key remote+https://…`: a signing service on loopback, started once for the
module with certificates made here, and the signing verbs using it.

What a signature made remotely is worth is checked by sigscope verify and the real cosign; what the service
refuses is checked over HTTPS as a client sends it (no client certificate, a certificate from another CA, a
key the client may not use, bad and absent tokens, malformed, oversized and wrong-length digests, the rate
limit); the audit log's chain is checked, then tampered with. A service that lies (wrong signature, flood,
silence) is an in-process HTTPS server speaking the same protocol.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import RegistryHandle, build_layout, push_layout
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.peers import peer
from testbed.signer import SignerPKI, SignerServer, build_signer_pki

from sigscope.keys.remote import RemoteSignerError, RemoteSignerOptions, open_remote_signer
from sigscope.signerd.access import token_digest

CI_TOKEN = "ci-token-never-logged"
FLOOD_TOKEN = "flood-token-never-logged"
ALICE = "subject:CN=alice,O=sigscope tests,ST=WA,C=US"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SignerPKI:
    return build_signer_pki(tmp_path_factory.mktemp("remote-signer-pki"))


@pytest.fixture(scope="module")
def files(pki: SignerPKI) -> dict[str, Path]:
    tokens = pki.dir / "tokens"
    tokens.write_text(f"# clients\n{token_digest(CI_TOKEN)} ci\n{token_digest(FLOOD_TOKEN)} flood\n")
    access = pki.dir / "access.yaml"
    access.write_text(
        json.dumps(
            {
                "ec": [ALICE, "san:bob.example", "token:ci", "token:flood"],
                "rsa": ["token:ci", "san:alice.example"],
                "other": ["san:bob.example"],
            }
        )
    )
    for name, token in (("ci", CI_TOKEN), ("bad", "not-a-token")):
        (pki.dir / f"{name}.token").write_text(token + "\n")
    return {"tokens": tokens, "access": access, "audit": pki.dir / "audit.jsonl"}


@pytest.fixture(scope="module")
def service(pki: SignerPKI, files: dict[str, Path]) -> Iterator[SignerServer]:
    args = ["--client-ca", pki.path("client-ca.crt"), "--tokens", str(files["tokens"])]
    args += ["--access", str(files["access"]), "--rate", "20/s", "--audit-log", str(files["audit"])]
    for name in ("ec", "rsa", "other"):
        args += [
            "--key",
            f"{name}={pki.path(name + '.key')}",
            "--cert",
            f"{name}={pki.path(name + '.chain.pem')}",
        ]
    with SignerServer(pki, *args) as server:
        yield server


def alice(pki: SignerPKI) -> tuple[str, ...]:
    return (
        "--signer-ca",
        pki.path("tls-ca.crt"),
        "--signer-cert",
        pki.path("alice.crt"),
        "--signer-key",
        pki.path("alice.key"),
    )


def token(pki: SignerPKI, name: str = "ci") -> tuple[str, ...]:
    return ("--signer-ca", pki.path("tls-ca.crt"), "--signer-token-file", pki.path(f"{name}.token"))


def snapshot(*directories: Path) -> set[Path]:
    return {p for d in directories for p in d.rglob("*")}


# ---------------------------------------------------------------- signatures made remotely


def test_remote_signatures_verify(
    pki: SignerPKI, service: SignerServer, registry: RegistryHandle, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="remote-signer/cosign")
    push_layout(layout, "v1", registry.host, "remote/signed", "1.0")
    ref = f"{registry.host}/remote/signed@{digest}"
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    before = snapshot(work, temp)

    def sigscope(*args: str) -> subprocess.CompletedProcess[str]:
        return run_sigscope(*args, cwd=work, env={"TMPDIR": str(temp), "TEMP": str(temp), "TMP": str(temp)})

    signed = sigscope("sign", ref, "--insecure", "--key", service.url("ec"), *alice(pki), "-o", "json")
    assert signed.returncode == 0, signed.stderr
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"builder": {"id": "https://ci.example/remote"}}))
    attested = sigscope(
        "attest", ref, "--insecure", "--key", service.url("rsa"), *token(pki), "--predicate", str(predicate)
    )
    assert attested.returncode == 0, attested.stderr
    # the keys never came here: nothing was written to the working directory or the temp directory
    assert snapshot(work, temp) == before

    verified = run_sigscope("verify", ref, "--insecure", "--key", pki.path("ec.pub"), "-o", "json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["verified"], verified.stderr
    other = run_sigscope("verify", ref, "--insecure", "--key", pki.path("other.pub"))
    assert other.returncode == 1, other.stderr
    attestation = run_sigscope("verify-attestation", ref, "--insecure", "--key", pki.path("rsa.pub"))
    assert attestation.returncode == 0, attestation.stderr

    cosign = subprocess.run(
        [str(peer("cosign")), "verify", "--key", pki.path("ec.pub"), "--insecure-ignore-tlog",
         "--allow-insecure-registry", ref],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert cosign.returncode == 0, cosign.stderr
    assert json.loads(cosign.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == digest
    refused = subprocess.run(
        [str(peer("cosign")), "verify", "--key", pki.path("other.pub"), "--insecure-ignore-tlog",
         "--allow-insecure-registry", ref],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert refused.returncode != 0


def test_notation_envelope_with_a_remote_key(pki: SignerPKI, service: SignerServer, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="remote-signer/notation")
    for fmt, key in (("notation", "rsa"), ("notation-cose", "ec")):
        signed = run_sigscope(
            "sign", f"oci:{layout}:v1", "--format", fmt, "--key", service.url(key), *token(pki),
            "--cert", pki.path(f"{key}.chain.pem"),
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
    store = tmp_path / "truststore" / "x509" / "ca" / "remote"
    store.mkdir(parents=True)
    (store / "ca.crt").write_bytes((pki.dir / "code-ca.crt").read_bytes())
    policy = tmp_path / "trustpolicy.json"
    policy.write_text(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "remote",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:remote"],
                        "trustedIdentities": ["*"],
                    }
                ],
            }
        )
    )
    verified = run_sigscope(
        "verify", f"oci:{layout}:v1", "--trust-policy", str(policy),
        "--trust-store", str(tmp_path / "truststore"), "-o", "json",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert sorted(s["status"] for s in json.loads(verified.stdout)["signatures"]) == ["verified", "verified"]


# ---------------------------------------------------------------- who may sign


def test_clients_refused(pki: SignerPKI, service: SignerServer, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="remote-signer/refused")
    before = (layout / "index.json").read_bytes()
    ca = ("--signer-ca", pki.path("tls-ca.crt"))
    mallory = (*ca, "--signer-cert", pki.path("mallory.crt"), "--signer-key", pki.path("mallory.key"))
    bob = (*ca, "--signer-cert", pki.path("bob.crt"), "--signer-key", pki.path("bob.key"))
    cases = [
        ("ec", ca, "refused (401): no client certificate or bearer token"),
        ("ec", mallory, "signer " + service.url("ec")),  # the TLS handshake fails: a CA it does not trust
        ("rsa", bob, "refused (403): this client may not describe with this key"),
        ("ec", token(pki, "bad"), "refused (401): bad bearer token"),
        ("nosuch", token(pki), "refused (404)"),
        ("ec", (), "certificate verify failed"),  # the service's CA is not the system's
    ]
    for key, flags, message in cases:
        failed = run_sigscope("sign", f"oci:{layout}:v1", "--key", service.url(key), *flags)
        assert_clean_failure(failed, message)
    missing = run_sigscope(
        "sign", f"oci:{layout}:v1", "--key", service.url("ec"), *ca, "--signer-token-file", "/nonexistent"
    )
    assert missing.returncode == 2 and "/nonexistent" in missing.stderr
    assert (layout / "index.json").read_bytes() == before
    # bob may use `other`; alice may not
    options = RemoteSignerOptions(
        ca_file=pki.path("tls-ca.crt"), cert_file=pki.path("bob.crt"), key_file=pki.path("bob.key")
    )
    signer = open_remote_signer(service.url("other"), options)
    try:
        assert len(signer.sign(b"data")) > 60
    finally:
        signer.close()
    options = RemoteSignerOptions(
        ca_file=pki.path("tls-ca.crt"), cert_file=pki.path("alice.crt"), key_file=pki.path("alice.key")
    )
    with pytest.raises(RemoteSignerError, match="403"):
        open_remote_signer(service.url("other"), options)


class _PatientTransport(httpx.HTTPTransport):
    """Waits out the service's 429s (--rate 20/s): what a refusal test sees must not depend on how fast
    this machine sends its requests."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(200):
            response = super().handle_request(request)
            if response.status_code != 429:
                break
            response.close()
            time.sleep(0.05)
        return response


def client(pki: SignerPKI, bearer: str | None = CI_TOKEN, *, patient: bool = True) -> httpx.Client:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    tls = ssl.create_default_context(cafile=pki.path("tls-ca.crt"))
    transport = _PatientTransport(verify=tls) if patient else None
    return httpx.Client(verify=tls, headers=headers, timeout=30, transport=transport)


def test_only_digests_of_the_right_length(pki: SignerPKI, service: SignerServer) -> None:
    base = f"https://127.0.0.1:{service.port}/v1/keys"
    digest = hashlib.sha256(b"payload").digest()
    with client(pki) as http:
        described = http.get(f"{base}/ec").json()
        assert described["keySpec"] == "EC-256" and described["signingAlgorithms"] == ["ECDSA-SHA-256"]
        assert described["publicKey"] == (pki.dir / "ec.pub").read_text()
        assert len(described["certificateChain"]) == 2

        def sign(body: object, key: str = "ec", raw: bytes | None = None) -> httpx.Response:
            content = raw if raw is not None else json.dumps(body).encode()
            return http.post(
                f"{base}/{key}/sign", content=content, headers={"Content-Type": "application/json"}
            )

        good = sign({"digest": base64.b64encode(digest).decode(), "algorithm": "ECDSA-SHA-256"})
        assert good.status_code == 200
        public = serialization.load_pem_public_key((pki.dir / "ec.pub").read_bytes())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(base64.b64decode(good.json()["signature"]), b"payload", ec.ECDSA(hashes.SHA256()))
        hexed = {"digest": digest.hex(), "encoding": "hex", "algorithm": "ECDSA-SHA-256"}
        assert sign(hexed).status_code == 200  # hex too

        refused = [
            sign({"digest": base64.b64encode(digest[:31]).decode(), "algorithm": "ECDSA-SHA-256"}),
            sign({"digest": base64.b64encode(digest + b"\0").decode(), "algorithm": "ECDSA-SHA-256"}),
            sign(
                {
                    "digest": base64.b64encode(hashlib.sha384(b"x").digest()).decode(),
                    "algorithm": "ECDSA-SHA-256",
                }
            ),
            sign({**hexed, "digest": digest.hex()[:-1] + "g"}),
            sign({**hexed, "digest": digest.hex()[:-2]}),
            sign({**hexed, "encoding": "base32"}),
            sign({"digest": "payload to sign, not a digest", "algorithm": "ECDSA-SHA-256"}),
            sign({"digest": base64.b64encode(digest).decode(), "algorithm": "ECDSA-SHA-384"}),
            sign({"digest": base64.b64encode(digest).decode(), "algorithm": "RSASSA-PSS-SHA-256"}),
            sign({"digest": base64.b64encode(digest).decode()}),
            sign({"algorithm": "ECDSA-SHA-256"}),
            sign({"digest": 12, "algorithm": "ECDSA-SHA-256"}),
            sign(None, raw=b"{not json"),
            sign(["digest"]),
            sign({"digest": "00" * 32, "encoding": "hex", "algorithm": "RSASSA-PSS-SHA-384"}, key="rsa"),
            sign({"digest": "00" * 48, "encoding": "hex", "algorithm": "ECDSA-SHA-384"}, key="rsa"),
        ]
        rsa = {"digest": "00" * 48, "encoding": "hex", "algorithm": "RSASSA-PSS-SHA-384"}
        assert sign(rsa, key="rsa").status_code == 200
        for number, response in enumerate(refused):
            assert response.status_code == 400, (number, response.text)
        oversized = sign(None, raw=json.dumps({"digest": "A" * 8000, "algorithm": "ECDSA-SHA-256"}).encode())
        assert oversized.status_code == 413
    with client(pki, None) as anonymous:
        assert anonymous.get(f"{base}/ec").status_code == 401


def test_rate_limit(pki: SignerPKI, service: SignerServer) -> None:
    url = f"https://127.0.0.1:{service.port}/v1/keys/ec"
    with client(pki, FLOOD_TOKEN, patient=False) as http:
        statuses = [http.get(url) for _ in range(45)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert {r.status_code for r in statuses} == {200, 429}
    with client(pki, patient=False) as http:  # another client is not held back
        assert http.get(url).status_code == 200


# ---------------------------------------------------------------- the audit log


def audit_verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_sigscope("signer", "audit-verify", str(path), *extra)


def test_audit_log(pki: SignerPKI, service: SignerServer, files: dict[str, Path], tmp_path: Path) -> None:
    with client(pki) as http:  # at least a few lines of each kind, whatever ran before
        http.get(f"https://127.0.0.1:{service.port}/v1/keys/ec")
        http.get(f"https://127.0.0.1:{service.port}/v1/keys/other")
    time.sleep(0.2)
    data = files["audit"].read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    assert CI_TOKEN.encode() not in data and FLOOD_TOKEN.encode() not in data
    records = [json.loads(line) for line in data.splitlines()]
    assert {"described", "denied"} <= {r["result"] for r in records}
    assert all(r["seq"] == i for i, r in enumerate(records, start=1))
    assert any(r["client"] == "token:ci" and r["key"] == "other" and r["status"] == 403 for r in records)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(data)
    intact = audit_verify(log)
    assert intact.returncode == 0 and f"{len(records)} line(s)" in intact.stdout, intact.stdout
    head = intact.stdout.rsplit("sha256:", 1)[1].strip()
    assert audit_verify(log, "--head", head).returncode == 0

    lines = data.splitlines(keepends=True)
    assert len(lines) >= 4
    edited = json.loads(lines[2])
    edited["result"] = "signed" if edited["result"] != "signed" else "denied"
    tampered = {
        "edited": ([*lines[:2], json.dumps(edited, separators=(",", ":")).encode() + b"\n", *lines[3:]], 4),
        "deleted": ([*lines[:1], *lines[2:]], 2),
        "reordered": ([*lines[:1], lines[2], lines[1], *lines[3:]], 2),
        "cut short": ([*lines[:-1], lines[-1][:20]], len(lines)),
    }
    for kind, (content, broken) in tampered.items():
        log.write_bytes(b"".join(content))
        result = audit_verify(log)
        assert result.returncode == 1, (kind, result)
        assert f"broken at line {broken}:" in result.stdout, (kind, result.stdout)
    # the last line dropped: the chain is whole, the head recorded elsewhere is not
    log.write_bytes(b"".join(lines[:-1]))
    assert audit_verify(log).returncode == 0
    assert audit_verify(log, "--head", head).returncode == 1


# ---------------------------------------------------------------- a service that lies


class _Liar(http.server.BaseHTTPRequestHandler):
    mode = "wrong"
    public_pem = ""
    wrong_key: ec.EllipticCurvePrivateKey

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(
            json.dumps({"publicKey": self.public_pem, "algorithm": "ecdsa-sha2-256-nistp256"}).encode()
        )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        name = self.path.split("/")[3]
        if name == "slow":
            time.sleep(5)
        if name == "flood":
            self._send(b'{"signature": "' + b"A" * (1024 * 1024) + b'"}')
            return
        signature = self.wrong_key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
        self._send(json.dumps({"signature": base64.b64encode(signature).decode()}).encode())


@pytest.fixture(scope="module")
def liar(pki: SignerPKI) -> Iterator[str]:
    _Liar.public_pem = (pki.dir / "ec.pub").read_text()
    _Liar.wrong_key = ec.generate_private_key(ec.SECP256R1())

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the client hanging up on the slow answer is the point

    server = Quiet(("127.0.0.1", 0), _Liar)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.path("server.crt"), pki.path("server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"remote+https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_lying_service_is_an_error(
    pki: SignerPKI, files: dict[str, Path], liar: str, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="remote-signer/liar")
    before = (layout / "index.json").read_bytes()
    flags = (*token(pki), "--signer-timeout", "1")
    for key, message in (
        ("wrong", "returned a signature that does not verify with its public key"),
        ("flood", "answer larger than"),
        ("slow", "no answer within 1 s"),
    ):
        failed = run_sigscope("sign", f"oci:{layout}:v1", "--key", f"{liar}/{key}", *flags)
        assert_clean_failure(failed, message)
    assert (layout / "index.json").read_bytes() == before


def test_keys_that_cannot_sign_digests_are_not_served(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "ed25519.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    served = run_sigscope(
        "signer", "serve", "--key", f"ed={path}", "--tls-cert", str(path), "--tls-key", str(path),
        "--tokens", str(path), "--port", "0",
    )  # fmt: skip
    assert_clean_failure(served, "Ed25519 keys sign the message itself")
    anonymous = run_sigscope(
        "signer", "serve", "--key", f"ed={path}", "--tls-cert", str(path), "--tls-key", str(path)
    )
    assert_clean_failure(anonymous, "never signs for anonymous clients")


def test_mutual_tls_only(pki: SignerPKI, files: dict[str, Path], tmp_path: Path) -> None:
    """With --client-ca alone the certificate is required at the handshake: without one, no HTTP at all."""
    with SignerServer(
        pki, "--client-ca", pki.path("client-ca.crt"), "--key", f"ec={pki.path('ec.key')}"
    ) as server:
        ca = ("--signer-ca", pki.path("tls-ca.crt"))
        layout = tmp_path / "layout"
        build_layout(layout, "v1", seed="remote-signer/mtls")
        for flags in (ca, token(pki)):
            failed = run_sigscope("sign", f"oci:{layout}:v1", "--key", server.url("ec"), *flags)
            assert_clean_failure(failed, f"signer {server.url('ec')}")
            assert "refused (" not in failed.stderr  # the handshake failed: no HTTP status was ever sent
        signed = run_sigscope("sign", f"oci:{layout}:v1", "--key", server.url("ec"), *alice(pki))
        assert signed.returncode == 0, signed.stderr
