"""Interop with the real tools, built from the Go module proxy (scripts/peers.txt, scripts/install-peers.sh,
docs/peers.md): cosign v3 (also built with pkcs11key), notation, oras and regctl, against olareg (the OCI 1.1
referrers API), Debian's distribution 2.8 and distribution v3 (neither has the API: the referrers tag schema).

Every exchange is proven both ways — what the peer signs, sigscope verifies; what sigscope signs, the peer
verifies — and each test fails when either side disagrees, including on rejections (another key, another trust
store, a tampered payload). A test that needs a peer skips with one line naming the install script, and fails
under ``CI=true``. The peers run with a private HOME (no docker config, no notation or regctl settings, no
Sigstore TUF cache) and never reach past loopback: keyed signatures, no transparency log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import (
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryHandle,
    absent,
    build_layout,
    cosign_sig_tag,
    fetch_blob,
    fetch_manifest,
    push_layout,
    put_tags,
    start_registry,
)
from testbed.cli import run_sigscope
from testbed.forge import RELEASE_EMAIL, RELEASE_URI, make_code_pki, pem, trusted_root_text
from testbed.peers import cache_dir, peer, read_peers
from testbed.pki import PKI
from testbed.proxy import RegistryProxy
from testbed.tsa import TSAServer

from sigscope.keys import generate, write_key_pair

PASSWORD = "interop-peers-pw"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
SLSA1 = "https://slsa.dev/provenance/v1"
# Set in the parent's environment by a developer or CI, they would change what a peer does.
PEER_ENV_PREFIXES = ("COSIGN_", "SIGSTORE_", "TUF_", "NOTATION_", "ORAS_", "REGCTL_", "DOCKER_", "SIGSCOPE_")

Result = subprocess.CompletedProcess[str]


def explain(result: Result) -> str:
    """The command, its exit code and output: a failure says who disagreed, and how."""
    return f"{' '.join(map(str, result.args))}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


@dataclass
class Peers:
    """The peers' binaries and the private HOME they run in."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    binaries: dict[str, Path] = field(default_factory=dict)

    @property
    def notation_dir(self) -> Path:
        return self.home / ".config" / "notation"

    def run(
        self,
        name: str,
        *args: str | Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> Result:
        binary = self.binaries.get(name) or peer(name)
        self.binaries[name] = binary
        return subprocess.run(
            [str(binary), *map(str, args)],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=cwd or self.home,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(
        self, name: str, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        result = self.run(name, *args, env=env, cwd=cwd)
        assert result.returncode == 0, f"{name} refused:\n{explain(result)}"
        return result


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Peers:
    home = tmp_path_factory.mktemp("peer-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(PEER_ENV_PREFIXES)}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        DOCKER_CONFIG=str(home / ".docker"),
        TUF_ROOT=str(home / ".sigstore" / "root"),
        COSIGN_PASSWORD=PASSWORD,
        COSIGN_YES="true",
        NO_COLOR="1",
    )
    return Peers(home=home, env=env)


def sigscope(*args: str | Path, password: str | None = PASSWORD) -> Result:
    return run_sigscope(*map(str, args), password=password)


def sigscope_ok(*args: str | Path, password: str | None = PASSWORD) -> Result:
    result = sigscope(*args, password=password)
    assert result.returncode == 0, f"sigscope refused:\n{explain(result)}"
    return result


def sigscope_json(*args: str | Path) -> Any:
    return json.loads(sigscope_ok(*args, "-o", "json").stdout)


def sigscope_key(directory: Path, name: str = "sigscope") -> tuple[Path, Path]:
    """An encrypted cosign-format key pair (PASSWORD) made by sigscope's key API: (private, public)."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_key_pair(directory / name, generate("ecdsa-p256"), PASSWORD)


def push_image(
    registry: RegistryHandle, workdir: Path, repo: str, *, archs: list[str] | None = None, tag: str = "1.0"
) -> str:
    """A fresh image (its digest unique to ``registry``, ``repo`` and ``tag``) pushed as ``repo:tag``."""
    layout = workdir / f"layout-{repo.replace('/', '-')}-{tag}"
    seed = f"interop/{registry.host}/{repo}:{tag}"
    digest = build_layout(layout, "v1", seed=seed, architectures=archs)
    push_layout(layout, "v1", registry.host, repo, tag)
    registry.images[f"{repo}:{tag}"] = digest
    return digest


def upload_blob(host: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with requests.Session() as session:
        session.trust_env = False
        start = session.post(f"http://{host}/v2/{repo}/blobs/uploads/", timeout=30)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"http://{host}{location}"
        done = session.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert done.status_code == 201, done.text
    return digest


def scan_entries(registry: RegistryHandle, repo: str, *trust: str | Path) -> list[dict[str, Any]]:
    data = sigscope_json("scan", "registry", registry.host, "--insecure", "--repo", repo, *trust)
    entries: list[dict[str, Any]] = data["registry"]["signatures"]
    return entries


# ---------------------------------------------------------------- the pins


def test_peers_are_pinned_once(tmp_path: Path) -> None:
    """scripts/peers.txt pins each peer to an exact version of a main package; peer() looks where
    install-peers.sh puts it."""
    pinned = read_peers()
    assert {"cosign", "cosign-pkcs11", "notation", "oras", "registry", "olareg", "regctl"} <= set(pinned)
    for name, entry in pinned.items():
        assert "/cmd/" in entry.package or entry.binary, name  # a main package
        assert entry.version.startswith("v") and "-" not in entry.version, name
        assert entry.path == cache_dir() / f"{name}-{entry.version}" / entry.tool
    assert pinned["cosign-pkcs11"].tags == ("pkcs11key",)
    listing = tmp_path / "peers.txt"
    listing.write_text("# comment\n\nfoo example.com/x/cmd/foo v1.2.3 tags=a,b cgo=1  # trailing\n")
    assert read_peers(listing)["foo"].tags == ("a", "b") and read_peers(listing)["foo"].tool == "foo"
    listing.write_text("db example.com/db/server/v3 v3.1.0 bin=db\n")
    assert read_peers(listing)["db"].path == cache_dir() / "db-v3.1.0" / "db"


# ---------------------------------------------------------------- the registries


def test_only_olareg_serves_the_referrers_api(
    referrers_registry: RegistryHandle, registry: RegistryHandle, distribution_registry: RegistryHandle
) -> None:
    """olareg answers the referrers API with an OCI index; distribution 2.8 (Debian) and v3.1 do not (a
    plain-text 404: clients fall back to the referrers tag schema). Should a later distribution pin serve it,
    this fails and the v3 registry can take olareg's place."""
    with requests.Session() as session:
        session.trust_env = False
        digest = referrers_registry.images["demo/alpine:1.0"]
        answer = session.get(f"{referrers_registry.url}/v2/demo/alpine/referrers/{digest}", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].split(";")[0] == OCI_INDEX
        index = answer.json()
        assert index["mediaType"] == OCI_INDEX and index["manifests"] == []
        for other in (registry, distribution_registry):
            digest = other.images["demo/alpine:1.0"]
            refused = session.get(f"{other.url}/v2/demo/alpine/referrers/{digest}", timeout=30)
            assert (refused.status_code, refused.text.strip()) == (404, "404 page not found")


@pytest.fixture(params=["referrers-api", "tag-schema"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which registry: olareg (the referrers API) or Debian's 2.8 (the referrers tag schema)."""
    return str(request.param)


@pytest.fixture
def target(kind: str, request: pytest.FixtureRequest) -> RegistryHandle:
    name = "referrers_registry" if kind == "referrers-api" else "registry"
    handle: RegistryHandle = request.getfixturevalue(name)
    return handle


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


# ---------------------------------------------------------------- notation (Notary Project JWS and COSE)


@dataclass(frozen=True)
class NotationTrust:
    """notation's own config dir (``peers.notation_dir``: its test key, a trust store holding notation's test
    certificate and sigscope's test CA, a trust policy), and two config dirs that each trust one side only."""

    config: Path
    only_notation: Path
    only_sigscope: Path
    key: Path  # sigscope's signing key and chain (sigscope cert generate-test)
    chain: Path


def write_trust_policy(config: Path, stores: list[str]) -> None:
    """The same policy under both names: notation 1.3 reads trustpolicy.json, newer releases
    trustpolicy.oci.json first."""
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "interop",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": stores,
                "trustedIdentities": ["*"],
            }
        ],
    }
    for name in ("trustpolicy.json", "trustpolicy.oci.json"):
        (config / name).write_text(json.dumps(policy, indent=1))


def one_sided(config: Path, directory: Path, store: str) -> Path:
    """A notation config dir (``directory``/notation, XDG_CONFIG_HOME=``directory``) trusting ``store``."""
    kind, name = store.split(":")
    result = directory / "notation"
    source = config / "truststore" / "x509" / kind / name
    dest = result / "truststore" / "x509" / kind / name
    dest.mkdir(parents=True)
    for cert in source.iterdir():
        (dest / cert.name).write_bytes(cert.read_bytes())
    write_trust_policy(result, [store])
    return result


@pytest.fixture(scope="module")
def notation_trust(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> NotationTrust:
    peers.ok("notation", "cert", "generate-test", "--default", "peer-test")
    keys = tmp_path_factory.mktemp("sigscope-notation-keys")
    sigscope_ok(
        "cert",
        "generate-test",
        "sigscope-test",
        "--output-dir",
        keys,
        "--notation-config",
        peers.notation_dir,
    )
    write_trust_policy(peers.notation_dir, ["ca:peer-test", "ca:sigscope-test"])
    return NotationTrust(
        config=peers.notation_dir,
        only_notation=one_sided(
            peers.notation_dir, tmp_path_factory.mktemp("trusts-notation"), "ca:peer-test"
        ),
        only_sigscope=one_sided(
            peers.notation_dir, tmp_path_factory.mktemp("trusts-sigscope"), "ca:sigscope-test"
        ),
        key=keys / "sigscope-test.key",
        chain=keys / "sigscope-test.crt",
    )


def notation_env(config: Path) -> dict[str, str]:
    """Run notation with ``config`` (a ``…/notation`` directory) as its configuration."""
    return {"XDG_CONFIG_HOME": str(config.parent)}


def test_notation_signs_sigscope_verifies(
    kind: str, target: RegistryHandle, peers: Peers, notation_trust: NotationTrust, tmp_path: Path
) -> None:
    repo = "interop/notation-signed"
    digest = push_image(target, tmp_path, repo)
    ref = f"{target.host}/{repo}@{digest}"
    # notation 1.3 writes the referrers tag schema by default even where the API exists; on the v3 registry
    # ask it for the API, so that both ways of finding referrers are exercised
    api = ("--force-referrers-tag=false",) if kind == "referrers-api" else ()
    peers.ok("notation", "sign", "--insecure-registry", *api, ref)
    peers.ok("notation", "sign", "--insecure-registry", "--signature-format", "cose", *api, ref)
    listed = fetch_manifest(target.host, repo, fallback_tag(digest))
    if kind == "referrers-api":
        assert listed is None, "notation wrote the fallback tag although asked for the referrers API"
    else:
        assert listed is not None and len(listed["manifests"]) == 2

    verdict = sigscope_json("verify", ref, "--insecure", "--notation-config", notation_trust.config)
    assert verdict["verified"] is True, verdict
    judged = sorted((s["format"], s["status"], s["signer"]["name"]) for s in verdict["signatures"])
    signer = "CN=peer-test,O=Notary,L=Seattle,ST=WA,C=US"
    assert judged == [("notation-cose", "verified", signer), ("notation-jws", "verified", signer)]

    # a trust store without notation's certificate: both sides refuse
    refused = sigscope("verify", ref, "--insecure", "--notation-config", notation_trust.only_sigscope)
    assert refused.returncode == 1, explain(refused)
    theirs = peers.run(
        "notation", "verify", "--insecure-registry", ref, env=notation_env(notation_trust.only_sigscope)
    )
    assert theirs.returncode != 0, explain(theirs)


@pytest.mark.parametrize("fmt", ["notation", "notation-cose"])
def test_sigscope_signs_notation_verifies(
    fmt: str, kind: str, target: RegistryHandle, peers: Peers, notation_trust: NotationTrust, tmp_path: Path
) -> None:
    repo = f"interop/sigscope-{fmt}"
    digest = push_image(target, tmp_path, repo, archs=["amd64", "arm64"] if fmt == "notation" else None)
    signed = sigscope_json(
        "sign",
        f"{target.host}/{repo}:1.0",
        "--insecure",
        "--format",
        fmt,
        "--key",
        notation_trust.key,
        "--cert",
        notation_trust.chain,
        "-m",
        "built-by=sigscope",
    )
    [result] = signed["signed"]
    assert result["digest"] == digest
    ref = f"{target.host}/{repo}@{digest}"
    # the registry indexed the referrer itself (OCI-Subject), or sigscope kept the tag schema's index
    assert (fetch_manifest(target.host, repo, fallback_tag(digest)) is None) == (kind == "referrers-api")

    accepted = peers.ok("notation", "verify", "--insecure-registry", "-m", "built-by=sigscope", ref)
    assert "Successfully verified" in accepted.stdout
    inspected = json.loads(peers.ok("notation", "inspect", "--insecure-registry", "-o", "json", ref).stdout)
    [envelope] = inspected["Signatures"]
    assert envelope["mediaType"] == (
        "application/cose" if fmt == "notation-cose" else "application/jose+json"
    )
    assert envelope["digest"] == result["signatureManifest"].rpartition("@")[2]
    assert envelope["userDefinedAttributes"] == {"built-by": "sigscope"}

    # notation with a trust store that lacks sigscope's CA refuses; so does sigscope with the same store
    theirs = peers.run(
        "notation", "verify", "--insecure-registry", ref, env=notation_env(notation_trust.only_notation)
    )
    assert theirs.returncode != 0 and "verification failed" in theirs.stderr, explain(theirs)
    ours = sigscope("verify", ref, "--insecure", "--notation-config", notation_trust.only_notation)
    assert ours.returncode == 1, explain(ours)


# ---------------------------------------------------------------- oras: referrers both ways


def oras_attach_sbom(peers: Peers, ref: str, workdir: Path) -> str:
    """``oras attach`` an SPDX document to ``ref``; returns the referrer's digest."""
    sbom = workdir / "sbom.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "interop"}))
    attached = peers.ok(
        "oras",
        "attach",
        "--plain-http",
        "--artifact-type",
        SBOM_TYPE,
        "--format",
        "json",
        ref,
        f"{sbom.name}:application/spdx+json",
        cwd=workdir,
    )
    digest: str = json.loads(attached.stdout)["digest"]
    return digest


def test_oras_attachment_seen_by_sigscope(
    kind: str, target: RegistryHandle, peers: Peers, tmp_path: Path
) -> None:
    repo = "interop/oras-attached"
    digest = push_image(target, tmp_path, repo)
    sbom = oras_attach_sbom(peers, f"{target.host}/{repo}:1.0", tmp_path)
    listed = fetch_manifest(target.host, repo, fallback_tag(digest))
    # oras probes the registry: the API where it exists, else the tag schema
    assert (listed is None) == (kind == "referrers-api")

    report = sigscope_json("inspect", f"{target.host}/{repo}:1.0", "--insecure", "--signatures")
    assert report["digest"] == digest
    attachments = {(a["artifactType"], a["digest"]) for a in report["attachments"]}
    assert attachments == {(SBOM_TYPE, sbom)}
    assert report["signatures"] == []


def test_sigscope_referrers_listed_by_oras(
    kind: str, target: RegistryHandle, peers: Peers, notation_trust: NotationTrust, tmp_path: Path
) -> None:
    """What sigscope stores as referrers (a Notary Project signature, a Sigstore bundle signature and an
    attestation) is what ``oras discover`` lists, with the artifact types."""
    repo = "interop/sigscope-referrers"
    digest = push_image(target, tmp_path, repo)
    image = f"{target.host}/{repo}:1.0"
    private, _ = sigscope_key(tmp_path / "keys")
    notation = sigscope_json(
        "sign",
        image,
        "--insecure",
        "--format",
        "notation",
        "--key",
        notation_trust.key,
        "--cert",
        notation_trust.chain,
    )["signed"][0]["signatureManifest"]
    bundle = sigscope_json(
        "sign", image, "--insecure", "--key", private, "--registry-referrers-mode", "oci-1-1"
    )["signed"][0]["referrer"]
    attested = sigscope_attest_slsa1(image, private, tmp_path, "--registry-referrers-mode", "oci-1-1")
    attestation = attested["attested"]["manifest"]

    discovered = json.loads(
        peers.ok(
            "oras", "discover", "--plain-http", "--format", "json", f"{target.host}/{repo}@{digest}"
        ).stdout
    )
    found = {(r["digest"], r["artifactType"]) for r in discovered["referrers"]}
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert found == {
        (notation.rpartition("@")[2], NOTARY_SIGNATURE),
        (bundle, bundle_type),
        (attestation, bundle_type),
    }


# ---------------------------------------------------------------- scan registry against distribution v3


def test_scan_referrers_registry(
    referrers_registry: RegistryHandle, peers: Peers, notation_trust: NotationTrust, tmp_path: Path
) -> None:
    """`sigscope scan registry` on a real referrers API: notation's signature is found and judged by the
    trust policy, oras' SBOM is reported as an unsigned attachment, another tag's image as unsigned. olareg
    keeps no catalog: HOST/REPO names the repository (HOST alone is the catalog's one-line error)."""
    repo = "interop/scan"
    digest = push_image(referrers_registry, tmp_path, repo)
    bare = push_image(referrers_registry, tmp_path / "bare", repo, tag="2.0")
    ref = f"{referrers_registry.host}/{repo}@{digest}"
    peers.ok("notation", "sign", "--insecure-registry", "--force-referrers-tag=false", ref)
    sbom = oras_attach_sbom(peers, ref, tmp_path)
    assert fetch_manifest(referrers_registry.host, repo, fallback_tag(digest)) is None

    data = sigscope_json(
        "scan",
        "registry",
        f"{referrers_registry.host}/{repo}",
        "--insecure",
        "--notation-config",
        notation_trust.config,
    )
    found = data["registry"]["signatures"]
    assert [(s["repository"], s["digest"], s["format"], s["status"]) for s in found] == [
        (repo, digest, "notation-jws", "verified")
    ], found
    images = {i["digest"]: i for i in data["images"]}
    assert set(images) == {digest, bare}
    assert (images[digest]["signed"], images[bare]["signed"]) == (True, False)
    assert [(a["artifactType"], a["digest"], a["signed"]) for a in images[digest]["attachments"]] == [
        (SBOM_TYPE, sbom, False)
    ]
    no_catalog = sigscope("scan", "registry", referrers_registry.host, "--insecure")
    assert no_catalog.returncode == 2 and "404) for the catalog" in no_catalog.stderr, explain(no_catalog)


# ---------------------------------------------------------------- cosign v3: keys, signatures, attestations

# Keyed signing with no transparency log and no TUF signing config; the registries speak plain HTTP.
COSIGN_SIGN = (
    "--use-signing-config=false",
    "--tlog-upload=false",
    "--allow-http-registry",
    "--allow-insecure-registry",
)
COSIGN_VERIFY = ("--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry")
# cosign v3 signs and verifies Sigstore bundles (OCI referrers) by default; this selects .sig/.att tags.
LEGACY = ("--new-bundle-format=false",)
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class Keys:
    """cosign.key/.pub by `cosign generate-key-pair`, sigscope.key/.pub by `sigscope key generate`, and a
    stranger's public key; all private keys encrypted with PASSWORD."""

    cosign: Path
    cosign_pub: Path
    sigscope: Path
    sigscope_pub: Path
    stranger_pub: Path


@pytest.fixture(scope="module")
def keys(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    peers.ok("cosign", "generate-key-pair", "--output-key-prefix", directory / "cosign")
    sigscope_ok("key", "generate", "--output-prefix", directory / "sigscope")
    _, stranger = sigscope_key(directory, "stranger")
    return Keys(
        cosign=directory / "cosign.key",
        cosign_pub=directory / "cosign.pub",
        sigscope=directory / "sigscope.key",
        sigscope_pub=directory / "sigscope.pub",
        stranger_pub=stranger,
    )


def cosign_attest_slsa1(peers: Peers, key: Path, ref: str, workdir: Path, *flags: str) -> None:
    """`cosign attest` of the SLSA v1 predicate below, keyed, with no log."""
    predicate = slsa1_predicate(workdir)
    peers.ok("cosign", "attest", "--key", key, *COSIGN_SIGN, *flags, "--type", "slsaprovenance1",
             "--predicate", predicate, ref)  # fmt: skip


def sigscope_attest_slsa1(image: str, key: Path, workdir: Path, *flags: str) -> Any:
    """`sigscope attest` of the SLSA v1 predicate below: what it printed (-o json)."""
    predicate = slsa1_predicate(workdir)
    return sigscope_json("attest", image, "--insecure", "--key", key, "--predicate", predicate,
                         "--type", "slsaprovenance1", *flags)  # fmt: skip


def slsa1_predicate(directory: Path) -> Path:
    """A SLSA v1 provenance predicate (cosign parses --type slsaprovenance1 predicates into its schema)."""
    path = directory / "provenance.json"
    build = {"buildType": "https://example.com/interop@v1", "externalParameters": {"ref": "main"}}
    path.write_text(
        json.dumps({"buildDefinition": build, "runDetails": {"builder": {"id": "https://example.com/ci"}}})
    )
    return path


def cosign_verify(peers: Peers, ref: str, key: Path, *extra: str, command: str = "verify") -> Result:
    return peers.run("cosign", command, "--key", key, *COSIGN_VERIFY, *extra, ref)


def tampered_copy(registry: RegistryHandle, repo: str, digest: str, workdir: Path, suffix: str) -> str:
    """``repo``'s image copied to ``repo``-``suffix`` with its .sig manifest, the payload altered after
    signing: "annotation" changes env=prod to env=dev, "digest" names another image. The payload names the
    copy's repository either way. Returns the copy's repository."""
    copy = f"{repo}-{suffix}"
    push_layout(workdir / f"layout-{repo.replace('/', '-')}-1.0", "v1", registry.host, copy, "1.0")
    manifest = fetch_manifest(registry.host, repo, cosign_sig_tag(digest))
    assert manifest is not None
    [layer] = manifest["layers"]
    payload = json.loads(fetch_blob(registry.host, repo, layer["digest"]))
    payload["critical"]["identity"]["docker-reference"] = f"{registry.host}/{copy}"
    if suffix == "annotation":
        payload["optional"]["env"] = "dev"
    else:
        payload["critical"]["image"]["docker-manifest-digest"] = registry.images["demo/alpine:1.0"]
    forged = json.dumps(payload).encode()
    upload_blob(registry.host, copy, fetch_blob(registry.host, repo, manifest["config"]["digest"]))
    layer.update(digest=upload_blob(registry.host, copy, forged), size=len(forged))
    raw = json.dumps(manifest).encode()
    put_tags(registry.host, copy, raw, OCI_MANIFEST, [cosign_sig_tag(digest)], threads=1)
    return copy


def test_cosign_signs_sigscope_verifies(
    registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """cosign's .sig (simple signing, -a annotations) is verified by sigscope verify and scan; a copy with a
    tampered payload is invalid to both."""
    repo = "interop/cosign-signed"
    digest = push_image(registry, tmp_path, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    peers.ok("cosign", "sign", "--key", keys.cosign, *COSIGN_SIGN, *LEGACY, "-a", "env=prod", ref)
    assert fetch_manifest(registry.host, repo, cosign_sig_tag(digest)) is not None

    verdict = sigscope_json("verify", ref, "--insecure", "--key", keys.cosign_pub, "-a", "env=prod")
    assert verdict["verified"] is True, verdict
    assert [(s["format"], s["satisfied"]) for s in verdict["signatures"]] == [("cosign", True)]
    for refused in (
        sigscope("verify", ref, "--insecure", "--key", keys.stranger_pub),
        sigscope("verify", ref, "--insecure", "--key", keys.cosign_pub, "-a", "env=dev"),
    ):
        assert refused.returncode == 1, explain(refused)
    assert cosign_verify(peers, ref, keys.cosign_pub, *LEGACY, "-a", "env=dev").returncode != 0

    # Payloads altered after signing. A key-only signature that the one trusted key does not verify is
    # "untrusted" to sigscope (a forgery and another signer's signature look alike without a certificate);
    # one whose payload names another image is "invalid" whatever the keys. cosign refuses both.
    altered = tampered_copy(registry, repo, digest, tmp_path, "annotation")
    elsewhere = tampered_copy(registry, repo, digest, tmp_path, "digest")
    found = {e["repository"]: e for e in scan_entries(registry, f"{repo}*", "--key", keys.cosign_pub)}
    assert {name: (e["digest"], e["status"]) for name, e in found.items()} == {
        repo: (digest, "verified"),
        altered: (digest, "untrusted"),
        elsewhere: (digest, "invalid"),
    }
    failed = {c["name"] for c in found[altered]["checks"] if c["outcome"] == "failed"}
    assert failed == {"trusted-key"}, found[altered]["checks"]
    for copy in (altered, elsewhere):
        forged = f"{registry.host}/{copy}@{digest}"
        ours = sigscope("verify", forged, "--insecure", "--key", keys.cosign_pub)
        assert ours.returncode == 1, explain(ours)
        theirs = cosign_verify(peers, forged, keys.cosign_pub, *LEGACY)
        assert theirs.returncode != 0, explain(theirs)


def test_cosign_bundles_verified_by_sigscope(
    kind: str, target: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """cosign v3's default: a Sigstore bundle (DSSE, predicate cosign/sign/v1, -a as subject annotations) and
    an attestation bundle, stored as referrers (API, or the tag schema); sigscope verifies both."""
    repo = "interop/cosign-bundles"
    digest = push_image(target, tmp_path, repo)
    ref = f"{target.host}/{repo}@{digest}"
    peers.ok("cosign", "sign", "--key", keys.cosign, *COSIGN_SIGN, "-a", "env=prod", ref)
    cosign_attest_slsa1(peers, keys.cosign, ref, tmp_path)
    assert (fetch_manifest(target.host, repo, fallback_tag(digest)) is None) == (kind == "referrers-api")

    verdict = sigscope_json("verify", ref, "--insecure", "--key", keys.cosign_pub, "-a", "env=prod")
    assert verdict["verified"] is True, verdict
    assert [(s["format"], s["satisfied"]) for s in verdict["signatures"]] == [("sigstore-bundle", True)]
    refused = sigscope("verify", ref, "--insecure", "--key", keys.cosign_pub, "-a", "env=dev")
    assert refused.returncode == 1 and "annotation mismatch" in refused.stdout, explain(refused)
    assert cosign_verify(peers, ref, keys.cosign_pub, "-a", "env=dev").returncode != 0

    attested = sigscope_json(
        "verify-attestation", ref, "--insecure", "--key", keys.cosign_pub, "--type", SLSA1
    )
    assert [s["subject"][0]["digest"] for s in attested["statements"]] == [{"sha256": digest[7:]}]
    assert sigscope("verify-attestation", ref, "--insecure", "--key", keys.stranger_pub).returncode == 1


def test_cosign_attests_sigscope_verifies(
    registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """cosign's .att layer (DSSE in-toto statement) is verified by sigscope verify-attestation."""
    repo = "interop/cosign-attested"
    digest = push_image(registry, tmp_path, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    cosign_attest_slsa1(peers, keys.cosign, ref, tmp_path, *LEGACY)
    assert fetch_manifest(registry.host, repo, fallback_tag(digest) + ".att") is not None
    attested = sigscope_json(
        "verify-attestation", ref, "--insecure", "--key", keys.cosign_pub, "--type", "slsaprovenance1"
    )
    [statement] = attested["statements"]
    assert (
        statement["predicateType"] == SLSA1
        and statement["predicate"]["buildDefinition"]["buildType"] == "https://example.com/interop@v1"
    )
    assert sigscope("verify-attestation", ref, "--insecure", "--key", keys.stranger_pub).returncode == 1
    assert (
        sigscope(
            "verify-attestation", ref, "--insecure", "--key", keys.cosign_pub, "--type", "spdxjson"
        ).returncode
        == 1
    )


def test_sigscope_signs_and_attests_cosign_verifies(
    registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """sigscope's .sig and .att (its own key) pass cosign verify / verify-attestation; another key fails."""
    repo = "interop/sigscope-signed"
    digest = push_image(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}:1.0"
    ref = f"{registry.host}/{repo}@{digest}"
    sigscope_ok("sign", image, "--insecure", "--key", keys.sigscope, "-a", "env=prod")
    sigscope_attest_slsa1(image, keys.sigscope, tmp_path)

    accepted = cosign_verify(peers, ref, keys.sigscope_pub, *LEGACY, "-a", "env=prod")
    assert accepted.returncode == 0, explain(accepted)
    [claims] = json.loads(accepted.stdout)
    assert claims["critical"]["image"]["docker-manifest-digest"] == digest and claims["optional"] == {
        "env": "prod"
    }
    for other in (keys.cosign_pub, keys.stranger_pub):
        assert cosign_verify(peers, ref, other, *LEGACY).returncode != 0
    attested = cosign_verify(
        peers, ref, keys.sigscope_pub, *LEGACY, "--type", "slsaprovenance1", command="verify-attestation"
    )
    assert attested.returncode == 0, explain(attested)
    refused = cosign_verify(
        peers, ref, keys.stranger_pub, *LEGACY, "--type", "slsaprovenance1", command="verify-attestation"
    )
    assert refused.returncode != 0, explain(refused)


# cosign v3.1.3 verifies images only through DSSE bundles (cosign/sign/v1 statements, what it writes itself);
# sigscope's oci-1-1 signature is that bundle. cosign also takes any DSSE bundle under the key as the image's
# signature — an attestation is enough — so a signature is checked on an image carrying no attestation.


def test_sigscope_bundle_signature_cosign_verifies(
    referrers_registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """sigscope's Sigstore bundle signature (--registry-referrers-mode oci-1-1, -a annotations), alone on its
    image, passes cosign v3's default verify and sigscope's own; another key or annotation: both refuse."""
    repo = "interop/sigscope-bundle-signature"
    digest = push_image(referrers_registry, tmp_path, repo)
    ref = f"{referrers_registry.host}/{repo}@{digest}"
    sigscope_ok(
        "sign", ref, "--insecure", "--key", keys.sigscope, "--registry-referrers-mode", "oci-1-1",
        "-a", "env=prod",
    )  # fmt: skip
    accepted = cosign_verify(peers, ref, keys.sigscope_pub, "-a", "env=prod")
    assert accepted.returncode == 0, explain(accepted)
    verdict = sigscope_json("verify", ref, "--insecure", "--key", keys.sigscope_pub, "-a", "env=prod")
    assert verdict["verified"] is True, verdict
    assert [(s["format"], s["satisfied"]) for s in verdict["signatures"]] == [("sigstore-bundle", True)]

    for other in (keys.stranger_pub, keys.cosign_pub):
        theirs = cosign_verify(peers, ref, other)
        assert theirs.returncode != 0, explain(theirs)
        ours = sigscope("verify", ref, "--insecure", "--key", other)
        assert ours.returncode == 1 and "wrong key" in ours.stdout, explain(ours)
    assert cosign_verify(peers, ref, keys.sigscope_pub, "-a", "env=dev").returncode != 0
    refused = sigscope("verify", ref, "--insecure", "--key", keys.sigscope_pub, "-a", "env=dev")
    assert refused.returncode == 1 and "annotation mismatch" in refused.stdout, explain(refused)


def test_sigscope_bundles_cosign_verifies(
    kind: str, target: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """sigscope's attestation bundles (--registry-referrers-mode oci-1-1, DSSE) pass cosign v3's default
    verify-attestation — and its verify, which takes an attestation under the key for the image's
    signature."""
    repo = "interop/sigscope-bundles"
    digest = push_image(target, tmp_path, repo)
    image = f"{target.host}/{repo}:1.0"
    ref = f"{target.host}/{repo}@{digest}"
    sigscope_attest_slsa1(image, keys.sigscope, tmp_path, "--registry-referrers-mode", "oci-1-1")
    attested = cosign_verify(
        peers, ref, keys.sigscope_pub, "--type", "slsaprovenance1", command="verify-attestation"
    )
    assert attested.returncode == 0, explain(attested)
    assert (
        cosign_verify(
            peers, ref, keys.stranger_pub, "--type", "slsaprovenance1", command="verify-attestation"
        ).returncode
        != 0
    )
    taken = cosign_verify(peers, ref, keys.sigscope_pub)
    assert taken.returncode == 0, explain(taken)
    [claims] = json.loads(taken.stdout)
    assert claims["critical"]["type"] == SLSA1, claims  # the attestation, passed off as a signature
    assert cosign_verify(peers, ref, keys.stranger_pub).returncode != 0


def test_keys_cross_over(registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path) -> None:
    """cosign's encrypted key signs in sigscope, sigscope's in cosign; each side verifies the other's
    signature; cosign decrypts a key that `sigscope key import` encrypted."""
    repo = "interop/keys"
    digest = push_image(registry, tmp_path, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    sigscope_ok("sign", ref, "--insecure", "--key", keys.cosign)  # cosign's key, in sigscope
    peers.ok("cosign", "sign", "--key", keys.sigscope, *COSIGN_SIGN, *LEGACY, ref)  # and the other way
    for pub in (keys.cosign_pub, keys.sigscope_pub):
        theirs = cosign_verify(peers, ref, pub, *LEGACY)
        assert theirs.returncode == 0, explain(theirs)
    found = scan_entries(registry, repo, "--key", keys.cosign_pub, "--key", keys.sigscope_pub)
    assert [e["status"] for e in found] == ["verified", "verified"], found

    plain = tmp_path / "plain.pem"
    private = ec.generate_private_key(ec.SECP256R1())
    plain.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sigscope_ok("key", "import", plain, "--output-prefix", tmp_path / "imported")
    shown = peers.ok("cosign", "public-key", "--key", tmp_path / "imported.key")
    theirs_pub = serialization.load_pem_public_key(shown.stdout.encode())
    ours_pub = serialization.load_pem_public_key((tmp_path / "imported.pub").read_bytes())
    assert isinstance(theirs_pub, ec.EllipticCurvePublicKey) and isinstance(
        ours_pub, ec.EllipticCurvePublicKey
    )
    assert theirs_pub.public_numbers() == ours_pub.public_numbers() == private.public_key().public_numbers()


def test_scan_without_catalog(registry: RegistryHandle) -> None:
    """The same without a peer: Debian's registry behind a proxy that answers _catalog with 404."""
    with RegistryProxy(registry.url) as proxy:
        proxy.fail(r"/_catalog", 404, 2)
        data = sigscope_json("scan", "registry", f"{proxy.host}/demo/alpine", "--insecure")
        assert [(i["repository"], i["digest"]) for i in data["images"]] == [
            ("demo/alpine", registry.images["demo/alpine:1.0"])
        ]
        refused = sigscope("scan", "registry", proxy.host, "--insecure")
        assert refused.returncode == 2 and "for the catalog of" in refused.stderr, explain(refused)


# ---------------------------------------------------------------- differential: regctl and sigscope


def push_docker_format(
    registry: RegistryHandle, workdir: Path, repo: str, *, archs: list[str] | None = None
) -> None:
    """``repo:1.0`` converted by skopeo to Docker schema 2 media types (a manifest list for several archs)."""
    layout = workdir / f"layout-docker-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"interop/docker/{registry.host}/{repo}", architectures=archs)
    command = ["skopeo", "copy", "--insecure-policy", "--all", "--format", "v2s2", "--dest-tls-verify=false"]
    command += ["--dest-no-creds", f"oci:{layout}:v1", f"docker://{registry.host}/{repo}:1.0"]
    pushed = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert pushed.returncode == 0, explain(pushed)


def populate(handle: RegistryHandle, peers: Peers, keys: Keys, workdir: Path) -> RegistryHandle:
    """Docker schema 2 images (a manifest list too), a cosign .sig tag and an oras referrer (tag schema)."""
    push_docker_format(handle, workdir, "differential/docker")
    push_docker_format(handle, workdir, "differential/docker-multi", archs=["amd64", "arm64", "s390x"])
    digest = push_image(handle, workdir, "differential/signed")
    ref = f"{handle.host}/differential/signed@{digest}"
    peers.ok("cosign", "sign", "--key", keys.cosign, *COSIGN_SIGN, *LEGACY, ref)
    oras_attach_sbom(peers, ref, workdir)
    return handle


@pytest.fixture(scope="module")
def populated_distribution(
    distribution_registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> RegistryHandle:
    """distribution v3 with the differential's images beside the demo images."""
    return populate(distribution_registry, peers, keys, tmp_path_factory.mktemp("differential"))


@pytest.fixture(scope="module")
def populated_debian(
    registry_bin: str,
    demo_layout: Path,
    peers: Peers,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryHandle]:
    """Debian's 2.8 of its own (the session's shared one holds hostile manifests other tests pushed, which
    sigscope refuses by design), with the demo images and the differential's."""
    handle = start_registry(tmp_path_factory.mktemp("differential-debian"))
    try:
        for layout_tag, repo, tag in (
            ("alpine-1.0", "demo/alpine", "1.0"),
            ("multi-latest", "demo/multi", "latest"),
        ):
            push_layout(demo_layout, layout_tag, handle.host, repo, tag)
        yield populate(handle, peers, keys, tmp_path_factory.mktemp("differential"))
    finally:
        handle.stop()


@pytest.fixture(params=["debian-2.8", "distribution-v3"])
def listed_registry(request: pytest.FixtureRequest) -> RegistryHandle:
    """A registry with a catalog: Debian's 2.8 or distribution v3, each populated alike."""
    name = "populated_debian" if request.param == "debian-2.8" else "populated_distribution"
    handle: RegistryHandle = request.getfixturevalue(name)
    return handle


def platform_name(platform: dict[str, str] | None) -> str | None:
    if platform is None:
        return None
    variant = f"/{platform['variant']}" if platform.get("variant") else ""
    return f"{platform['os']}/{platform['architecture']}{variant}"


def regctl(peers: Peers, *args: str) -> str:
    return peers.ok("regctl", *args).stdout


def test_listing_and_manifests_match_regctl(listed_registry: RegistryHandle, peers: Peers) -> None:
    """Every repository, tag, digest and media type `sigscope ls --tags` reports is regctl's; for each index
    and Docker manifest list, `sigscope inspect` gives regctl's bytes and platform manifests."""
    host = listed_registry.host
    regctl(peers, "registry", "set", "--tls", "disabled", host)
    ours = {
        repo["name"]: {t["tag"]: (t["digest"], t["mediaType"]) for t in repo["tags"]}
        for repo in sigscope_json("ls", host, "--insecure", "--tags")["repositories"]
    }
    assert sorted(ours) == sorted(regctl(peers, "repo", "ls", host).split())
    indexes = []
    for repo, tags in ours.items():
        assert sorted(tags) == sorted(regctl(peers, "tag", "ls", f"{host}/{repo}").split()), repo
        for tag, (digest, media_type) in tags.items():
            ref = f"{host}/{repo}:{tag}"
            described = "{{.GetDescriptor.Digest}} {{.GetDescriptor.MediaType}}"
            assert regctl(peers, "manifest", "head", ref, "--format", described).split() == [
                digest,
                media_type,
            ]
            if not tag.startswith("sha256-"):  # an image, not a signature or referrers index
                assert regctl(peers, "image", "digest", ref).strip() == digest, ref
            if "index" in media_type or "list" in media_type:
                indexes.append(ref)
    assert any(ref.endswith("demo/multi:latest") for ref in indexes)
    # every image index, and one referrers index (each costs two sigscope runs)
    fallback = [ref for ref in indexes if ":sha256-" in ref]
    indexes = [ref for ref in indexes if ":sha256-" not in ref] + fallback[:1]

    for ref in indexes:
        raw = peers.ok("regctl", "manifest", "get", ref, "--format", "raw-body").stdout.encode()
        assert sigscope_ok("inspect", ref, "--insecure", "--raw").stdout.encode() == raw, ref
        children = [
            (m["digest"], m["mediaType"], platform_name(m.get("platform")))
            for m in json.loads(raw).get("manifests", [])
        ]
        report = sigscope_json("inspect", ref, "--insecure")
        platforms = [(p["digest"], p["mediaType"], p.get("platform")) for p in report.get("platforms", [])]
        assert platforms == children, ref


# ---------------------------------------------------------------- cosign with a PKCS#11 key (SoftHSM2)

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


def test_cosign_pkcs11_signs_sigscope_verifies(
    registry: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """cosign built with pkcs11key signs with a SoftHSM2 token's key (pkcs11: URI); sigscope verifies the
    signature under the public key cosign reads from the token (sigscope signs on tokens: test_pkcs11.py)."""
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if shutil.which(tool) is None:
            absent.unavailable(
                f"{tool} not installed (apt-get install -y softhsm2 opensc; setup.sh does this)"
            )
    if not SOFTHSM_MODULE.exists():
        absent.unavailable(f"{SOFTHSM_MODULE} missing (apt-get install -y softhsm2)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    module = str(SOFTHSM_MODULE)
    init = [
        "softhsm2-util",
        "--init-token",
        "--free",
        "--label",
        "interop",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]
    login = ["pkcs11-tool", "--module", module, "--token-label", "interop", "--login", "--pin", "1234"]
    keypair = ["--keypairgen", "--key-type", "EC:prime256v1", "--label", "signer", "--id", "01"]
    for command in (init, [*login, *keypair]):
        made = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert made.returncode == 0, explain(made)
    uri = f"pkcs11:token=interop;object=signer?module-path={SOFTHSM_MODULE}&pin-value=1234"
    hsm = {"SOFTHSM2_CONF": str(conf)}

    repo = "interop/cosign-pkcs11"
    digest = push_image(registry, tmp_path, repo)
    ref = f"{registry.host}/{repo}@{digest}"
    public = tmp_path / "hsm.pub"
    public.write_text(peers.ok("cosign-pkcs11", "public-key", "--key", uri, env=hsm).stdout)
    peers.ok("cosign-pkcs11", "sign", "--key", uri, *COSIGN_SIGN, *LEGACY, "-a", "hsm=softhsm", ref, env=hsm)

    verdict = sigscope_json("verify", ref, "--insecure", "--key", public, "-a", "hsm=softhsm")
    assert verdict["verified"] is True, verdict
    refused = sigscope("verify", ref, "--insecure", "--key", keys.stranger_pub)
    assert refused.returncode == 1, explain(refused)
    theirs = cosign_verify(peers, ref, public, *LEGACY, "-a", "hsm=softhsm")
    assert theirs.returncode == 0, explain(theirs)


# ---------------------------------------------------------------- cosign sign --recursive on an index


def platform_digests(registry: RegistryHandle, repo: str, index: str) -> dict[str, str]:
    """``os/arch`` → digest of each platform manifest of the index ``index``."""
    manifest = fetch_manifest(registry.host, repo, index)
    assert manifest is not None and manifest["mediaType"] == OCI_INDEX
    return {str(platform_name(m["platform"])): m["digest"] for m in manifest["manifests"]}


@pytest.mark.parametrize("fmt", ["legacy", "bundle"])
def test_recursive_index_signatures(
    fmt: str, request: pytest.FixtureRequest, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """`cosign sign --recursive` on a two-platform index (.sig tags on Debian's 2.8, or v3 bundles on olareg's
    referrers API): sigscope verifies the index and each platform manifest by digest, and `scan registry
    --platforms` reports all three verified; `sigscope sign --recursive` (.sig, or oci-1-1 bundles) is what
    cosign verifies on each platform. Another key: both refuse."""
    legacy = fmt == "legacy"
    registry: RegistryHandle = request.getfixturevalue("registry" if legacy else "referrers_registry")
    flags = LEGACY if legacy else ()
    signature_format = "cosign" if legacy else "sigstore-bundle"
    repo = f"interop/recursive-{fmt}"
    index = push_image(registry, tmp_path, repo, archs=["amd64", "arm64"])
    platforms = platform_digests(registry, repo, index)
    assert sorted(platforms) == ["linux/amd64", "linux/arm64"]
    peers.ok(
        "cosign",
        "sign",
        "--key",
        keys.cosign,
        *COSIGN_SIGN,
        *flags,
        "--recursive",
        f"{registry.host}/{repo}@{index}",
    )

    for digest in (index, *platforms.values()):
        verdict = sigscope_json(
            "verify", f"{registry.host}/{repo}@{digest}", "--insecure", "--key", keys.cosign_pub
        )
        assert verdict["verified"] is True, verdict
        assert [(s["format"], s["status"]) for s in verdict["signatures"]] == [(signature_format, "verified")]
    scanned = sigscope_json(
        "scan", "registry", f"{registry.host}/{repo}", "--insecure", "--platforms", "--key", keys.cosign_pub
    )
    found = sorted(
        (str(s.get("platform")), s["digest"], s["format"], s["status"])
        for s in scanned["registry"]["signatures"]
    )
    expected = [("None", index, signature_format, "verified")]
    expected += [(name, digest, signature_format, "verified") for name, digest in platforms.items()]
    assert found == sorted(expected), found

    arm = f"{registry.host}/{repo}@{platforms['linux/arm64']}"
    refused = sigscope("verify", arm, "--insecure", "--key", keys.stranger_pub)
    assert refused.returncode == 1, explain(refused)
    assert cosign_verify(peers, arm, keys.stranger_pub, *flags).returncode != 0
    theirs = cosign_verify(peers, arm, keys.cosign_pub, *flags)
    assert theirs.returncode == 0, explain(theirs)

    # the other way: sigscope's .sig tags, or its oci-1-1 bundles (cosign v3's own sign bundle)
    other = push_image(registry, tmp_path, repo, archs=["amd64", "arm64"], tag="2.0")
    mode = () if legacy else ("--registry-referrers-mode", "oci-1-1")
    sigscope_ok(
        "sign", f"{registry.host}/{repo}:2.0", "--insecure", "--key", keys.sigscope, "--recursive", *mode
    )
    for digest in (other, *platform_digests(registry, repo, other).values()):
        ref = f"{registry.host}/{repo}@{digest}"
        accepted = cosign_verify(peers, ref, keys.sigscope_pub, *flags)
        assert accepted.returncode == 0, explain(accepted)
    assert cosign_verify(peers, ref, keys.stranger_pub, *flags).returncode != 0


# ---------------------------------------------------------------- certificates from a private CA


@dataclass(frozen=True)
class CodeCA:
    """A private code-signing PKI (testbed.forge.make_code_pki): root → intermediate → leaf with SANs
    release@example.com and RELEASE_URI; files for both tools, and the same for an unrelated root."""

    leaf: Path  # PEM certificate
    leaf_key: Path  # plain PKCS#8 (sigscope)
    cosign_key: Path  # the same key, `cosign import-key-pair`ed (PASSWORD)
    chain: Path  # intermediate + root (cosign sign/verify --certificate-chain)
    root: Path
    other_root: Path  # as a chain too: cosign verify --certificate-chain with it trusts nothing of ours
    trusted_root: Path  # Sigstore trusted_root.json: our CA (intermediate + root), no logs
    other_trusted_root: Path


def trusted_root_json(path: Path, *certificates: Any) -> Path:
    """A trusted_root.json naming one certificate authority (``certificates``, leaf-most first)."""
    path.write_text(trusted_root_text(*certificates))
    return path


@pytest.fixture(scope="module")
def code_ca(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> CodeCA:
    pki = make_code_pki()
    directory = tmp_path_factory.mktemp("code-ca")
    leaf_key = directory / "leaf.key"
    leaf_key.write_bytes(
        pki.release.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    peers.ok("cosign", "import-key-pair", "--key", leaf_key, "--output-key-prefix", directory / "leaf-cosign")
    files = {"leaf": pem(pki.release.cert), "chain": pem(pki.intermediate, pki.root), "root": pem(pki.root)}
    files["other"] = pem(pki.other_root)
    for name, text in files.items():
        (directory / f"{name}.pem").write_text(text)
    return CodeCA(
        leaf=directory / "leaf.pem",
        leaf_key=leaf_key,
        cosign_key=directory / "leaf-cosign.key",
        chain=directory / "chain.pem",
        root=directory / "root.pem",
        other_root=directory / "other.pem",
        trusted_root=trusted_root_json(directory / "trusted_root.json", pki.intermediate, pki.root),
        other_trusted_root=trusted_root_json(directory / "other_trusted_root.json", pki.other_root),
    )


def cosign_verify_certificate(
    peers: Peers, ref: str, *trust: str | Path, identity: str = RELEASE_EMAIL
) -> Result:
    """cosign verify of a certificate signature from a private CA: no Fulcio, SCT or log."""
    return peers.run(
        "cosign",
        "verify",
        *COSIGN_VERIFY,
        *trust,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer-regexp",
        ".*",
        "--insecure-ignore-sct",
        ref,
    )


def sigscope_verify_certificate(ref: str, root: Path, identity: str = RELEASE_EMAIL) -> Result:
    return sigscope(
        "verify", ref, "--insecure", "--ca-roots", root, "--certificate-identity", identity, "-o", "json"
    )


def assert_certificate_verdict(result: Result, status: str) -> dict[str, Any]:
    verdict: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (0 if status == "verified" else 1), explain(result)
    [signature] = verdict["signatures"]
    assert (signature["status"], signature["signer"]["name"]) == (status, "CN=Leaf,O=sigscope tests"), (
        signature
    )
    return signature


def test_certificate_chain_signatures(
    registry: RegistryHandle, peers: Peers, code_ca: CodeCA, tmp_path: Path
) -> None:
    """`cosign sign --certificate --certificate-chain` (.sig layer carrying leaf and chain) is verified by
    sigscope --ca-roots ROOT --certificate-identity; sigscope's `sign --certificate --certificate-chain` by
    `cosign verify --certificate-chain`. Another root or another identity: both refuse."""
    theirs_repo, ours_repo = "interop/cosign-certificate", "interop/sigscope-certificate"
    theirs = f"{registry.host}/{theirs_repo}@{push_image(registry, tmp_path, theirs_repo)}"
    ours = f"{registry.host}/{ours_repo}@{push_image(registry, tmp_path, ours_repo)}"
    peers.ok(
        "cosign",
        "sign",
        "--key",
        code_ca.cosign_key,
        "--certificate",
        code_ca.leaf,
        "--certificate-chain",
        code_ca.chain,
        *COSIGN_SIGN,
        *LEGACY,
        theirs,
    )
    sigscope_ok(
        "sign",
        ours,
        "--insecure",
        "--key",
        code_ca.leaf_key,
        "--certificate",
        code_ca.leaf,
        "--certificate-chain",
        code_ca.chain,
    )
    for ref in (theirs, ours):
        signature = assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.root), "verified")
        assert {c["name"]: c["outcome"] for c in signature["checks"]}["certificate-chain"] == "passed"
        accepted = cosign_verify_certificate(peers, ref, *LEGACY, "--certificate-chain", code_ca.chain)
        assert accepted.returncode == 0, explain(accepted)
        [claims] = json.loads(accepted.stdout)
        assert claims["optional"]["Subject"] == RELEASE_EMAIL

        assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.other_root), "untrusted")
        refused = cosign_verify_certificate(peers, ref, *LEGACY, "--certificate-chain", code_ca.other_root)
        assert refused.returncode != 0 and "unknown authority" in refused.stderr, explain(refused)
        stranger = "someone@example.com"
        assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.root, stranger), "untrusted")
        refused = cosign_verify_certificate(
            peers, ref, *LEGACY, "--certificate-chain", code_ca.chain, identity=stranger
        )
        assert refused.returncode != 0 and "expected identities" in refused.stderr, explain(refused)


def test_certificate_chain_bundles(
    referrers_registry: RegistryHandle, peers: Peers, code_ca: CodeCA, tmp_path: Path
) -> None:
    """cosign v3's default with --certificate/--certificate-chain: a DSSE bundle carrying leaf and
    intermediate (x509CertificateChain; cosign leaves the root out). sigscope verifies it under --ca-roots;
    cosign under a trusted_root.json holding the CA (--allow-certificate-chain: cosign's own bundle needs it).
    sigstore-go matches one SAN per certificate (here the URI), sigscope any SAN. Another root: both
    refuse."""
    repo = "interop/cosign-certificate-bundle"
    ref = f"{referrers_registry.host}/{repo}@{push_image(referrers_registry, tmp_path, repo)}"
    peers.ok(
        "cosign",
        "sign",
        "--key",
        code_ca.cosign_key,
        "--certificate",
        code_ca.leaf,
        "--certificate-chain",
        code_ca.chain,
        *COSIGN_SIGN,
        ref,
    )
    for identity in (RELEASE_EMAIL, RELEASE_URI):
        assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.root, identity), "verified")
    assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.other_root), "untrusted")
    bundle_trust = ("--allow-certificate-chain", "--trusted-root")
    accepted = cosign_verify_certificate(
        peers, ref, *bundle_trust, code_ca.trusted_root, identity=RELEASE_URI
    )
    assert accepted.returncode == 0, explain(accepted)
    refused = cosign_verify_certificate(
        peers, ref, *bundle_trust, code_ca.other_trusted_root, identity=RELEASE_URI
    )
    assert refused.returncode != 0, explain(refused)
    one_san = cosign_verify_certificate(
        peers, ref, *bundle_trust, code_ca.trusted_root, identity=RELEASE_EMAIL
    )
    assert one_san.returncode != 0 and f'got "{RELEASE_URI}"' in one_san.stderr, explain(one_san)


def test_sigscope_certificate_bundle_cosign_verifies(
    referrers_registry: RegistryHandle, peers: Peers, code_ca: CodeCA, tmp_path: Path
) -> None:
    """sigscope's oci-1-1 signature with --certificate/--certificate-chain, under cosign's trusted root; under
    another root both refuse."""
    repo = "interop/sigscope-certificate-bundle"
    ref = f"{referrers_registry.host}/{repo}@{push_image(referrers_registry, tmp_path, repo)}"
    sigscope_ok(
        "sign",
        ref,
        "--insecure",
        "--key",
        code_ca.leaf_key,
        "--certificate",
        code_ca.leaf,
        "--certificate-chain",
        code_ca.chain,
        "--registry-referrers-mode",
        "oci-1-1",
    )
    assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.root), "verified")
    bundle_trust = ("--allow-certificate-chain", "--trusted-root", code_ca.trusted_root)
    accepted = cosign_verify_certificate(peers, ref, *bundle_trust, identity=RELEASE_URI)
    assert accepted.returncode == 0, explain(accepted)
    assert_certificate_verdict(sigscope_verify_certificate(ref, code_ca.other_root), "untrusted")
    refused = cosign_verify_certificate(
        peers, ref, "--allow-certificate-chain", "--trusted-root", code_ca.other_trusted_root,
        identity=RELEASE_URI,
    )  # fmt: skip
    assert refused.returncode != 0, explain(refused)


# ---------------------------------------------------------------- attestations of several predicate types


def test_attestations_of_several_types(
    kind: str, target: RegistryHandle, peers: Peers, keys: Keys, tmp_path: Path
) -> None:
    """cosign attests one image four times (spdxjson, cyclonedx, slsaprovenance1, a custom URI; .att layers on
    the tag schema registry, bundles on the referrers API): sigscope verify-attestation --type finds each (by
    cosign's name; cyclonedx by URI too), and a type not attached (vuln) is not verified — by either side."""
    repo = "interop/attested-types"
    digest = push_image(target, tmp_path, repo)
    ref = f"{target.host}/{repo}@{digest}"
    flags = LEGACY if kind == "tag-schema" else ()
    custom = "https://example.com/interop/scan-result/v1"
    predicates = {
        "spdxjson": ("https://spdx.dev/Document", {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT"}),
        "cyclonedx": ("https://cyclonedx.org/bom", {"bomFormat": "CycloneDX", "specVersion": "1.5"}),
        "slsaprovenance1": (SLSA1, json.loads(slsa1_predicate(tmp_path).read_text())),
        custom: (custom, {"scanner": "interop", "result": "pass"}),
    }
    for name, (_, predicate) in predicates.items():
        path = tmp_path / f"predicate-{len(name)}.json"
        path.write_text(json.dumps(predicate))
        peers.ok(
            "cosign",
            "attest",
            "--key",
            keys.cosign,
            *COSIGN_SIGN,
            *flags,
            "--type",
            name,
            "--predicate",
            path,
            ref,
        )

    for name, (uri, predicate) in predicates.items():
        for asked in (name, uri) if name == "cyclonedx" else (name,):
            attested = sigscope_json(
                "verify-attestation", ref, "--insecure", "--key", keys.cosign_pub, "--type", asked
            )
            [statement] = attested["statements"]
            assert (statement["predicateType"], statement["predicate"]) == (uri, predicate), asked
            assert statement["subject"][0]["digest"] == {"sha256": digest[7:]}
        theirs = cosign_verify(
            peers, ref, keys.cosign_pub, *flags, "--type", name, command="verify-attestation"
        )
        assert theirs.returncode == 0, explain(theirs)
    everything = sigscope_json("verify-attestation", ref, "--insecure", "--key", keys.cosign_pub)
    assert sorted(s["predicateType"] for s in everything["statements"]) == sorted(
        u for u, _ in predicates.values()
    )

    absent_type = sigscope(
        "verify-attestation", ref, "--insecure", "--key", keys.cosign_pub, "--type", "vuln"
    )
    assert absent_type.returncode == 1 and "Not verified" in absent_type.stdout, explain(absent_type)
    assert (
        cosign_verify(
            peers, ref, keys.cosign_pub, *flags, "--type", "vuln", command="verify-attestation"
        ).returncode
        != 0
    )
    stranger = sigscope(
        "verify-attestation", ref, "--insecure", "--key", keys.stranger_pub, "--type", "cyclonedx"
    )
    assert stranger.returncode == 1, explain(stranger)
    assert (
        cosign_verify(
            peers, ref, keys.stranger_pub, *flags, "--type", "cyclonedx", command="verify-attestation"
        ).returncode
        != 0
    )


# ---------------------------------------------------------------- notation with an RFC 3161 timestamp


def with_tsa_store(config: Path, directory: Path, root: Path) -> Path:
    """A copy of notation config ``config``'s trust stores plus a tsa store ``interop-tsa`` holding ``root``,
    and a policy trusting both CAs and that TSA (``directory``/notation)."""
    result = directory / "notation"
    shutil.copytree(config / "truststore", result / "truststore")
    store = result / "truststore" / "x509" / "tsa" / "interop-tsa"
    store.mkdir(parents=True)
    (store / "root.crt").write_bytes(root.read_bytes())
    write_trust_policy(result, ["ca:peer-test", "ca:sigscope-test", "tsa:interop-tsa"])
    return result


def settle(*certificates: Path, margin: float = 2.0) -> None:
    """Wait until each certificate's notBefore is ``margin`` seconds past. notation and sigscope alike refuse
    a timestamp whose range (the TSA's accuracy, ±1.5 s) starts before a chain certificate's notBefore, and
    the test certificates may be a second old when the test runs alone."""
    newest = max(x509.load_pem_x509_certificate(p.read_bytes()).not_valid_before_utc for p in certificates)
    wait = (newest - datetime.now(UTC)).total_seconds() + margin
    if wait > 0:
        time.sleep(wait)


def test_notation_timestamps(
    registry: RegistryHandle,
    peers: Peers,
    notation_trust: NotationTrust,
    tsa: TSAServer,
    tsa_pki: PKI,
    tmp_path: Path,
) -> None:
    """`notation sign --timestamp-url` (the test bed's RFC 3161 TSA) is verified by sigscope with a trust
    store of kind tsa holding the TSA's root; sigscope's `sign --format notation --timestamp-url` by notation
    verify.
    A tsa store holding another root: both refuse (the countersignature does not chain)."""
    trusted = with_tsa_store(notation_trust.config, tmp_path / "trusted", tsa.root_path)
    other = with_tsa_store(notation_trust.config, tmp_path / "other", tsa_pki["other-root"].cert_path)
    theirs_repo, ours_repo = "interop/notation-timestamped", "interop/sigscope-timestamped"
    theirs = f"{registry.host}/{theirs_repo}@{push_image(registry, tmp_path, theirs_repo)}"
    ours = f"{registry.host}/{ours_repo}@{push_image(registry, tmp_path, ours_repo)}"
    settle(peers.notation_dir / "localkeys" / "peer-test.crt", notation_trust.chain)
    peers.ok(
        "notation",
        "sign",
        "--insecure-registry",
        "--timestamp-url",
        tsa.url,
        "--timestamp-root-cert",
        tsa.root_path,
        theirs,
    )
    sigscope_ok(
        "sign",
        ours,
        "--insecure",
        "--format",
        "notation",
        "--key",
        notation_trust.key,
        "--cert",
        notation_trust.chain,
        "--timestamp-url",
        tsa.url,
        "--timestamp-root",
        tsa.root_path,
    )
    stamped = json.loads(peers.ok("notation", "inspect", "--insecure-registry", "-o", "json", ours).stdout)
    [envelope] = stamped["Signatures"]
    assert envelope["unsignedAttributes"]["timestampSignature"]["certificates"][0]["issuedTo"].startswith(
        "CN=sigscope Test TSA"
    )
    for ref in (theirs, ours):
        verdict = sigscope_json("verify", ref, "--insecure", "--notation-config", trusted)
        [signature] = verdict["signatures"]
        checks = {c["name"]: c for c in signature["checks"]}
        assert signature["status"] == "verified", signature
        assert checks["authentic-timestamp"]["outcome"] == "passed", checks
        assert "CN=sigscope Test TSA" in checks["authentic-timestamp"]["detail"]
        accepted = peers.run("notation", "verify", "--insecure-registry", ref, env=notation_env(trusted))
        assert accepted.returncode == 0 and "Successfully verified" in accepted.stdout, explain(accepted)

        refused = sigscope("verify", ref, "--insecure", "--notation-config", other, "-o", "json")
        assert refused.returncode == 1, explain(refused)
        [signature] = json.loads(refused.stdout)["signatures"]
        failed = [c for c in signature["checks"] if c["outcome"] == "failed"]
        assert [c["name"] for c in failed] == ["authentic-timestamp", "trust-policy"], failed
        assert "no path to a trusted root" in failed[0]["detail"]
        theirs_refused = peers.run("notation", "verify", "--insecure-registry", ref, env=notation_env(other))
        assert theirs_refused.returncode != 0, explain(theirs_refused)


# ---------------------------------------------------------------- signatures tampered in place


def tamper_in_place(registry: RegistryHandle, repo: str, digest: str, old: bytes, new: bytes) -> None:
    """Re-push ``repo``'s .sig manifest for ``digest`` under the same tag, its payload layer with one byte
    changed (``old`` → ``new``, same length) and the layer's digest and size those of the new bytes."""
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new, strict=True)) == 1
    tag = cosign_sig_tag(digest)
    manifest = fetch_manifest(registry.host, repo, tag)
    assert manifest is not None
    [layer] = manifest["layers"]
    payload = fetch_blob(registry.host, repo, layer["digest"])
    assert payload.count(old) == 1, payload
    forged = payload.replace(old, new)
    layer.update(digest=upload_blob(registry.host, repo, forged), size=len(forged))
    put_tags(registry.host, repo, json.dumps(manifest).encode(), OCI_MANIFEST, [tag], threads=1)


def test_tampered_in_place(
    registry: RegistryHandle, peers: Peers, keys: Keys, code_ca: CodeCA, tmp_path: Path
) -> None:
    """cosign's .sig re-pushed in place with one byte of the payload changed (env=prod → env=prot), the layer
    digest matching the new bytes. With a key only, sigscope cannot tell a forgery from another signer's
    signature: "untrusted", wrong key. With a certificate (the key is known), the signature check fails:
    "invalid". Both exit 1; cosign refuses both ("invalid signature")."""
    keyed, certified = "interop/tampered-keyed", "interop/tampered-certificate"
    keyed_digest = push_image(registry, tmp_path, keyed)
    certified_digest = push_image(registry, tmp_path, certified)
    keyed_ref = f"{registry.host}/{keyed}@{keyed_digest}"
    certified_ref = f"{registry.host}/{certified}@{certified_digest}"
    peers.ok("cosign", "sign", "--key", keys.cosign, *COSIGN_SIGN, *LEGACY, "-a", "env=prod", keyed_ref)
    peers.ok(
        "cosign",
        "sign",
        "--key",
        code_ca.cosign_key,
        "--certificate",
        code_ca.leaf,
        "--certificate-chain",
        code_ca.chain,
        *COSIGN_SIGN,
        *LEGACY,
        "-a",
        "env=prod",
        certified_ref,
    )
    tamper_in_place(registry, keyed, keyed_digest, b'"prod"', b'"prot"')
    tamper_in_place(registry, certified, certified_digest, b'"prod"', b'"prot"')

    ours = sigscope("verify", keyed_ref, "--insecure", "--key", keys.cosign_pub, "-o", "json")
    assert ours.returncode == 1, explain(ours)
    [signature] = json.loads(ours.stdout)["signatures"]
    failed = {c["name"] for c in signature["checks"] if c["outcome"] == "failed"}
    assert (signature["status"], failed) == ("untrusted", {"trusted-key"}), signature
    theirs = cosign_verify(peers, keyed_ref, keys.cosign_pub, *LEGACY)
    assert theirs.returncode != 0 and "invalid signature" in theirs.stderr, explain(theirs)

    ours = sigscope_verify_certificate(certified_ref, code_ca.root)
    signature = assert_certificate_verdict(ours, "invalid")
    failed = {c["name"] for c in signature["checks"] if c["outcome"] == "failed"}
    assert failed == {"signature"}, signature["checks"]
    theirs = cosign_verify_certificate(peers, certified_ref, *LEGACY, "--certificate-chain", code_ca.chain)
    assert theirs.returncode != 0 and "invalid signature" in theirs.stderr, explain(theirs)
    trust = ("--key", keys.cosign_pub, "--ca-roots", code_ca.root, "--certificate-identity", RELEASE_EMAIL)
    found = scan_entries(registry, "interop/tampered-*", *trust)
    assert sorted((e["repository"], e["status"]) for e in found) == [
        (certified, "invalid"),
        (keyed, "untrusted"),
    ]
