"""containers-policy.json: parsed and evaluated by sigscope, and the same policies run through `skopeo copy
--policy` (stock skopeo 1.9.3 for signedBy, Debian 13 skopeo 1.18 for sigstoreSigned); both must agree.

Images live in repositories `cpol/...` of the session registry, signed by stock skopeo `--sign-by`, by
`sigscope sign --format simple-signing`, by skopeo 1.18 (cosign format) and by `sigscope sign --key`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from testbed import (
    CosignKey,
    GpgHome,
    RegistryHandle,
    build_layout,
    layout_digest,
    push_layout,
    sign_gpg,
    skopeo_verify,
    stock_skopeo,
    vectors,
    write_registries_d,
)
from testbed.cli import run_sigscope as run
from testbed.signing import push_signed_image

from sigscope.keys import generate, write_key_pair
from sigscope.model import Signature, SignatureFormat
from sigscope.trust import containers_policy as cp

VECTORS = vectors.ROOT / "containers-image" / "signature"
FIXTURES = VECTORS / "fixtures"
OTHER_GPG_KEY = FIXTURES / "public-key-2.gpg"
needs_vectors = pytest.mark.vectors
KEY_PASSWORD = "cpol-test-pw"


def sigscope_policy(
    policy: dict[str, Any], registries_d: Path, image: str, workdir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="policy-", suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as handle:
        json.dump(policy, handle)
    insecure = () if image.startswith("oci:") else ("--insecure",)
    return run(
        "verify", image, *insecure, "--containers-policy", name, "--registries.d", str(registries_d), *extra
    )


def docker_policy(scopes: dict[str, list[dict[str, Any]]], default: str = "reject") -> dict[str, Any]:
    return {"default": [{"type": default}], "transports": {"docker": scopes}}


# ---------------------------------------------------------------- the signed images


@dataclass
class Bed:
    host: str
    gpg_public: Path
    registries_d: Path  # lookaside only (stock skopeo, signedBy)
    attachments_d: Path  # lookaside + use-sigstore-attachments (skopeo 1.18, sigstoreSigned)
    workdir: Path

    def image(self, name: str) -> str:
        return f"{self.host}/cpol/{name}"


@pytest.fixture(scope="module")
def bed(registry: RegistryHandle, gpg_home: GpgHome, tmp_path_factory: pytest.TempPathFactory) -> Bed:
    work = tmp_path_factory.mktemp("cpol")
    lookaside = work / "lookaside"
    host = registry.host
    layout = work / "layout"
    for name in ("gpg", "ours", "unsigned"):
        build_layout(layout, name, seed=f"sigscope/cpol/{name}")
    # stock skopeo signs cpol/gpg:1.0 while pushing it
    sign_gpg(layout, "gpg", host, "cpol/gpg", "1.0", gpg_home, lookaside, work)
    push_layout(layout, "gpg", host, "cpol/gpg", "2.0")  # same digest, another tag: identity says :1.0
    # the same image copied to another repository, with its signature: identity mismatch
    push_layout(layout, "gpg", host, "cpol/moved", "1.0")
    digest = layout_digest(layout, "gpg").replace(":", "=")
    shutil.copytree(lookaside / "cpol" / f"gpg@{digest}", lookaside / "cpol" / f"moved@{digest}")
    push_layout(layout, "unsigned", host, "cpol/unsigned", "1.0")
    push_layout(layout, "ours", host, "cpol/ours", "1.0")
    registries_d = write_registries_d(
        work / "registries.d", host=host, lookaside_dir=lookaside, sigstore_attachments=False
    )
    attachments_d = write_registries_d(work / "attachments.d", host=host, lookaside_dir=lookaside)
    signed = run(
        "sign",
        f"{host}/cpol/ours:1.0",
        "--insecure",
        "--format",
        "simple-signing",
        "--gpg-key",
        gpg_home.fingerprint,
        "--gnupg-home",
        str(gpg_home.home),
        "--registries.d",
        str(registries_d),
    )
    assert signed.returncode == 0, signed.stderr
    return Bed(host, gpg_home.export_public(work / "signer.gpg"), registries_d, attachments_d, work)


def agree(
    bed: Bed,
    policy: dict[str, Any],
    image: str,
    expected: bool,
    *,
    skopeo: str | None = None,
    registries_d: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `policy` through skopeo and sigscope; both must give `expected` (True = accepted)."""
    rd = registries_d or bed.registries_d
    peer = skopeo_verify(skopeo or stock_skopeo(), policy, rd, image, bed.workdir)
    ours = sigscope_policy(policy, rd, image, bed.workdir)
    assert ours.returncode in (0, 1), ours.stderr
    assert "Traceback" not in ours.stderr
    assert (peer.returncode == 0) == expected, f"skopeo: {peer.stderr}"
    assert (ours.returncode == 0) == expected, f"sigscope: {ours.stdout}\n{ours.stderr}"
    # Accepted or rejected, the verdict is stdout's: stderr is for a command that could not run.
    assert ours.stderr == "", ours.stderr
    return ours


def signed_by(bed: Bed, key: Path | None = None, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key or bed.gpg_public)}
    if identity is not None:
        req["signedIdentity"] = identity
    return req


# ---------------------------------------------------------------- signedBy with stock skopeo


def test_gpg_signed_by_skopeo_and_by_sigscope_accepted(bed: Bed) -> None:
    policy = docker_policy({"": [signed_by(bed)]})
    ours = agree(bed, policy, bed.image("gpg:1.0"), True)
    assert "accepted" in ours.stdout.lower()
    agree(bed, policy, bed.image("ours:1.0"), True)


def test_json_shows_scope_and_requirements(bed: Bed) -> None:
    policy = docker_policy({"": [signed_by(bed)]})
    result = sigscope_policy(policy, bed.registries_d, bed.image("gpg:1.0"), bed.workdir, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["accepted"] is True
    assert data["scope"] == {"transport": "docker", "scope": "", "source": 'transports.docker[""]'}
    [req] = data["requirements"]
    assert req["type"] == "signedBy" and req["accepted"] is True
    [sig] = req["signatures"]
    assert sig["accepted"] and sig["location"].endswith("/signature-1")
    assert {c["name"] for c in sig["checks"]} >= {
        "signature",
        "trusted-key",
        "payload-digest",
        "signed-identity",
    }


def test_wrong_key_rejected(bed: Bed) -> None:
    result = agree(
        bed,
        docker_policy({"": [signed_by(bed, vectors.require(OTHER_GPG_KEY))]}),
        bed.image("gpg:1.0"),
        False,
    )
    assert "NO_PUBKEY" in result.stdout


def test_unsigned_rejected(bed: Bed) -> None:
    result = agree(bed, docker_policy({"": [signed_by(bed)]}), bed.image("unsigned:1.0"), False)
    assert "no signature exists" in result.stdout


def test_identity_mismatch_rejected(bed: Bed) -> None:
    result = agree(bed, docker_policy({"": [signed_by(bed)]}), bed.image("moved:1.0"), False)
    assert "cpol/gpg:1.0" in result.stdout and "not accepted" in result.stdout


def test_match_repository_accepts_another_tag(bed: Bed) -> None:
    agree(bed, docker_policy({"": [signed_by(bed)]}), bed.image("gpg:2.0"), False)
    agree(
        bed,
        docker_policy({"": [signed_by(bed, identity={"type": "matchRepository"})]}),
        bed.image("gpg:2.0"),
        True,
    )


def test_other_identity_rules(bed: Bed) -> None:
    signed = bed.image("gpg:1.0")
    agree(bed, docker_policy({"": [signed_by(bed, identity={"type": "matchExact"})]}), signed, True)
    agree(
        bed,
        docker_policy({"": [signed_by(bed, identity={"type": "matchExact"})]}),
        bed.image("gpg:2.0"),
        False,
    )
    exact = {"type": "exactReference", "dockerReference": signed}
    agree(bed, docker_policy({"": [signed_by(bed, identity=exact)]}), bed.image("moved:1.0"), True)
    repo = {"type": "exactRepository", "dockerRepository": bed.image("gpg")}
    agree(bed, docker_policy({"": [signed_by(bed, identity=repo)]}), bed.image("moved:1.0"), True)
    other = {"type": "exactRepository", "dockerRepository": bed.image("elsewhere")}
    agree(bed, docker_policy({"": [signed_by(bed, identity=other)]}), bed.image("gpg:1.0"), False)
    remap = {"type": "remapIdentity", "prefix": bed.image("moved"), "signedPrefix": bed.image("gpg")}
    agree(bed, docker_policy({"": [signed_by(bed, identity=remap)]}), bed.image("moved:1.0"), True)
    agree(bed, docker_policy({"": [signed_by(bed, identity=remap)]}), bed.image("unsigned:1.0"), False)


def test_reject_default_with_insecure_scope(bed: Bed) -> None:
    policy = docker_policy({bed.image("unsigned"): [{"type": "insecureAcceptAnything"}]})
    ours = agree(bed, policy, bed.image("unsigned:1.0"), True)
    assert f'transports.docker["{bed.image("unsigned")}"]' in ours.stdout
    rejected = agree(bed, policy, bed.image("gpg:1.0"), False)
    assert "rejected by default" in rejected.stdout


def test_most_specific_scope_wins(bed: Bed) -> None:
    policy = docker_policy(
        {
            bed.host: [{"type": "reject"}],
            f"{bed.host}/cpol": [signed_by(bed)],
            bed.image("unsigned:1.0"): [{"type": "insecureAcceptAnything"}],
            "": [{"type": "insecureAcceptAnything"}],
        },
        default="insecureAcceptAnything",
    )
    assert f'[\\"{bed.image("unsigned:1.0")}\\"]' in json.dumps(
        agree(bed, policy, bed.image("unsigned:1.0"), True).stdout
    )
    ours = agree(bed, policy, bed.image("gpg:1.0"), True)
    assert f'transports.docker["{bed.host}/cpol"]' in ours.stdout
    agree(bed, policy, bed.image("moved:1.0"), False)  # cpol scope: identity mismatch
    rejected = agree(bed, policy, f"{bed.host}/demo/alpine:1.0", False)  # host scope
    assert f'transports.docker["{bed.host}"]' in rejected.stdout


def test_wildcard_scope(bed: Bed) -> None:
    # 127.0.0.1:PORT → scopes *.0.0.1, *.0.1, *.1 (the port is dropped before wildcards)
    policy = docker_policy({"*.0.1": [{"type": "insecureAcceptAnything"}]})
    ours = agree(bed, policy, bed.image("unsigned:1.0"), True)
    assert 'transports.docker["*.0.1"]' in ours.stdout


def test_all_requirements_must_pass(bed: Bed) -> None:
    policy = docker_policy({"": [signed_by(bed), {"type": "reject"}]})
    result = agree(bed, policy, bed.image("gpg:1.0"), False)
    assert "requirement 2 (reject)" in result.stdout


def test_unreadable_key_path_rejects(bed: Bed) -> None:
    policy = docker_policy({"": [signed_by(bed, bed.workdir / "no-such-key.gpg")]})
    result = agree(bed, policy, bed.image("gpg:1.0"), False)
    assert "no-such-key.gpg" in result.stdout


# ---------------------------------------------------------------- sigstoreSigned with skopeo 1.18


@pytest.fixture(scope="module")
def cosign_bed(bed: Bed, skopeo13: str, cosign_key: CosignKey, registry: RegistryHandle) -> dict[str, Path]:
    work = bed.workdir / "cosign"
    push_signed_image(
        skopeo13, registry.host, "cpol/cosign", cosign_key.private_key, cosign_key.passphrase, work
    )
    layout = work / "ours-layout"
    build_layout(layout, "v1", seed="sigscope/cpol/cosign-ours")
    push_layout(layout, "v1", registry.host, "cpol/cosign-ours", "1.0")
    private, public = write_key_pair(work / "ours", generate("ecdsa-p256"), KEY_PASSWORD)
    signed = run(
        "sign", bed.image("cosign-ours:1.0"), "--insecure", "--key", str(private), password=KEY_PASSWORD
    )
    assert signed.returncode == 0, signed.stderr
    return {"skopeo": cosign_key.public_key, "ours": public}


def sigstore_signed(key: Path, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"type": "sigstoreSigned", "keyPath": str(key)}
    if identity is not None:
        req["signedIdentity"] = identity
    return req


def test_sigstore_signed(bed: Bed, skopeo13: str, cosign_bed: dict[str, Path]) -> None:
    def check(policy: dict[str, Any], image: str, expected: bool) -> subprocess.CompletedProcess[str]:
        return agree(bed, policy, image, expected, skopeo=skopeo13, registries_d=bed.attachments_d)

    repo_match = {"type": "matchRepository"}
    skopeo_signed, ours_signed = bed.image("cosign:1.0"), bed.image("cosign-ours:1.0")
    check(docker_policy({"": [sigstore_signed(cosign_bed["skopeo"])]}), skopeo_signed, True)
    check(docker_policy({"": [sigstore_signed(cosign_bed["skopeo"], repo_match)]}), skopeo_signed, True)
    check(docker_policy({"": [sigstore_signed(cosign_bed["ours"], repo_match)]}), ours_signed, True)
    # cosign's identity is the bare repository: the default matchRepoDigestOrExact refuses it
    check(docker_policy({"": [sigstore_signed(cosign_bed["ours"])]}), ours_signed, False)
    wrong = check(
        docker_policy({"": [sigstore_signed(cosign_bed["ours"], repo_match)]}), skopeo_signed, False
    )
    assert "verification failed" in wrong.stdout
    unsigned = check(
        docker_policy({"": [sigstore_signed(cosign_bed["ours"], repo_match)]}),
        bed.image("unsigned:1.0"),
        False,
    )
    assert "no signature exists" in unsigned.stdout
    # a GPG signature does not satisfy sigstoreSigned, nor a cosign one signedBy
    check(docker_policy({"": [sigstore_signed(cosign_bed["ours"], repo_match)]}), bed.image("gpg:1.0"), False)
    agree(bed, docker_policy({"": [signed_by(bed)]}), skopeo_signed, False, registries_d=bed.attachments_d)
    # without use-sigstore-attachments containers/image never reads the .sig tag
    policy = docker_policy({"": [sigstore_signed(cosign_bed["skopeo"])]})
    off = agree(bed, policy, skopeo_signed, False, skopeo=skopeo13, registries_d=bed.registries_d)
    assert "use-sigstore-attachments" in off.stdout


# ---------------------------------------------------------------- invalid documents


INVALID = {
    "unknown top-level key": {"default": [{"type": "reject"}], "extra": 1},
    "missing default": {"transports": {}},
    "empty requirements": {"default": []},
    "unknown requirement type": {"default": [{"type": "acceptIfSunny"}]},
    "unknown requirement field": {"default": [{"type": "reject", "why": "no"}]},
    "two key sources": {
        "default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyData": "AA=="}]
    },
    "no key source": {"default": [{"type": "signedBy", "keyType": "GPGKeys"}]},
    "bad keyType": {"default": [{"type": "signedBy", "keyType": "PGP", "keyPath": "/k"}]},
    "name-only exactReference": {
        "default": [
            {
                "type": "signedBy",
                "keyType": "GPGKeys",
                "keyPath": "/k",
                "signedIdentity": {"type": "exactReference", "dockerReference": "example.com/a"},
            }
        ]
    },
    "unknown identity type": {
        "default": [
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "any"}}
        ]
    },
    "relative dir scope": {
        "default": [{"type": "reject"}],
        "transports": {"dir": {"relative/path": [{"type": "reject"}]}},
    },
    "docker-daemon scope": {
        "default": [{"type": "reject"}],
        "transports": {"docker-daemon": {"x": [{"type": "reject"}]}},
    },
    "requirements not a list": {"default": {"type": "reject"}},
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_policy_documents(name: str, bed: Bed) -> None:
    policy = INVALID[name]
    peer = skopeo_verify(stock_skopeo(), policy, bed.registries_d, bed.image("unsigned:1.0"), bed.workdir)
    assert peer.returncode != 0 and "polic" in peer.stderr.lower(), peer.stderr
    ours = sigscope_policy(policy, bed.registries_d, bed.image("unsigned:1.0"), bed.workdir)
    assert ours.returncode == 2, ours.stdout
    lines = [line for line in ours.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid policy in" in lines[0], ours.stderr
    with pytest.raises(cp.PolicyFormatError):
        cp.parse_policy(json.dumps(policy).encode())


def test_duplicate_keys_and_bad_json() -> None:
    with pytest.raises(cp.PolicyFormatError, match="duplicate key 'default' in the top level"):
        cp.parse_policy(b'{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}')
    with pytest.raises(cp.PolicyFormatError, match="not valid JSON"):
        cp.parse_policy(b'{"default":')
    with pytest.raises(cp.PolicyFormatError, match="not valid"):
        cp.parse_policy(
            b'{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":'
            b'{"type":"remapIdentity","prefix":"Not Valid","signedPrefix":"example.com"}}]}'
        )
    with pytest.raises(cp.PolicyFormatError, match="fulcio"):
        cp.parse_policy(
            b'{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"}}]}'
        )


def test_flags_do_not_mix(bed: Bed, tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(docker_policy({})))
    result = run(
        "verify",
        bed.image("gpg:1.0"),
        "--insecure",
        "--containers-policy",
        str(policy),
        "--gpg-keyring",
        str(bed.gpg_public),
    )
    assert result.returncode == 2 and "--containers-policy" in result.stderr
    missing = run(
        "verify", bed.image("gpg:1.0"), "--insecure", "--containers-policy", str(tmp_path / "nope.json")
    )
    assert missing.returncode == 2 and "cannot read containers policy" in missing.stderr


# ---------------------------------------------------------------- the pure core


@needs_vectors
def test_vector_policy_parses() -> None:
    policy = cp.parse_policy((FIXTURES / "policy.json").read_bytes())
    assert [r.type for r in policy.default] == ["reject"]
    docker = policy.transports["docker"]
    assert docker["example.com/playground"][0].type == "insecureAcceptAnything"
    hardened = docker["example.com/hardened"]
    assert [r.type for r in hardened] == ["signedBy", "signedBy", "signedBaseLayer"]
    assert hardened[0].identity == cp.IdentityRule("matchRepository")
    assert docker["registry.redhat.io/beta"][0].key_paths == (
        "/keys/RH-production-signing-key-gpg-keyring",
        "/keys/RH-beta-signing-key-gpg-keyring",
    )
    remap = docker["private-mirror:5000/vendor-mirror"][0].identity
    assert remap is not None and remap.signed_prefix == "vendor.example.com"
    assert docker["bogus/key-data-example"][0].key_data == b"nonsense"
    assert policy.transports["dir"][""][0].type == "insecureAcceptAnything"


@needs_vectors
def test_scope_selection_on_vector_policy() -> None:
    policy = cp.parse_policy((FIXTURES / "policy.json").read_bytes())

    def scope(reference: str) -> str | None:
        name, _, tag = reference.rpartition(":")
        registry, _, repository = name.partition("/")
        subject = cp.docker_subject(
            registry,
            repository,
            tag=tag,
            digest=None,
            manifest_digest="sha256:" + "0" * 64,
            sigstore_attachments=False,
        )
        return cp.select(policy, subject).scope

    assert scope("example.com/playground/app:1") == "example.com/playground"
    assert scope("example.com/production:1") == "example.com/production"
    assert scope("registry.access.redhat.com/rhel7:1") == "registry.access.redhat.com"
    assert scope("foo.access.redhat.com/rhel7:1") == "*.access.redhat.com"
    assert scope("bar.redhat.com/x:1") == "*.redhat.com"
    assert scope("quay.io/x:1") is None  # → default
    # the vector policy has a "dir" transport but no "oci" one: an OCI layout falls to `default`
    assert cp.select(policy, cp.layout_subject("/srv/layout", "sha256:" + "0" * 64)).source == "default"


def test_identity_rules_table() -> None:
    digest = "sha256:" + "1" * 64

    def subject(tag: str | None, by_digest: bool = False) -> cp.Subject:
        return cp.docker_subject(
            "example.com",
            "ns/repo",
            tag=None if by_digest else tag,
            digest=digest if by_digest else None,
            manifest_digest=digest,
            sigstore_attachments=False,
        )

    default = cp.IdentityRule()
    tagged, by_digest = subject("1.0"), subject(None, by_digest=True)
    assert cp.identity_matches(default, tagged, "example.com/ns/repo:1.0")[0]
    assert not cp.identity_matches(default, tagged, "example.com/ns/repo:2.0")[0]
    assert not cp.identity_matches(default, tagged, "example.com/ns/repo")[0]  # name-only never matches
    assert cp.identity_matches(default, by_digest, "example.com/ns/repo:anything")[0]
    assert not cp.identity_matches(default, by_digest, "example.com/ns/other:1.0")[0]
    exact = cp.IdentityRule("matchExact")
    assert not cp.identity_matches(exact, by_digest, "example.com/ns/repo:1.0")[0]
    assert cp.identity_matches(exact, by_digest, f"example.com/ns/repo@{digest}")[0]
    repo = cp.IdentityRule("matchRepository")
    assert cp.identity_matches(repo, tagged, "example.com/ns/repo")[0]
    assert not cp.identity_matches(repo, tagged, "example.com/ns/repo2:1.0")[0]
    hub = cp.docker_subject(
        "docker.io",
        "library/busybox",
        tag="latest",
        digest=None,
        manifest_digest=digest,
        sigstore_attachments=False,
    )
    assert cp.identity_matches(default, hub, "busybox:latest")[0]  # normalised as docker does
    assert cp.identity_matches(repo, hub, "docker.io/library/busybox")[0]
    remap = cp.IdentityRule("remapIdentity", prefix="example.com/ns", signed_prefix="vendor.io/up")
    assert cp.identity_matches(remap, tagged, "vendor.io/up/repo:1.0")[0]
    assert not cp.identity_matches(remap, tagged, "example.com/ns/repo:1.0")[0]
    # prefix must end on a path boundary
    boundary = cp.IdentityRule("remapIdentity", prefix="example.com/ns/re", signed_prefix="vendor.io/up")
    assert cp.identity_matches(boundary, tagged, "example.com/ns/repo:1.0")[0]
    layout = cp.layout_subject("/srv/layout", digest)
    assert not cp.identity_matches(repo, layout, "example.com/ns/repo:1.0")[0]
    pinned = cp.IdentityRule("exactReference", docker_reference="example.com/ns/repo:1.0")
    assert cp.identity_matches(pinned, layout, "example.com/ns/repo:1.0")[0]


def test_layout_scopes() -> None:
    policy = cp.parse_policy(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "oci": {"/srv": [{"type": "insecureAcceptAnything"}], "/srv/a/b": [{"type": "reject"}]}
                },
            }
        ).encode()
    )
    digest = "sha256:" + "2" * 64
    assert cp.select(policy, cp.layout_subject("/srv/a/b", digest)).scope == "/srv/a/b"
    assert cp.select(policy, cp.layout_subject("/srv/a/c", digest)).scope == "/srv"
    assert cp.select(policy, cp.layout_subject("/other", digest)).transport is None


REKOR = VECTORS / "internal" / "testdata"


@pytest.mark.vectors
def test_rekor_set_vector() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    rekor_key = serialization.load_pem_public_key((REKOR / "rekor.pub").read_bytes())
    assert isinstance(rekor_key, ec.EllipticCurvePublicKey)
    set_bytes = (REKOR / "rekor-set").read_bytes()
    cert = (REKOR / "rekor-cert").read_bytes()
    signature = base64.b64decode((REKOR / "rekor-sig").read_bytes())
    payload = (REKOR / "rekor-payload").read_bytes()
    when = cp.verify_rekor_set([rekor_key], set_bytes, cert, signature, payload)
    assert when.tzinfo is UTC and when < datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="payload hash"):
        cp.verify_rekor_set([rekor_key], set_bytes, cert, signature, payload + b" ")
    with pytest.raises(ValueError, match="signature in Rekor SET"):
        cp.verify_rekor_set(
            [rekor_key], set_bytes, cert, signature[:-1] + bytes([signature[-1] ^ 1]), payload
        )
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ValueError, match="verification of Rekor SET failed"):
        cp.verify_rekor_set([other], set_bytes, cert, signature, payload)


def _fulcio_signature(**overrides: bytes) -> Signature:
    """The c/image Rekor/Fulcio vector as discovery would record a `.sig` layer carrying it."""
    import base64

    evidence = {
        "payload": (REKOR / "rekor-payload").read_bytes(),
        "signature": base64.b64decode((REKOR / "rekor-sig").read_bytes()),
        "certificate": (REKOR / "rekor-cert").read_bytes(),
        "chain": (FIXTURES / "fulcio-chain").read_bytes(),
        "bundle": (REKOR / "rekor-set").read_bytes(),
    }
    evidence.update(overrides)
    return Signature(
        format=SignatureFormat.COSIGN,
        subject_digest=FULCIO_DIGEST,
        location="tag sha256-fa93….sig layer 1",
        media_type=cp.COSIGN_SIMPLESIGNING,
        evidence=evidence,
    )


FULCIO_DIGEST = "sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f"
FULCIO_REPO = "test-repo-2100826901021538654/alpine"


@pytest.mark.vectors
def test_fulcio_requirement_on_vector() -> None:
    def judge(
        fulcio: dict[str, str], signature: Signature, rekor: Path = REKOR / "rekor.pub"
    ) -> cp.RequirementResult:
        document = {
            "default": [
                {
                    "type": "sigstoreSigned",
                    "fulcio": fulcio,
                    "rekorPublicKeyPath": str(rekor),
                    "signedIdentity": {"type": "matchRepository"},
                }
            ]
        }
        policy = cp.parse_policy(json.dumps(document).encode())
        subject = cp.docker_subject(
            "192.168.64.2:5000",
            FULCIO_REPO,
            tag="latest",
            digest=None,
            manifest_digest=FULCIO_DIGEST,
            sigstore_attachments=True,
        )
        selection = cp.select(policy, subject)
        files: dict[str, bytes | str] = {p: Path(p).read_bytes() for p in selection.paths()}
        return cp.evaluate(selection, subject, [signature], files, datetime.now(UTC)).results[0]

    good = {
        "caPath": str(FIXTURES / "fulcio_v1.crt.pem"),
        "oidcIssuer": "https://github.com/login/oauth",
        "subjectEmail": "mitr@redhat.com",
    }
    ok = judge(good, _fulcio_signature())
    assert ok.accepted, ok.reason
    # the certificate expired in 2022; it is checked at the Rekor integration time, as c/image does
    assert "certificate" in {c.name for c in ok.signatures[0].checks}
    assert "email" in judge({**good, "subjectEmail": "eve@example.com"}, _fulcio_signature()).reason
    assert (
        "OIDC issuer"
        in judge({**good, "oidcIssuer": "https://accounts.google.com"}, _fulcio_signature()).reason
    )
    assert "chain" in judge(good, _fulcio_signature(chain=b"")).reason
    assert "Rekor" in judge(good, _fulcio_signature(), rekor=FIXTURES / "cosign.pub").reason
    tampered = _fulcio_signature(payload=(REKOR / "rekor-payload").read_bytes().replace(b"alpine", b"alpina"))
    assert not judge(good, tampered).accepted


def test_oci_layout_scopes_agree_with_skopeo(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/cpol/layout")
    resolved = os.path.realpath(layout)
    for scopes, expected in (
        ({resolved: [{"type": "insecureAcceptAnything"}]}, True),
        ({resolved: [{"type": "reject"}], "": [{"type": "insecureAcceptAnything"}]}, False),
        ({os.path.dirname(resolved): [{"type": "insecureAcceptAnything"}]}, True),
    ):
        policy = {"default": [{"type": "reject"}], "transports": {"oci": scopes}}
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(policy))
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        peer = subprocess.run(
            [stock_skopeo(), "copy", "--policy", str(path), f"oci:{layout}:v1", f"dir:{out}"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        ours = run(
            "verify", f"oci:{layout}:v1", "--containers-policy", str(path), "--registries.d", str(tmp_path)
        )
        assert (peer.returncode == 0) == expected, peer.stderr
        assert (ours.returncode == 0) == expected, ours.stderr


def _dir_image(name: str, tag: str = "latest") -> tuple[cp.Subject, list[Signature]]:
    """A containers/image `dir:` fixture as sigscope's discovery would present it."""
    import hashlib

    from sigscope.formats import simplesigning as ss

    directory = FIXTURES / name
    digest = "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    now = datetime.now(UTC)
    signatures = [
        ss.parse_signature(path.read_bytes(), subject_digest=digest, location=f"lookaside {path}", now=now)
        for path in sorted(directory.glob("signature-*"))
    ]
    subject = cp.docker_subject(
        "docker.io",
        "testing/manifest",
        tag=tag,
        digest=None,
        manifest_digest=digest,
        sigstore_attachments=False,
    )
    return subject, signatures


@needs_vectors
@pytest.mark.parametrize(
    ("image", "tag", "key", "expected"),
    [
        ("dir-img-valid", "latest", "public-key.gpg", True),
        ("dir-img-valid", "notlatest", "public-key.gpg", False),  # matchRepoDigestOrExact
        ("dir-img-valid", "latest", "public-key-2.gpg", False),  # wrong key
        ("dir-img-valid-2", "latest", "public-key.gpg", True),
        ("dir-img-mixed", "latest", "public-key.gpg", True),  # one valid signature suffices
        ("dir-img-unsigned", "latest", "public-key.gpg", False),
        ("dir-img-modified-manifest", "latest", "public-key.gpg", False),  # digest mismatch
        ("dir-img-valid-subkey", "latest", "public-key-with-subkey.gpg", True),
    ],
)
def test_signed_by_on_containers_image_fixtures(image: str, tag: str, key: str, expected: bool) -> None:
    subject, signatures = _dir_image(image, tag)
    key_path = str(FIXTURES / key)
    policy = cp.parse_policy(
        json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key_path}]}).encode()
    )
    selection = cp.select(policy, subject)
    verdict = cp.evaluate(
        selection, subject, signatures, {key_path: Path(key_path).read_bytes()}, datetime.now(UTC)
    )
    assert verdict.accepted is expected, verdict.reason


@needs_vectors
@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        ("expired.signature", "EXPSIG"),
        ("corrupt.signature", "BADSIG"),
        ("unknown-key.signature", "NO_PUBKEY"),
        ("unsigned-literal.signature", ""),
        ("invalid-blob.signature", "payload is not valid JSON"),
    ],
)
def test_signed_by_rejects_broken_signatures(blob: str, needle: str) -> None:
    from sigscope.formats import simplesigning as ss

    subject, _ = _dir_image("dir-img-valid")
    record = ss.parse_signature(
        (FIXTURES / blob).read_bytes(),
        subject_digest=subject.digest,
        location="lookaside x/signature-1",
        now=datetime.now(UTC),
    )
    key_path = str(FIXTURES / "public-key.gpg")
    requirement = cp.Requirement(
        type="signedBy", key_type="GPGKeys", key_path=key_path, identity=cp.IdentityRule()
    )
    selection = cp.Selection("docker", "", (requirement,))
    verdict = cp.evaluate(
        selection, subject, [record], {key_path: Path(key_path).read_bytes()}, datetime.now(UTC)
    )
    assert not verdict.accepted
    assert needle in verdict.reason
