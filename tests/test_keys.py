"""cosign key files and `sigscope key`: cosign's own test keys, skopeo 1.18 interop both ways, the CLI."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from testbed import (
    CosignKey,
    RegistryHandle,
    sigstore_policy,
    skopeo_verify,
    vectors,
    write_registries_d,
)
from testbed.cli import assert_clean_failure as one_line_error
from testbed.signing import push_signed_image

from sigscope.keys import (
    COSIGN_LABEL,
    KEY_KINDS,
    SIGSTORE_LABEL,
    FileSigner,
    KeyFileExistsError,
    KeyFormatError,
    KeyPasswordError,
    encrypted_private_pem,
    generate,
    is_encrypted,
    load_private_key,
    public_pem,
    read_pem,
    write_key_pair,
)
from sigscope.keys.cosign_keys import envelope_kdf
from sigscope.trust import certs
from sigscope.trust.keys import load_public_key

VECTORS = vectors.ROOT
KEYS_DIR = VECTORS / "sigstore-cosign" / "extracted-from-pkg-cosign-keys_test.go"


def vector(name: str) -> bytes:
    return vectors.require(KEYS_DIR / name).read_bytes()


def pub(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
    return public_pem(key)


# -- cosign's keys_test.go vectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label", "n"),
    [("pemsigstorekey.pem", SIGSTORE_LABEL, 32768), ("pemcosignkey.pem", COSIGN_LABEL, 32768)],
)
def test_cosign_encrypted_vectors_decrypt(name: str, label: str, n: int) -> None:
    data = vector(name)
    pem = read_pem(data)
    assert pem.label == label and pem.encrypted and is_encrypted(data)
    assert envelope_kdf(pem.body).to_json() == {"name": "scrypt", "N": n, "r": 8, "p": 1}
    key = load_private_key(data, "hello")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert FileSigner(key).algorithm == "ecdsa-sha2-256-nistp256"


def test_sec1_inside_the_envelope_is_rejected_like_cosign() -> None:
    with pytest.raises(KeyFormatError, match="not PKCS#8"):
        load_private_key(vector("pemcosigneckey.pem"), "hello")


@pytest.mark.parametrize("name", ["pemsigstorekey.pem", "pemcosignkey.pem", "pemcosigneckey.pem"])
def test_wrong_password(name: str) -> None:
    with pytest.raises(KeyPasswordError, match="wrong password"):
        load_private_key(vector(name), "not-hello")
    with pytest.raises(KeyPasswordError, match="no password"):
        load_private_key(vector(name))


def test_plain_pem_imports() -> None:
    assert isinstance(load_private_key(vector("validecp256.pem")), ec.EllipticCurvePrivateKey)
    rsa_key = load_private_key(vector("validrsapkcs8.pem"))
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size >= 2048
    assert isinstance(load_private_key(vector("ed25519key.pem")), ed25519.Ed25519PrivateKey)
    with pytest.raises(KeyFormatError, match="ECDSA curve P-224 not allowed"):
        load_private_key(vector("invalidecp224.pem"))


def test_other_plain_forms_and_limits() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    sec1 = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert b"EC PRIVATE KEY" in sec1 and pub(load_private_key(sec1)) == public_pem(ec_key)
    small = rsa.generate_private_key(65537, 1024)
    pkcs1 = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert b"RSA PRIVATE KEY" in pkcs1
    with pytest.raises(KeyFormatError, match="RSA key size 1024 not allowed"):
        load_private_key(pkcs1)
    with pytest.raises(KeyFormatError, match="not a private key"):
        load_private_key(public_pem(ec_key))
    with pytest.raises(KeyFormatError, match="no PEM private key"):
        load_private_key(b"garbage")


def _envelope(pem: bytes) -> dict[str, object]:
    return dict(json.loads(read_pem(pem).body))


def _reseal(doc: dict[str, object], label: str = SIGSTORE_LABEL) -> bytes:
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def test_envelope_shape_and_kdf_params() -> None:
    key = generate()
    data = encrypted_private_pem(key, "pw")
    assert data.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in data.splitlines())
    doc = _envelope(data)
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    kdf = doc["kdf"]
    assert isinstance(kdf, dict)
    assert kdf["name"] == "scrypt" and kdf["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(kdf["salt"])) == 32
    cipher = doc["cipher"]
    assert isinstance(cipher, dict) and cipher["name"] == "nacl/secretbox"
    assert len(base64.b64decode(cipher["nonce"])) == 24
    # N=131072 (OWASP) is accepted; hashlib needs more than its default maxmem for it.
    strong = encrypted_private_pem(key, "pw", label=COSIGN_LABEL, n=131072)
    assert pub(load_private_key(strong, "pw")) == public_pem(key)
    for params in ({"N": 16384, "r": 8, "p": 1}, {"N": 65536, "r": 16, "p": 1}, {"N": 65536, "r": 8, "p": 2}):
        bad = {**doc, "kdf": {**kdf, "params": params}}
        with pytest.raises(KeyFormatError, match="not allowed"):
            load_private_key(_reseal(bad), "pw")
    with pytest.raises(KeyFormatError, match="unsupported cipher"):
        load_private_key(_reseal({**doc, "cipher": {**cipher, "name": "aes"}}), "pw")
    assert pub(load_private_key(encrypted_private_pem(key, ""), "")) == public_pem(key)


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_generate_sign_roundtrip(kind: str, tmp_path: Path) -> None:
    key = generate(kind)
    signer = FileSigner(key)
    signature = signer.sign(b"payload")
    assert certs.verify_with_key(signer.public_key(), signature, b"payload")
    assert not certs.verify_with_key(signer.public_key(), signature, b"other")
    if kind == "ed25519":
        assert len(signature) == 64
    private_path, public_path = write_key_pair(tmp_path / "k", key, "secret")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    loaded = load_private_key(private_path.read_bytes(), "secret")
    assert pub(loaded) == public_path.read_bytes() == public_pem(key)
    assert certs.spki_sha256(load_public_key(public_path.read_bytes())) == certs.spki_sha256(
        signer.public_key()
    )
    with pytest.raises(KeyFileExistsError):
        write_key_pair(tmp_path / "k", key, "secret")
    write_key_pair(tmp_path / "k", generate("ed25519"), "secret", force=True)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600


def test_algorithm_names() -> None:
    assert FileSigner(generate("ecdsa-p384")).algorithm == "ecdsa-sha2-384-nistp384"
    assert FileSigner(generate("rsa-3072")).algorithm == "rsa-sign-pkcs1-3072-sha256"
    assert FileSigner(generate("ed25519")).algorithm == "ed25519"
    p384 = FileSigner(generate("ecdsa-p384"))
    from cryptography.hazmat.primitives import hashes

    assert certs.verify_with_key(p384.public_key(), p384.sign(b"x"), b"x", hash_algorithm=hashes.SHA384())


# -- CLI -----------------------------------------------------------------------------------------------------


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SIGSCOPE_PASSWORD", "COSIGN_PASSWORD")}
    full_env.pop("SIGSCOPE_DEBUG", None)
    full_env["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    return subprocess.run(
        [sys.executable, "-m", "sigscope", *args],
        capture_output=True,
        text=True,
        env={**full_env, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_cli_generate_public_inspect(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    result = run("key", "generate", "--password-file", str(pw), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert read_pem(private.read_bytes()).label == SIGSTORE_LABEL
    key = load_private_key(private.read_bytes(), "s3cret")
    assert pub(key) == public.read_bytes()
    # refuses to overwrite, one line, files untouched
    before = private.read_bytes()
    one_line_error(run("key", "generate", "--password-file", str(pw), cwd=tmp_path), "--force")
    assert private.read_bytes() == before
    # public: env password, SIGSCOPE_PASSWORD wins over COSIGN_PASSWORD
    out = run("key", "public", str(private), env={"SIGSCOPE_PASSWORD": "s3cret", "COSIGN_PASSWORD": "x"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.encode() == public.read_bytes()
    out = run("key", "public", str(private), env={"COSIGN_PASSWORD": "s3cret"})
    assert out.stdout.encode() == public.read_bytes()
    # wrong password and no password: one line, exit 2
    one_line_error(run("key", "public", str(private), env={"COSIGN_PASSWORD": "nope"}), "wrong password")
    one_line_error(run("key", "public", str(private)), "SIGSCOPE_PASSWORD")
    # inspect: same fingerprint as `scan --key` reports (SPKI SHA-256)
    fingerprint = certs.spki_sha256(load_public_key(public.read_bytes()))
    info = json.loads(run("key", "inspect", str(private), "--password-file", str(pw), "-o", "json").stdout)
    assert info["encrypted"] is True and info["format"] == "sigstore-encrypted"
    assert info["kdf"] == {"name": "scrypt", "N": 65536, "r": 8, "p": 1}
    assert (info["keyType"], info["keySize"], info["curve"]) == ("ECDSA", 256, "P-256")
    assert info["sha256"] == fingerprint
    info = json.loads(run("key", "inspect", str(public), "-o", "json").stdout)
    assert info["kind"] == "public" and info["sha256"] == fingerprint
    pretty = run("key", "inspect", str(private), "--password-file", str(pw))
    assert f"sha256:{fingerprint}" in pretty.stdout and "N=65536" in pretty.stdout


def test_cli_generate_types_and_force(tmp_path: Path) -> None:
    env = {"SIGSCOPE_PASSWORD": ""}
    result = run("key", "generate", "--type", "ed25519", "--output-prefix", str(tmp_path / "e"), env=env)
    assert result.returncode == 0, result.stderr
    assert isinstance(load_private_key((tmp_path / "e.key").read_bytes(), ""), ed25519.Ed25519PrivateKey)
    old = (tmp_path / "e.pub").read_bytes()
    result = run(
        "key", "generate", "--type", "ecdsa-p384", "--output-prefix", str(tmp_path / "e"), "--force", env=env
    )
    assert result.returncode == 0, result.stderr
    key = load_private_key((tmp_path / "e.key").read_bytes(), "")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert (tmp_path / "e.pub").read_bytes() != old
    assert run("key", "generate", "--type", "dsa", env=env, cwd=tmp_path).returncode == 2


def test_cli_import(tmp_path: Path) -> None:
    env = {"COSIGN_PASSWORD": "pw"}
    for name in ("validecp256.pem", "validrsapkcs8.pem", "ed25519key.pem"):
        source = tmp_path / name
        source.write_bytes(vector(name))
        prefix = tmp_path / name.removesuffix(".pem")
        result = run("key", "import", str(source), "--output-prefix", str(prefix), env=env)
        assert result.returncode == 0, result.stderr
        imported = load_private_key(Path(f"{prefix}.key").read_bytes(), "pw")
        assert pub(imported) == pub(load_private_key(source.read_bytes()))
        assert Path(f"{prefix}.pub").read_bytes() == pub(imported)
    # default prefix
    result = run("key", "import", str(tmp_path / "validecp256.pem"), env=env, cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "import-cosign.key").is_file()
    bad = tmp_path / "p224.pem"
    bad.write_bytes(vector("invalidecp224.pem"))
    one_line_error(run("key", "import", str(bad), env=env, cwd=tmp_path), "ECDSA curve P-224 not allowed")
    assert not (tmp_path / "p224.key").exists()
    sec1 = tmp_path / "eckey.pem"
    sec1.write_bytes(vector("pemcosigneckey.pem"))
    one_line_error(run("key", "public", str(sec1), env={"COSIGN_PASSWORD": "hello"}), "not PKCS#8")
    one_line_error(run("key", "public", str(sec1), env={"COSIGN_PASSWORD": "bad"}), "wrong password")


# -- skopeo 1.18 interop ------------------------------------------------------------------------------------


def test_skopeo_generated_key_loads(cosign_key: CosignKey) -> None:
    data = cosign_key.private_key.read_bytes()
    assert read_pem(data).encrypted
    key = load_private_key(data, cosign_key.passphrase)
    assert pub(key) == public_pem_of(cosign_key.public_key)
    with pytest.raises(KeyPasswordError):
        load_private_key(data, cosign_key.passphrase + "x")
    out = run(
        "key", "public", str(cosign_key.private_key), "--password-file", str(cosign_key.passphrase_file)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.encode() == public_pem_of(cosign_key.public_key)


def public_pem_of(path: Path) -> bytes:
    return load_public_key(path.read_bytes()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ed25519"])
def test_skopeo_signs_with_our_key(
    kind: str, skopeo13: str, registry: RegistryHandle, tmp_path: Path
) -> None:
    prefix = tmp_path / "ours"
    result = run(
        "key", "generate", "--type", kind, "--output-prefix", str(prefix), env={"SIGSCOPE_PASSWORD": "pw1"}
    )
    assert result.returncode == 0, result.stderr
    repo = f"keys/interop-{kind}"
    digest = push_signed_image(
        skopeo13,
        registry.host,
        repo,
        Path(f"{prefix}.key"),
        "pw1",
        tmp_path,
        seed=f"sigscope/keys-interop/{kind}",
    )
    scan = run(
        "scan",
        "registry",
        registry.host,
        "--insecure",
        "--repo",
        repo,
        "--key",
        f"{prefix}.pub",
        "-o",
        "json",
    )
    assert scan.returncode == 0, scan.stderr
    entries = json.loads(scan.stdout)["registry"]["signatures"]
    assert [(e["repository"], e["status"]) for e in entries] == [(repo, "verified")], entries
    fingerprint = certs.spki_sha256(load_public_key(Path(f"{prefix}.pub").read_bytes()))
    assert f"sha256:{fingerprint[:16]}" in entries[0]["subjectname"]
    assert fingerprint in json.dumps(entries[0])
    # skopeo's own verification accepts our public key as well
    registries_d = write_registries_d(tmp_path / "registries.d")
    check = skopeo_verify(
        skopeo13,
        sigstore_policy([Path(f"{prefix}.pub")]),
        registries_d,
        f"{registry.host}/{repo}@{digest}",
        tmp_path / "verify",
    )
    assert check.returncode == 0, check.stderr
