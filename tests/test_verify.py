"""`sigscope verify`: cosign signatures (sigscope, skopeo 1.18) and GPG ones, judged against a policy.

Every registry test pushes its own repository (`verify/...`) so the images other tests look at stay unsigned.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import (
    CosignKey,
    RegistryHandle,
    SignedRegistry,
    build_layout,
    cosign_sig_tag,
    layout_digest,
    push_layout,
    vectors,
)
from testbed.cli import run_sigscope as run
from testbed.forge import push_cosign_signature, push_image
from testbed.signing import push_signed_image

from sigscope.keys import generate, write_key_pair
from sigscope.model import Check, Signature, SignatureFormat, Status
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.verify import Policy, annotations_check, reference_check, verify

PASSWORD = "verify-test-pw"
PGP_FIXTURES = vectors.ROOT / "containers-image" / "signature"
OTHER_KEYRING = PGP_FIXTURES / "fixtures" / "public-key-2.gpg"


def sign(image: str, key: Path, *extra: str) -> None:
    result = run("sign", image, "--key", str(key), *extra, password=PASSWORD)
    assert result.returncode == 0, result.stderr


def verify_cli(image: str, *args: str) -> subprocess.CompletedProcess[str]:
    extra = ("--insecure",) if not image.startswith("oci:") else ()
    return run("verify", image, *extra, *args)


def verify_json(image: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = verify_cli(image, *args, "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


def make_key(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return write_key_pair(directory / name, generate("ecdsa-p256"), PASSWORD)


def push(registry: RegistryHandle, tmp_path: Path, repo: str) -> str:
    layout = tmp_path / f"layout-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"sigscope/verify/{repo}")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return layout_digest(layout, "v1")


def failed_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The table rows of a verify that ran and failed: the result is stdout's, stderr stays empty."""
    assert result.returncode == 1 and result.stderr == "", result.stderr
    return [line for line in result.stdout.splitlines() if not line.rstrip().endswith(" ok")]


def client_options() -> RegistryOptions:
    return RegistryOptions(insecure=True, use_auth_files=False)


# ---------------------------------------------------------------- the pure core


def test_reference_matching() -> None:
    image = "127.0.0.1:5000/team/web:1.0"
    assert reference_check("127.0.0.1:5000/team/web", image, exact=False).outcome == "passed"
    assert reference_check("127.0.0.1:5000/team/web:2.0", image, exact=False).outcome == "passed"
    assert reference_check("127.0.0.1:5000/team/other", image, exact=False).outcome == "failed"
    assert reference_check("127.0.0.1:5001/team/web", image, exact=False).outcome == "failed"
    assert reference_check(None, image, exact=False).outcome == "failed"
    # exact: a repository-only identity (cosign) never matches, a tagged one must be the same tag
    assert reference_check("127.0.0.1:5000/team/web", image, exact=True).outcome == "failed"
    assert reference_check("127.0.0.1:5000/team/web:1.0", image, exact=True).outcome == "passed"
    assert reference_check("127.0.0.1:5000/team/web:2.0", image, exact=True).outcome == "failed"
    # Docker Hub spellings are one repository
    assert reference_check(
        "index.docker.io/library/alpine", "docker.io/library/alpine:3", exact=False
    ).outcome == ("passed")
    assert reference_check("oci:./lay", "oci:lay:v1", exact=False).outcome == "passed"
    assert reference_check("oci:other", "oci:lay:v1", exact=False).outcome == "failed"


def test_annotations_and_threshold_core() -> None:
    assert annotations_check({"env": "prod"}, {"env": "prod"}).outcome == "passed"
    assert "missing team" in annotations_check({"env": "prod"}, {"team": "web"}).detail
    assert annotations_check(None, {"env": "prod"}).outcome == "failed"
    assert annotations_check({"env": "dev"}, {"env": "prod"}).outcome == "failed"

    digest = "sha256:" + "a" * 64

    def sig(key_hex: str) -> Signature:
        payload = json.dumps(
            {"critical": {"identity": {"docker-reference": "r.example/app"}}, "optional": None}
        )
        s = Signature(
            format=SignatureFormat.COSIGN,
            subject_digest=digest,
            location="l",
            claims={"docker-reference": "r.example/app"},
            checks=[
                Check.passed("signature", "ok"),
                Check.passed("payload-digest", "ok"),
                Check.passed("trusted-key", f"signed by supplied ECDSA key sha256:{key_hex * 64}"),
            ],
            evidence={"payload": payload.encode()},
        )
        return s.settle()

    one, same, other = sig("1"), sig("1"), sig("2")
    assert one.status is Status.VERIFIED
    assert verify("r.example/app:1", digest, [one], Policy()).verified
    assert not verify("r.example/app:1", digest, [one, same], Policy(threshold=2)).verified
    assert verify("r.example/app:1", digest, [one, other], Policy(threshold=2)).verified
    verdict = verify("r.example/other:1", digest, [one], Policy())
    assert not verdict.verified and verdict.signatures[0].reason == "reference mismatch"
    assert verify("r.example/app:1", digest, [], Policy()).reason == "no signatures found"


def test_trust_material_is_required(tmp_path: Path) -> None:
    result = run("verify", f"oci:{tmp_path}/nothing:v1")
    assert result.returncode == 2
    assert "--key" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- OCI layouts


def test_layout_round_trip(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="sigscope/verify/layout")
    private, public = make_key(tmp_path / "keys", "ours")
    _, other = make_key(tmp_path / "keys", "other")
    image = f"oci:{layout}:v1"

    unsigned = verify_cli(image, "--key", str(public))
    assert unsigned.returncode == 1
    assert unsigned.stdout.count("no signatures found") == 1 and unsigned.stderr == ""

    sign(image, private, "-a", "env=prod")
    ok = verify_cli(image, "--key", str(public))
    assert ok.returncode == 0, ok.stderr
    assert "Verified 1 of 1 signatures" in ok.stdout

    code, data = verify_json(image, "--key", str(public), "-a", "env=prod")
    assert code == 0
    assert data["verified"] is True and data["digest"] == digest and data["threshold"] == 1
    [entry] = data["signatures"]
    assert entry["format"] == "cosign" and entry["status"] == "verified"
    assert entry["payload"]["critical"]["image"]["docker-manifest-digest"] == digest
    assert entry["payload"]["optional"] == {"env": "prod"}
    names = [c["name"] for c in entry["checks"]]
    for name in ("trusted-key", "payload-digest", "reference", "annotations"):
        assert name in names

    wrong = verify_cli(image, "--key", str(other))
    assert wrong.returncode == 1
    assert any("wrong key" in line for line in failed_lines(wrong)), wrong.stderr

    missing = verify_cli(image, "--key", str(public), "-a", "team=web")
    assert missing.returncode == 1
    assert any("annotation mismatch" in line for line in failed_lines(missing)), missing.stderr
    mismatched = verify_cli(image, "--key", str(public), "-a", "env=dev")
    assert mismatched.returncode == 1

    # sigscope writes repository-only identities, as cosign does: no exact match
    exact = verify_cli(image, "--key", str(public), "--exact-reference")
    assert exact.returncode == 1
    assert any("reference mismatch" in line for line in failed_lines(exact)), exact.stderr


# ---------------------------------------------------------------- registry, sigscope and skopeo 1.18


def test_sigscope_and_skopeo_signatures(
    skopeo13: str, cosign_key: CosignKey, registry: RegistryHandle, tmp_path: Path
) -> None:
    repo = "verify/peers"
    digest = push_signed_image(
        skopeo13, registry.host, repo, cosign_key.private_key, cosign_key.passphrase, tmp_path
    )
    image = f"{registry.host}/{repo}:1.0"
    ok = verify_cli(image, "--key", str(cosign_key.public_key))
    assert ok.returncode == 0, ok.stderr
    # skopeo's identity carries the tag: exact matching holds for it
    exact = verify_cli(image, "--key", str(cosign_key.public_key), "--exact-reference")
    assert exact.returncode == 0, exact.stderr
    by_digest = verify_cli(f"{registry.host}/{repo}@{digest}", "--key", str(cosign_key.public_key))
    assert by_digest.returncode == 0, by_digest.stderr

    private, public = make_key(tmp_path / "keys", "ours")
    wrong = verify_cli(image, "--key", str(public))
    assert wrong.returncode == 1
    assert any("wrong key" in line for line in failed_lines(wrong)), wrong.stderr

    sign(image, private, "--insecure")
    code, data = verify_json(
        image, "--key", str(public), "--key", str(cosign_key.public_key), "--threshold", "2"
    )
    assert code == 0, data
    assert [s["status"] for s in data["signatures"]] == ["verified", "verified"]
    # the same key twice is still one key
    same = verify_cli(image, "--key", str(public), "--key", str(public), "--threshold", "2")
    assert same.returncode == 1
    assert "1 of 2 signatures" in same.stdout


def test_same_key_twice_is_one_key(registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "verify/twice"
    push(registry, tmp_path, repo)
    first, first_pub = make_key(tmp_path / "keys", "first")
    second, second_pub = make_key(tmp_path / "keys", "second")
    image = f"{registry.host}/{repo}:1.0"
    sign(image, first, "--insecure", "-a", "run=1")
    sign(image, first, "--insecure", "-a", "run=2")
    code, data = verify_json(image, "--key", str(first_pub), "--threshold", "2")
    assert code == 1
    assert [s["satisfied"] for s in data["signatures"]] == [True, True]
    assert data["verified"] is False
    sign(image, second, "--insecure")
    code, data = verify_json(image, "--key", str(first_pub), "--key", str(second_pub), "--threshold", "2")
    assert code == 0 and data["verified"] is True


def test_unsigned_image(registry: RegistryHandle, tmp_path: Path) -> None:
    _, public = make_key(tmp_path / "keys", "ours")
    result = verify_cli(f"{registry.host}/demo/alpine:1.0", "--key", str(public))
    assert result.returncode == 1
    assert result.stdout.count("no signatures found") == 1 and result.stderr == ""
    code, data = verify_json(f"{registry.host}/demo/alpine:1.0", "--key", str(public))
    assert code == 1 and data["signatures"] == [] and data["verified"] is False


async def _copy(client: RegistryClient, source: str, target: str, reference: str) -> None:
    manifest = await client.get_manifest(source, reference)
    config = manifest.config()
    for blob in [*([config] if config is not None else []), *manifest.layers()]:
        data = await client.get_blob(source, blob.digest)
        await client.put_blob(target, data, blob.media_type)
    await client.put_manifest(target, manifest.raw, manifest.media_type, reference)


def test_copied_to_another_repository(registry: RegistryHandle, tmp_path: Path) -> None:
    repo, copy = "verify/original", "verify/copied"
    digest = push(registry, tmp_path, repo)
    private, public = make_key(tmp_path / "keys", "ours")
    sign(f"{registry.host}/{repo}:1.0", private, "--insecure")

    async def copy_all() -> None:
        async with RegistryClient(registry.host, client_options()) as client:
            await _copy(client, repo, copy, "1.0")
            await _copy(client, repo, copy, cosign_sig_tag(digest))

    asyncio.run(copy_all())
    assert verify_cli(f"{registry.host}/{repo}:1.0", "--key", str(public)).returncode == 0
    moved = verify_cli(f"{registry.host}/{copy}:1.0", "--key", str(public))
    assert moved.returncode == 1
    assert any("reference mismatch" in line for line in failed_lines(moved)), moved.stderr


def test_payload_names_another_digest(registry: RegistryHandle, tmp_path: Path) -> None:
    repo = "verify/forged"
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "forged.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    async def forge() -> None:
        async with RegistryClient(registry.host, client_options()) as client:
            image = await push_image(client, repo, "1.0", "verify/forged/a")
            other = await push_image(client, repo, "2.0", "verify/forged/b")
            await push_cosign_signature(client, repo, image.digest, other.digest, key)
            await push_cosign_signature(client, repo, other.digest, other.digest, key)

    asyncio.run(forge())
    assert verify_cli(f"{registry.host}/{repo}:2.0", "--key", str(public)).returncode == 0
    result = verify_cli(f"{registry.host}/{repo}:1.0", "--key", str(public))
    assert result.returncode == 1
    assert any("payload names another digest" in line for line in failed_lines(result)), result.stderr


# ---------------------------------------------------------------- GPG simple signatures


def test_gpg_simple_signature(signed_registry: SignedRegistry) -> None:
    image = f"{signed_registry.host}/signed/gpg:1.0"
    trust = ("--registries.d", str(signed_registry.registries_d))
    ok = verify_cli(image, "--gpg-keyring", str(signed_registry.gpg_public_key), *trust)
    assert ok.returncode == 0, ok.stderr
    code, data = verify_json(
        image, "--gpg-keyring", str(signed_registry.gpg_public_key), *trust, "--exact-reference"
    )
    assert code == 0
    assert data["signatures"][0]["format"] == "simple-signing"
    assert data["signatures"][0]["signer"]["pgp"]["keyId"]

    other = verify_cli(image, "--gpg-keyring", str(vectors.require(OTHER_KEYRING)), *trust)
    assert other.returncode == 1
    assert any("wrong key" in line for line in failed_lines(other)), other.stderr
    # a cosign key says nothing about a GPG signature
    no_pgp = verify_cli(image, "--key", str(signed_registry.cosign_public_key), *trust)
    assert no_pgp.returncode == 1
