"""Sigstore bundles from cosign, sigstore-python and sigstore-go test data, through parse_bundle."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from testbed import vectors

from sigscope.formats import bundle
from sigscope.model import Check, Outcome, Signature, SignatureFormat, Status
from sigscope.trust import certs

VECTORS = vectors.ROOT
COSIGN_BUNDLE = VECTORS / "sigstore-cosign" / "pkg" / "cosign" / "testdata" / "oci-attestation.sigstore.json"
PY_ASSETS = VECTORS / "sigstore-sigstore-python" / "test" / "assets"
GO = VECTORS / "sigstore-sigstore-go"
GO_BUNDLES = GO / "pkg" / "testing" / "data" / "bundles"

pytestmark = pytest.mark.vectors

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ELSEWHERE = "sha256:" + "ab" * 32


def parse(blob: bytes, subject: str) -> Signature:
    return bundle.parse_bundle(blob, subject_digest=subject, location="referrer sha256:test", now=NOW)


def check(sig: Signature, name: str) -> Check:
    found = [c for c in sig.checks if c.name == name]
    assert len(found) == 1, f"expected one {name!r} check, got {sig.checks}"
    return found[0]


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def statement_of(document: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    return statement


# ---------------------------------------------------------------- media types


@pytest.mark.parametrize(
    ("media_type", "version"),
    [
        ("application/vnd.dev.sigstore.bundle+json;version=0.1", "0.1"),
        ("application/vnd.dev.sigstore.bundle+json; version=0.2", "0.2"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", "0.3"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "0.3"),
        ("application/vnd.dev.sigstore.bundle.v0.4+json", None),
    ],
)
def test_media_types(media_type: str, version: str | None) -> None:
    assert bundle.is_bundle_media_type(media_type)
    assert bundle.bundle_version(media_type) == version


def test_other_media_types_are_not_bundles() -> None:
    for media_type in ("application/vnd.dev.sigstore.trustedroot+json;version=0.1", "application/json", ""):
        assert not bundle.is_bundle_media_type(media_type)


# ---------------------------------------------------------------- cosign's DSSE attestation bundle


def cosign_bundle() -> tuple[bytes, str]:
    blob = COSIGN_BUNDLE.read_bytes()
    subject = "sha256:" + statement_of(json.loads(blob))["subject"][0]["digest"]["sha256"]
    return blob, subject


def test_cosign_attestation_bundle() -> None:
    blob, subject = cosign_bundle()
    assert subject.startswith("sha256:732112270d7e") and subject.endswith("0aa4")
    sig = parse(blob, subject)

    assert sig.format is SignatureFormat.SIGSTORE_BUNDLE
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.emails == ("cody@soyland.com",)
    assert sig.signer.certificate.oidc_issuer == "https://github.com/login/oauth"
    assert sig.signer.chain == ()
    assert check(sig, "dsse-subject").detail == f"statement names {subject}"
    assert sig.signed_digest == subject
    assert check(sig, "signature").detail == "verified over the DSSE PAE with the certificate key"
    tlog = check(sig, "tlog")
    assert tlog.outcome is Outcome.PASSED
    assert "dsse 0.0.1, logIndex 175508996" in tlog.detail
    assert sig.claims["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"
    assert "cosignImageSignature" not in sig.claims  # an attestation, not a cosign v3 image signature
    assert sig.claims["subjects"] == [{"name": "127.0.0.1:60943/repo", "digest": {"sha256": subject[7:]}}]
    assert sig.claims["signingTimeSource"] == "rekor integratedTime (unverified)"
    assert sig.signing_time == datetime(2025, 2, 28, 19, 18, 11, tzinfo=UTC)
    assert sig.claims["tlogEntries"][0]["inclusionProof"] is True
    assert not sig.timestamped


def test_cosign_attestation_bundle_on_another_image() -> None:
    blob, subject = cosign_bundle()
    sig = parse(blob, ELSEWHERE)
    failed = check(sig, "dsse-subject")
    assert failed.outcome is Outcome.FAILED
    assert ELSEWHERE in failed.detail and subject in failed.detail
    assert sig.status is Status.INVALID


def test_cosign_attestation_bundle_tampered_payload() -> None:
    blob, subject = cosign_bundle()
    document = json.loads(blob)
    statement = base64.b64decode(document["dsseEnvelope"]["payload"]).replace(b"2025-02-28", b"2025-02-29")
    document["dsseEnvelope"]["payload"] = base64.b64encode(statement).decode()
    sig = parse(json.dumps(document).encode(), subject)
    assert check(sig, "signature").outcome is Outcome.FAILED
    assert "records payload sha256:" in check(sig, "tlog").detail
    assert sig.status is Status.INVALID


def test_cosign_v3_image_signature_predicate_is_flagged() -> None:
    """No real cosign v3 `sign` bundle is among the vectors; the predicate is what marks one."""
    blob, subject = cosign_bundle()
    document = json.loads(blob)
    statement = statement_of(document)
    statement["predicateType"] = bundle.COSIGN_SIGN_PREDICATE
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig = parse(json.dumps(document).encode(), subject)
    assert sig.claims["cosignImageSignature"] is True
    assert check(sig, "signature").outcome is Outcome.FAILED  # the signature covered the original


# ---------------------------------------------------------------- sigstore-python message signatures


@pytest.mark.parametrize(
    ("name", "version", "identity"),
    [
        ("bundle.txt", "0.1", "a@tny.town"),
        ("bundle_v3.txt", "0.3", "william@yossarian.net"),
        ("bundle_v3_alt.txt", "0.3", "william@yossarian.net"),
        (
            "bundle_v3_github.whl",
            "0.2",
            "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
        ),
    ],
)
def test_sigstore_python_message_signatures(name: str, version: str, identity: str) -> None:
    artifact = PY_ASSETS / name
    sig = parse((PY_ASSETS / f"{name}.sigstore").read_bytes(), sha256_of(artifact))
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.claims["bundleVersion"] == version
    assert sig.claims["content"] == "message-signature"
    assert sig.signed_digest == sha256_of(artifact)
    assert sig.signer is not None
    assert sig.signer.display_name == identity
    assert check(sig, "payload-digest").outcome is Outcome.PASSED
    assert (
        check(sig, "signature").detail == "verified over the sha256 message digest with the certificate key"
    )
    assert "hashedrekord 0.0.1" in check(sig, "tlog").detail
    other = parse((PY_ASSETS / f"{name}.sigstore").read_bytes(), ELSEWHERE)
    assert check(other, "payload-digest").detail == f"signs {sha256_of(artifact)}, not {ELSEWHERE}"
    assert other.status is Status.INVALID


def test_tampered_message_digest() -> None:
    document = json.loads((PY_ASSETS / "bundle_v3.txt.sigstore").read_bytes())
    document["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(b"\x01" * 32).decode()
    sig = parse(json.dumps(document).encode(), "sha256:" + "01" * 32)
    assert check(sig, "payload-digest").outcome is Outcome.PASSED  # names what we asked for...
    assert check(sig, "signature").outcome is Outcome.FAILED  # ...but nobody signed that
    assert "the signed content hashes to" in check(sig, "tlog").detail
    assert sig.status is Status.INVALID


def test_invalid_media_type() -> None:
    sig = parse((PY_ASSETS / "bundle_invalid_version.txt.sigstore").read_bytes(), ELSEWHERE)
    assert sig.status is Status.INVALID
    assert sig.error == "unsupported Sigstore bundle mediaType 'this is completely wrong'"
    # Still shows who claims to have signed it.
    assert sig.signer is not None and sig.signer.display_name == "william@yossarian.net"


def test_log_entry_for_other_material() -> None:
    """CVE-2022-36056: a valid signature with someone else's log entry attached."""
    artifact = PY_ASSETS / "bundle_cve_2022_36056.txt"
    sig = parse((PY_ASSETS / "bundle_cve_2022_36056.txt.sigstore").read_bytes(), sha256_of(artifact))
    assert check(sig, "signature").outcome is Outcome.PASSED
    tlog = check(sig, "tlog")
    assert tlog.outcome is Outcome.FAILED
    assert tlog.detail.startswith("transparency log entry is inconsistent with this signature")
    assert "records a different signature" in tlog.detail
    assert "records a different certificate" in tlog.detail
    assert sig.status is Status.INVALID


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bundle_no_cert_v1.txt.sigstore", "x509CertificateChain carries no certificates"),
        ("bundle_no_log_entry.txt.sigstore", "bundle: a v0.1 bundle must carry a transparency log entry"),
        (
            "bundle_no_checkpoint.txt.sigstore",
            "bundle: log entry 0 has an inclusion proof without a checkpoint",
        ),
    ],
)
def test_structurally_invalid_bundles(name: str, reason: str) -> None:
    artifact = PY_ASSETS / name.removesuffix(".sigstore")
    sig = parse((PY_ASSETS / name).read_bytes(), sha256_of(artifact))
    assert sig.status is Status.INVALID
    assert sig.reason == reason


def test_rekor_v2_with_timestamp() -> None:
    artifact = PY_ASSETS / "staging-rekor-v2.txt"
    sig = parse((PY_ASSETS / "staging-rekor-v2.txt.sigstore.json").read_bytes(), sha256_of(artifact))
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert not sig.timestamped  # a claim until a token is verified against TSA roots
    assert sig.claims["rfc3161Timestamps"] == 1
    assert "hashedrekord 0.0.2" in check(sig, "tlog").detail
    # Rekor v2 has no integratedTime: the signed time can only come from the timestamp.
    assert sig.signing_time is None
    assert "rekorIntegratedTime" not in sig.claims


def test_rekor_v2_dsse_logged_over_pae() -> None:
    document = json.loads((PY_ASSETS / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes())
    subject = "sha256:" + statement_of(document)["subject"][0]["digest"]["sha256"]
    sig = parse(json.dumps(document).encode(), subject)
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert "matches: signature, certificate, sha256 digest" in check(sig, "tlog").detail


# ---------------------------------------------------------------- sigstore-go


def test_two_dsse_signatures_are_invalid() -> None:
    sig = parse((GO_BUNDLES / "dsse-2sigs.sigstore.json").read_bytes(), ELSEWHERE)
    assert sig.status is Status.INVALID
    assert sig.error == "DSSE envelope must carry exactly one signature, found 2"


def test_othername_identity() -> None:
    document = json.loads((GO_BUNDLES / "othername.sigstore.json").read_bytes())
    digest = base64.b64decode(document["messageSignature"]["messageDigest"]["digest"]).hex()
    assert digest.startswith("bc103b4a") and digest.endswith("f95b")
    sig = parse(json.dumps(document).encode(), f"sha256:{digest}")
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.other_names == ("foo!oidc.local",)
    assert sig.signer.certificate.emails == ()
    assert sig.signer.display_name == "foo!oidc.local"
    assert sig.signer.certificate.oidc_issuer == "http://oidc.local:8080"
    assert sig.status is Status.INTEGRITY_OK, sig.reason


def test_npm_provenance_intoto_entry() -> None:
    document = json.loads((GO_BUNDLES / "sigstore.js@2.0.0-provenance.sigstore.json").read_bytes())
    subject = "sha512:" + statement_of(document)["subject"][0]["digest"]["sha512"]
    sig = parse(json.dumps(document).encode(), subject)
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.signer is not None
    assert sig.signer.display_name == (
        "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
    )
    assert sig.claims["predicateType"] == "https://slsa.dev/provenance/v1"
    assert "intoto 0.0.2" in check(sig, "tlog").detail
    assert "matches: signature, certificate, payload digest" in check(sig, "tlog").detail


def test_public_key_bundle_without_log_is_unverified() -> None:
    sig = parse(
        (GO_BUNDLES / "public-key-validity.sigstore.json").read_bytes(),
        "sha256:" + hashlib.sha256(b"test content").hexdigest(),
    )
    assert sig.status is Status.UNVERIFIED
    assert sig.signer is None
    assert sig.claims["keyOnly"] is True
    assert "publicKeyHint" in sig.claims
    assert check(sig, "payload-digest").outcome is Outcome.PASSED
    assert check(sig, "signature").detail.startswith("key-only bundle (public key hint")
    assert not sig.timestamped
    assert sig.claims["rfc3161Timestamps"] >= 1


def test_public_key_bundle_names_the_logged_key() -> None:
    sig = parse((GO / "examples" / "bundle-publish.json").read_bytes(), ELSEWHERE)
    key = serialization.load_pem_public_key((GO / "examples" / "publish_key.pub").read_bytes())
    assert sig.claims["publicKeyHint"] == "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
    assert sig.signer is not None and sig.signer.public_key is not None
    assert sig.signer.public_key.sha256 == certs.spki_sha256(key)
    assert (
        check(sig, "signature").detail
        == "verified over the DSSE PAE under the key recorded in the Rekor entry"
    )
    assert "keyOnly" not in sig.claims


# ---------------------------------------------------------------- robustness


def test_truncated_bundles_never_raise() -> None:
    blob, subject = cosign_bundle()
    for end in range(0, len(blob), 37):
        sig = parse(blob[:end], subject)
        assert sig.status is Status.INVALID
        assert sig.error and sig.error.startswith("Sigstore bundle is not valid JSON"), sig.error


def test_random_bytes_and_odd_shapes_never_raise() -> None:
    noise = random.Random(7)
    samples = [noise.randbytes(noise.randrange(0, 400)) for _ in range(20)]
    samples += [
        b"[]",
        b"null",
        b"{}",
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b'{"mediaType": 3, "verificationMaterial": []}',
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": '
        b'{"certificate": {"rawBytes": "AAAA"}}, "messageSignature": {}}',
    ]
    for sample in samples:
        sig = parse(sample, ELSEWHERE)
        assert sig.status is Status.INVALID
        assert sig.error


def test_every_field_dropped_or_mangled_never_raises() -> None:
    """Walk the real bundle and break one value at a time: each result is a record, never an exception."""
    blob, subject = cosign_bundle()
    original = json.loads(blob)

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix] if prefix else []
        if isinstance(node, dict):
            for key, value in node.items():
                out += paths(value, (*prefix, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                out += paths(value, (*prefix, index))
        return out

    replacements: list[Any] = [None, "!", 7, [], {}]
    for path in paths(original):
        for replacement in replacements:
            document = json.loads(blob)
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = replacement
            sig = parse(json.dumps(document).encode(), subject)
            assert isinstance(sig, Signature)


def test_cosign_v3_image_signature_annotations_are_its_subjects() -> None:
    """cosign v3 `sign -a env=prod` signs the annotation into the image subject of its statement; that is the
    signature's "optional" section, as `cosign verify` shows it (another subject's annotations are not)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from sigscope.formats import dsse

    image = "sha256:" + "cd" * 32
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"digest": {"sha256": "ab" * 32}, "annotations": {"env": "dev"}},
            {"digest": {"sha256": "cd" * 32}, "annotations": {"env": "prod", "n": 1}},
        ],
        "predicateType": bundle.COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps(statement).encode()
    signature = key.sign(dsse.pae(dsse.IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    envelope = dsse.Envelope(dsse.IN_TOTO_PAYLOAD_TYPE, payload, [("", signature)])
    blob = bundle.build_dsse_bundle(envelope, key.public_key())
    sig = parse(blob, image)
    assert sig.claims["cosignImageSignature"] is True
    assert sig.claims["optional"] == {"env": "prod"}  # strings only, from the subject naming the image
    assert parse(blob, ELSEWHERE).claims["optional"] == {"env": "dev"}  # judged as that subject's signature
    assert parse(blob, "sha256:" + "ef" * 32).claims.get("optional") is None  # no subject names it


def test_built_bundles_carry_no_self_signed_root() -> None:
    """`sign --certificate-chain` names intermediates…root; the bundle keeps the leaf and intermediates only,
    as cosign writes it: sigstore-go refuses a chain holding a self-signed certificate."""
    from testbed.forge import make_code_pki

    pki = make_code_pki()
    leaf = pki.release
    digest = "sha256:" + "ab" * 32
    key = leaf.key.public_key()

    def material(*chain: Any) -> dict[str, Any]:
        blob = bundle.build_message_bundle(b"sig", digest, key, certificates=[leaf.cert, *chain])
        found: dict[str, Any] = json.loads(blob)["verificationMaterial"]
        return found

    der = [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
        for c in (leaf.cert, pki.intermediate)
    ]
    assert material(pki.intermediate, pki.root) == {
        "x509CertificateChain": {"certificates": [{"rawBytes": d} for d in der]}
    }
    assert material(pki.root) == {"certificate": {"rawBytes": der[0]}}


def test_cosign_sign_statement_as_cosign_v3_writes_it() -> None:
    """The statement `sign --registry-referrers-mode oci-1-1` signs: in-toto v1, one unnamed subject with the
    -a annotations (always present), predicate cosign/sign/v1, an empty predicate; protojson field order."""
    digest = "sha256:" + "cd" * 32
    plain = bundle.cosign_sign_statement(digest)
    assert plain == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"' + b"cd" * 32
        + b'"},"annotations":{}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )  # fmt: skip
    annotated = json.loads(bundle.cosign_sign_statement(digest, {"z": "1", "env": "prod"}))
    assert list(annotated["subject"][0]["annotations"]) == ["env", "z"]
    with pytest.raises(bundle.MalformedError):
        bundle.cosign_sign_statement("cd" * 32)


def test_signed_cosign_sign_bundle_reads_as_an_image_signature() -> None:
    """sigscope's own oci-1-1 bundle goes through the reader cosign's bundles go through: the signature holds
    over the PAE under the signing key only, the -a annotations come out as `optional`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from sigscope.formats import dsse

    digest = "sha256:" + "cd" * 32
    key = ec.generate_private_key(ec.SECP256R1())
    statement = bundle.cosign_sign_statement(digest, {"env": "prod"})
    envelope = dsse.build_envelope(
        dsse.IN_TOTO_PAYLOAD_TYPE, statement, lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))
    )
    blob = bundle.build_dsse_bundle(envelope, key.public_key())
    document = json.loads(blob)
    assert set(document) == {"mediaType", "verificationMaterial", "dsseEnvelope"}
    assert document["verificationMaterial"] == {
        "publicKey": {"hint": bundle.public_key_hint(key.public_key())}
    }
    assert [set(s) for s in document["dsseEnvelope"]["signatures"]] == [{"sig"}]  # no keyid, as sigstore-go
    sig = parse(blob, digest)
    assert sig.error is None
    assert sig.claims["cosignImageSignature"] is True and sig.claims["optional"] == {"env": "prod"}
    assert bundle.verifies_under(blob, key.public_key())
    assert not bundle.verifies_under(blob, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert check(parse(blob, ELSEWHERE), "dsse-subject").outcome is Outcome.FAILED
