"""The signing bed is real: cosign-format signatures by skopeo 1.18, GPG simple signatures by stock skopeo
1.9.3, notation-go's vector signature behind the referrers fallback tag; each checked by the peers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from testbed import (
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIMPLESIGNING,
    NOTARY_SIGNATURE,
    OCI_INDEX,
    OCI_MANIFEST,
    GpgHome,
    SignedRegistry,
    cosign_sig_tag,
    fetch_blob,
    fetch_manifest,
    get_manifest,
    gpg_policy,
    lookaside_signatures,
    notation_layout,
    read_blob,
    referrers_tag,
    sha256_digest,
    sigstore_policy,
    skopeo_verify,
    stock_skopeo,
    vectors,
)
from testbed.notation_vectors import (
    COSE_MEDIA_TYPE,
    EMPTY_DIGEST,
    NOTATION_TESTDATA,
    THUMBPRINT_ANNOTATION,
    VECTOR_SUBJECT_DIGEST,
)

COSIGN_REFS = ["signed/cosign:1.0", "signed/cosign2:1.0", "signed/multi:1.0"]


def _repo(ref: str) -> str:
    return ref.rpartition(":")[0]


def test_setup_time_is_reported(signed_registry: SignedRegistry) -> None:
    # visible with -rP / in failures; the fixture keeps a per-step breakdown
    print(f"signed_registry setup {signed_registry.setup_seconds}s {signed_registry.timings}")
    assert signed_registry.setup_seconds > 0
    assert set(signed_registry.images) >= {
        "signed/cosign:1.0",
        "signed/cosign2:1.0",
        "signed/gpg:1.0",
        "plain/unsigned:1.0",
        "signed/multi:1.0",
    }
    assert len(set(signed_registry.images.values())) == len(signed_registry.images)  # all distinct


@pytest.mark.parametrize("ref", COSIGN_REFS)
def test_cosign_sig_tag_has_one_layer_per_signature(signed_registry: SignedRegistry, ref: str) -> None:
    digest = signed_registry.images[ref]
    repo = _repo(ref)
    tags = get_manifest(signed_registry.url, repo, "1.0")
    assert tags.headers["Docker-Content-Digest"] == digest
    sig = fetch_manifest(signed_registry.host, repo, cosign_sig_tag(digest))
    assert sig is not None, f"{cosign_sig_tag(digest)} missing"
    assert sig["mediaType"] == OCI_MANIFEST
    layers = sig["layers"]
    assert len(layers) == len(signed_registry.cosign_signers[ref])
    for layer in layers:
        assert layer["mediaType"] == COSIGN_SIMPLESIGNING
        assert base64.b64decode(layer["annotations"][COSIGN_SIGNATURE_ANNOTATION])
        payload_bytes = fetch_blob(signed_registry.host, repo, layer["digest"])
        assert sha256_digest(payload_bytes) == layer["digest"]
        payload = json.loads(payload_bytes)
        critical = payload["critical"]
        assert critical["type"] == "cosign container image signature"
        assert critical["image"]["docker-manifest-digest"] == digest
        # containers/image signs the full reference it pushed to (with tag), unlike cosign (repository only)
        assert critical["identity"]["docker-reference"] == f"{signed_registry.host}/{ref}"
        assert payload["optional"]["creator"].startswith("containers/image ")


def test_unsigned_and_index_children_have_no_sig_tag(signed_registry: SignedRegistry) -> None:
    host = signed_registry.host
    assert (
        fetch_manifest(host, "plain/unsigned", cosign_sig_tag(signed_registry.images["plain/unsigned:1.0"]))
        is None
    )
    index = fetch_manifest(host, "signed/multi", "1.0")
    assert index is not None and index["mediaType"] == OCI_INDEX
    children = [m["digest"] for m in index["manifests"]]
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for child in children:
        assert fetch_manifest(host, "signed/multi", cosign_sig_tag(child)) is None


def test_cosign_signatures_verify_with_skopeo(signed_registry: SignedRegistry, tmp_path: Path) -> None:
    """skopeo 1.18 ``sigstoreSigned`` policy: signed images pass, the unsigned one and wrong keys fail."""
    sr = signed_registry
    key0, key1 = sr.cosign_public_keys[:2]
    ok = skopeo_verify(
        sr.skopeo13, sigstore_policy([key0]), sr.registries_d, f"{sr.host}/signed/cosign:1.0", tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    for key in (key0, key1):  # each of the two signatures verifies on its own
        ok = skopeo_verify(
            sr.skopeo13, sigstore_policy([key]), sr.registries_d, f"{sr.host}/signed/cosign2:1.0", tmp_path
        )
        assert ok.returncode == 0, ok.stderr
    ok = skopeo_verify(
        sr.skopeo13,
        sigstore_policy([key0]),
        sr.registries_d,
        f"{sr.host}/signed/multi:1.0",
        tmp_path,
        index_only=True,
    )
    assert ok.returncode == 0, ok.stderr

    bad = skopeo_verify(
        sr.skopeo13, sigstore_policy([key0]), sr.registries_d, f"{sr.host}/plain/unsigned:1.0", tmp_path
    )
    assert bad.returncode != 0
    assert "no signature exists" in bad.stderr
    wrong_key = skopeo_verify(
        sr.skopeo13, sigstore_policy([key1]), sr.registries_d, f"{sr.host}/signed/cosign:1.0", tmp_path
    )
    assert wrong_key.returncode != 0
    # the index children are unsigned: copying the platform image from the list is rejected
    child = skopeo_verify(
        sr.skopeo13, sigstore_policy([key0]), sr.registries_d, f"{sr.host}/signed/multi:1.0", tmp_path
    )
    assert child.returncode != 0


def test_gpg_signature_in_lookaside(signed_registry: SignedRegistry, gpg_home: GpgHome) -> None:
    digest = signed_registry.images["signed/gpg:1.0"]
    sigs = lookaside_signatures(signed_registry.lookaside_dir, "signed/gpg", digest)
    assert [p.name for p in sigs] == ["signature-1"]
    assert sigs[0].parent.name == f"gpg@{digest.replace(':', '=')}"
    status = gpg_home.verify(sigs[0])
    assert f"VALIDSIG {gpg_home.fingerprint}" in status
    assert sigs[0].read_bytes()[:1] in {
        b"\xa3",
        b"\x90",
        b"\xc4",
        b"\xa0",
        b"\xa1",
        b"\xa2",
    }  # signed message
    payload = json.loads(gpg_home.decrypt(sigs[0]))
    assert payload["critical"]["type"] == "atomic container signature"
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
    assert payload["critical"]["identity"]["docker-reference"] == f"{signed_registry.host}/signed/gpg:1.0"
    assert len(gpg_home.key_id) == 16 and gpg_home.fingerprint.endswith(gpg_home.key_id)


def test_gpg_signature_verifies_with_stock_skopeo(signed_registry: SignedRegistry, tmp_path: Path) -> None:
    sr = signed_registry
    policy = gpg_policy(sr.gpg_public_key)
    skopeo = stock_skopeo()
    ok = skopeo_verify(skopeo, policy, sr.registries_d, f"{sr.host}/signed/gpg:1.0", tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = skopeo_verify(skopeo, policy, sr.registries_d, f"{sr.host}/plain/unsigned:1.0", tmp_path)
    assert bad.returncode != 0 and "no signature exists" in bad.stderr
    # a cosign-signed image carries no GPG signature
    assert (
        skopeo_verify(skopeo, policy, sr.registries_d, f"{sr.host}/signed/cosign:1.0", tmp_path).returncode
        != 0
    )


def test_notation_signature_reachable_through_fallback_tag(signed_registry: SignedRegistry) -> None:
    sr = signed_registry
    push = sr.notation
    if push is None:
        vectors.unavailable(f"signed/notation:1.0 not pushed: {sr.notation_skipped}")
    subject_digest, sig_digest = push
    assert subject_digest == VECTOR_SUBJECT_DIGEST == sr.images["signed/notation:1.0"]
    # distribution 2.8 refuses the vector subject (its layer blob is not in the vectors)
    assert push.subject_method in {"api", "storage"}
    if push.subject_method == "storage":
        assert "MANIFEST_BLOB_UNKNOWN" in push.subject_put_response
    subject = get_manifest(sr.url, "signed/notation", "1.0")
    assert subject.status_code == 200 and subject.headers["Docker-Content-Digest"] == subject_digest
    # no referrers API on distribution 2.8 → the client falls back to the tag schema
    index = get_manifest(sr.url, "signed/notation", referrers_tag(subject_digest))
    assert index.status_code == 200
    assert index.headers["Content-Type"] == OCI_INDEX
    entries = index.json()["manifests"]
    assert [e["digest"] for e in entries] == [sig_digest]
    assert entries[0]["artifactType"] == NOTARY_SIGNATURE
    assert THUMBPRINT_ANNOTATION in entries[0]["annotations"]
    sig = get_manifest(sr.url, "signed/notation", sig_digest)
    assert sig.status_code == 200 and sha256_digest(sig.content) == sig_digest
    manifest = sig.json()
    assert manifest["artifactType"] == NOTARY_SIGNATURE
    assert manifest["subject"] == {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": 481}
    assert manifest["config"]["digest"] == EMPTY_DIGEST
    assert fetch_blob(sr.host, "signed/notation", EMPTY_DIGEST) == b"{}"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == COSE_MEDIA_TYPE
    envelope = fetch_blob(sr.host, "signed/notation", layer["digest"])
    assert envelope == (NOTATION_TESTDATA / "cose_signature.sig").read_bytes()
    assert entries[0]["annotations"] == manifest["annotations"]


@pytest.mark.vectors
def test_notation_layout_uses_referrers_tag(tmp_path: Path) -> None:
    layout, subject, sig_digest = notation_layout(tmp_path / "layout", formats=("cose", "jws"))
    assert subject == VECTOR_SUBJECT_DIGEST
    top = json.loads((layout / "index.json").read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}
    assert set(by_tag) == {"v2", referrers_tag(subject)}
    index = json.loads(read_blob(layout, by_tag[referrers_tag(subject)]["digest"]))
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"][0]["digest"] == sig_digest
    media_types = []
    for entry in index["manifests"]:
        manifest = json.loads(read_blob(layout, entry["digest"]))
        assert manifest["subject"]["digest"] == subject
        thumbprints = json.loads(manifest["annotations"][THUMBPRINT_ANNOTATION])
        assert len(thumbprints) == 1 and len(thumbprints[0]) == 64
        media_types.append(manifest["layers"][0]["mediaType"])
        assert read_blob(layout, manifest["layers"][0]["digest"])  # envelope blob present
    assert media_types == ["application/cose", "application/jose+json"]
    assert read_blob(layout, EMPTY_DIGEST) == b"{}"
