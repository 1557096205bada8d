"""The key homes together: `sigscope signer serve` serving keys that live on a SoftHSM2 token, clients signing
with them through `--key remote+https://…`, and the real notation signing through `notation-sigscope` with a
`pkcs11:` key id (directly, and through the service).

What the signatures are worth is checked by sigscope verify, the real cosign and the real notation; several
clients sign at once with one token key (its session takes one caller at a time); the token's certificate is
what `GET /v1/keys/NAME` hands out; the PIN (read from a pin-source file) shows nowhere: not in the audit log,
the service's or clients' output, nor any process's arguments; a serve whose token refuses is one line.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from testbed import RegistryHandle, build_layout, push_layout
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.peers import peer
from testbed.signer import SignerPKI, SignerServer, build_signer_pki, issue_code_signing
from testbed.softhsm import PIN, SoftHsm, make_softhsm

from sigscope.keys.remote import RemoteSignerOptions, open_remote_signer
from sigscope.signerd.access import token_digest

TOKEN_LABEL = "served-token"
CLIENT_TOKEN = "combined-client-token"
Result = subprocess.CompletedProcess[str]


@dataclass
class Bed:
    hsm: SoftHsm
    pki: SignerPKI
    uris: dict[str, str]  # served name → pkcs11: URI (PIN from the pin file)
    publics: dict[str, Path]  # served name → exported public key PEM
    leaf: x509.Certificate  # the certificate kept on the token beside the `ec` key
    audit: Path

    def sigscope(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        result = run_sigscope(*map(str, args), env={**self.hsm.env, **(env or {})})
        assert PIN not in result.stdout + result.stderr
        return result

    def client(self) -> tuple[str, ...]:
        return (
            "--signer-ca",
            self.pki.path("tls-ca.crt"),
            "--signer-token-file",
            self.pki.path("client.token"),
        )


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Bed:
    root = tmp_path_factory.mktemp("combined")
    hsm = make_softhsm(root / "hsm", TOKEN_LABEL)
    pki = build_signer_pki(root / "pki")
    (pki.dir / "tokens").write_text(f"{token_digest(CLIENT_TOKEN)} combined\n")
    (pki.dir / "client.token").write_text(CLIENT_TOKEN + "\n")
    uris = {
        "ec": hsm.uri(TOKEN_LABEL, "served-ec", key_id=b"\x0e"),
        "rsa": hsm.uri(TOKEN_LABEL, "served-rsa", key_id=b"\x0f"),
    }
    made = Bed(hsm, pki, uris, {}, None, root / "audit.jsonl")  # type: ignore[arg-type]
    for name, kind in (("ec", "ec-p256"), ("rsa", "rsa-3072")):
        generated = made.sigscope("key", "generate", "--pkcs11", uris[name], "--type", kind)
        assert generated.returncode == 0, generated.stderr
        made.publics[name] = root / f"{name}.pub"
        exported = made.sigscope("key", "public", uris[name], "--output-file", made.publics[name])
        assert exported.returncode == 0, exported.stderr
    # the `ec` key's certificate sits on the token beside it (same id), as an enrolled HSM key's does
    public = serialization.load_pem_public_key(made.publics["ec"].read_bytes())
    made.leaf = issue_code_signing(pki, "token-ec", public)
    der = root / "leaf.der"
    der.write_bytes(made.leaf.public_bytes(serialization.Encoding.DER))
    hsm.pkcs11_tool(
        TOKEN_LABEL, "--write-object", str(der), "--type", "cert", "--id", "0e", "--label", "served-ec"
    )
    return made


@pytest.fixture(scope="module")
def service(bed: Bed) -> Iterator[SignerServer]:
    args = ["--tokens", bed.pki.path("tokens"), "--audit-log", str(bed.audit)]
    for name, uri in bed.uris.items():
        args += ["--key", f"{name}={uri}"]
    with SignerServer(bed.pki, *args, env=bed.hsm.env) as server:
        yield server


def push(registry: RegistryHandle, tmp_path: Path, repo: str) -> str:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed=f"keys-combined/{repo}")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return f"{registry.host}/{repo}@{digest}"


# ---------------------------------------------------------------- a token key served


@pytest.mark.parametrize("name", ["ec", "rsa"])
def test_served_token_key_signs_sigscope_and_cosign_verify(
    name: str, bed: Bed, service: SignerServer, registry: RegistryHandle, tmp_path: Path
) -> None:
    ref = push(registry, tmp_path, f"combined/served-{name}")
    signed = bed.sigscope("sign", ref, "--insecure", "--key", service.url(name), *bed.client())
    assert signed.returncode == 0, signed.stderr
    verdict = bed.sigscope("verify", ref, "--insecure", "--key", bed.publics[name], "-o", "json")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert json.loads(verdict.stdout)["verified"] is True
    cosign = subprocess.run(
        [str(peer("cosign")), "verify", "--key", str(bed.publics[name]), "--insecure-ignore-tlog",
         "--allow-insecure-registry", "--allow-http-registry", ref],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert cosign.returncode == 0, cosign.stderr
    assert json.loads(cosign.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == ref.split("@")[1]
    # the other token key's public key does not verify it
    other = "rsa" if name == "ec" else "ec"
    refused = bed.sigscope("verify", ref, "--insecure", "--key", bed.publics[other], "-o", "json")
    assert refused.returncode == 1, refused.stderr


@pytest.mark.parametrize("name", ["ec", "rsa"])
def test_clients_sign_with_one_token_key_at_once(name: str, bed: Bed, service: SignerServer) -> None:
    """Six clients, each with its own connections, sign at the same time with one token key: every
    signature is made and verifies (the token's session is used by one request at a time)."""
    options = RemoteSignerOptions(ca_file=bed.pki.path("tls-ca.crt"), token_file=bed.pki.path("client.token"))
    public = serialization.load_pem_public_key(bed.publics[name].read_bytes())
    clients = [open_remote_signer(service.url(name), options) for _ in range(6)]
    start = threading.Barrier(len(clients))

    def work(number: int) -> list[tuple[bytes, bytes]]:
        start.wait(timeout=60)
        data = [f"{name}/{number}/{round_}".encode() for round_ in range(8)]
        return [(item, clients[number].sign(item)) for item in data]

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            signed = [pair for batch in pool.map(work, range(len(clients))) for pair in batch]
    finally:
        for client in clients:
            client.close()
    assert len({data for data, _ in signed}) == 48
    for data, signature in signed:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_token_certificate_is_described(bed: Bed, service: SignerServer) -> None:
    with httpx.Client(
        verify=ssl.create_default_context(cafile=bed.pki.path("tls-ca.crt")),
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    ) as http:
        described = {
            name: http.get(f"https://127.0.0.1:{service.port}/v1/keys/{name}").json() for name in bed.uris
        }
    ec_chain = described["ec"]["certificateChain"]
    assert [x509.load_pem_x509_certificate(pem.encode()) for pem in ec_chain] == [bed.leaf]
    assert described["ec"]["keySpec"] == "EC-256"
    assert described["rsa"]["certificateChain"] == []  # no certificate beside it on the token
    assert described["rsa"]["keySpec"] == "RSA-3072"
    for name, document in described.items():
        assert document["publicKey"].strip() == bed.publics[name].read_text().strip()


def test_pin_shows_nowhere(bed: Bed, service: SignerServer, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="keys-combined/pin")
    signed = bed.sigscope("sign", f"oci:{layout}:v1", "--key", service.url("ec"), *bed.client())
    assert signed.returncode == 0, signed.stderr
    assert bed.audit.read_text().count('"result":"signed"') >= 1
    assert PIN not in bed.audit.read_text()
    assert PIN not in service.stderr
    arguments = Path(f"/proc/{service.pid}/cmdline").read_bytes()
    assert b"pin-source=file:" in arguments and PIN.encode() not in arguments
    assert PIN.encode() not in Path(f"/proc/{service.pid}/environ").read_bytes()


def test_serve_refuses_a_token_in_one_line(bed: Bed, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-pin.txt"
    wrong.write_text("9999-wrong\n")
    tls = ("--tls-cert", bed.pki.path("server.crt"), "--tls-key", bed.pki.path("server.key"))
    tls += ("--tokens", bed.pki.path("tokens"), "--port", "0")
    cases = [
        (bed.uris["ec"].replace(str(bed.hsm.pin_file), str(wrong)), "wrong PIN"),
        (
            bed.hsm.uri(TOKEN_LABEL, "no-such-key"),
            f"no private key matches object=no-such-key;token={TOKEN_LABEL}",
        ),
        (bed.hsm.uri("no-such-token", "served-ec"), "no PKCS#11 token matches token=no-such-token"),
    ]
    for uri, problem in cases:
        refused = bed.sigscope("signer", "serve", "--key", f"k={uri}", *tls)
        assert_clean_failure(refused, problem)
        assert "9999-wrong" not in refused.stderr


# ---------------------------------------------------------------- notation → notation-sigscope → token


@pytest.fixture(scope="module")
def notation_home(bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("combined-notation")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTATION_", "SIGSCOPE_", "DOCKER_"))}
    env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / "config"), XDG_CACHE_HOME=str(root / "cache"))
    env.update(bed.hsm.env)
    installed = run_sigscope("signer", "install-notation-plugin", env=env)
    assert installed.returncode == 0, installed.stderr
    config = root / "config" / "notation"
    store = config / "truststore" / "x509" / "ca" / "token-ca"
    store.mkdir(parents=True)
    (store / "code-ca.crt").write_bytes((bed.pki.dir / "code-ca.crt").read_bytes())
    policy = {"version": "1.0", "trustPolicies": [{
        "name": "token", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:token-ca"], "trustedIdentities": ["*"]}]}  # fmt: skip
    (config / "trustpolicy.json").write_text(json.dumps(policy))
    return env


def notation(env: dict[str, str], *args: str) -> Result:
    result = subprocess.run(
        [str(peer("notation")), *args], capture_output=True, text=True, env=env, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert PIN not in result.stdout + result.stderr
    return result


@pytest.mark.parametrize("where", ["token", "served"])
def test_notation_signs_with_a_token_key(
    where: str,
    bed: Bed,
    service: SignerServer,
    notation_home: dict[str, str],
    registry: RegistryHandle,
    tmp_path: Path,
) -> None:
    """The key id is the token's URI itself, or the service serving it; the leaf comes from the token, the
    rest of the chain (the CA) from pluginConfig certificate_chain."""
    ref = push(registry, tmp_path, f"combined/notation-{where}")
    ca = bed.pki.path("code-ca.crt")
    if where == "token":
        key_id, config = bed.uris["ec"], ["--plugin-config", f"certificate_chain={ca}"]
    else:
        key_id = service.url("ec")
        config = ["--plugin-config", f"certificate_chain={ca}",
                  "--plugin-config", f"signer_ca={bed.pki.path('tls-ca.crt')}",
                  "--plugin-config", f"signer_token_file={bed.pki.path('client.token')}"]  # fmt: skip
    signed = notation(
        notation_home, "sign", "--insecure-registry", "--plugin", "sigscope", "--id", key_id, *config, ref
    )
    assert signed.returncode == 0, signed.stderr
    verified = notation(notation_home, "verify", "--insecure-registry", ref)
    assert verified.returncode == 0 and "Successfully verified" in verified.stdout, verified.stderr
    config_dir = Path(notation_home["XDG_CONFIG_HOME"]) / "notation"
    ours = bed.sigscope("verify", ref, "--insecure", "--notation-config", str(config_dir), "-o", "json")
    assert ours.returncode == 0, ours.stdout + ours.stderr
    # the RSA key has no certificate on the token: nothing to carry as the chain's leaf, nothing signed
    if where == "token":
        bare = notation(notation_home, "sign", "--insecure-registry", "--plugin", "sigscope",
                        "--id", bed.uris["rsa"], *config, ref)  # fmt: skip
        assert bare.returncode != 0 and "leaf" in bare.stderr, bare.stderr
