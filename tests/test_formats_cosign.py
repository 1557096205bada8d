"""Legacy cosign `.sig`/`.att` layers, from signatures captured by connaisseur and cosign's test data."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from testbed import vectors

from sigscope.formats import cosign, dsse
from sigscope.model import Check, Descriptor, Outcome, Signature, SignatureFormat, Status
from sigscope.trust import certs

VECTORS = vectors.ROOT
CONNAISSEUR = VECTORS / "sse-secure-systems-connaisseur" / "test" / "testdata" / "cosign"
TESTIMAGE = CONNAISSEUR / "securesystemsengineering" / "testimage"
COSIGN = VECTORS / "sigstore-cosign"
SIGSTORE_PYTHON = VECTORS / "sigstore-sigstore-python" / "test" / "assets"

pytestmark = pytest.mark.vectors

# After every certificate in these vectors expired: expiry is reported, never a reason for a check to fail.
NOW = datetime(2026, 1, 1, tzinfo=UTC)

ALICE_DIGEST = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81"
ABC_DIGEST = "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533"
KEYLESS_DIGEST = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"


def image_digest(name: str) -> str:
    """The digest a `.sig` tag names is the sha256 of the image manifest bytes as captured."""
    return "sha256:" + hashlib.sha256((TESTIMAGE / "manifests" / f"{name}.json").read_bytes()).hexdigest()


def layers(digest: str) -> list[tuple[Descriptor, bytes]]:
    tag = cosign.attachment_tag(digest, "sig")
    manifest = json.loads((TESTIMAGE / "manifests" / f"{tag}.json").read_text())
    out = []
    for raw in manifest["layers"]:
        layer = Descriptor.from_json(raw)
        out.append((layer, (TESTIMAGE / "blobs" / f"{layer.digest}.json").read_bytes()))
    return out


def parse(layer: Descriptor, blob: bytes, subject: str) -> Signature:
    return cosign.parse_signature_layer(layer, blob, subject_digest=subject, location="test layer", now=NOW)


def with_annotations(layer: Descriptor, **changes: str | None) -> Descriptor:
    annotations = dict(layer.annotations)
    for key, value in changes.items():
        name = getattr(cosign, key)
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
    return Descriptor(layer.media_type, layer.digest, layer.size, annotations=annotations)


def check(sig: Signature, name: str) -> Check:
    found = [c for c in sig.checks if c.name == name]
    assert len(found) == 1, f"expected one {name!r} check, got {sig.checks}"
    return found[0]


def public_key(name: str) -> Any:
    return serialization.load_pem_public_key((CONNAISSEUR / f"{name}.key").read_bytes())


def other_certificate_pem() -> str:
    """A real Fulcio leaf from another vector set: well formed, wrong key."""
    return (SIGSTORE_PYTHON / "a.txt.crt").read_text()


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize("suffix", ["sig", "att", "sbom"])
def test_attachment_tag_round_trip(suffix: str) -> None:
    tag = cosign.attachment_tag(ALICE_DIGEST, suffix)
    assert tag == f"sha256-{ALICE_DIGEST.removeprefix('sha256:')}.{suffix}"
    assert cosign.parse_attachment_tag(tag) == (ALICE_DIGEST, suffix)


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "sha256-" + "a" * 64,  # the referrers fallback tag, not a cosign attachment
        "sha256-" + "a" * 63 + ".sig",
        "sha256-" + "A" * 64 + ".sig",
        "sha256-" + "a" * 64 + ".sign",
        "sha512-" + "a" * 64 + ".sig",
        "md5-" + "a" * 32 + ".sig",
    ],
)
def test_parse_attachment_tag_rejects(tag: str) -> None:
    assert cosign.parse_attachment_tag(tag) is None


def test_attachment_tag_refuses_non_digest() -> None:
    with pytest.raises(ValueError, match="not a digest"):
        cosign.attachment_tag("latest", "sig")


# ---------------------------------------------------------------- key-only signatures


def test_capture_digests_match_tag_names() -> None:
    assert image_digest("multi-cosigned-alice") == ALICE_DIGEST
    assert image_digest("multi-cosigned-alice-bob-charlie") == ABC_DIGEST
    assert image_digest("keyless") == KEYLESS_DIGEST


def test_alice_single_key_only_signature() -> None:
    found = layers(ALICE_DIGEST)
    assert len(found) == 1
    sig = parse(*found[0], ALICE_DIGEST)

    assert sig.format is SignatureFormat.COSIGN
    assert sig.status is Status.UNVERIFIED
    assert sig.error is None
    assert sig.signer is None
    assert sig.claims["keyOnly"] is True
    assert sig.claims["docker-reference"] == "index.docker.io/securesystemsengineering/testimage"
    assert sig.claims["type"] == "cosign container image signature"
    assert sig.signed_digest == ALICE_DIGEST
    assert check(sig, "payload").outcome is Outcome.PASSED
    assert check(sig, "payload-digest").outcome is Outcome.PASSED
    signature = check(sig, "signature")
    assert signature.outcome is Outcome.SKIPPED
    assert signature.detail == "key-only signature: verify with --key"
    # The evidence is exactly what a later --key verification needs: alice's key verifies it, bob's does not.
    assert certs.verify_with_key(public_key("alice"), sig.evidence["signature"], sig.evidence["payload"])
    assert not certs.verify_with_key(public_key("bob"), sig.evidence["signature"], sig.evidence["payload"])


def test_alice_signature_on_another_image_is_invalid() -> None:
    sig = parse(*layers(ALICE_DIGEST)[0], ABC_DIGEST)
    digest_check = check(sig, "payload-digest")
    assert digest_check.outcome is Outcome.FAILED
    assert ALICE_DIGEST in digest_check.detail and ABC_DIGEST in digest_check.detail
    assert sig.status is Status.INVALID
    assert sig.reason.startswith("payload-digest: payload signs " + ALICE_DIGEST)


def test_alice_bob_charlie_three_signers() -> None:
    found = layers(ABC_DIGEST)
    assert len(found) == 3
    signatures = [parse(layer, blob, ABC_DIGEST) for layer, blob in found]
    keys = {name: public_key(name) for name in ("alice", "bob", "charlie", "default")}
    signers = []
    for sig in signatures:
        assert sig.status is Status.UNVERIFIED
        assert check(sig, "payload-digest").outcome is Outcome.PASSED
        matching = [
            name
            for name, key in keys.items()
            if certs.verify_with_key(key, sig.evidence["signature"], sig.evidence["payload"])
        ]
        signers.append(matching)
    assert signers == [["alice"], ["bob"], ["charlie"]]


def test_empty_signature_annotation_is_invalid() -> None:
    layer, blob = layers(ALICE_DIGEST)[0]
    sig = parse(with_annotations(layer, SIGNATURE_ANNOTATION=""), blob, ALICE_DIGEST)
    assert sig.status is Status.INVALID
    assert sig.error == "the dev.cosignproject.cosign/signature annotation is empty"
    missing = parse(with_annotations(layer, SIGNATURE_ANNOTATION=None), blob, ALICE_DIGEST)
    assert missing.error == "layer has no dev.cosignproject.cosign/signature annotation"


def test_atomic_payload_type_accepted_unknown_type_rejected() -> None:
    layer, blob = layers(ALICE_DIGEST)[0]
    atomic = blob.replace(b"cosign container image signature", b"atomic container signature")
    sig = parse(layer, atomic, ALICE_DIGEST)
    assert check(sig, "payload").outcome is Outcome.PASSED
    assert sig.claims["type"] == "atomic container signature"
    other = parse(layer, blob.replace(b"cosign container image signature", b"something else"), ALICE_DIGEST)
    assert check(other, "payload").outcome is Outcome.FAILED
    assert "'something else'" in check(other, "payload").detail
    assert other.status is Status.INVALID


# ---------------------------------------------------------------- keyless


def keyless() -> tuple[Descriptor, bytes]:
    found = layers(KEYLESS_DIGEST)
    assert len(found) == 1
    return found[0]


def test_keyless_signature_is_self_consistent() -> None:
    sig = parse(*keyless(), KEYLESS_DIGEST)

    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.signer is not None and sig.signer.certificate is not None
    leaf = sig.signer.certificate
    assert leaf.emails == ("philipp.belitz@securesystems.de",)
    assert leaf.oidc_issuer == "https://github.com/login/oauth"
    assert leaf.expired  # a ten-minute Fulcio certificate, long gone: reported, not judged here
    assert [c.subject for c in sig.signer.chain] == [
        "CN=sigstore-intermediate,O=sigstore.dev",
        "CN=sigstore,O=sigstore.dev",
    ]
    assert check(sig, "signature").detail == "verified over the payload with the certificate key"
    assert check(sig, "chain").outcome is Outcome.PASSED
    bundle = check(sig, "bundle")
    assert bundle.outcome is Outcome.PASSED
    assert "hashedrekord 0.0.1, logIndex 98235800" in bundle.detail
    assert "signature, certificate, sha256 digest" in bundle.detail
    assert "signed entry timestamp not verified" in bundle.detail
    assert sig.claims["rekorIntegratedTime"] == "2024-05-30T15:18:17+00:00"
    assert sig.claims["signingTimeSource"] == "rekor integratedTime (unverified)"
    assert sig.claims["logIndex"] == 98235800
    assert sig.signing_time == datetime(2024, 5, 30, 15, 18, 17, tzinfo=UTC)
    assert not sig.timestamped
    assert set(sig.evidence) == {"payload", "signature", "certificate", "chain", "bundle"}
    assert sig.evidence["certificate"].startswith(b"-----BEGIN CERTIFICATE-----")


def test_keyless_tampered_payload_is_invalid() -> None:
    layer, blob = keyless()
    tampered = blob.replace(b"rekor-test", b"rekor-tesT")
    assert tampered != blob
    sig = parse(layer, tampered, KEYLESS_DIGEST)
    assert sig.error is None  # still a well-formed payload: the checks, not the parser, catch it
    assert check(sig, "signature").outcome is Outcome.FAILED
    assert check(sig, "signature").detail == "does not verify over the payload with the certificate key"
    assert "the signed content hashes to" in check(sig, "bundle").detail
    assert sig.status is Status.INVALID


def test_keyless_swapped_certificate_is_invalid() -> None:
    layer, blob = keyless()
    sig = parse(with_annotations(layer, CERTIFICATE_ANNOTATION=other_certificate_pem()), blob, KEYLESS_DIGEST)
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.emails == ("william@yossarian.net",)
    assert check(sig, "signature").outcome is Outcome.FAILED
    assert "records a different certificate" in check(sig, "bundle").detail
    assert check(sig, "chain").outcome is Outcome.FAILED  # staging leaf under the production chain
    assert sig.status is Status.INVALID


def test_keyless_broken_chain_is_invalid() -> None:
    layer, blob = keyless()
    sig = parse(with_annotations(layer, CHAIN_ANNOTATION=other_certificate_pem()), blob, KEYLESS_DIGEST)
    chain = check(sig, "chain")
    assert chain.outcome is Outcome.FAILED
    assert "certificate 0" in chain.detail and "is not issued by certificate 1" in chain.detail
    assert check(sig, "signature").outcome is Outcome.PASSED
    assert sig.status is Status.INVALID


def test_keyless_without_certificate_uses_the_rekor_key() -> None:
    """A signature whose certificate annotation was dropped still names its signer through Rekor."""
    layer, blob = keyless()
    sig = parse(
        with_annotations(layer, CERTIFICATE_ANNOTATION=None, CHAIN_ANNOTATION=None), blob, KEYLESS_DIGEST
    )
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.emails == ("philipp.belitz@securesystems.de",)
    assert (
        check(sig, "signature").detail
        == "verified over the payload under the key recorded in the Rekor entry"
    )
    assert sig.status is Status.INTEGRITY_OK


def test_rekor_bundle_with_public_key_names_the_key() -> None:
    """Key-only signature logged in Rekor: a hashedrekord with a PEM key, as `cosign sign --key` logs."""
    layer, blob = layers(ALICE_DIGEST)[0]
    alice_pem = (CONNAISSEUR / "alice.key").read_bytes()
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(blob).hexdigest()}},
            "signature": {
                "content": layer.annotations[cosign.SIGNATURE_ANNOTATION],
                "publicKey": {"content": base64.b64encode(alice_pem).decode()},
            },
        },
    }
    rekor = {
        "SignedEntryTimestamp": "MEUCIQ==",
        "Payload": {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "integratedTime": 1700000000,
            "logIndex": 7,
            "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
        },
    }
    sig = parse(with_annotations(layer, BUNDLE_ANNOTATION=json.dumps(rekor)), blob, ALICE_DIGEST)
    assert sig.signer is not None and sig.signer.public_key is not None
    assert sig.signer.public_key.sha256 == certs.spki_sha256(public_key("alice"))
    assert (
        check(sig, "signature").detail
        == "verified over the payload under the key recorded in the Rekor entry"
    )
    assert check(sig, "bundle").outcome is Outcome.PASSED
    assert "keyOnly" not in sig.claims
    assert sig.claims["logIndex"] == 7
    assert sig.status is Status.INTEGRITY_OK


# ---------------------------------------------------------------- robustness


def test_truncated_and_random_payloads_never_raise() -> None:
    layer, blob = keyless()
    for end in range(0, len(blob), 7):
        sig = parse(layer, blob[:end], KEYLESS_DIGEST)
        assert sig.status is Status.INVALID
        assert sig.error and sig.error.startswith("payload is not valid JSON"), sig.error
    noise = random.Random(1234)
    for _ in range(20):
        sig = parse(layer, noise.randbytes(noise.randrange(0, 300)), KEYLESS_DIGEST)
        assert sig.status is Status.INVALID and sig.error


@pytest.mark.parametrize(
    "annotation",
    ["SIGNATURE_ANNOTATION", "CERTIFICATE_ANNOTATION", "CHAIN_ANNOTATION", "BUNDLE_ANNOTATION"],
)
def test_truncated_annotations_never_raise(annotation: str) -> None:
    layer, blob = keyless()
    text = layer.annotations[getattr(cosign, annotation)]
    for end in range(1, len(text), max(1, len(text) // 25)):
        cut = text[:end]
        if cut.rstrip().endswith("-----END CERTIFICATE-----"):
            continue  # a shorter but complete chain is legitimately fine
        sig = parse(with_annotations(layer, **{annotation: cut}), blob, KEYLESS_DIGEST)
        assert isinstance(sig, Signature)
        assert sig.status is Status.INVALID, (annotation, end, sig.checks)


def test_garbage_json_shapes_never_raise() -> None:
    layer, _ = layers(ALICE_DIGEST)[0]
    for body in [b"[]", b"null", b'{"critical": []}', b'{"critical": {"image": 5}}', b'"x"', b"{}"]:
        sig = parse(layer, body, ALICE_DIGEST)
        assert sig.status is Status.INVALID
        assert sig.error or sig.failed_checks


# ---------------------------------------------------------------- attestations


def attestation_layer(annotations: dict[str, str] | None = None) -> Descriptor:
    return Descriptor(cosign.DSSE_MEDIA_TYPE, "sha256:" + "0" * 64, 0, annotations=annotations or {})


def parse_att(blob: bytes, subject: str, annotations: dict[str, str] | None = None) -> Signature:
    return cosign.parse_attestation_layer(
        attestation_layer(annotations), blob, subject_digest=subject, location="att layer 1", now=NOW
    )


CUSTOM_SUBJECT = "sha256:6c6fd6a4115c6e998ff357cd914680931bb9a6c1a7cd5f5cb2f5e1c0932ab6ed"


def test_custom_attestation_body() -> None:
    blob = (COSIGN / "pkg" / "policy" / "testdata" / "valid" / "custom").read_bytes()
    sig = parse_att(blob, CUSTOM_SUBJECT, {cosign.SIGNATURE_ANNOTATION: ""})
    assert sig.format is SignatureFormat.COSIGN_ATTESTATION
    assert sig.claims["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"
    assert sig.claims["_type"] == "https://in-toto.io/Statement/v0.1"
    assert sig.claims["subjects"] == [
        {
            "name": "registry.local:5000/knative/demo",
            "digest": {"sha256": CUSTOM_SUBJECT.removeprefix("sha256:")},
        }
    ]
    assert sig.signed_digest == CUSTOM_SUBJECT
    assert check(sig, "dsse-subject").outcome is Outcome.PASSED
    assert check(sig, "signature").detail == "key-only signature: verify with --key"
    assert sig.claims["keyOnly"] is True
    assert sig.status is Status.UNVERIFIED
    assert sig.error is None


def test_custom_attestation_for_another_image() -> None:
    blob = (COSIGN / "pkg" / "policy" / "testdata" / "valid" / "custom").read_bytes()
    sig = parse_att(blob, ALICE_DIGEST)
    subject = check(sig, "dsse-subject")
    assert subject.outcome is Outcome.FAILED
    assert ALICE_DIGEST in subject.detail and "registry.local:5000/knative/demo" in subject.detail
    assert sig.signed_digest is None
    assert sig.status is Status.INVALID


def test_malformed_predicate_type_is_recorded_as_written() -> None:
    blob = (COSIGN / "pkg" / "policy" / "testdata" / "malformed" / "custom").read_bytes()
    sig = parse_att(blob, CUSTOM_SUBJECT)
    # Not a URI, which policy conversion rejects; the format layer reports what was signed.
    assert sig.claims["predicateType"] == "cosign.sigstore.dev/attestation/v1"


def test_predicate_type_annotation_must_match_statement() -> None:
    blob = (COSIGN / "pkg" / "policy" / "testdata" / "valid" / "custom").read_bytes()
    sig = parse_att(blob, CUSTOM_SUBJECT, {"predicateType": "https://slsa.dev/provenance/v1"})
    mismatch = check(sig, "predicate-type")
    assert mismatch.outcome is Outcome.FAILED
    assert "https://slsa.dev/provenance/v1" in mismatch.detail
    assert sig.status is Status.INVALID


def test_non_in_toto_payload_type_is_invalid() -> None:
    document = json.loads((COSIGN / "pkg" / "policy" / "testdata" / "valid" / "custom").read_text())
    document["payloadType"] = "text/plain"
    sig = parse_att(json.dumps(document).encode(), CUSTOM_SUBJECT)
    assert check(sig, "payload").outcome is Outcome.FAILED
    assert "'text/plain'" in check(sig, "payload").detail
    assert sig.status is Status.INVALID


def legacy_attestation_from_bundle() -> tuple[bytes, dict[str, str], str]:
    """The cosign bundle's DSSE attestation laid out as a legacy `.att` layer, as cosign v2 wrote them."""
    bundle = json.loads(
        (COSIGN / "pkg" / "cosign" / "testdata" / "oci-attestation.sigstore.json").read_text()
    )
    envelope = dsse.parse_envelope(bundle["dsseEnvelope"])
    material = bundle["verificationMaterial"]
    leaf = certs.load_b64_der(material["certificate"]["rawBytes"])
    entry = material["tlogEntries"][0]
    rekor = {
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logIndex": int(entry["logIndex"]),
            "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
        },
    }
    annotations = {
        cosign.SIGNATURE_ANNOTATION: "",
        cosign.CERTIFICATE_ANNOTATION: leaf.public_bytes(serialization.Encoding.PEM).decode(),
        cosign.CHAIN_ANNOTATION: "",
        cosign.BUNDLE_ANNOTATION: json.dumps(rekor, separators=(",", ":")),
        "predicateType": "https://cosign.sigstore.dev/attestation/v1",
    }
    statement = json.loads(envelope.payload)
    subject = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    return envelope.go_json(), annotations, subject


def test_keyless_attestation_layer() -> None:
    blob, annotations, subject = legacy_attestation_from_bundle()
    sig = parse_att(blob, subject, annotations)
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.emails == ("cody@soyland.com",)
    assert check(sig, "signature").detail == "verified over the DSSE PAE with the certificate key"
    assert check(sig, "chain").outcome is Outcome.SKIPPED  # cosign wrote an empty chain annotation
    bundle = check(sig, "bundle")
    assert bundle.outcome is Outcome.PASSED
    # The envelope digest reproduces too: Rekor hashed the envelope exactly as Go serializes it.
    assert "signature, certificate, payload digest, envelope digest" in bundle.detail
    assert sig.claims["logIndex"] == 175508996
    assert set(sig.evidence) >= {"envelope", "payload", "signature", "certificate", "bundle"}


def test_keyless_attestation_tampered_statement() -> None:
    blob, annotations, subject = legacy_attestation_from_bundle()
    document = json.loads(blob)
    statement = base64.b64decode(document["payload"]).replace(b'\\"bar\\"', b'\\"baz\\"')
    document["payload"] = base64.b64encode(statement).decode()
    sig = parse_att(json.dumps(document).encode(), subject, annotations)
    assert check(sig, "signature").outcome is Outcome.FAILED
    assert "records payload sha256:" in check(sig, "bundle").detail
    assert sig.status is Status.INVALID


def test_truncated_envelopes_never_raise() -> None:
    blob, annotations, subject = legacy_attestation_from_bundle()
    for end in range(0, len(blob), 11):
        sig = parse_att(blob[:end], subject, annotations)
        assert sig.status is Status.INVALID
        assert sig.error, end
    noise = random.Random(99)
    for _ in range(20):
        sig = parse_att(noise.randbytes(200), subject, annotations)
        assert sig.status is Status.INVALID and sig.error


def test_dsse_pae_matches_the_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"payload": "e30="}', "no payloadType"),
        (b'{"payloadType": "x", "payload": "!!", "signatures": []}', "not valid base64"),
        (b'{"payloadType": "x", "payload": "e30=", "signatures": {}}', "no signatures list"),
    ],
)
def test_parse_envelope_errors(data: bytes, message: str) -> None:
    with pytest.raises(dsse.DSSEError, match=message):
        dsse.parse_envelope(data)
