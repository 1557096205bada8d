"""The Notation plugin protocol both ways, with the real notation (v1.3.2) and real plugin processes.

- notation signs through `notation-sigscope` (installed by `sigscope signer install-notation-plugin`) with a
  key file and with a key of a `sigscope signer serve` service; `notation verify` and `sigscope verify`
  accept the result.
- `sigscope sign --format notation --plugin NAME --id KEY` runs plugins: notation-sigscope itself (notation
  verifies what it made), and small misbehaving plugins written here as scripts (the protocol's real
  transport: a process, stdin and stdout): garbage, a crash, an error response, a hang, a flood of output,
  a wrong algorithm, a chain whose leaf is not the signing key, no raw-signing capability, a symlink.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from testbed import RegistryHandle, build_layout, push_layout
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.peers import peer
from testbed.signer import SignerPKI, SignerServer, build_signer_pki

from sigscope.signerd.access import token_digest

TOKEN = "plugin-test-token"


@dataclass
class Home:
    """A private HOME / XDG_CONFIG_HOME for notation and the plugin."""

    root: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.root / "config" / "notation"

    def notation(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(peer("notation")), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, f"notation {args}: {result.stdout}\n{result.stderr}"
        return result

    def sigscope(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_sigscope(*map(str, args), env={"XDG_CONFIG_HOME": str(self.root / "config")})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("notation-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTATION_", "SIGSCOPE_", "DOCKER_"))}
    env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / "config"), XDG_CACHE_HOME=str(root / "cache"))
    made = Home(root, env)
    installed = made.sigscope("signer", "install-notation-plugin")
    assert installed.returncode == 0, installed.stderr
    plugin = made.config / "plugins" / "sigscope" / "notation-sigscope"
    assert installed.stdout.strip() == str(plugin)
    assert plugin.is_file() and not plugin.is_symlink() and os.access(plugin, os.X_OK)
    return made


@pytest.fixture(scope="module")
def keys(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`plugin-ec` (P-256) and `plugin-rsa` (RSA-2048) test certificates, their CAs in the trust store."""
    directory = tmp_path_factory.mktemp("plugin-keys")
    for name, kind in (("plugin-ec", "ecdsa-p256"), ("plugin-rsa", "rsa-2048")):
        made = home.sigscope(
            "cert", "generate-test", name, "--key-type", kind, "--output-dir", directory,
            "--notation-config", home.config, "--no-trust-policy",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    return directory


@pytest.fixture(scope="module")
def signer_pki(tmp_path_factory: pytest.TempPathFactory) -> SignerPKI:
    return build_signer_pki(tmp_path_factory.mktemp("plugin-signer-pki"))


@pytest.fixture(scope="module")
def service(
    signer_pki: SignerPKI, home: Home, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignerServer]:
    directory = tmp_path_factory.mktemp("plugin-service")
    (directory / "tokens").write_text(f"{token_digest(TOKEN)} notation-ci\n")
    (directory / "token").write_text(TOKEN + "\n")
    (directory / "access.yaml").write_text("ec: [token:notation-ci]\nother: [token:someone-else]\n")
    # the service's code-signing CA joins the trust store as ca:remote
    store = home.config / "truststore" / "x509" / "ca" / "remote"
    store.mkdir(parents=True, exist_ok=True)
    (store / "code-ca.crt").write_bytes((signer_pki.dir / "code-ca.crt").read_bytes())
    args = [
        "--key", f"ec={signer_pki.path('ec.key')}", "--cert", f"ec={signer_pki.path('ec.chain.pem')}",
        "--key", f"other={signer_pki.path('other.key')}",
        "--cert", f"other={signer_pki.path('other.chain.pem')}",
        "--tokens", str(directory / "tokens"), "--access", str(directory / "access.yaml"),
    ]  # fmt: skip
    with SignerServer(signer_pki, *args) as server:
        yield server


@pytest.fixture(scope="module")
def trusted(home: Home, keys: Path, service: SignerServer) -> Home:
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "plugin",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:plugin-ec", "ca:plugin-rsa", "ca:remote"],
                "trustedIdentities": ["*"],
            }
        ],
    }
    (home.config / "trustpolicy.json").write_text(json.dumps(policy))
    return home


def token_file(service: SignerServer) -> Path:
    """The client's token, written by the service fixture beside the tokens file."""
    tokens = service.args[service.args.index("--tokens") + 1]
    return Path(tokens).parent / "token"


def remote_config(pki: SignerPKI, service: SignerServer) -> list[str]:
    return [
        "--plugin-config", f"signer_ca={pki.path('tls-ca.crt')}",
        "--plugin-config", f"signer_token_file={token_file(service)}",
    ]  # fmt: skip


def push(registry: RegistryHandle, tmp_path: Path, repo: str) -> str:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed=f"notation-plugin/{repo}")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return f"{registry.host}/{repo}@{digest}"


def both_verify(home: Home, ref: str) -> None:
    verified = home.notation("verify", "--insecure-registry", ref)
    assert "Successfully verified" in verified.stdout
    ours = home.sigscope("verify", ref, "--insecure", "--notation-config", home.config, "-o", "json")
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout)["verified"] is True


# ---------------------------------------------------------------- notation → notation-sigscope


@pytest.mark.parametrize("name", ["plugin-ec", "plugin-rsa"])
def test_notation_signs_with_a_key_file(
    name: str, trusted: Home, keys: Path, registry: RegistryHandle, tmp_path: Path
) -> None:
    ref = push(registry, tmp_path, f"plugin/notation-file-{name}")
    key, chain = keys / f"{name}.key", keys / f"{name}.crt"
    trusted.notation(
        "key", "add", f"{name}-via-sigscope", "--plugin", "sigscope", "--id", key,
        "--plugin-config", f"certificate_chain={chain}",
    )  # fmt: skip
    trusted.notation("sign", "--insecure-registry", "--key", f"{name}-via-sigscope", ref)
    both_verify(trusted, ref)


def test_notation_signs_with_a_remote_key(
    trusted: Home, signer_pki: SignerPKI, service: SignerServer, registry: RegistryHandle, tmp_path: Path
) -> None:
    ref = push(registry, tmp_path, "plugin/notation-remote")
    trusted.notation(
        "sign", "--insecure-registry", "--signature-format", "cose", "--plugin", "sigscope",
        "--id", service.url("ec"), *remote_config(signer_pki, service), ref,
    )  # fmt: skip
    both_verify(trusted, ref)
    # a key this client may not use: notation reports the plugin's ACCESS_DENIED, nothing is signed
    refused = trusted.notation(
        "sign", "--insecure-registry", "--plugin", "sigscope", "--id", service.url("other"),
        *remote_config(signer_pki, service), ref, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr


# ---------------------------------------------------------------- the plugin's own answers


def plugin_command(home: Home, command: str, request: object) -> subprocess.CompletedProcess[str]:
    plugin = home.config / "plugins" / "sigscope" / "notation-sigscope"
    return subprocess.run(
        [str(plugin), command], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )


def test_plugin_protocol_answers(
    home: Home, keys: Path, signer_pki: SignerPKI, service: SignerServer
) -> None:
    meta = plugin_command(home, "get-plugin-metadata", {})
    assert meta.returncode == 0 and json.loads(meta.stdout)["capabilities"] == ["SIGNATURE_GENERATOR.RAW"]
    described = plugin_command(
        home, "describe-key", {"contractVersion": "1.0", "keyId": str(keys / "plugin-ec.key")}
    )
    assert json.loads(described.stdout) == {"keyId": str(keys / "plugin-ec.key"), "keySpec": "EC-256"}

    def error(command: str, request: object) -> dict[str, str]:
        done = plugin_command(home, command, request)
        assert done.returncode == 1 and done.stdout == "", done
        answer: dict[str, str] = json.loads(done.stderr)
        return answer

    assert error("describe-key", {"contractVersion": "2.0", "keyId": "x"})["errorCode"] == (
        "UNSUPPORTED_CONTRACT_VERSION"
    )
    assert error("describe-key", {"contractVersion": "1.0", "keyId": "/nonexistent.key"})["errorCode"] == (
        "VALIDATION_ERROR"
    )
    assert error("describe-key", {"contractVersion": "1.0"})["errorCode"] == "VALIDATION_ERROR"
    assert error("generate-envelope", {})["errorCode"] == "VALIDATION_ERROR"
    config = {"signer_ca": signer_pki.path("tls-ca.crt"), "signer_token_file": str(token_file(service))}
    denied = error(
        "describe-key", {"contractVersion": "1.0", "keyId": service.url("other"), "pluginConfig": config}
    )
    assert denied["errorCode"] == "ACCESS_DENIED"
    request = {
        "contractVersion": "1.0",
        "keyId": str(keys / "plugin-ec.key"),
        "keySpec": "EC-256",
        "hashAlgorithm": "SHA-384",
        "payload": base64.b64encode(b"x").decode(),
        "pluginConfig": {"certificate_chain": str(keys / "plugin-ec.crt")},
    }
    assert "hashAlgorithm" in error("generate-signature", request)["errorMessage"]
    assert "keySpec" in error("generate-signature", {**request, "keySpec": "RSA-2048"})["errorMessage"]
    # a chain that is not the key's
    wrong = {
        **request,
        "hashAlgorithm": "SHA-256",
        "pluginConfig": {"certificate_chain": str(keys / "plugin-rsa.crt")},
    }
    assert "leaf" in error("generate-signature", wrong)["errorMessage"]


# ---------------------------------------------------------------- sigscope → plugins

# A plugin that answers as notation-sigscope does, then changes what MODE says; the real transport.
PLUGIN = """#!{python}
import base64, json, sys, time
MODE = {mode!r}
command = sys.argv[1]
raw = sys.stdin.buffer.read()
if MODE == "hang":
    time.sleep(60)
if MODE == "garbage":
    print("this is not JSON {{"); sys.exit(0)
if MODE == "crash":
    print("Segmentation fault (pretend)", file=sys.stderr); sys.exit(3)
if MODE == "crash-quiet":
    sys.exit(1)
if MODE == "error" and command == "generate-signature":
    error = {{"errorCode": "ACCESS_DENIED", "errorMessage": "the HSM says no"}}
    print(json.dumps(error), file=sys.stderr); sys.exit(1)
if MODE == "huge":
    sys.stdout.write("x" * (8 * 1024 * 1024)); sys.exit(0)
if MODE == "no-raw" and command == "get-plugin-metadata":
    capabilities = ["SIGNATURE_VERIFIER.REVOCATION_CHECK"]
    print(json.dumps({{"name": "x", "description": "", "version": "1", "url": "",
                      "supportedContractVersions": ["1.0"], "capabilities": capabilities}}))
    sys.exit(0)
from sigscope.notation_plugin.executable import respond
answer = respond(command, raw)
if command == "generate-signature":
    if MODE == "wrong-algorithm":
        answer["signingAlgorithm"] = "ECDSA-SHA-384"
    if MODE == "wrong-leaf":
        answer["certificateChain"] = json.loads(open({other_chain!r}).read())
    if MODE == "tampered":
        sig = bytearray(base64.b64decode(answer["signature"])); sig[5] ^= 1
        answer["signature"] = base64.b64encode(bytes(sig)).decode()
print(json.dumps(answer))
"""


@pytest.fixture(scope="module")
def fake_plugins(home: Home, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CONFIG_HOME with a plugin per misbehaviour (and notation-sigscope itself)."""
    from sigscope.keys.files import load_certificates_file

    root = tmp_path_factory.mktemp("fake-plugins")
    plugins = root / "notation" / "plugins"
    # another P-256 key's chain, as the plugin protocol carries it
    other_dir = tmp_path_factory.mktemp("other-key")
    assert (
        home.sigscope(
            "cert", "generate-test", "other", "--key-type", "ecdsa-p256", "--output-dir", other_dir
        ).returncode
        == 0
    )
    other_chain = root / "other-chain.json"
    certs = load_certificates_file(str(other_dir / "other.crt"))
    other_chain.write_text(
        json.dumps([base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certs])
    )
    modes = [
        "garbage",
        "crash",
        "crash-quiet",
        "error",
        "hang",
        "huge",
        "no-raw",
        "wrong-algorithm",
        "wrong-leaf",
        "tampered",
        "good",
    ]
    for mode in modes:
        directory = plugins / mode
        directory.mkdir(parents=True)
        script = directory / f"notation-{mode}"
        script.write_text(PLUGIN.format(python=sys.executable, mode=mode, other_chain=str(other_chain)))
        script.chmod(0o755)
    (plugins / "linked").mkdir()
    (plugins / "linked" / "notation-linked").symlink_to(plugins / "good" / "notation-good")
    sigscope_dir = plugins / "sigscope"
    sigscope_dir.mkdir()
    (sigscope_dir / "notation-sigscope").write_bytes(
        (home.config / "plugins" / "sigscope" / "notation-sigscope").read_bytes()
    )
    (sigscope_dir / "notation-sigscope").chmod(0o755)
    return root


def sign_with_plugin(
    config_home: Path, image: str, plugin: str, key_id: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_sigscope(
        "sign", image, "--format", "notation", "--plugin", plugin, "--id", key_id, *extra,
        env={"XDG_CONFIG_HOME": str(config_home)},
    )  # fmt: skip


def test_sigscope_signs_through_plugins(
    trusted: Home, keys: Path, fake_plugins: Path, registry: RegistryHandle, tmp_path: Path
) -> None:
    ref = push(registry, tmp_path, "plugin/sigscope-via-plugin")
    key = str(keys / "plugin-rsa.key")
    chain = ("--plugin-config", f"certificate_chain={keys / 'plugin-rsa.crt'}")
    for plugin in ("sigscope", "good"):
        signed = sign_with_plugin(fake_plugins, ref, plugin, key, *chain, "--insecure", "-o", "json")
        assert signed.returncode == 0, signed.stderr
        [result] = json.loads(signed.stdout)["signed"]
        assert result["alg"] == "PS256"
    both_verify(trusted, ref)


FAILURES = [
    ("garbage", "response is not a JSON object"),
    ("crash", "failed (exit code 3): Segmentation fault (pretend)"),
    ("crash-quiet", "failed (exit code 1)"),
    ("error", "failed: ACCESS_DENIED: the HSM says no"),
    ("hang", "no answer within 2 s"),
    ("huge", "output larger than"),
    ("no-raw", "does not offer SIGNATURE_GENERATOR.RAW"),
    ("wrong-algorithm", "signingAlgorithm 'ECDSA-SHA-384' is not ECDSA-SHA-256"),
    ("wrong-leaf", "does not verify with the leaf certificate"),
    ("tampered", "does not verify with the leaf certificate"),
    ("linked", "not a regular file"),
    ("absent", "does not exist"),
]


def test_misbehaving_plugins_are_refused(keys: Path, fake_plugins: Path) -> None:
    """Each plugin runs as a real process; the host's checks are called in-process to keep this quick."""
    from datetime import UTC, datetime

    from sigscope.errors import SigscopeError
    from sigscope.keys.files import load_certificates_file
    from sigscope.model import Descriptor
    from sigscope.notation_plugin.host import Plugin, find_plugin, plugin_envelope
    from sigscope.sign_notation import NotationSignOptions

    target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "ab" * 32, 1234)
    options = NotationSignOptions(chain=(), now=datetime.now(UTC))
    config = {"certificate_chain": str(keys / "plugin-ec.crt")}
    plugins = str(fake_plugins / "notation" / "plugins")

    def run(name: str, timeout: float = 30.0) -> object:
        plugin = Plugin(name, find_plugin(name, plugins), str(keys / "plugin-ec.key"), config, timeout)
        return asyncio.run(plugin_envelope(plugin, target, options))

    for name, message in FAILURES:
        with pytest.raises(SigscopeError) as caught:
            run(name, 2.0 if name == "hang" else 30.0)
        assert message in caught.value.message, (name, caught.value.message)
    signed = run("good")
    leaf = load_certificates_file(str(keys / "plugin-ec.crt"))[0]
    assert signed.alg == "ES256" and signed.chain[0] == leaf.public_bytes(Encoding.DER)  # type: ignore[attr-defined]


def test_plugin_failures_on_the_command_line(keys: Path, fake_plugins: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="notation-plugin/failures")
    before = (layout / "index.json").read_bytes()
    key = str(keys / "plugin-ec.key")
    chain = ("--plugin-config", f"certificate_chain={keys / 'plugin-ec.crt'}")
    for plugin, message in [FAILURES[3], FAILURES[8]]:
        failed = sign_with_plugin(fake_plugins, f"oci:{layout}:v1", plugin, key, *chain)
        assert_clean_failure(failed, message)
    assert (layout / "index.json").read_bytes() == before  # nothing was stored
    # --plugin takes no --key / --cert; --id goes with --plugin
    assert_clean_failure(
        sign_with_plugin(fake_plugins, f"oci:{layout}:v1", "good", key, "--key", key), "--key"
    )
    lone = run_sigscope("sign", f"oci:{layout}:v1", "--format", "notation", "--id", key)
    assert_clean_failure(lone, "--plugin and --id go together")
