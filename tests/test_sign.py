"""`sigscope sign`: cosign-format signatures that sigscope's scan and skopeo 1.18 both accept.

Every registry test pushes its own repository (`sign/...`) into the session's ``registry`` so the images other
tests look at stay unsigned.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from testbed import (
    CosignKey,
    RegistryHandle,
    build_layout,
    cosign_sig_tag,
    cosign_signature_layers,
    fetch_blob,
    fetch_manifest,
    layout_digest,
    push_layout,
    sigstore_policy,
    skopeo_verify,
    write_registries_d,
)
from testbed.cli import assert_clean_failure
from testbed.cli import run_sigscope as run
from testbed.signing import push_signed_image

from sigscope.errors import UsageError
from sigscope.keys import generate, write_key_pair
from sigscope.oci.reference import parse_image
from sigscope.sign import (
    build_payload,
    check_certificate,
    config_blob,
    docker_identity,
    go_json,
    parse_annotations,
)

PASSWORD = "sign-test-pw"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def sign(*args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return run("sign", *args, env={"SIGSCOPE_PASSWORD": password})


def make_key(directory: Path, name: str, kind: str = "ecdsa-p256") -> tuple[Path, Path]:
    """An encrypted cosign key pair made with sigscope's own key API."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_key_pair(directory / name, generate(kind), PASSWORD)


def push_image(registry: RegistryHandle, tmp_path: Path, repo: str, *, archs: list[str] | None = None) -> str:
    layout = tmp_path / f"layout-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"sigscope/sign/{repo}", architectures=archs)
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return layout_digest(layout, "v1")


def scan_entries(target: str, *extra: str) -> list[dict[str, Any]]:
    result = run("scan", "registry", target, *extra, "-o", "json")
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, Any]] = json.loads(result.stdout)["registry"]["signatures"]
    return entries


def verify_with_skopeo(
    skopeo: str, registry: RegistryHandle, repo: str, keys: list[Path], workdir: Path
) -> subprocess.CompletedProcess[str]:
    registries_d = write_registries_d(workdir / "registries.d")
    return skopeo_verify(skopeo, sigstore_policy(keys), registries_d, f"{registry.host}/{repo}:1.0", workdir)


def sig_manifest(registry: RegistryHandle, repo: str, digest: str) -> dict[str, Any]:
    manifest = fetch_manifest(registry.host, repo, cosign_sig_tag(digest))
    assert manifest is not None
    return manifest


def self_signed(key: PrivateKeyTypes) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigscope sign test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------- the bytes, without a registry


def test_payload_bytes_are_cosigns() -> None:
    digest = "sha256:" + "ab" * 32
    assert build_payload("127.0.0.1:5000/team/web", digest) == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/team/web"},"image":'
        b'{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},"type":"cosign container image signature"},'
        b'"optional":null}'
    )
    with_claims = json.loads(build_payload("r", digest, {"z": "1", "env": "a<b&c"}))
    assert list(with_claims["optional"]) == ["env", "z"]
    assert b"\\u003c" in build_payload("r", digest, {"env": "a<b"})
    assert go_json({"k": "x>y"}) == b'{"k":"x\\u003ey"}'


def test_config_blob_matches_ggcr_sizes() -> None:
    digest = "sha256:" + "0" * 64
    assert len(config_blob([digest])) == 233
    assert len(config_blob([digest] * 3)) == 451
    assert config_blob([digest]).startswith(
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":['
    )


def test_docker_identity() -> None:
    assert docker_identity(parse_image("alpine")) == "index.docker.io/library/alpine"
    assert (
        docker_identity(parse_image("docker.io/team/app:1@sha256:" + "1" * 64)) == "index.docker.io/team/app"
    )
    assert docker_identity(parse_image("127.0.0.1:5000/a/b:1.0")) == "127.0.0.1:5000/a/b"
    assert docker_identity(parse_image("ghcr.io/o/r@sha256:" + "2" * 64)) == "ghcr.io/o/r"


def test_annotation_syntax() -> None:
    assert parse_annotations(["env=prod", "x=a=b", "empty="]) == {"env": "prod", "x": "a=b", "empty": ""}
    for bad in (["noequals"], ["=value"]):
        with pytest.raises(UsageError):
            parse_annotations(bad)


def test_certificate_must_match_the_key() -> None:
    key, other = generate(), generate()
    assert check_certificate(self_signed(key), key.public_key()) is not None
    with pytest.raises(UsageError, match="does not match the signing key"):
        check_certificate(self_signed(other), key.public_key())
    with pytest.raises(UsageError, match="no PEM certificate"):
        check_certificate(b"not a certificate", key.public_key())


# ---------------------------------------------------------------- against the registry and skopeo 1.18


def test_sign_verifies_with_scan_and_skopeo(skopeo13: str, registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "sign/basic"
    digest = push_image(registry, tmp_path, repo)
    private, public = make_key(tmp_path / "keys", "ours")
    _, other_public = make_key(tmp_path / "keys", "other")

    result = sign(f"{registry.host}/{repo}:1.0", "--key", str(private), "--insecure")
    assert result.returncode == 0, result.stderr
    assert digest in result.stdout and cosign_sig_tag(digest) in result.stdout

    manifest = sig_manifest(registry, repo, digest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["size"] == 233
    [layer] = manifest["layers"]
    assert list(layer) == ["mediaType", "size", "digest", "annotations"]
    assert layer["mediaType"] == SIMPLESIGNING
    payload = fetch_blob(registry.host, repo, layer["digest"])
    assert payload == build_payload(f"{registry.host}/{repo}", digest)
    assert base64.b64decode(layer["annotations"][SIG_ANNOTATION])

    entries = scan_entries(registry.host, "--insecure", "--repo", repo, "--key", str(public))
    assert [(e["repository"], e["digest"], e["status"]) for e in entries] == [(repo, digest, "verified")]

    accepted = verify_with_skopeo(skopeo13, registry, repo, [public], tmp_path / "ok")
    assert accepted.returncode == 0, accepted.stderr
    rejected = verify_with_skopeo(skopeo13, registry, repo, [other_public], tmp_path / "bad")
    assert rejected.returncode != 0
    assert "signature" in rejected.stderr.lower()


def test_two_keys_accumulate_layers(skopeo13: str, registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "sign/twice"
    digest = push_image(registry, tmp_path, repo)
    first_key, first_pub = make_key(tmp_path / "keys", "first", "ecdsa-p256")
    second_key, second_pub = make_key(tmp_path / "keys", "second", "rsa-3072")
    target = f"{registry.host}/{repo}:1.0"

    assert sign(target, "--key", str(first_key), "--insecure").returncode == 0
    before = sig_manifest(registry, repo, digest)["layers"]
    assert sign(target, "--key", str(second_key), "--insecure").returncode == 0
    after = sig_manifest(registry, repo, digest)
    assert len(after["layers"]) == 2
    assert after["layers"][0] == before[0]
    assert after["config"]["size"] == len(config_blob([before[0]["digest"]] * 2))

    # signing again with the same key and payload adds nothing
    again = sign(target, "--key", str(first_key), "--insecure")
    assert again.returncode == 0 and "already signed" in again.stdout
    assert len(sig_manifest(registry, repo, digest)["layers"]) == 2

    for pub in (first_pub, second_pub):
        statuses = [
            e["status"] for e in scan_entries(registry.host, "--insecure", "--repo", repo, "--key", str(pub))
        ]
        assert sorted(statuses) == ["untrusted", "verified"], statuses
        check = verify_with_skopeo(skopeo13, registry, repo, [pub], tmp_path / f"v-{pub.stem}")
        assert check.returncode == 0, check.stderr


def test_appends_to_skopeo_signature(
    skopeo13: str, cosign_key: CosignKey, registry: RegistryHandle, tmp_path: Path
) -> None:
    repo = "sign/after-skopeo"
    digest = push_signed_image(
        skopeo13, registry.host, repo, cosign_key.private_key, cosign_key.passphrase, tmp_path
    )
    [skopeo_layer] = cosign_signature_layers(registry.host, repo, digest)
    private, public = make_key(tmp_path / "keys", "ours")

    result = sign(f"{registry.host}/{repo}:1.0", "--key", str(private), "--insecure")
    assert result.returncode == 0, result.stderr
    layers = cosign_signature_layers(registry.host, repo, digest)
    assert len(layers) == 2 and layers[0] == skopeo_layer

    theirs = verify_with_skopeo(skopeo13, registry, repo, [cosign_key.public_key], tmp_path / "theirs")
    assert theirs.returncode == 0, theirs.stderr
    ours = verify_with_skopeo(skopeo13, registry, repo, [public], tmp_path / "ours")
    assert ours.returncode == 0, ours.stderr
    keys = ("--key", str(public), "--key", str(cosign_key.public_key))
    statuses = [e["status"] for e in scan_entries(registry.host, "--insecure", "--repo", repo, *keys)]
    assert statuses == ["verified", "verified"], statuses


def test_annotations_outputs_and_certificate(registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "sign/claims"
    digest = push_image(registry, tmp_path, repo)
    key = generate()
    private, public = write_key_pair(tmp_path / "claims", key, PASSWORD)
    cert = tmp_path / "cert.pem"
    cert.write_bytes(self_signed(key))
    sig_out, payload_out = tmp_path / "sig.b64", tmp_path / "payload.json"

    result = sign(
        f"{registry.host}/{repo}:1.0",
        "--key",
        str(private),
        "--insecure",
        "-a",
        "env=prod",
        "-a",
        "team=web",
        "--certificate",
        str(cert),
        "--output-signature",
        str(sig_out),
        "--output-payload",
        str(payload_out),
    )
    assert result.returncode == 0, result.stderr
    [layer] = sig_manifest(registry, repo, digest)["layers"]
    assert layer["annotations"]["dev.sigstore.cosign/certificate"] == cert.read_text()
    assert layer["annotations"]["dev.sigstore.cosign/chain"] == ""
    assert sig_out.read_text() == layer["annotations"][SIG_ANNOTATION]
    payload = json.loads(payload_out.read_bytes())
    assert payload_out.read_bytes() == fetch_blob(registry.host, repo, layer["digest"])
    assert payload["optional"] == {"env": "prod", "team": "web"}

    [entry] = scan_entries(registry.host, "--insecure", "--repo", repo, "--key", str(public))
    assert entry["claims"]["optional"] == {"env": "prod", "team": "web"}
    assert entry["status"] == "verified", entry

    other_cert = tmp_path / "other.pem"
    other_cert.write_bytes(self_signed(generate()))
    mismatch = sign(
        f"{registry.host}/{repo}:1.0", "--key", str(private), "--insecure", "--certificate", str(other_cert)
    )
    assert_clean_failure(mismatch, "does not match the signing key")


def test_recursive_index(registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "sign/multi"
    digest = push_image(registry, tmp_path, repo, archs=["amd64", "arm64"])
    private, _ = make_key(tmp_path / "keys", "ours")
    result = sign(
        f"{registry.host}/{repo}:1.0", "--key", str(private), "--insecure", "--recursive", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    signed = json.loads(result.stdout)["signed"]
    assert len(signed) == 3 and signed[0]["digest"] == digest
    index = fetch_manifest(registry.host, repo, digest)
    assert index is not None
    children = [m["digest"] for m in index["manifests"]]
    assert [s["digest"] for s in signed[1:]] == children
    for signed_digest in [digest, *children]:
        [layer] = cosign_signature_layers(registry.host, repo, signed_digest)
        assert json.loads(fetch_blob(registry.host, repo, layer["digest"]))["critical"]["image"] == {
            "docker-manifest-digest": signed_digest
        }
    tags = run("ls", f"{registry.host}/{repo}", "--tags", "--insecure", "-o", "json")
    names = {t["tag"] for r in json.loads(tags.stdout)["repositories"] for t in r["tags"]}
    assert {cosign_sig_tag(d) for d in [digest, *children]} <= names


def test_layout_round_trip(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="sigscope/sign/layout")
    private, public = make_key(tmp_path / "keys", "ours")
    result = sign(f"oci:{layout}:v1", "--key", str(private))
    assert result.returncode == 0, result.stderr
    assert digest in result.stdout
    entries = scan_entries(f"oci:{layout}", "--key", str(public))
    assert [(e["digest"], e["status"]) for e in entries] == [(digest, "verified")]
    # oci:DIR alone still means the one image, not its signature manifest
    again = sign(f"oci:{layout}", "--key", str(private))
    assert again.returncode == 0, again.stderr
    assert "already signed" in again.stdout


def test_one_line_errors(registry: RegistryHandle, tmp_path: Path) -> None:
    private, _ = make_key(tmp_path / "keys", "ours")
    image = f"{registry.host}/demo/alpine:1.0"
    assert_clean_failure(sign(image, "--key", str(private), "--insecure", password="wrong"), "wrong password")
    assert_clean_failure(sign(image, "--key", str(private), "--insecure", "-a", "novalue"), "KEY=VALUE")
    assert_clean_failure(
        sign(f"{registry.host}/sign/does-not-exist:1.0", "--key", str(private), "--insecure"),
        f"manifest unknown (MANIFEST_UNKNOWN) for {registry.host}/sign/does-not-exist:1.0",
    )
    assert_clean_failure(
        sign("127.0.0.1:1/x/y:1.0", "--key", str(private), "--insecure", "--timeout", "2"), "127.0.0.1:1"
    )
    assert_clean_failure(sign(f"oci:{tmp_path}/missing:v1", "--key", str(private)), "missing")
    # nothing was written for the failed attempts
    assert (
        fetch_manifest(registry.host, "demo/alpine", cosign_sig_tag(registry.images["demo/alpine:1.0"]))
        is None
    )
