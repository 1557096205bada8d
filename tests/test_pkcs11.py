"""Keys on PKCS#11 tokens: SoftHSM2 tokens made per test, keys made by `sigscope key generate` and by OpenSC's
pkcs11-tool, signatures by sigscope verified by sigscope and by the real cosign and notation, and cosign built
with pkcs11key signing with the same token. Every refusal is one line naming the problem, never the PIN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testbed import RegistryHandle, build_layout, push_layout
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.peers import peer
from testbed.softhsm import MODULE, PIN, SoftHsm, make_softhsm

from sigscope.keys.pkcs11_uri import Pkcs11UriError, parse_uri
from sigscope.keys.resolve import UnknownKeySchemeError, open_signer, scheme_of

Result = subprocess.CompletedProcess[str]
TOKEN = "sigscope-test"
COSIGN_SIGN = ("--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry",
               "--allow-insecure-registry", "--new-bundle-format=false")  # fmt: skip
COSIGN_VERIFY = ("--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry",
                 "--new-bundle-format=false")  # fmt: skip


def explain(result: Result) -> str:
    return f"{' '.join(map(str, result.args))}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


@dataclass
class Bed:
    """A SoftHSM2 with one token, a registry, and the peers run with a private HOME."""

    hsm: SoftHsm
    registry: RegistryHandle
    workdir: Path
    peer_env: dict[str, str] = field(default_factory=dict)

    def sigscope(
        self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        return run_sigscope(*map(str, args), env={**self.hsm.env, **(env or {})}, cwd=cwd)

    def ok(self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        result = self.sigscope(*args, env=env, cwd=cwd)
        assert result.returncode == 0, explain(result)
        assert PIN not in result.stdout + result.stderr
        return result

    def peer(self, name: str, *args: str | Path) -> Result:
        return subprocess.run(
            [str(peer(name)), *map(str, args)],
            capture_output=True,
            text=True,
            env={**self.peer_env, **self.hsm.env},
            cwd=self.workdir,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def image(self, repo: str) -> str:
        """A fresh image pushed as `repo`:1.0; its reference by digest."""
        layout = self.workdir / f"layout-{repo.replace('/', '-')}"
        digest = build_layout(layout, "v1", seed=f"pkcs11/{self.workdir}/{repo}")
        push_layout(layout, "v1", self.registry.host, repo, "1.0")
        return f"{self.registry.host}/{repo}@{digest}"

    def export(self, uri: str, name: str) -> Path:
        """`sigscope key public URI --output-file` (no PIN: the token keeps the public object)."""
        path = self.workdir / f"{name}.pub"
        self.ok("key", "public", uri, "--output-file", path)
        return path

    def verified(self, image: str, public: Path, *extra: str) -> bool:
        result = self.sigscope("verify", image, "--insecure", "--key", public, *extra, "-o", "json")
        assert result.returncode in (0, 1), explain(result)
        return bool(json.loads(result.stdout)["verified"])


@pytest.fixture
def bed(registry: RegistryHandle, tmp_path: Path) -> Bed:
    hsm = make_softhsm(tmp_path / "hsm", TOKEN)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSIGN_", "SIGSTORE_", "NOTATION_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               DOCKER_CONFIG=str(home / ".docker"), TUF_ROOT=str(home / ".sigstore"), COSIGN_YES="true",
               NO_COLOR="1")  # fmt: skip
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Bed(hsm=hsm, registry=registry, workdir=workdir, peer_env=env)


# ---------------------------------------------------------------- URIs and the resolver, without a token


def test_uri_attributes_decoded() -> None:
    uri = parse_uri(
        "pkcs11:token=My%20Token;object=release%3bkey;id=%01%ff;type=private;slot-id=7"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin"
    )
    assert (uri.token, uri.object, uri.id, uri.slot_id) == ("My Token", "release;key", b"\x01\xff", 7)
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.query["pin-source"] == "file:/run/pin"
    secret = parse_uri("pkcs11:object=k?pin-value=s3cret%21")
    assert secret.query["pin-value"] == "s3cret!"
    assert "s3cret" not in secret.describe()


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("pkcs11:token=a;token=b", "token is given twice"),
        ("pkcs11:token=a;colour=red", "colour is unknown"),
        ("pkcs11:x-vendor=1", "vendor attribute x-vendor"),
        ("pkcs11:token=a%2", "malformed percent-escape"),
        ("pkcs11:token=a%zz", "malformed percent-escape"),
        ("pkcs11:module-path=/x.so", "module-path belongs in the query"),
        ("pkcs11:token=a?object=b", "object belongs in the path"),
        ("pkcs11:token=a?pin-value=1&pin-source=f", "both pin-value and pin-source"),
        ("pkcs11:type=key", "type=key is not one of"),
        ("pkcs11:slot-id=0x1", "slot-id is not a decimal"),
        ("pkcs11:token=%ff", "token is not UTF-8"),
        ("pkcs11:token=a%0ab", "control character"),
        ("pkcs11:token=", "token is empty"),
        ("pkcs11:token", "is not NAME=VALUE"),
        ("pkcs11:token=a#frag", "fragment"),
    ],
)
def test_uri_refusals(uri: str, problem: str) -> None:
    with pytest.raises(Pkcs11UriError, match=problem):
        parse_uri(uri)


def test_resolver_dispatch(tmp_path: Path) -> None:
    specs = ("cosign.key", "./a:b.key", "pkcs11:x", "PKCS11:x", "remote+https://h/k")
    assert [scheme_of(s) for s in specs] == [None, None, "pkcs11", "pkcs11", "remote+https"]
    with pytest.raises(
        UnknownKeySchemeError, match=r"awskms: is not a key scheme .*pkcs11:, remote\+https: URIs"
    ):
        open_signer("awskms:///alias/release")
    # A file whose name looks like a URI is still the file it names.
    odd = tmp_path / "awskms:release.key"
    odd.write_text("not a key")
    made = run_sigscope("sign", "oci:/nonexistent", "--key", "awskms:release.key", cwd=tmp_path)
    assert_clean_failure(made, "awskms:release.key: not PEM")
    unknown = run_sigscope("sign", "oci:/nonexistent", "--key", "gcpkms://projects/p/keys/k?token=s3cret")
    assert_clean_failure(unknown, "gcpkms: is not a key scheme sigscope knows for --key for sign")
    assert "s3cret" not in unknown.stderr


# ---------------------------------------------------------------- signing with each kind of token key


# RSA 2048 signs in test_no_key_material_written, RSA 3072 in test_attestation_with_token_key.
@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-4096"])
def test_token_key_signs_sigscope_and_cosign_verify(bed: Bed, kind: str) -> None:
    """`sigscope key generate --pkcs11` makes the key on the token; `sigscope sign --key pkcs11:…` signs;
    the exported public key verifies it in sigscope and in cosign; another token key verifies nothing."""
    uri = bed.hsm.uri(TOKEN, f"release-{kind}")
    made = bed.ok("key", "generate", "--pkcs11", uri, "--type", kind)
    assert f"Generated {kind} key release-{kind}" in made.stderr
    bed.ok("key", "generate", "--pkcs11", bed.hsm.uri(TOKEN, "other"))
    public, other = bed.export(uri, "release"), bed.export(bed.hsm.uri(TOKEN, "other", pin="none"), "other")

    image = bed.image(f"pkcs11/{kind}")
    bed.ok("sign", image, "--insecure", "--key", uri, "-a", "hsm=softhsm")
    assert bed.verified(image, public, "-a", "hsm=softhsm")
    assert not bed.verified(image, other)
    theirs = bed.peer("cosign", "verify", "--key", public, *COSIGN_VERIFY, "-a", "hsm=softhsm", image)
    if kind == "ec-p384":
        # sigscope pairs P-384 with SHA-384 (as cosign sign-blob does with a P-384 key file); cosign v3.1.3's
        # `verify --key` checks ECDSA over SHA-256 whatever the curve, so it refuses these (docs/keys.md).
        assert theirs.returncode != 0 and "invalid signature" in theirs.stderr, explain(theirs)
    else:
        assert theirs.returncode == 0, explain(theirs)


def test_token_listing_and_generated_key_attributes(bed: Bed) -> None:
    """`key list` shows label, id, type, size and certificate; the generated key is sensitive and
    never extractable (as pkcs11-tool reads its attributes)."""
    bed.ok(
        "key", "generate", "--pkcs11", bed.hsm.uri(TOKEN, "listed", key_id=b"\x0a\x0b"), "--type", "ec-p384"
    )
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "rsa:2048", "--label", "by-opensc", "--id", "42")
    pin = ("--pin-source", bed.hsm.pin_file)
    listing = json.loads(
        bed.ok("key", "list", "--pkcs11-module", MODULE, "--token", TOKEN, *pin, "-o", "json").stdout
    )
    [token] = listing["tokens"]
    assert token["label"] == TOKEN and token["loginRequired"] is True
    keys = {
        (k["label"], k["id"], k["keyType"], k["size"], k["privateKey"], k["certificate"])
        for k in token["keys"]
    }
    assert keys == {("listed", "0a0b", "EC", 384, True, False), ("by-opensc", "42", "RSA", 2048, True, False)}
    pretty = bed.ok("key", "list", "--pkcs11-module", MODULE).stdout  # no PIN: public objects only
    assert f"Token {TOKEN}" in pretty and "listed" in pretty and "EC P-384" in pretty
    attributes = bed.hsm.pkcs11_tool(TOKEN, "--list-objects", "--type", "privkey", "--label", "listed").stdout
    assert "never extractable" in attributes and "sensitive" in attributes, attributes


def test_cosign_pkcs11_and_sigscope_share_a_token(bed: Bed) -> None:
    """Issue 16 item 4: a pkcs11-tool key; cosign built with pkcs11key signs with it and sigscope verifies
    with the key `sigscope key public` exports; sigscope signs with it and cosign verifies."""
    bed.hsm.pkcs11_tool(
        TOKEN, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "shared", "--id", "07"
    )
    ours = bed.hsm.uri(TOKEN, "shared")
    # cosign's URI: the same attributes, the PIN as pin-value (cosign reads no pin-source).
    theirs = bed.hsm.uri(TOKEN, "shared", pin="value")
    public = bed.export(ours, "shared")
    cosign_public = bed.workdir / "cosign.pub"
    cosign_public.write_text(bed.peer("cosign-pkcs11", "public-key", "--key", theirs).stdout)
    assert cosign_public.read_bytes() == public.read_bytes()

    by_cosign = bed.image("pkcs11/by-cosign")
    signed = bed.peer("cosign-pkcs11", "sign", "--key", theirs, *COSIGN_SIGN, "-a", "by=cosign", by_cosign)
    assert signed.returncode == 0, explain(signed)
    assert bed.verified(by_cosign, public, "-a", "by=cosign")

    by_sigscope = bed.image("pkcs11/by-sigscope")
    bed.ok("sign", by_sigscope, "--insecure", "--key", bed.hsm.uri(TOKEN, key_id=b"\x07"))
    verified = bed.peer("cosign", "verify", "--key", public, *COSIGN_VERIFY, by_sigscope)
    assert verified.returncode == 0, explain(verified)
    # each signature is the token's: the pair checks out across tools, and an unsigned image does not
    assert not bed.verified(bed.image("pkcs11/unsigned"), public)


def test_attestation_with_token_key(bed: Bed) -> None:
    """`sigscope attest --key pkcs11:…` (RSA, DSSE) passes sigscope verify-attestation and cosign's."""
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "rsa:3072", "--label", "attester", "--id", "0a")
    uri = bed.hsm.uri(TOKEN, "attester")
    public = bed.export(uri, "attester")
    image = bed.image("pkcs11/attested")
    predicate = bed.workdir / "vex.json"
    predicate.write_text(json.dumps({"note": "built on a token"}))
    bed.ok("attest", image, "--insecure", "--key", uri, "--predicate", predicate)
    assert bed.ok("verify-attestation", image, "--insecure", "--key", public).returncode == 0
    theirs = bed.peer(
        "cosign", "verify-attestation", "--key", public, *COSIGN_VERIFY, "--type", "custom", image
    )
    assert theirs.returncode == 0, explain(theirs)


# ---------------------------------------------------------------- notation signatures, token certificate


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token CA"), _org()])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    signs = not cert_sign
    return x509.KeyUsage(signs, False, False, False, False, cert_sign, cert_sign, False, False)


def _org() -> x509.NameAttribute:
    return x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigscope tests")


def _leaf(public: Any, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer"), _org()]))
        .issuer_name(ca.subject).public_key(public).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip


def _notation_config(directory: Path, ca: x509.Certificate) -> Path:
    store = directory / "notation" / "truststore" / "x509" / "ca" / "token-ca"
    store.mkdir(parents=True)
    (store / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    policy = {"version": "1.0", "trustPolicies": [{
        "name": "token", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:token-ca"], "trustedIdentities": ["*"]}]}  # fmt: skip
    (directory / "notation" / "trustpolicy.json").write_text(json.dumps(policy))
    return directory / "notation"


def test_notation_signatures_with_token_certificate(bed: Bed) -> None:
    """The leaf certificate sits on the token beside the key (same id): `sign --format notation` takes it
    from there, the CA from --certificate-chain; sigscope and the real notation verify; a trust store
    without that CA: both refuse."""
    uri = bed.hsm.uri(TOKEN, "notary", key_id=b"\x0c")
    bed.ok("key", "generate", "--pkcs11", uri, "--type", "ec-p256")
    public = serialization.load_pem_public_key(bed.export(uri, "notary").read_bytes())
    ca_key, ca = _ca()
    leaf = bed.workdir / "leaf.der"
    leaf.write_bytes(_leaf(public, ca_key, ca).public_bytes(serialization.Encoding.DER))
    bed.hsm.pkcs11_tool(
        TOKEN, "--write-object", str(leaf), "--type", "cert", "--id", "0c", "--label", "notary"
    )
    chain = bed.workdir / "ca.pem"
    chain.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_out = bed.workdir / "exported.crt"
    bed.ok("key", "public", uri, "--certificate-file", cert_out)
    assert x509.load_pem_x509_certificate(cert_out.read_bytes()).public_bytes(serialization.Encoding.DER) == (
        leaf.read_bytes()
    )

    image = bed.image("pkcs11/notation")
    for fmt in ("notation", "notation-cose"):
        bed.ok("sign", image, "--insecure", "--format", fmt, "--key", uri, "--certificate-chain", chain)
    config = _notation_config(bed.workdir / "trusted", ca)
    verdict = json.loads(
        bed.ok("verify", image, "--insecure", "--notation-config", config, "-o", "json").stdout
    )
    assert verdict["verified"] is True, verdict
    judged = sorted((s["format"], s["status"]) for s in verdict["signatures"])
    assert judged == [("notation-cose", "verified"), ("notation-jws", "verified")], judged
    # notation reads its trust policy and store from $XDG_CONFIG_HOME/notation
    bed.peer_env["XDG_CONFIG_HOME"] = str(config.parent)
    theirs = bed.peer("notation", "verify", "--insecure-registry", image)
    assert theirs.returncode == 0, explain(theirs)

    stranger = _notation_config(bed.workdir / "stranger", _ca()[1])
    assert bed.sigscope("verify", image, "--insecure", "--notation-config", stranger).returncode == 1
    bed.peer_env["XDG_CONFIG_HOME"] = str(stranger.parent)
    assert bed.peer("notation", "verify", "--insecure-registry", image).returncode != 0

    # without the token's certificate (a key with none) there is nothing to carry as x5c
    bed.ok("key", "generate", "--pkcs11", bed.hsm.uri(TOKEN, "bare"))
    bare = bed.sigscope(
        "sign", image, "--insecure", "--format", "notation", "--key", bed.hsm.uri(TOKEN, "bare")
    )
    assert_clean_failure(bare, "or a token key with its certificate beside it")


# ---------------------------------------------------------------- refusals: one line, no PIN


def test_token_refusals(bed: Bed, tmp_path: Path) -> None:
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "twin", "--id", "01")
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "twin", "--id", "02")
    image = "oci:/nonexistent-layout:v1"  # each refusal comes before any image is read

    def refused(uri: str, pattern: str, env: dict[str, str] | None = None) -> None:
        result = bed.sigscope("sign", image, "--key", uri, env=env)
        assert_clean_failure(result, pattern)
        assert PIN not in result.stderr and "9999-wrong" not in result.stderr

    refused(bed.hsm.uri(TOKEN, "twin"), "2 private keys match object=twin")
    refused(bed.hsm.uri(TOKEN, "nope"), f"no private key matches object=nope;token={TOKEN}")
    refused(bed.hsm.uri(TOKEN, "twin", pin="none").replace("?", "?pin-value=9999-wrong&"), "wrong PIN")
    refused(bed.hsm.uri(TOKEN, "twin", pin="none"), f"PKCS#11 token {TOKEN} needs a PIN")
    refused(bed.hsm.uri("absent-token", "twin"), "no PKCS#11 token matches token=absent-token")
    not_a_module = tmp_path / "not-a-module.so"
    not_a_module.write_text("this is no shared library\n")
    refused(bed.hsm.uri(TOKEN, "twin").replace(str(MODULE), str(not_a_module)), "failed to load")
    libc_like = Path("/lib/x86_64-linux-gnu/libz.so.1")
    if libc_like.exists():  # a real shared library that is no PKCS#11 module
        refused(bed.hsm.uri(TOKEN, "twin").replace(str(MODULE), str(libc_like)), "C_GetFunctionList")
    refused(bed.hsm.uri(TOKEN, "twin").replace(str(MODULE), str(tmp_path / "missing.so")), "no such file")
    refused(bed.hsm.uri(TOKEN, key_id=b"\x01") + "&module-name=softhsm2", "both module-name and module-path")
    # the PIN from the environment, when the URI has none; a wrong one there is as wrong
    env_pin = bed.sigscope("key", "public", bed.hsm.uri(TOKEN, key_id=b"\x02", pin="none"),
                           env={"SIGSCOPE_PKCS11_PIN": "9999-wrong"})  # fmt: skip
    assert_clean_failure(env_pin, "wrong PIN")
    refused(bed.hsm.uri(TOKEN, key_id=b"\x02"), "/nonexistent-layout")  # the right key: on to the image
    bed.hsm.lock_user_pin(TOKEN)
    refused(bed.hsm.uri(TOKEN, key_id=b"\x02"), f"PKCS#11 token {TOKEN} is locked (CKR_PIN_LOCKED")
    listing = json.loads(bed.ok("key", "list", "--pkcs11-module", MODULE, "-o", "json").stdout)
    assert [t["pinLocked"] for t in listing["tokens"] if t["label"] == TOKEN] == [True]


# ---------------------------------------------------------------- no key material on disk


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file()}


def test_no_key_material_written(bed: Bed, tmp_path: Path) -> None:
    """Generating on the token, exporting, signing and attesting leave the working directory and $TMPDIR as
    they were, but for the public key asked for; no file there holds a private key."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmpdir"
    cwd.mkdir()
    tmp.mkdir()
    env = {"TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}
    image = bed.image("pkcs11/no-disk")
    predicate = bed.workdir / "predicate.json"
    predicate.write_text("{}")
    before = _snapshot(cwd, tmp)
    uri = bed.hsm.uri(TOKEN, "ephemeral")
    for args in (
        ("key", "generate", "--pkcs11", uri, "--type", "rsa-2048"),
        ("key", "public", uri, "--output-file", "exported.pub"),
        ("sign", image, "--insecure", "--key", uri),
        ("attest", image, "--insecure", "--key", uri, "--predicate", predicate),
    ):
        bed.ok(*args, env=env, cwd=cwd)
    after = _snapshot(cwd, tmp)
    assert set(after) - set(before) == {cwd / "exported.pub"}
    assert all(after[p] == before[p] for p in before)
    for data in after.values():
        assert b"PRIVATE KEY" not in data
    assert bed.verified(image, cwd / "exported.pub")


# ---------------------------------------------------------------- digests only: what a remote signer sends

DIGEST_PROBE = """
import hashlib, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigscope.errors import UsageError
from sigscope.keys.resolve import open_signer

signer = open_signer(sys.argv[1])
key = signer.public_key()
for name, pss in (("sha256", False), ("sha384", False), ("sha512", True), ("sha256", True)):
    if isinstance(key, ec.EllipticCurvePublicKey) and pss:
        continue
    algorithm = getattr(hashes, name.upper())()
    digest = hashlib.new(name, b"only the digest reaches the token").digest()
    signature = signer.sign_digest(digest, algorithm, pss=pss)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm)))
    else:
        pad = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size) if pss else padding.PKCS1v15()
        key.verify(signature, digest, pad, Prehashed(algorithm))
    print(name, "pss" if pss else "-", "ok")
try:
    signer.sign_digest(b"short", hashes.SHA256())
except UsageError as exc:
    print("refused:", exc)
"""


def test_sign_digest_mechanisms(bed: Bed) -> None:
    """`Pkcs11Signer.sign_digest` sends only a digest (CKM_ECDSA, CKM_RSA_PKCS over DigestInfo,
    CKM_RSA_PKCS_PSS — SoftHSM2 has combined RSA mechanisms, so `sign` alone would not reach these) and the
    signatures verify as prehashed; a digest of the wrong length is refused before the token sees it."""
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "rsa:2048", "--label", "rsa", "--id", "01")
    bed.hsm.pkcs11_tool(TOKEN, "--keypairgen", "--key-type", "EC:secp384r1", "--label", "ec", "--id", "02")
    for label, expected in (("rsa", 4), ("ec", 2)):
        probe = subprocess.run(
            [sys.executable, "-c", DIGEST_PROBE, bed.hsm.uri(TOKEN, label)],
            capture_output=True, text=True, env={**os.environ, **bed.hsm.env}, timeout=120, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, explain(probe)
        lines = probe.stdout.splitlines()
        assert sum(line.endswith(" ok") for line in lines) == expected, probe.stdout
        assert lines[-1] == "refused: a sha256 digest is 32 bytes, not 5", probe.stdout
