"""Offline Sigstore verification on the vectors in ../shared/vectors, with the outcomes VECTORS.md gives.

Bundles go through the PyPI `sigstore` library (trust/sigstore_offline.py); the legacy cosign `.sig`
Rekor SET (connaisseur's keyless capture), which the library cannot take as a bundle, is checked with the
library's Rekor keyring from the trusted root. Whatever the library refuses must fail, never pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from testbed import vectors

from sigscope.formats import bundle as bundle_format
from sigscope.formats import cosign
from sigscope.model import Descriptor, Outcome, Signature, Status
from sigscope.trust import certs
from sigscope.trust.identity import (
    CertificateTrust,
    IdentityPolicy,
    apply_certificates,
    identity_check,
    oidc_issuer,
)
from sigscope.trust.sigstore_offline import (
    SigstoreTrust,
    TrustedRootError,
    load_trusted_root_file,
    verify_bundle,
)

VECTORS = vectors.ROOT
pytestmark = pytest.mark.vectors

PY = VECTORS / "sigstore-sigstore-python"
ASSETS = PY / "test" / "assets"
STAGING_ROOT = PY / "sigstore" / "_store" / "tuf-repo-cdn.sigstage.dev" / "trusted_root.json"
PRODUCTION_ROOT = PY / "sigstore" / "_store" / "tuf-repo-cdn.sigstore.dev" / "trusted_root.json"
GO = VECTORS / "sigstore-sigstore-go" / "pkg" / "testing" / "data"
COSIGN = VECTORS / "sigstore-cosign" / "pkg" / "cosign" / "testdata"
CONNAISSEUR = (
    VECTORS / "sse-secure-systems-connaisseur" / "test" / "testdata" / "cosign" / "securesystemsengineering"
) / "testimage"
KEYLESS_IMAGE = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
ANYONE = IdentityPolicy.build(identity_regexp=".*")


@pytest.fixture(scope="module")
def staging() -> SigstoreTrust:
    return load_trusted_root_file(STAGING_ROOT)


@pytest.fixture(scope="module")
def production() -> SigstoreTrust:
    return load_trusted_root_file(PRODUCTION_ROOT)


def outcome(checks: list[Any], name: str) -> Outcome | None:
    return next((c.outcome for c in checks if c.name == name), None)


def detail(checks: list[Any], name: str) -> str:
    return next(c.detail for c in checks if c.name == name)


# ---------------------------------------------------------------- sigstore-python bundles (staging)


@pytest.mark.parametrize(
    "name",
    [
        "bundle.txt.sigstore",  # v0.1, hashedrekord
        "bundle_v3.txt.sigstore",  # v0.3 media type
        "bundle_v3_alt.txt.sigstore",  # "+json;version=0.3"
        "staging-rekor-v2.txt.sigstore.json",  # Rekor v2 hashedrekord 0.0.2 + TSA
        "a.dsse.staging-rekor-v2.txt.sigstore.json",  # DSSE logged as hashedrekord 0.0.2 over PAE
    ],
)
def test_valid_bundles(staging: SigstoreTrust, name: str) -> None:
    artifact = (ASSETS / name.split(".sigstore")[0]).read_bytes()
    result = verify_bundle((ASSETS / name).read_bytes(), staging, ANYONE, artifact=artifact)
    assert outcome(result.checks, "sigstore") is Outcome.PASSED, result.checks
    assert outcome(result.checks, "certificate-identity") is Outcome.PASSED
    # the same bundle under the production root: nothing chains, nothing is logged there
    wrong_root = load_trusted_root_file(PRODUCTION_ROOT)
    again = verify_bundle((ASSETS / name).read_bytes(), wrong_root, ANYONE, artifact=artifact)
    assert outcome(again.checks, "sigstore") is Outcome.FAILED


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bundle_cve_2022_36056.txt.sigstore", "transparency log entry is inconsistent with other materials"),
        ("bundle_invalid_version.txt.sigstore", "bundle rejected"),
        ("bundle_no_cert_v1.txt.sigstore", "expected non-empty certificate chain"),
        ("bundle_no_log_entry.txt.sigstore", "expected exactly one log entry"),
        ("bundle_no_checkpoint.txt.sigstore", "inclusion proof, with checkpoint"),
        ("bundle_v3_no_signed_time.txt.sigstore.json", "inclusion promise or signed timestamp"),
    ],
)
def test_invalid_bundles(staging: SigstoreTrust, name: str, message: str) -> None:
    artifact = (ASSETS / name.split(".sigstore")[0]).read_bytes()
    result = verify_bundle((ASSETS / name).read_bytes(), staging, ANYONE, artifact=artifact)
    assert outcome(result.checks, "sigstore") is Outcome.FAILED
    assert message in detail(result.checks, "sigstore")


def test_other_artifact_and_identity(staging: SigstoreTrust) -> None:
    raw = (ASSETS / "bundle.txt.sigstore").read_bytes()
    tampered = verify_bundle(raw, staging, ANYONE, artifact=b"not the signed artifact")
    assert outcome(tampered.checks, "sigstore") is Outcome.FAILED
    artifact = (ASSETS / "bundle.txt").read_bytes()
    digest = hashlib.sha256(artifact).digest()
    # by digest, as image signatures are verified
    assert outcome(verify_bundle(raw, staging, ANYONE, digest=digest).checks, "sigstore") is Outcome.PASSED
    wrong = IdentityPolicy.build(identity="someone@example.com")
    result = verify_bundle(raw, staging, wrong, artifact=artifact)
    assert outcome(result.checks, "certificate-identity") is Outcome.FAILED
    # our policy is also handed to the library: it refuses the bundle on its own account
    assert outcome(result.checks, "sigstore") is Outcome.FAILED
    leaf = certs.load_der(_leaf_der(raw))
    issuer = IdentityPolicy.build(identity_regexp=".*", issuer="https://accounts.google.com")
    assert oidc_issuer(leaf) not in (None, "https://accounts.google.com")
    result = verify_bundle(raw, staging, issuer, artifact=artifact)
    assert outcome(result.checks, "certificate-issuer") is Outcome.FAILED
    assert outcome(result.checks, "sigstore") is Outcome.FAILED
    right = IdentityPolicy.build(identity_regexp=".*", issuer=oidc_issuer(leaf))
    result = verify_bundle(raw, staging, right, artifact=artifact)
    assert outcome(result.checks, "certificate-issuer") is Outcome.PASSED
    assert outcome(result.checks, "sigstore") is Outcome.PASSED


def _leaf_der(raw: bytes) -> bytes:
    material = json.loads(raw)["verificationMaterial"]
    if "certificate" in material:
        return base64.b64decode(material["certificate"]["rawBytes"])
    return base64.b64decode(material["x509CertificateChain"]["certificates"][0]["rawBytes"])


def test_timestamp_authority_bundles() -> None:
    tsa = ASSETS / "tsa"
    trust = load_trusted_root_file(tsa / "trust_config.json")  # a ClientTrustConfig with the staging TSA
    artifact = (tsa / "bundle.txt").read_bytes()
    good = verify_bundle((tsa / "bundle.txt.sigstore").read_bytes(), trust, ANYONE, artifact=artifact)
    assert outcome(good.checks, "sigstore") is Outcome.PASSED, good.checks
    for name, message in (
        ("bundle.many_timestamp.sigstore", "too many"),
        ("bundle.duplicate.sigstore", "duplicate"),
        ("bundle.txt.late_timestamp.sigstore", "sigstore verification failed"),
    ):
        result = verify_bundle((tsa / name).read_bytes(), trust, ANYONE, artifact=artifact)
        assert outcome(result.checks, "sigstore") is Outcome.FAILED, name
        assert message in detail(result.checks, "sigstore"), (name, result.checks)


# ---------------------------------------------------------------- cosign and sigstore-go


def test_cosign_oci_attestation_bundle() -> None:
    trust = load_trusted_root_file(COSIGN / "trusted_root_pgi.json")
    raw = (COSIGN / "oci-attestation.sigstore.json").read_bytes()
    subject = "sha256:" + _statement_digest(raw)
    now = datetime.now(UTC)
    for policy, status in (
        (IdentityPolicy.build(identity_regexp=".*"), Status.VERIFIED),
        (
            IdentityPolicy.build(identity="cody@soyland.com", issuer="https://github.com/login/oauth"),
            Status.VERIFIED,
        ),
        (IdentityPolicy.build(identity_regexp="wrong"), Status.UNTRUSTED),
    ):
        sig = bundle_format.parse_bundle(raw, subject_digest=subject, location="vector", now=now)
        assert sig.status is Status.INTEGRITY_OK, sig.checks
        apply_certificates(sig, CertificateTrust(policy=policy, sigstore=trust), now)
        assert sig.status is status, sig.checks
    # attached to another image: the statement names another digest, whatever the trust
    other = bundle_format.parse_bundle(raw, subject_digest="sha256:" + "0" * 64, location="vector", now=now)
    apply_certificates(other, CertificateTrust(policy=ANYONE, sigstore=trust), now)
    assert other.status is Status.INVALID
    assert outcome(other.checks, "dsse-subject") is Outcome.FAILED


def _statement_digest(raw: bytes) -> str:
    payload = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))
    digest: str = payload["subject"][0]["digest"]["sha256"]
    assert digest.startswith("732112270d7e")
    return digest


def test_npm_provenance_intoto_is_refused_not_passed() -> None:
    trust = load_trusted_root_file(GO / "trusted-roots" / "public-good.json")
    raw = (GO / "bundles" / "sigstore.js@2.0.0-provenance.sigstore.json").read_bytes()
    identity = IdentityPolicy.build(
        identity="https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
    )
    result = verify_bundle(raw, trust, identity)
    assert outcome(result.checks, "certificate-identity") is Outcome.PASSED
    # sigstore-python has no intoto entries: an explicit failure, never a pass
    assert outcome(result.checks, "sigstore") is Outcome.FAILED


def test_othername_identity_and_scaffolding_root() -> None:
    raw = (GO / "bundles" / "othername.sigstore.json").read_bytes()
    leaf = certs.load_der(_leaf_der(raw))
    good = IdentityPolicy.build(identity="foo!oidc.local", issuer="http://oidc.local:8080")
    assert identity_check(leaf, good)[0].outcome is Outcome.PASSED
    assert identity_check(leaf, IdentityPolicy.build(identity="foo@oidc.local"))[0].outcome is Outcome.FAILED
    # sigstore-python cannot load this root (a CA subject without commonName): a clear error
    with pytest.raises(TrustedRootError, match="not a usable Sigstore trusted root"):
        load_trusted_root_file(GO / "trusted-roots" / "scaffolding.json")


def test_dsse_two_signatures_is_invalid() -> None:
    raw = (GO / "bundles" / "dsse-2sigs.sigstore.json").read_bytes()
    sig = bundle_format.parse_bundle(raw, subject_digest="", location="vector", now=datetime.now(UTC))
    trust = load_trusted_root_file(GO / "trusted-roots" / "public-good.json")
    apply_certificates(sig, CertificateTrust(policy=ANYONE, sigstore=trust), datetime.now(UTC))
    assert sig.status is Status.INVALID


# ---------------------------------------------------------------- connaisseur: legacy keyless .sig with a SET


def _keyless_layer() -> tuple[Descriptor, bytes]:
    manifest = json.loads((CONNAISSEUR / "manifests" / f"sha256-{KEYLESS_IMAGE[7:]}.sig.json").read_text())
    layer = Descriptor.from_json(manifest["layers"][0])
    return layer, (CONNAISSEUR / "blobs" / f"{layer.digest}.json").read_bytes()


def _keyless(layer: Descriptor | None = None) -> Signature:
    default, blob = _keyless_layer()
    return cosign.parse_signature_layer(
        layer or default, blob, subject_digest=KEYLESS_IMAGE, location="vector", now=datetime.now(UTC)
    )


def test_connaisseur_keyless_with_set(production: SigstoreTrust) -> None:
    now = datetime.now(UTC)
    good = IdentityPolicy.build(identity_regexp="philipp", issuer_regexp="github")
    sig = apply_certificates(_keyless(), CertificateTrust(policy=good, sigstore=production), now)
    assert sig.status is Status.VERIFIED, sig.checks
    for name in ("transparency-log", "certificate-chain", "certificate-sct", "certificate-validity"):
        assert outcome(sig.checks, name) is Outcome.PASSED, name
    assert "SET verified" in detail(sig.checks, "certificate-validity")
    bad = IdentityPolicy.build(identity="bob@gmail.com", issuer_regexp="google")
    sig = apply_certificates(_keyless(), CertificateTrust(policy=bad, sigstore=production), now)
    assert sig.status is Status.UNTRUSTED
    assert outcome(sig.checks, "certificate-identity") is Outcome.FAILED
    assert outcome(sig.checks, "certificate-issuer") is Outcome.FAILED


def test_connaisseur_keyless_without_a_verified_time(
    production: SigstoreTrust, staging: SigstoreTrust
) -> None:
    now = datetime.now(UTC)
    good = IdentityPolicy.build(identity_regexp="philipp", issuer_regexp="github")
    # the Fulcio roots alone (--ca-roots), no Rekor key: the 10-minute certificate is expired now
    fulcio = CertificateTrust(
        policy=good, roots=production.fulcio_roots, intermediates=production.fulcio_intermediates
    )
    sig = apply_certificates(_keyless(), fulcio, now)
    assert sig.status is Status.UNTRUSTED
    assert outcome(sig.checks, "certificate-validity") is Outcome.FAILED
    assert outcome(sig.checks, "transparency-log") is None
    # the staging root: the SET does not verify, so there is no verified time either
    sig = apply_certificates(_keyless(), CertificateTrust(policy=good, sigstore=staging), now)
    assert sig.status is Status.UNTRUSTED
    assert outcome(sig.checks, "transparency-log") is Outcome.FAILED
    assert outcome(sig.checks, "certificate-validity") is Outcome.FAILED


def test_connaisseur_tampered_set(production: SigstoreTrust) -> None:
    layer, _ = _keyless_layer()
    annotation = json.loads(layer.annotations[cosign.BUNDLE_ANNOTATION])
    annotation["Payload"]["integratedTime"] += 3600  # an hour later: the SET no longer covers it
    annotations = {**layer.annotations, cosign.BUNDLE_ANNOTATION: json.dumps(annotation)}
    forged = Descriptor(layer.media_type, layer.digest, layer.size, annotations)
    good = IdentityPolicy.build(identity_regexp="philipp", issuer_regexp="github")
    sig = apply_certificates(
        _keyless(forged), CertificateTrust(policy=good, sigstore=production), datetime.now(UTC)
    )
    assert sig.status is Status.UNTRUSTED
    assert outcome(sig.checks, "transparency-log") is Outcome.FAILED
    assert "SET does not verify" in detail(sig.checks, "transparency-log")


def test_connaisseur_key_signatures_are_left_to_keys(production: SigstoreTrust) -> None:
    """alice/bob/charlie signed with bare keys: certificate trust neither passes nor fails them."""
    manifest = json.loads(
        (
            CONNAISSEUR
            / "manifests"
            / "sha256-bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533.sig.json"
        ).read_text()
    )
    for raw_layer in manifest["layers"]:
        layer = Descriptor.from_json(raw_layer)
        blob = (CONNAISSEUR / "blobs" / f"{layer.digest}.json").read_bytes()
        sig = cosign.parse_signature_layer(
            layer, blob, subject_digest="sha256:" + "bfec161f" + "0" * 56, location="v", now=datetime.now(UTC)
        )
        before = list(sig.checks)
        apply_certificates(sig, CertificateTrust(policy=ANYONE, sigstore=production), datetime.now(UTC))
        assert sig.checks == before and sig.status is not Status.VERIFIED


# ---------------------------------------------------------------- end to end: an oci: layout and the CLI


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def test_cli_inspect_and_verify_keyless_layout(tmp_path: Path) -> None:
    """The captured image and its .sig in an OCI layout; `sigscope inspect --signatures --trusted-root`."""
    layout = tmp_path / "layout"
    image = (CONNAISSEUR / "manifests" / "keyless.json").read_bytes()
    sig_manifest = (CONNAISSEUR / "manifests" / f"sha256-{KEYLESS_IMAGE[7:]}.sig.json").read_bytes()
    _, blob = _keyless_layer()
    _blob(layout, blob)
    image_desc = _blob(layout, image)
    assert image_desc["digest"] == KEYLESS_IMAGE
    sig_desc = _blob(layout, sig_manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    index = {
        "schemaVersion": 2,
        "manifests": [
            {**image_desc, "mediaType": docker, "annotations": {"org.opencontainers.image.ref.name": "v1"}},
            {
                **sig_desc,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "annotations": {"org.opencontainers.image.ref.name": f"sha256-{KEYLESS_IMAGE[7:]}.sig"},
            },
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    env = {k: v for k, v in os.environ.items() if k != "SIGSCOPE_DEBUG"}

    def sigscope(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sigscope", *args], capture_output=True, text=True, env=env, timeout=120
        )

    trust = (
        "--trusted-root",
        str(PRODUCTION_ROOT),
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    )
    # scan (inspect would also read the image config, which the capture lacks)
    for identity, status in (("philipp", "verified"), ("^bob@gmail\\.com$", "untrusted")):
        result = sigscope(
            "scan",
            "registry",
            f"oci:{layout}",
            *trust,
            "--certificate-identity-regexp",
            identity,
            "-o",
            "json",
        )
        assert result.returncode == 0, result.stderr
        [sig] = json.loads(result.stdout)["registry"]["signatures"]
        assert sig["status"] == status, sig["checks"]
    # verify: on a layout (a copy) the digest binds and the repository the payload names (docker.io's) is
    # checked only when --signed-identity names the one expected, as cosign does
    result = sigscope(
        "verify", f"oci:{layout}:v1", *trust, "--certificate-identity-regexp", "philipp", "-o", "json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [judged] = json.loads(result.stdout)["signatures"]
    assert judged["status"] == "verified"
    elsewhere = ("--signed-identity", "registry.example.com/other")
    result = sigscope(
        "verify",
        f"oci:{layout}:v1",
        *trust,
        "--certificate-identity-regexp",
        "philipp",
        *elsewhere,
        "-o",
        "json",
    )
    assert result.returncode == 1, result.stderr
    [judged] = json.loads(result.stdout)["signatures"]
    assert judged["reason"] == "reference mismatch" and judged["status"] == "rejected"
