"""One error vocabulary (issue 11, items 5 and 6), as a user meets it on the command line.

A registry's refusal reads the same whichever verb met it; a key or certificate file that is wrong is
named in sigscope's own words (which file, what it is, what the flag takes) by every verb that reads one;
and a verification that ran puts its whole result on stdout, once, leaving stderr to errors.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from testbed import RegistryHandle, build_layout
from testbed.cli import run_sigscope as run

from sigscope.errors import AuthError, KeyFileError, NotFoundError, RegistryError, registry_error
from sigscope.keys import generate, write_key_pair
from sigscope.keys.files import describe

PASSWORD = "errors-test-pw"
# Words of the parsers underneath; a user never has to read them.
THIRD_PARTY = (
    "BEGIN PUBLIC KEY/END PUBLIC KEY",
    "Are you sure",
    "cryptography.io",
    "MalformedFraming",
    "ASN.1",
)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that could not run (exit 2, nothing on stdout)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    assert not any(words in lines[0] for words in THIRD_PARTY), lines[0]
    return lines[0]


# ---------------------------------------------------------------- registry errors


def test_registry_error_wording() -> None:
    coded = registry_error("r.example/a/b:missing", 404, "MANIFEST_UNKNOWN", "manifest unknown")
    assert isinstance(coded, NotFoundError) and coded.code == "MANIFEST_UNKNOWN" and coded.status == 404
    assert coded.message == "manifest unknown (MANIFEST_UNKNOWN) for r.example/a/b:missing"
    # No body (a HEAD, a proxy): the HTTP status stands in for the code, its phrase for the words.
    bare = registry_error("blob r.example/a/b@sha256:00", 404, None, "")
    assert bare.message == "not found (HTTP 404) for blob r.example/a/b@sha256:00"
    assert isinstance(registry_error("x", 403, "DENIED", "requested access is denied"), AuthError)
    other = registry_error("x", 500, None, "boom")
    assert type(other) is RegistryError and other.message == "boom (HTTP 500) for x"
    # A registry's words reach a terminal: no escape sequences, no second line.
    hostile = registry_error("x", 400, "BAD\x1b[2J", "line one\nline two\x07")
    assert "\x1b" not in hostile.message and "\n" not in hostile.message and "\x07" not in hostile.message


def test_missing_tag_reads_the_same_in_every_verb(registry: RegistryHandle, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path)
    predicate = tmp_path / "predicate.json"
    predicate.write_text("{}")
    image = f"{registry.host}/demo/alpine:missing"
    expected = f"sigscope: error: manifest unknown (MANIFEST_UNKNOWN) for {image}"
    verbs = {
        "inspect": ("inspect", image),
        "verify": ("verify", image, "--key", str(public)),
        "verify-attestation": ("verify-attestation", image, "--key", str(public)),
        "sign": ("sign", image, "--key", str(private)),
        "attest": ("attest", image, "--key", str(private), "--predicate", str(predicate)),
    }
    for verb, args in verbs.items():
        assert one_error(run(*args, "--insecure", password=PASSWORD)) == expected, verb


def test_refused_credentials_read_the_same_in_inspect_and_verify(
    basic_registry: RegistryHandle, tmp_path: Path
) -> None:
    # verify resolves with a HEAD (no error body), inspect with a GET: the words must not depend on it.
    _, public = key_pair(tmp_path)
    image = f"{basic_registry.host}/demo/alpine:1.0"
    creds = ("--insecure", "-u", "alice", "-p", "wrong")
    inspected = one_error(run("inspect", image, *creds))
    verified = one_error(run("verify", image, "--key", str(public), *creds))
    assert inspected == verified
    assert f"(UNAUTHORIZED) for {basic_registry.host}/demo/alpine as 'alice'" in inspected


# ---------------------------------------------------------------- key and certificate files


def key_pair(tmp_path: Path) -> tuple[Path, Path]:
    prefix = tmp_path / "keys" / "cosign"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    if not Path(f"{prefix}.key").exists():
        write_key_pair(prefix, generate("ecdsa-p256"), PASSWORD)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind a user might hand to the wrong flag."""
    private, public = key_pair(tmp_path)
    plain = generate("ecdsa-p256")
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "errors-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(plain.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(plain, hashes.SHA256())
    )
    out = {
        "encrypted": private,
        "public": public,
        "plain": tmp_path / "plain.pem",
        "cert": tmp_path / "cert.pem",
        "garbage": tmp_path / "garbage.bin",
        "empty": tmp_path / "empty.pem",
        "missing": tmp_path / "missing.pem",
    }
    out["plain"].write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out["garbage"].write_bytes(bytes(range(256)) * 4)
    out["empty"].write_bytes(b"")
    return out


def test_describe_names_what_a_file_is(files: dict[str, Path]) -> None:
    kinds = {name: describe(path.read_bytes()) for name, path in files.items() if path.exists()}
    assert kinds == {
        "encrypted": "an encrypted private key",
        "public": "a public key",
        "plain": "a private key",
        "cert": "a certificate",
        "garbage": "not PEM",
        "empty": "an empty file",
    }


def test_a_private_key_given_to_verify(files: dict[str, Path], tmp_path: Path) -> None:
    image = f"oci:{tmp_path}/layout:v1"  # never opened: the key is read first
    for kind, what in (("encrypted", "an encrypted private key"), ("plain", "a private key")):
        path = files[kind]
        for verb in ("verify", "verify-attestation"):
            line = one_error(run(verb, image, "--key", str(path)))
            assert line == (
                f"sigscope: error: {path}: {what}, but --key for {verb} takes a public key; "
                f"`sigscope key public {path}` prints its public key"
            )
    line = one_error(run("scan", "registry", "127.0.0.1:1", "--key", str(files["plain"])))
    assert line.startswith(f"sigscope: error: {files['plain']}: a private key, but --key for scan registry")


def test_a_certificate_given_to_verify_key(files: dict[str, Path], tmp_path: Path) -> None:
    cert = files["cert"]
    line = one_error(run("verify", f"oci:{tmp_path}/layout:v1", "--key", str(cert)))
    assert line == (
        f"sigscope: error: {cert}: a certificate, but --key for verify takes a public key; "
        f"`openssl x509 -pubkey -noout -in {cert}` prints its public key"
    )


def test_a_public_key_given_to_sign_and_attest(files: dict[str, Path], tmp_path: Path) -> None:
    public = files["public"]
    predicate = tmp_path / "predicate.json"
    predicate.write_text("{}")
    image = f"oci:{tmp_path}/layout:v1"
    hint = "the private half of the key pair is needed (cosign.key, not cosign.pub)"
    for verb, extra in (("sign", ()), ("attest", ("--predicate", str(predicate)))):
        line = one_error(run(verb, image, "--key", str(public), *extra, password=PASSWORD))
        assert (
            line
            == f"sigscope: error: {public}: a public key, but --key for {verb} takes a private key; {hint}"
        )
    line = one_error(run("key", "public", str(public)))
    assert (
        line
        == f"sigscope: error: {public}: a public key, but sigscope key public takes a private key; {hint}"
    )


@pytest.mark.parametrize(
    ("args", "flag", "expected"),
    [
        (("verify", "IMAGE", "--key"), "--key for verify", "a public key"),
        (("sign", "IMAGE", "--key"), "--key for sign", "a private key"),
        (("verify-attestation", "IMAGE", "--key"), "--key for verify-attestation", "a public key"),
        (
            ("verify", "IMAGE", "--certificate-identity-regexp", ".", "--ca-roots"),
            "--ca-roots for verify",
            "PEM certificates",
        ),
        (
            ("verify", "IMAGE", "--key", "PUBLIC", "--timestamp-certificate-chain"),
            "--timestamp-certificate-chain for verify",
            "PEM certificates",
        ),
        (
            ("sign", "IMAGE", "--key", "PRIVATE", "--certificate"),
            "--certificate for sign",
            "PEM certificates",
        ),
        (("inspect", "IMAGE", "--ca-file"), "--ca-file for inspect", "PEM certificates"),
        (
            ("verify", "IMAGE", "--certificate-identity-regexp", ".", "--trusted-root"),
            "--trusted-root for verify",
            "a Sigstore trusted root in JSON",
        ),
        (("verify", "IMAGE", "--gpg-keyring"), "--gpg-keyring for verify", "OpenPGP public keys"),
    ],
)
def test_garbage_and_missing_files_per_flag(
    args: tuple[str, ...], flag: str, expected: str, files: dict[str, Path], tmp_path: Path
) -> None:
    fill = {
        "IMAGE": f"oci:{tmp_path}/layout:v1",
        "PUBLIC": str(files["public"]),
        "PRIVATE": str(files["encrypted"]),
    }
    argv = [fill.get(a, a) for a in args]
    missing = files["missing"]
    line = one_error(run(*argv, str(missing), password=PASSWORD))
    assert line == f"sigscope: error: {missing}: no such file ({flag} takes {expected})"
    if flag.startswith("--gpg-keyring"):
        # OpenPGP packets are binary: bytes that are not PEM are the keyring parser's to judge.
        line = one_error(run(*argv, str(files["public"])))
        assert line == f"sigscope: error: {files['public']}: a public key, but {flag} takes {expected}"
        return
    garbage = files["garbage"]
    problem = "not JSON" if "trusted-root" in flag else "not PEM"
    line = one_error(run(*argv, str(garbage), password=PASSWORD))
    assert line == f"sigscope: error: {garbage}: {problem}, but {flag} takes {expected}"


def test_key_passwords(files: dict[str, Path], tmp_path: Path) -> None:
    private = files["encrypted"]
    image = f"oci:{tmp_path}/layout:v1"
    wrong = one_error(run("sign", image, "--key", str(private), password="not-it"))
    assert wrong == f"sigscope: error: {private}: wrong password for the encrypted private key"
    none = one_error(run("sign", image, "--key", str(private)))
    assert none.startswith(
        f"sigscope: error: a password is needed for private key {private}: use --password-file"
    )


def test_key_file_error_is_a_usage_error() -> None:
    error = KeyFileError("k.pem", "a private key", expected="a public key", role="--key for verify")
    assert (
        error.exit_code == 2
        and error.message == "k.pem: a private key, but --key for verify takes a public key"
    )
    # Without a face to name the flag, the library speaks of things only.
    assert KeyFileError("k.pem", "a private key", expected="a public key").message == (
        "k.pem: a private key, not a public key"
    )


# ---------------------------------------------------------------- verify output


@pytest.fixture
def signed_layout(tmp_path: Path) -> tuple[str, Path]:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/errors/verify-output")
    private, public = key_pair(tmp_path)
    image = f"oci:{layout}:v1"
    signed = run("sign", image, "--key", str(private), "-a", "env=prod", password=PASSWORD)
    assert signed.returncode == 0, signed.stderr
    return image, public


def rows(stdout: str) -> list[list[str]]:
    """The signature rows of verify's table: [format, status, …, result]."""
    return [line.split() for line in stdout.splitlines() if line.startswith(("cosign", "simple-signing"))]


def test_policy_failure_is_not_shown_as_verified(signed_layout: tuple[str, Path]) -> None:
    image, public = signed_layout
    result = run("verify", image, "--key", str(public), "-a", "env=dev")
    assert result.returncode == 1 and result.stderr == ""
    [row] = rows(result.stdout)
    assert row[1] == "rejected" and row[-2:] == ["annotation", "mismatch"]
    assert "verified" not in row
    summary = "Not verified: no signature satisfies the policy (0 of 1 signatures, threshold 1)"
    assert result.stdout.splitlines()[-1] == summary and result.stdout.count(summary) == 1

    as_json = run("verify", image, "--key", str(public), "-a", "env=dev", "-o", "json")
    assert as_json.returncode == 1 and as_json.stderr == ""
    data = json.loads(as_json.stdout)
    [entry] = data["signatures"]
    assert entry["status"] == "rejected" and entry["satisfied"] is False
    assert entry["reason"] == "annotation mismatch"
    assert data["verified"] is False and data["reason"] == "no signature satisfies the policy"

    passed = run("verify", image, "--key", str(public), "-a", "env=prod")
    assert passed.returncode == 0 and passed.stderr == ""
    [row] = rows(passed.stdout)
    assert row[1] == "verified" and row[-1] == "ok"
    assert passed.stdout.splitlines()[-1] == "Verified 1 of 1 signatures (1 distinct key, threshold 1)"


def test_unsigned_image_says_so_once(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/errors/unsigned")
    _, public = key_pair(tmp_path)
    image = f"oci:{layout}:v1"
    result = run("verify", image, "--key", str(public))
    assert result.returncode == 1 and result.stderr == ""
    assert (result.stdout + result.stderr).count("no signatures found") == 1
    assert result.stdout.splitlines()[-1] == "Not verified: no signatures found"
    attestations = run("verify-attestation", image, "--key", str(public))
    assert attestations.returncode == 1 and attestations.stderr == ""
    assert (attestations.stdout + attestations.stderr).count("no attestations found") == 1
    assert attestations.stdout.splitlines()[-1] == "Not verified: no attestations found"


def test_verify_help_documents_the_statuses() -> None:
    text = " ".join(run("verify", "--help").stdout.split())
    assert "rejected (trusted, but a policy check failed" in text
    assert "Standard error carries only an error that kept the command from running" in text
