"""`sigscope attest` / `verify-attestation` and the oci-1-1 (Sigstore bundle referrer) mode of `sign`.

Round trips run against the session's real ``registry`` (Debian docker-registry: no referrers API, so the
fallback tag index is used), against the same registry behind ``RegistryProxy(referrers_api=True)`` (the
referrers API path) and against OCI layouts. Every registry test pushes its own ``attest/...`` repository.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from testbed import (
    RegistryHandle,
    build_layout,
    fetch_blob,
    fetch_manifest,
    layout_digest,
    push_layout,
    vectors,
)
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.proxy import RegistryProxy

from sigscope.attest import (
    CUSTOM_PREDICATE,
    AttestOptions,
    _attest_legacy,
    attest_image,
    build_predicate,
    predicate_type_for,
    verify_attestations,
)
from sigscope.errors import UsageError
from sigscope.formats import bundle, dsse
from sigscope.keys import FileSigner, generate, write_key_pair
from sigscope.model import Status
from sigscope.oci.layout import OCILayout
from sigscope.sign import push_bundle_referrer
from sigscope.trust.keys import apply_keys, load_public_key
from sigscope.verify import Policy, verify

PASSWORD = "attest-test-pw"
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
DSSE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA1 = "https://slsa.dev/provenance/v1"
VECTORS = vectors.ROOT


def vector(relative: str) -> Path:
    return vectors.require(VECTORS / relative)


def run(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    return run_sigscope(*args, password=password)


def net(image: str) -> tuple[str, ...]:
    return () if image.startswith("oci:") else ("--insecure",)


def attest(
    image: str, key: Path, predicate: Path, *extra: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    args = ("attest", image, "--key", str(key), "--predicate", str(predicate), *net(image), *extra)
    return run(*args, password=password)


def attest_ok(image: str, key: Path, predicate: Path, *extra: str) -> dict[str, Any]:
    result = attest(image, key, predicate, *extra, "-o", "json")
    assert result.returncode == 0, result.stderr
    attested: dict[str, Any] = json.loads(result.stdout)["attested"]
    return attested


def verify_att(image: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run("verify-attestation", image, *net(image), *args, password=None)


def verify_att_json(image: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = verify_att(image, *args, "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


def make_key(directory: Path, name: str, kind: str = "ecdsa-p256") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return write_key_pair(directory / name, generate(kind), PASSWORD)


def predicate_file(directory: Path, name: str = "provenance.json", content: Any = None) -> Path:
    path = directory / name
    path.write_text(json.dumps(content if content is not None else {"buildType": "https://example/b@v1"}))
    return path


def push_image(registry: RegistryHandle, tmp_path: Path, repo: str) -> str:
    layout = tmp_path / f"layout-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"sigscope/attest/{repo}")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return layout_digest(layout, "v1")


def att_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".att"


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def check(entry: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in entry["checks"] if c["name"] == name)
    return found


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(private key, its public key, another public key)."""
    private, public = make_key(tmp_path / "keys", "ours")
    _, other = make_key(tmp_path / "keys", "other")
    return private, public, other


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "layout"
    return path, build_layout(path, "v1", seed=f"sigscope/attest/{tmp_path.name}")


@pytest.fixture
def referrers_proxy(registry: RegistryHandle) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry.url, referrers_api=True) as proxy:
        yield proxy


# ---------------------------------------------------------------- bytes, without a registry


def test_statement_bytes_match_cosigns_vector() -> None:
    """cosign's own `custom` attestation payload is rebuilt byte for byte from its parts."""
    envelope = dsse.parse_envelope(vector("sigstore-cosign/pkg/policy/testdata/valid/custom").read_bytes())
    statement = json.loads(envelope.payload)
    [subject] = statement["subject"]
    rebuilt = dsse.build_statement(
        [(subject["name"], subject["digest"])], statement["predicateType"], statement["predicate"]
    )
    assert rebuilt == envelope.payload
    assert predicate_type_for("custom") == statement["predicateType"]
    # the malformed twin's predicateType is not a URI: cosign's policy conversion rejects it, as we do
    bad = dsse.parse_envelope(vector("sigstore-cosign/pkg/policy/testdata/malformed/custom").read_bytes())
    with pytest.raises(UsageError, match="predicate type URI"):
        predicate_type_for(json.loads(bad.payload)["predicateType"])


def test_predicate_types_and_files() -> None:
    assert predicate_type_for("slsaprovenance") == "https://slsa.dev/provenance/v0.2"
    assert predicate_type_for("slsaprovenance1") == SLSA1
    assert predicate_type_for("spdxjson") == "https://spdx.dev/Document"
    assert predicate_type_for("openvex") == "https://openvex.dev/ns"
    assert predicate_type_for("https://example.com/p/v1") == "https://example.com/p/v1"
    for bad in ("nonsense", "example.com/no-scheme", "https://x/with space"):
        with pytest.raises(UsageError):
            predicate_type_for(bad)
    assert build_predicate("custom", b"hello <world>", NOW) == {
        "Data": "hello <world>",
        "Timestamp": "2026-01-02T03:04:05Z",
    }
    assert build_predicate("spdx", b"SPDXVersion: SPDX-2.3\n", NOW) == "SPDXVersion: SPDX-2.3\n"
    assert build_predicate("vuln", b'{"scanner": {}}', NOW) == {"scanner": {}}
    for data, match in ((b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"\xff", "UTF-8")):
        with pytest.raises(UsageError, match=match):
            build_predicate("slsaprovenance1", data, NOW)


def test_envelope_and_bundles_parse_back() -> None:
    key = generate()
    signer = FileSigner(key)
    digest = "sha256:" + "ab" * 32
    statement = dsse.build_statement(
        [("r/x", {"sha256": "ab" * 32})], SLSA1, {"b": 1, "a": [{"z": 0, "y": 1}]}
    )
    assert statement.startswith(b'{"_type":"https://in-toto.io/Statement/v0.1","predicateType":')
    assert b'"predicate":{"a":[{"y":1,"z":0}],"b":1}' in statement
    envelope = dsse.build_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement, signer.sign)
    assert dsse.parse_envelope(envelope.go_json()) == envelope

    dsse_blob = bundle.build_dsse_bundle(envelope, key.public_key())
    document = json.loads(dsse_blob)
    assert document["mediaType"] == BUNDLE_V03
    assert document["verificationMaterial"] == {
        "publicKey": {"hint": bundle.public_key_hint(key.public_key())}
    }
    parsed = bundle.parse_bundle(dsse_blob, subject_digest=digest, location="t", now=NOW)
    assert parsed.error is None and parsed.claims["predicateType"] == SLSA1
    assert apply_keys(parsed, [key.public_key()]).status is Status.VERIFIED
    assert (
        apply_keys(
            bundle.parse_bundle(dsse_blob, subject_digest=digest, location="t", now=NOW),
            [generate().public_key()],
        ).status
        is Status.UNTRUSTED
    )

    manifest = b'{"schemaVersion":2}'
    message_blob = bundle.build_message_bundle(
        signer.sign(manifest), "sha256:" + hashlib.sha256(manifest).hexdigest(), key.public_key()
    )
    sig = bundle.parse_bundle(
        message_blob, subject_digest="sha256:" + hashlib.sha256(manifest).hexdigest(), location="t", now=NOW
    )
    assert sig.claims["content"] == "message-signature"
    assert apply_keys(sig, [key.public_key()]).status is Status.VERIFIED
    # the same bundle found on another image names the wrong digest
    elsewhere = bundle.parse_bundle(message_blob, subject_digest=digest, location="t", now=NOW)
    assert apply_keys(elsewhere, [key.public_key()]).status is Status.INVALID

    referrer = json.loads(
        bundle.referrer_manifest(
            message_blob,
            "application/vnd.oci.image.manifest.v1+json",
            digest,
            123,
            bundle.referrer_annotations("message-signature", NOW),
        )
    )
    assert list(referrer) == [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "annotations",
        "subject",
        "artifactType",
    ]
    assert (
        referrer["config"]["digest"]
        == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert referrer["annotations"] == {
        "dev.sigstore.bundle.content": "message-signature",
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
    }


# ---------------------------------------------------------------- interop: ../shared/vectors


def test_vector_key_signed_dsse_bundle() -> None:
    """sigstore-go's npm publish attestation: a managed-key DSSE bundle, verified with publish_key.pub."""
    blob = vector("sigstore-sigstore-go/examples/bundle-publish.json").read_bytes()
    key = load_public_key(vector("sigstore-sigstore-go/examples/publish_key.pub").read_bytes())
    statement = json.loads(base64.b64decode(json.loads(blob)["dsseEnvelope"]["payload"]))
    subject = "sha512:" + statement["subject"][0]["digest"]["sha512"]
    sig = bundle.parse_bundle(blob, subject_digest=subject, location="vector", now=NOW)
    verdict = verify_attestations("npm", subject, [sig], [key])
    assert verdict.verified, [c.to_json() for c in verdict.attestations[0].checks]
    assert verdict.to_json()["statements"][0]["predicateType"].startswith(
        "https://github.com/npm/attestation"
    )

    other = verify_attestations("npm", subject, [sig], [generate().public_key()])
    assert not other.verified and other.attestations[0].reason.startswith("dsse-signature")
    moved = bundle.parse_bundle(blob, subject_digest="sha512:" + "0" * 128, location="vector", now=NOW)
    [judged] = verify_attestations("npm", "sha512:" + "0" * 128, [moved], [key]).attestations
    assert not judged.satisfied and "attestation subject mismatch" in judged.reason


def test_vector_cosign_oci_attestation_bundle() -> None:
    """cosign's oci-attestation bundle holds for its image digest under its certificate's key, and fails
    when attached to a different image (verify_oci_test.go)."""
    blob = vector("sigstore-cosign/pkg/cosign/testdata/oci-attestation.sigstore.json").read_bytes()
    raw = base64.b64decode(json.loads(blob)["verificationMaterial"]["certificate"]["rawBytes"])
    key = x509.load_der_x509_certificate(raw).public_key()
    statement = json.loads(base64.b64decode(json.loads(blob)["dsseEnvelope"]["payload"]))
    digest = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    assert digest.startswith("sha256:732112270d7e")
    sig = bundle.parse_bundle(blob, subject_digest=digest, location="vector", now=NOW)
    verdict = verify_attestations("img", digest, [sig], [key], CUSTOM_PREDICATE)
    assert verdict.verified, [c.to_json() for c in verdict.attestations[0].checks]
    wrong_type = verify_attestations("img", digest, [sig], [key], SLSA1)
    assert not wrong_type.verified and wrong_type.attestations[0].reason.startswith("predicate-type")
    other = "sha256:" + "1" * 64
    moved = bundle.parse_bundle(blob, subject_digest=other, location="vector", now=NOW)
    [judged] = verify_attestations("img", other, [moved], [key]).attestations
    assert not judged.satisfied and "attestation subject mismatch" in judged.reason


def test_vector_key_signed_message_bundle() -> None:
    """sigstore-go's public-key-validity bundle (messageSignature, publicKey hint) counts as a signature
    for `verify --key`, and only under its key."""
    blob = vector(
        "sigstore-sigstore-go/pkg/testing/data/bundles/public-key-validity.sigstore.json"
    ).read_bytes()
    key = load_public_key(
        vector("sigstore-sigstore-go/pkg/testing/data/public-keys/public-key-validity.pem").read_bytes()
    )
    digest = (
        "sha256:" + base64.b64decode(json.loads(blob)["messageSignature"]["messageDigest"]["digest"]).hex()
    )
    good = apply_keys(bundle.parse_bundle(blob, subject_digest=digest, location="v", now=NOW), [key])
    verdict = verify("oci:/x", digest, [good], Policy())
    assert verdict.verified, [j.to_json() for j in verdict.signatures]
    bad = apply_keys(
        bundle.parse_bundle(blob, subject_digest=digest, location="v", now=NOW), [generate().public_key()]
    )
    assert not verify("oci:/x", digest, [bad], Policy()).verified
    assert not verify("oci:/x", digest, [good], Policy(exact_reference=True)).verified


# ---------------------------------------------------------------- legacy .att against the registry


def test_legacy_round_trip_append_and_replace(
    registry: RegistryHandle, tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    private, public, other = keys
    repo = "attest/legacy"
    digest = push_image(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}:1.0"
    provenance = predicate_file(tmp_path)
    vex = predicate_file(
        tmp_path, "vex.json", {"@context": "https://openvex.dev/ns/v0.2.0", "statements": []}
    )

    first = attest_ok(image, private, provenance, "--type", "slsaprovenance1")
    assert first["digest"] == digest and first["attestationTag"] == att_tag(digest) and first["layers"] == 1
    manifest = fetch_manifest(registry.host, repo, att_tag(digest))
    assert manifest is not None
    [layer] = manifest["layers"]
    assert list(layer) == ["mediaType", "size", "digest", "annotations"]
    assert layer["mediaType"] == DSSE
    assert layer["annotations"] == {"dev.cosignproject.cosign/signature": "", "predicateType": SLSA1}
    blob = fetch_blob(registry.host, repo, layer["digest"])
    assert blob.startswith(b'{"payloadType":"application/vnd.in-toto+json","payload":"')
    statement = json.loads(dsse.parse_envelope(blob).payload)
    assert statement["subject"] == [{"name": f"{registry.host}/{repo}", "digest": {"sha256": digest[7:]}}]
    assert statement["predicate"] == {"buildType": "https://example/b@v1"}

    # append, never drop: another type, then the same type again
    attest_ok(image, private, vex, "--type", "openvex")
    attest_ok(image, private, provenance, "--type", "slsaprovenance1")
    after = fetch_manifest(registry.host, repo, att_tag(digest))
    assert after is not None and len(after["layers"]) == 3 and after["layers"][0] == layer
    assert after["config"]["size"] == 451  # ggcr's config for three layers

    code, data = verify_att_json(image, "--key", str(public))
    assert code == 0 and len(data["statements"]) == 3 and data["digest"] == digest
    assert {c["name"] for c in data["attestations"][0]["checks"]} >= {
        "dsse-signature",
        "payload-type",
        "statement",
        "subject-digest",
        "predicate-type",
    }
    code, data = verify_att_json(image, "--key", str(public), "--type", "openvex")
    assert code == 0 and [s["predicateType"] for s in data["statements"]] == ["https://openvex.dev/ns"]

    # --replace drops only the two provenance layers and keeps the VEX one
    replaced = attest_ok(image, private, provenance, "--type", "slsaprovenance1", "--replace")
    assert replaced["replaced"] == 2 and replaced["layers"] == 2
    final = fetch_manifest(registry.host, repo, att_tag(digest))
    assert final is not None
    assert [x["annotations"]["predicateType"] for x in final["layers"]] == ["https://openvex.dev/ns", SLSA1]
    assert final["layers"][0] == after["layers"][1]

    # negatives: wrong key, wrong predicate type
    wrong = verify_att(image, "--key", str(other))
    assert wrong.returncode == 1 and "dsse-signature" in wrong.stdout and wrong.stderr == ""
    code, data = verify_att_json(image, "--key", str(public), "--type", "spdxjson")
    assert code == 1 and data["statements"] == []
    assert {check(a, "predicate-type")["outcome"] for a in data["attestations"]} == {"failed"}

    # the scan reads what we wrote as cosign attestations
    scan = run(
        "scan", "registry", registry.host, "--insecure", "--repo", repo, "--key", str(public), "-o", "json"
    )
    assert scan.returncode == 0, scan.stderr
    entries = json.loads(scan.stdout)["registry"]["signatures"]
    assert {(e["format"], e["status"]) for e in entries} == {("cosign-attestation", "verified")}


def test_no_attestations_and_usage_errors(
    registry: RegistryHandle, tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    private, public, _ = keys
    image = f"{registry.host}/demo/alpine:1.0"
    none = verify_att(image, "--key", str(public))
    assert none.returncode == 1 and none.stdout.count("no attestations found") == 1 and none.stderr == ""
    code, data = verify_att_json(image, "--key", str(public))
    assert code == 1 and data["attestations"] == [] and data["verified"] is False

    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    assert_clean_failure(attest(image, private, bad_json, "--type", "slsaprovenance1"), "not valid JSON")
    assert_clean_failure(attest(image, private, tmp_path / "missing.json"), "cannot read predicate")
    assert_clean_failure(attest(image, private, bad_json, "--type", "not-a-type"), "predicate type URI")
    good = predicate_file(tmp_path)
    assert_clean_failure(
        attest(image, private, good, "--registry-referrers-mode", "oci-1-1", "--replace"), "--replace"
    )
    assert_clean_failure(attest(image, private, good, "--type", "custom", password="wrong"), "wrong password")
    assert_clean_failure(verify_att(image, "--key", str(tmp_path / "nokey.pub")), "nokey.pub: no such file")
    assert_clean_failure(verify_att(image, "--key", str(public), "--type", "x y"), "predicate type URI")
    assert verify_att(image).returncode == 2  # --key is required
    # nothing was written by the failed attempts
    assert fetch_manifest(registry.host, "demo/alpine", att_tag(registry.images["demo/alpine:1.0"])) is None
    assert (
        fetch_manifest(registry.host, "demo/alpine", fallback_tag(registry.images["demo/alpine:1.0"])) is None
    )


# ---------------------------------------------------------------- oci-1-1: bundle referrers


def test_oci_1_1_via_fallback_tag(
    registry: RegistryHandle, tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    """No referrers API (Debian's registry): referrers go into the sha256-<hex> index, entries kept."""
    private, public, other = keys
    repo = "attest/fallback"
    digest = push_image(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}:1.0"

    signed = run(
        "sign",
        image,
        "--insecure",
        "--key",
        str(private),
        "--registry-referrers-mode",
        "oci-1-1",
        "-o",
        "json",
    )
    assert signed.returncode == 0, signed.stderr
    [sign_result] = json.loads(signed.stdout)["signed"]
    assert sign_result["mode"] == "oci-1-1"
    attested = attest_ok(
        image,
        private,
        predicate_file(tmp_path),
        "--type",
        "slsaprovenance1",
        "--registry-referrers-mode",
        "oci-1-1",
    )

    index = fetch_manifest(registry.host, repo, fallback_tag(digest))
    assert index is not None and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    entries = {m["digest"]: m for m in index["manifests"]}
    assert list(entries) == [sign_result["referrer"], attested["manifest"]]  # the first entry survived
    assert entries[attested["manifest"]]["artifactType"] == BUNDLE_V03
    assert entries[attested["manifest"]]["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA1
    # the signature referrer carries cosign v3 sign's annotations: a DSSE bundle of the cosign/sign/v1 type
    signature_annotations = entries[sign_result["referrer"]]["annotations"]
    assert signature_annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert signature_annotations["dev.sigstore.bundle.predicateType"] == bundle.COSIGN_SIGN_PREDICATE
    assert entries[sign_result["referrer"]]["artifactType"] == BUNDLE_V03

    referrer = fetch_manifest(registry.host, repo, attested["manifest"])
    assert referrer is not None
    subject_bytes = fetch_manifest(registry.host, repo, digest)
    assert referrer["artifactType"] == BUNDLE_V03
    assert referrer["subject"]["digest"] == digest and referrer["subject"]["size"] > 0
    assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    [layer] = referrer["layers"]
    assert layer["mediaType"] == BUNDLE_V03
    assert set(referrer["annotations"]) == {
        "dev.sigstore.bundle.content",
        "dev.sigstore.bundle.predicateType",
        "org.opencontainers.image.created",
    }
    document = json.loads(fetch_blob(registry.host, repo, layer["digest"]))
    assert set(document) == {"mediaType", "verificationMaterial", "dsseEnvelope"}
    assert "hint" in document["verificationMaterial"]["publicKey"]
    assert subject_bytes is not None

    # our own scan finds and parses both; verify and verify-attestation accept them under our key only
    scan = run(
        "scan", "registry", registry.host, "--insecure", "--repo", repo, "--key", str(public), "-o", "json"
    )
    assert scan.returncode == 0, scan.stderr
    found = json.loads(scan.stdout)["registry"]["signatures"]
    assert sorted((e["format"], e["status"]) for e in found) == [("sigstore-bundle", "verified")] * 2

    code, data = verify_att_json(image, "--key", str(public), "--type", "slsaprovenance1")
    assert code == 0 and data["statements"][0]["subject"][0]["digest"] == {"sha256": digest[7:]}
    assert verify_att(image, "--key", str(other)).returncode == 1
    verified = run("verify", image, "--insecure", "--key", str(public), "-o", "json", password=None)
    assert verified.returncode == 0, verified.stderr
    [judged] = json.loads(verified.stdout)["signatures"]
    assert judged["format"] == "sigstore-bundle" and judged["satisfied"] is True
    refused = run("verify", image, "--insecure", "--key", str(other), password=None)
    assert refused.returncode == 1 and "wrong key" in refused.stdout
    exact = run("verify", image, "--insecure", "--key", str(public), "--exact-reference", password=None)
    assert exact.returncode == 1 and "reference mismatch" in exact.stdout
    claims = run("verify", image, "--insecure", "--key", str(public), "-a", "env=prod", password=None)
    assert claims.returncode == 1 and "annotation mismatch" in claims.stdout and claims.stderr == ""


def test_oci_1_1_via_referrers_api(
    registry: RegistryHandle, referrers_proxy: RegistryProxy, tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    """With the referrers API the registry indexes the referrer itself: no fallback tag is written."""
    private, public, _ = keys
    repo = "attest/api"
    digest = push_image(registry, tmp_path, repo)
    image = f"{referrers_proxy.host}/{repo}:1.0"
    signed = run("sign", image, "--insecure", "--key", str(private), "--registry-referrers-mode", "oci-1-1")
    assert signed.returncode == 0, signed.stderr
    attested = attest_ok(image, private, predicate_file(tmp_path), "--registry-referrers-mode", "oci-1-1")
    assert fetch_manifest(registry.host, repo, fallback_tag(digest)) is None

    code, data = verify_att_json(image, "--key", str(public), "--type", "custom")
    assert code == 0
    [judged] = data["attestations"]
    assert judged["location"] == f"referrer {attested['manifest']}"
    assert data["statements"][0]["predicate"]["Data"] == json.dumps({"buildType": "https://example/b@v1"})
    verified = run("verify", image, "--insecure", "--key", str(public), password=None)
    assert verified.returncode == 0, verified.stderr
    # both were listed through the referrers API, not read from a tag
    assert any("/referrers/" in path for _, path in referrers_proxy.requests)


def test_sign_oci_1_1_signs_with_any_key_type(registry: RegistryHandle, tmp_path: Path) -> None:
    """The DSSE PAE is signed as the key signs anything (no digest to match): Ed25519 and RSA keys sign in
    oci-1-1 mode, and only their own public key verifies."""
    publics = []
    for name, kind in (("ed", "ed25519"), ("rsa", "rsa-3072")):
        private, public = make_key(tmp_path / "keys", name, kind)
        publics.append(public)
        repo = f"attest/{name}"
        push_image(registry, tmp_path, repo)
        target = f"{registry.host}/{repo}:1.0"
        ok = run("sign", target, "--insecure", "--key", str(private), "--registry-referrers-mode", "oci-1-1")
        assert ok.returncode == 0, ok.stderr
        assert run("verify", target, "--insecure", "--key", str(public), password=None).returncode == 0
    # the RSA-signed image under the Ed25519 key
    assert run("verify", target, "--insecure", "--key", str(publics[0]), password=None).returncode == 1


# ---------------------------------------------------------------- OCI layouts and forged attestations


def test_layout_round_trip_both_modes(
    layout: tuple[Path, str], tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    path, _ = layout
    private, public, other = keys
    image = f"oci:{path}:v1"
    predicate = predicate_file(tmp_path)
    attest_ok(image, private, predicate, "--type", "slsaprovenance1")
    attest_ok(image, private, predicate, "--type", "slsaprovenance1", "--registry-referrers-mode", "oci-1-1")
    signed = run("sign", image, "--key", str(private), "--registry-referrers-mode", "oci-1-1")
    assert signed.returncode == 0, signed.stderr

    code, data = verify_att_json(image, "--key", str(public), "--type", "slsaprovenance1")
    assert code == 0
    assert sorted(a["format"] for a in data["attestations"]) == ["cosign-attestation", "sigstore-bundle"]
    assert all(a["satisfied"] for a in data["attestations"])
    assert verify_att(image, "--key", str(other)).returncode == 1
    assert run("verify", image, "--key", str(public), password=None).returncode == 0
    # oci:DIR alone still means the image, not an attestation or referrer
    assert verify_att(f"oci:{path}", "--key", str(public)).returncode == 0
    scan = run("scan", "registry", f"oci:{path}", "--key", str(public), "-o", "json")
    assert scan.returncode == 0, scan.stderr
    assert {e["status"] for e in json.loads(scan.stdout)["registry"]["signatures"]} == {"verified"}


def _options(predicate_type: str = SLSA1) -> AttestOptions:
    return AttestOptions(predicate_type=predicate_type, predicate={"k": "v"}, now=NOW)


def test_tampered_payload_and_subject_mismatch(layout: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = layout
    key = generate()
    signer = FileSigner(key)
    _, public = write_key_pair(tmp_path / "k", key, PASSWORD)
    other_digest = "sha256:" + hashlib.sha256(b"another image").hexdigest()

    async def forge() -> None:
        repository = OCILayout(path)
        result = await attest_image(repository, "v1", "r/x", signer, _options())
        good = dsse.parse_envelope(result.envelope)
        # tampered: same signature, payload with one byte of the predicate changed
        tampered = dsse.Envelope(good.payload_type, good.payload.replace(b'"v"', b'"w"'), good.signatures)
        await _attest_legacy(repository, digest, tampered.go_json(), _options())
        # signed by the trusted key, but about another image
        statement = dsse.build_statement([("r/x", {"sha256": other_digest[7:]})], SLSA1, {"k": "v"})
        elsewhere = dsse.build_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement, signer.sign)
        await _attest_legacy(repository, digest, elsewhere.go_json(), _options())
        await push_bundle_referrer(
            repository,
            digest,
            bundle.build_dsse_bundle(elsewhere, key.public_key()),
            bundle.referrer_annotations("dsse-envelope", NOW, SLSA1),
        )
        # a non-in-toto payload, properly signed
        odd = dsse.build_envelope("text/plain", b"hello", signer.sign)
        await _attest_legacy(repository, digest, odd.go_json(), _options())

    asyncio.run(forge())
    image = f"oci:{path}:v1"
    code, data = verify_att_json(image, "--key", str(public))
    assert code == 0  # the first, untouched attestation holds
    by_location = {a["location"]: a for a in data["attestations"]}
    layer = f"{att_tag(digest)} layer"
    assert by_location[f"{layer} 1"]["satisfied"] is True
    assert check(by_location[f"{layer} 2"], "dsse-signature")["outcome"] == "failed"
    mismatch = check(by_location[f"{layer} 3"], "subject-digest")
    assert mismatch["outcome"] == "failed" and "attestation subject mismatch" in mismatch["detail"]
    assert check(by_location[f"{layer} 3"], "dsse-signature")["outcome"] == "passed"
    assert check(by_location[f"{layer} 4"], "payload-type")["outcome"] == "failed"
    [referrer] = [a for a in data["attestations"] if a["format"] == "sigstore-bundle"]
    assert not referrer["satisfied"] and "attestation subject mismatch" in referrer["reason"]

    # with only the forged ones left the image fails: a row per attestation and the reason on stdout
    async def drop_first() -> None:
        repository = OCILayout(path)
        manifest = await repository.get_manifest(att_tag(digest))
        from sigscope.sign import assemble_manifest

        body, config, media_type = assemble_manifest(manifest.json(), manifest.json()["layers"][1:])
        await repository.put_blob(config)
        await repository.put_manifest(body, media_type, att_tag(digest))

    asyncio.run(drop_first())
    failed = verify_att(image, "--key", str(public))
    assert failed.returncode == 1
    assert failed.stderr == ""
    assert "Not verified: no attestation satisfies the checks (0 of 4 attestations)" in failed.stdout


def test_referrer_listed_for_another_image(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    """A bundle referrer of image B copied into image A's fallback index does not attest A."""
    private, public, _ = keys
    path = tmp_path / "two"
    digest_a = build_layout(path, "a", seed="sigscope/attest/two-a")
    digest_b = build_layout(path, "b", seed="sigscope/attest/two-b")
    attest_ok(f"oci:{path}:b", private, predicate_file(tmp_path), "--registry-referrers-mode", "oci-1-1")
    assert verify_att(f"oci:{path}:a", "--key", str(public)).returncode == 1

    async def copy_index() -> None:
        repository = OCILayout(path)
        index = await repository.get_manifest(fallback_tag(digest_b))
        await repository.put_manifest(index.raw, index.media_type, fallback_tag(digest_a))

    asyncio.run(copy_index())
    code, data = verify_att_json(f"oci:{path}:a", "--key", str(public))
    assert code == 1
    [judged] = data["attestations"]
    assert check(judged, "dsse-signature")["outcome"] == "passed"
    assert check(judged, "subject")["outcome"] == "failed"
    assert check(judged, "subject-digest")["outcome"] == "failed"


def test_sign_oci_1_1_with_certificate(layout: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = layout
    key = generate()
    private, public = write_key_pair(tmp_path / "cert-key", key, PASSWORD)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "sigscope attest test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    signed = run(
        "sign", f"oci:{path}:v1", "--key", str(private), "--registry-referrers-mode", "oci-1-1",
        "--certificate", str(cert_path), "-a", "env=prod", "-o", "json",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    referrer = json.loads(signed.stdout)["signed"][0]["referrer"]

    async def read_bundle() -> dict[str, Any]:
        repository = OCILayout(path)
        manifest = await repository.get_manifest(referrer)
        document: dict[str, Any] = json.loads(await repository.get_blob(manifest.layers()[0].digest))
        return document

    document = asyncio.run(read_bundle())
    raw = base64.b64decode(document["verificationMaterial"]["certificate"]["rawBytes"])
    assert x509.load_der_x509_certificate(raw) == cert
    assert set(document) == {"mediaType", "verificationMaterial", "dsseEnvelope"}
    envelope = document["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == bundle.COSIGN_SIGN_PREDICATE
    assert statement["subject"] == [{"digest": {"sha256": digest[7:]}, "annotations": {"env": "prod"}}]
    verified = run(
        "verify", f"oci:{path}:v1", "--key", str(public), "-a", "env=prod", "-o", "json", password=None
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["signatures"][0]["signer"]["certificate"]["subject"] == (
        "CN=sigscope attest test"
    )
    mismatch = run("verify", f"oci:{path}:v1", "--key", str(public), "-a", "env=dev", password=None)
    assert mismatch.returncode == 1 and "annotation mismatch" in mismatch.stdout


def test_replace_trusts_the_signed_type_not_the_annotation(
    layout: tuple[Path, str], tmp_path: Path, keys: tuple[Path, Path, Path]
) -> None:
    path, digest = layout
    private, _, _ = keys
    signer = FileSigner(generate())
    vex = "https://openvex.dev/ns"

    async def lying_layer() -> None:
        statement = dsse.build_statement([("r/x", {"sha256": digest[7:]})], vex, {"statements": []})
        envelope = dsse.build_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement, signer.sign)
        await _attest_legacy(OCILayout(path), digest, envelope.go_json(), _options(SLSA1))

    asyncio.run(lying_layer())
    result = attest_ok(
        f"oci:{path}:v1", private, predicate_file(tmp_path), "--type", "slsaprovenance1", "--replace"
    )
    assert result["replaced"] == 0 and result["layers"] == 2
    again = attest_ok(
        f"oci:{path}:v1", private, predicate_file(tmp_path), "--type", "slsaprovenance1", "--replace"
    )
    assert again["replaced"] == 1 and again["layers"] == 2
