"""Notary Project envelopes: the upstream vectors, envelopes built here, and hostile bytes."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from testbed import vectors

from sigscope.formats import notation
from sigscope.formats.notation import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    NOTATION_ARTIFACT_TYPE,
    PAYLOAD_MEDIA_TYPE,
    THUMBPRINT_ANNOTATION,
    NotationFormatError,
    envelope_layer,
    is_signature_artifact,
    parse_envelope,
)
from sigscope.model import Descriptor, Manifest, Outcome, Signature, SignatureFormat, Status
from sigscope.oci import mediatypes

VECTORS = vectors.ROOT
pytestmark = pytest.mark.vectors

NOTATION_GO = VECTORS / "notaryproject-notation-go"
MOCK = NOTATION_GO / "internal" / "mock" / "testdata"
INTERNAL = NOTATION_GO / "internal" / "testdata"
TIMESTAMP = NOTATION_GO / "verifier" / "testdata" / "timestamp" / "sigEnv"
CORE = VECTORS / "notaryproject-notation-core-go" / "signature"

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TEST_ROOT = "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
ALPINE = "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"
WABBIT = "CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US"
# What every internal/mock envelope signs (VECTORS.md §5.1).
MOCK_SUBJECT = Descriptor(
    "application/vnd.docker.distribution.manifest.v2+json",
    "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
    528,
)
OTHER_DIGEST = "sha256:" + "0" * 64


def layout_subject() -> Descriptor:
    index = json.loads((INTERNAL / "oci-layout" / "index.json").read_bytes())
    return Descriptor.from_json(index["manifests"][0])


def media_type_of(blob: bytes) -> str:
    return JWS_MEDIA_TYPE if blob.lstrip().startswith(b"{") else COSE_MEDIA_TYPE


def parse(
    blob: bytes,
    subject: Descriptor = MOCK_SUBJECT,
    *,
    media_type: str | None = None,
    now: datetime = NOW,
    annotations: dict[str, str] | None = None,
) -> Signature:
    return parse_envelope(
        blob,
        media_type or media_type_of(blob),
        subject=subject,
        location="test",
        now=now,
        manifest_annotations=annotations,
    )


def check(sig: Signature, name: str) -> tuple[Outcome, str]:
    found = [c for c in sig.checks if c.name == name]
    assert len(found) == 1, f"{name} in {[c.name for c in sig.checks]}"
    return found[0].outcome, found[0].detail


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mock(name: str) -> bytes:
    return (MOCK / name).read_bytes()


def all_vectors() -> list[Path]:
    return sorted(
        [
            *MOCK.glob("*.json"),
            *TIMESTAMP.glob("*.sig"),
            INTERNAL / "jws_signature.sig",
            INTERNAL / "cose_signature.sig",
        ]
    )


# ---------------------------------------------------------------- upstream vectors


@pytest.mark.parametrize("name", ["jws_signature.sig", "cose_signature.sig"])
def test_real_envelopes_sign_the_layout_manifest(name: str) -> None:
    subject = layout_subject()
    assert subject.digest.startswith("sha256:19dbd2e4")
    sig = parse((INTERNAL / name).read_bytes(), subject)
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.format is (
        SignatureFormat.NOTATION_JWS if name.startswith("jws") else SignatureFormat.NOTATION_COSE
    )
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert check(sig, "payload-digest")[0] is Outcome.PASSED
    assert check(sig, "chain") == (Outcome.PASSED, "a single self-signed certificate")
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == ALPINE
    assert sig.signer.chain == ()
    assert sig.signed_digest == subject.digest
    assert sig.claims["alg"] == "PS256"
    assert sig.claims["signingScheme"] == "notary.x509"
    assert sig.claims["signingAgent"] == "Notation/1.0.0"
    assert sig.evidence["envelope"] == (INTERNAL / name).read_bytes()
    json.dumps(sig.to_json())

    other = parse((INTERNAL / name).read_bytes(), Descriptor(subject.media_type, OTHER_DIGEST, subject.size))
    outcome, detail = check(other, "payload-digest")
    assert outcome is Outcome.FAILED
    assert subject.digest in detail and OTHER_DIGEST in detail
    assert other.status is Status.INVALID


def test_cose_times_come_from_tag_1() -> None:
    sig = parse((INTERNAL / "cose_signature.sig").read_bytes(), layout_subject())
    assert sig.signing_time == datetime(2023, 3, 14, 4, 45, 22, tzinfo=UTC)
    jws = parse((INTERNAL / "jws_signature.sig").read_bytes(), layout_subject())
    # Go writes the signer's local offset; the instant is what matters.
    assert jws.signing_time == datetime(2023, 3, 14, 16, 10, 2, tzinfo=UTC) - timedelta(hours=8)


def test_media_type_and_size_must_match_subject() -> None:
    subject = layout_subject()
    blob = (INTERNAL / "cose_signature.sig").read_bytes()
    sig = parse(blob, Descriptor(mediatypes.DOCKER_MANIFEST, subject.digest, subject.size + 1))
    outcome, detail = check(sig, "payload-digest")
    assert outcome is Outcome.FAILED
    assert mediatypes.DOCKER_MANIFEST in detail and subject.media_type in detail
    assert f"size {subject.size} (signed) vs {subject.size + 1}" in detail


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_mock_valid(scheme: str) -> None:
    sig = parse(mock(f"{scheme}_valid_sig_env.json"))
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.claims["alg"] == "PS384"
    assert sig.claims["signingScheme"] == (
        "notary.x509" if scheme == "ca" else "notary.x509.signingAuthority"
    )
    # Spelled io.cncf.notary.SigningAgent in these files; Go reads it case-insensitively.
    assert sig.claims["signingAgent"] == "Notation/1.0.0"
    assert sig.signer is not None and sig.signer.certificate is not None
    # Leaf and root share the DN; only the signature tells them apart.
    assert sig.signer.certificate.subject == TEST_ROOT
    assert sig.signer.certificate.key_size == 3072
    assert [c.subject for c in sig.signer.chain] == [TEST_ROOT]
    assert sig.signer.chain[0].self_signed and not sig.signer.certificate.self_signed
    assert check(sig, "chain")[0] is Outcome.PASSED
    assert check(sig, "algorithm") == (Outcome.PASSED, "PS384 matches the RSA 3072-bit key")
    assert sig.signing_time == datetime(2020, 11, 9, 7, tzinfo=UTC)
    assert sig.expiry == datetime(2120, 11, 9, 7, tzinfo=UTC)
    assert check(sig, "expiry")[0] is Outcome.PASSED
    assert not sig.timestamped
    if scheme == "sa":
        assert "io.cncf.notary.authenticSigningTime" in sig.claims["critical"]


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_mock_invalid(scheme: str) -> None:
    sig = parse(mock(f"{scheme}_invalid_sig_env.json"))
    assert sig.status is Status.INVALID
    assert check(sig, "signature")[0] is Outcome.FAILED
    # The tampering is a trailing "=" on the payload: Go stops at "illegal base64 data".
    assert sig.error is not None and "padded base64url" in sig.error
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == TEST_ROOT


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_mock_expired(scheme: str) -> None:
    sig = parse(mock(f"{scheme}_expired_sig_env.json"))
    assert sig.status is Status.INVALID
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert check(sig, "expiry") == (Outcome.FAILED, "signature expired on 2022-07-29T23:59:00+00:00")
    assert sig.expiry == datetime(2022, 7, 29, 23, 59, tzinfo=UTC)
    # Before the expiry the same envelope is fine.
    early = parse(mock(f"{scheme}_expired_sig_env.json"), now=datetime(2022, 7, 29, 12, tzinfo=UTC))
    assert early.status is Status.INTEGRITY_OK


@pytest.mark.parametrize(
    "name",
    [
        "ca_plugin_sig_env.json",
        "sa_plugin_sig_env.json",
        "ca_compatible_pluginver_sig_env_1.0.0.json",
        "ca_incompatible_pluginver_sig_env_1.2.3.json",
    ],
)
def test_plugin_vectors_fail(name: str) -> None:
    sig = parse(mock(name))
    assert check(sig, "signature")[0] is Outcome.PASSED
    outcome, detail = check(sig, "critical-headers")
    assert outcome is Outcome.FAILED
    assert "sigscope implements no plugins" in detail
    if "_plugin_" in name:
        assert "unknown critical header SomeKey (requires plugin plugin-name)" in detail
        assert sig.claims["extendedAttributes"] == {"SomeKey": "SomeValue"}
        assert sig.claims["verificationPlugin"] == "plugin-name"
    else:
        assert sig.claims["verificationPlugin"] == "io.cncf.notary.plugin.unittest.mock"
    assert sig.status is Status.INVALID


def test_user_metadata() -> None:
    sig = parse(mock("sig_env_with_metadata.json"))
    assert sig.claims["userMetadata"] == {
        "io.wabbit-networks.buildId": "123",
        "io.wabbit-networks.buildTime": "1672944615",
    }
    assert sig.claims["targetArtifact"]["digest"].startswith("sha256:5a07385a")
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == WABBIT
    # A one-day certificate from 2023: expired now, which is a trust question, not an integrity one.
    assert sig.signer.certificate.expired


@pytest.mark.parametrize(
    "name",
    [
        "jwsWithTimestamp.sig",
        "coseWithTimestamp.sig",
        "jwsExpiredWithTimestamp.sig",
        "coseExpiredWithTimestamp.sig",
        "timestampBeforeNotBefore.sig",
        "timestampAfterNotAfter.sig",
    ],
)
def test_timestamped(name: str) -> None:
    blob = (TIMESTAMP / name).read_bytes()
    sig = parse(blob, Descriptor(mediatypes.DOCKER_MANIFEST, "sha256:c0669ef3" + "0" * 56, 528))
    assert sig.claims["timestampCountersignature"] is True
    assert not sig.timestamped  # only a token verified against TSA roots makes it timestamped
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert check(sig, "envelope")[0] is Outcome.PASSED
    token = sig.evidence["timestamp-token"]
    assert token[:1] == b"\x30"  # a DER SEQUENCE: the TimeStampToken, left for the trust layer
    assert sig.format is (SignatureFormat.NOTATION_JWS if blob[:1] == b"{" else SignatureFormat.NOTATION_COSE)


def test_without_timestamp() -> None:
    sig = parse((TIMESTAMP / "withoutTimestamp.sig").read_bytes())
    assert not sig.timestamped
    assert "timestampCountersignature" not in sig.claims
    assert "timestamp-token" not in sig.evidence
    assert check(sig, "signature")[0] is Outcome.PASSED


def test_jws_conformance_vector() -> None:
    sig = parse((CORE / "jws" / "testdata" / "conformance.json").read_bytes())
    assert sig.status is Status.INVALID
    assert sig.error is None  # well-formed JWS; what is wrong is named by checks
    outcome, detail = check(sig, "critical-headers")
    assert outcome is Outcome.FAILED
    assert "unknown critical header signedCritKey1" in detail
    assert check(sig, "signature")[0] is Outcome.SKIPPED
    assert check(sig, "chain")[0] is Outcome.FAILED
    assert check(sig, "payload")[0] is Outcome.FAILED  # {"key":"hello JWS"} is no notary payload
    assert sig.signer is None
    assert sig.claims["alg"] == "ES256"
    assert sig.claims["signingAgent"] == "NotationConformanceTest/1.0.0"
    assert sig.claims["extendedAttributes"] == {
        "signedCritKey1": "signedCritValue1",
        **{f"signedKey{i}": "signedValue1" for i in range(1, 5)},
    }
    assert sig.signing_time == datetime(2022, 8, 29, 13, 50, tzinfo=UTC)
    assert sig.expiry == datetime(2099, 8, 30, 13, 50, tzinfo=UTC)


def test_cose_conformance_vector() -> None:
    vector = json.loads((CORE / "cose" / "testdata" / "conformance.json").read_bytes())
    sig = parse(bytes.fromhex(vector["expectedOutput"]["cborHex"]), media_type=COSE_MEDIA_TYPE)
    assert sig.status is Status.INVALID and sig.error is None
    assert check(sig, "envelope")[0] is Outcome.PASSED
    outcome, detail = check(sig, "critical-headers")
    assert outcome is Outcome.FAILED and "unknown critical header signedCritKey1" in detail
    assert check(sig, "signature")[0] is Outcome.SKIPPED
    assert sig.claims["alg"] == "PS384"
    assert sig.claims["extendedAttributes"] == {
        "signedKey1": "signedValue1",
        "signedCritKey1": "signedCritValue1",
    }
    assert sig.signing_time == datetime.fromtimestamp(vector["signingTime"], UTC)
    assert sig.expiry == datetime.fromtimestamp(vector["expiry"], UTC)
    assert check(sig, "expiry")[0] is Outcome.FAILED  # one day in August 2022


# ---------------------------------------------------------------- tampering with real vectors


def test_tampered_jws_payload() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    payload = bytearray(unb64url(doc["payload"]))
    payload[payload.index(b"528")] = ord("6")
    doc["payload"] = b64url(bytes(payload))
    sig = parse(json.dumps(doc).encode())
    assert check(sig, "signature")[0] is Outcome.FAILED
    assert check(sig, "envelope")[0] is Outcome.PASSED
    assert sig.status is Status.INVALID


def test_tampered_cose_payload() -> None:
    tag = cbor2.loads((INTERNAL / "cose_signature.sig").read_bytes())
    protected, unprotected, payload, signature = tag.value
    forged = payload.replace(b'"size":481', b'"size":482')
    blob = cbor2.dumps(cbor2.CBORTag(18, [protected, dict(unprotected), forged, signature]))
    sig = parse(blob, layout_subject())
    assert check(sig, "signature")[0] is Outcome.FAILED
    assert check(sig, "payload-digest")[0] is Outcome.FAILED


def test_swapped_leaf() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    other = json.loads((INTERNAL / "jws_signature.sig").read_bytes())["header"]["x5c"][0]
    doc["header"]["x5c"] = [other]
    sig = parse(json.dumps(doc).encode())
    assert check(sig, "signature")[0] is Outcome.FAILED
    outcome, detail = check(sig, "algorithm")
    assert outcome is Outcome.FAILED
    assert detail == "alg PS384 does not match the RSA 2048-bit key (which requires PS256)"
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == ALPINE


def test_unrelated_root() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    doc["header"]["x5c"][1] = json.loads(mock("sig_env_with_metadata.json"))["header"]["x5c"][0]
    sig = parse(json.dumps(doc).encode())
    # x5c is unprotected: the signature still holds, only the chain betrays the swap.
    assert check(sig, "signature")[0] is Outcome.PASSED
    outcome, detail = check(sig, "chain")
    assert outcome is Outcome.FAILED
    assert "is not issued by certificate 1" in detail
    assert sig.status is Status.INVALID


def test_chain_without_root() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    doc["header"]["x5c"] = doc["header"]["x5c"][:1]
    sig = parse(json.dumps(doc).encode())
    outcome, detail = check(sig, "chain")
    assert outcome is Outcome.FAILED and "not self-signed" in detail


def test_root_first_is_rejected() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    doc["header"]["x5c"] = list(reversed(doc["header"]["x5c"]))
    sig = parse(json.dumps(doc).encode())
    assert check(sig, "chain")[0] is Outcome.FAILED
    assert check(sig, "signature")[0] is Outcome.FAILED


def test_garbage_root_keeps_the_identity() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    doc["header"]["x5c"][1] = base64.b64encode(b"not a certificate").decode()
    sig = parse(json.dumps(doc).encode())
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == TEST_ROOT
    assert check(sig, "signature")[0] is Outcome.PASSED
    outcome, detail = check(sig, "chain")
    assert outcome is Outcome.FAILED and detail.startswith("x5c[1]: malformed DER certificate")


def test_unexpected_failure_is_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(notation, "_payload_check", boom)
    sig = parse(mock("ca_valid_sig_env.json"))
    assert sig.status is Status.INVALID
    assert sig.error == "could not parse the notation-jws envelope: KeyError: 'surprise'"


def test_thumbprints() -> None:
    blob = mock("ca_valid_sig_env.json")
    ders = [base64.b64decode(c) for c in json.loads(blob)["header"]["x5c"]]
    prints = [hashlib.sha256(d).hexdigest() for d in ders]
    good = parse(blob, annotations={THUMBPRINT_ANNOTATION: json.dumps([p.upper() for p in prints])})
    assert check(good, "thumbprints")[0] is Outcome.PASSED
    assert good.status is Status.INTEGRITY_OK
    reordered = parse(blob, annotations={THUMBPRINT_ANNOTATION: json.dumps(prints[::-1])})
    assert check(reordered, "thumbprints")[0] is Outcome.FAILED
    garbage = parse(blob, annotations={THUMBPRINT_ANNOTATION: "not json"})
    assert check(garbage, "thumbprints")[0] is Outcome.FAILED
    absent = parse(blob, annotations={})
    assert check(absent, "thumbprints")[0] is Outcome.SKIPPED


def test_strict_jws_shape() -> None:
    doc = json.loads(mock("ca_valid_sig_env.json"))
    general = {
        "payload": doc["payload"],
        "signatures": [{k: doc[k] for k in ("protected", "header", "signature")}],
    }
    sig = parse(json.dumps(general).encode())
    assert sig.status is Status.INVALID and sig.error is not None and "general serialization" in sig.error
    extra = parse(json.dumps({**doc, "unprotected": {}}).encode())
    assert check(extra, "envelope")[0] is Outcome.FAILED
    assert check(extra, "signature")[0] is Outcome.PASSED  # still reported, still invalid


def test_unknown_media_type_and_naive_clock() -> None:
    blob = mock("ca_valid_sig_env.json")
    sig = parse(blob, media_type="application/vnd.oci.image.layer.v1.tar")
    assert sig.status is Status.INVALID
    assert (
        sig.error == "unsupported Notary Project envelope media type application/vnd.oci.image.layer.v1.tar"
    )
    naive = parse(blob, now=datetime(2025, 1, 1))
    assert naive.status is Status.INTEGRITY_OK


# ---------------------------------------------------------------- envelopes built here


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigscope tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> x509.Certificate:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def p256() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _cert(key, "p256 signer")


def _raw_ecdsa(key: ec.EllipticCurvePrivateKey, data: bytes, digest: hashes.HashAlgorithm) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
    width = (key.curve.key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


PAYLOAD = json.dumps({"targetArtifact": MOCK_SUBJECT.to_json()}).encode()


def _jws_headers(**overrides: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "alg": "ES256",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": PAYLOAD_MEDIA_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2024-05-01T10:00:00.123456789+02:00",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def build_jws(
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    protected: dict[str, Any],
    *,
    der_signature: bool = False,
) -> bytes:
    encoded = b64url(json.dumps(protected).encode())
    payload = b64url(PAYLOAD)
    signing_input = f"{encoded}.{payload}".encode()
    if der_signature:
        signature = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    else:
        signature = _raw_ecdsa(key, signing_input, hashes.SHA256())
    header = {"x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]}
    return json.dumps(
        {"payload": payload, "protected": encoded, "header": header, "signature": b64url(signature)}
    ).encode()


def build_cose(
    key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate], protected: dict[Any, Any]
) -> bytes:
    protected_raw = cbor2.dumps(protected)
    to_sign = cbor2.dumps(["Signature1", protected_raw, b"", PAYLOAD])
    signature = _raw_ecdsa(key, to_sign, hashes.SHA256())
    unprotected = {
        33: [c.public_bytes(Encoding.DER) for c in chain],
        "io.cncf.notary.signingAgent": "sigscope-test",
    }
    return cbor2.dumps(cbor2.CBORTag(18, [protected_raw, unprotected, PAYLOAD, signature]))


def _cose_headers(**overrides: Any) -> dict[Any, Any]:
    headers: dict[Any, Any] = {
        1: -7,
        2: ["io.cncf.notary.signingScheme"],
        3: PAYLOAD_MEDIA_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": cbor2.CBORTag(1, 1714550400),
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def test_built_es256_jws(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    sig = parse(build_jws(key, [cert], _jws_headers()))
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert check(sig, "algorithm") == (Outcome.PASSED, "ES256 matches the EC secp256r1 key")
    # Nanoseconds are legal RFC 3339; they are truncated, not refused.
    assert sig.signing_time == datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    assert sig.signer is not None and sig.signer.certificate is not None
    assert sig.signer.certificate.subject == "CN=p256 signer,O=sigscope tests,C=US"


def test_built_es256_cose(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    sig = parse(build_cose(key, [cert], _cose_headers()))
    assert sig.status is Status.INTEGRITY_OK, sig.reason
    assert sig.signing_time == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert sig.claims["signingAgent"] == "sigscope-test"


def test_ecdsa_encodings_and_alg_mismatch(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    der = parse(build_jws(key, [cert], _jws_headers(), der_signature=True))
    outcome, detail = check(der, "signature")
    assert outcome is Outcome.FAILED and "raw r||s" in detail
    wrong = parse(build_jws(key, [cert], _jws_headers(alg="ES384")))
    assert check(wrong, "algorithm")[0] is Outcome.FAILED
    none = parse(build_jws(key, [cert], _jws_headers(alg="none")))
    assert check(none, "signature") == (Outcome.FAILED, "unsupported signature algorithm none")


def test_cose_time_must_be_tagged(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    bare = parse(build_cose(key, [cert], _cose_headers(**{"io.cncf.notary.signingTime": 1714550400})))
    assert bare.status is Status.INVALID
    assert bare.error == "io.cncf.notary.signingTime is not a CBOR tag-1 epoch time"
    assert check(bare, "signature")[0] is Outcome.PASSED
    text = cbor2.CBORTag(0, "2024-05-01T08:00:00Z")
    assert parse(build_cose(key, [cert], _cose_headers(**{"io.cncf.notary.signingTime": text}))).error


def test_cose_strict_decoding(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    blob = build_cose(key, [cert], _cose_headers())
    trailing = parse(blob + b"\x00")
    assert trailing.error == "COSE envelope has 1 trailing byte(s)"
    untagged = parse(cbor2.dumps(cbor2.loads(blob).value))
    assert untagged.error == "COSE envelope is not a tagged COSE_Sign1 message (CBOR tag 18)"
    three = parse(cbor2.dumps(cbor2.CBORTag(18, list(cbor2.loads(blob).value)[:3])))
    assert three.error == "COSE_Sign1 must be an array of 4 elements, found 3"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"crit": None}, "no crit header"),
        ({"crit": []}, "crit is not a non-empty list"),
        ({"crit": ["io.cncf.notary.expiry"]}, "io.cncf.notary.signingScheme must be marked critical"),
        ({"crit": ["io.cncf.notary.signingScheme", "alg"]}, "crit lists the registered header alg"),
        ({"crit": ["io.cncf.notary.signingScheme", "nope"]}, "nope is marked critical but not present"),
        ({"io.cncf.notary.signingScheme": "notary.x509.v2"}, "unsupported signing scheme notary.x509.v2"),
        ({"io.cncf.notary.signingTime": None}, "notary.x509 requires io.cncf.notary.signingTime"),
        ({"io.cncf.notary.expiry": "2099-01-01T00:00:00Z"}, "io.cncf.notary.expiry must be marked critical"),
        (
            {"io.cncf.notary.signingScheme": "notary.x509.signingAuthority"},
            "notary.x509.signingAuthority requires io.cncf.notary.authenticSigningTime",
        ),
        (
            {
                "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
                "io.cncf.notary.signingTime": None,
                "io.cncf.notary.authenticSigningTime": "2024-05-01T10:00:00Z",
            },
            "io.cncf.notary.authenticSigningTime must be marked critical",
        ),
        (
            {"io.cncf.notary.authenticSigningTime": "2024-05-01T10:00:00Z"},
            "io.cncf.notary.authenticSigningTime must be absent for notary.x509",
        ),
    ],
)
def test_critical_header_rules(
    p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], overrides: dict[str, Any], expected: str
) -> None:
    key, cert = p256
    sig = parse(build_jws(key, [cert], _jws_headers(**overrides)))
    outcome, detail = check(sig, "critical-headers")
    assert outcome is Outcome.FAILED
    assert expected in detail
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert sig.status is Status.INVALID


def test_expiry_before_signing_time(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    headers = _jws_headers(
        crit=["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
        **{"io.cncf.notary.expiry": "2024-04-01T00:00:00Z"},
    )
    outcome, detail = check(parse(build_jws(key, [cert], headers)), "expiry")
    assert outcome is Outcome.FAILED and "is not after the signing time" in detail


def test_bad_time(p256: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = p256
    sig = parse(build_jws(key, [cert], _jws_headers(**{"io.cncf.notary.signingTime": "2024-05-01 10:00"})))
    assert sig.error == "io.cncf.notary.signingTime is not an RFC 3339 time: '2024-05-01 10:00'"


# ---------------------------------------------------------------- signature manifests


def _manifest(data: dict[str, Any], media_type: str = mediatypes.OCI_MANIFEST) -> Manifest:
    raw = json.dumps(data).encode()
    return Manifest(Descriptor(media_type, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)), raw)


ENVELOPE: dict[str, Any] = {"mediaType": JWS_MEDIA_TYPE, "digest": "sha256:" + "a" * 64, "size": 2048}
EMPTY: dict[str, Any] = {
    "mediaType": mediatypes.OCI_EMPTY,
    "digest": mediatypes.EMPTY_DIGEST,
    "size": 2,
    "data": "e30=",
}
SUBJECT_JSON: dict[str, Any] = {
    "mediaType": mediatypes.OCI_MANIFEST,
    "digest": "sha256:" + "b" * 64,
    "size": 481,
}


def _signature_manifest(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": NOTATION_ARTIFACT_TYPE,
        "config": EMPTY,
        "layers": [ENVELOPE],
        "subject": SUBJECT_JSON,
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_envelope_layer_forms() -> None:
    current = envelope_layer(_manifest(_signature_manifest()))
    assert current == Descriptor(JWS_MEDIA_TYPE, ENVELOPE["digest"], 2048)
    legacy = _signature_manifest(
        artifactType=None, config={"mediaType": NOTATION_ARTIFACT_TYPE, "digest": EMPTY["digest"], "size": 2}
    )
    assert envelope_layer(_manifest(legacy)) == current
    cose = _signature_manifest(layers=[{**ENVELOPE, "mediaType": COSE_MEDIA_TYPE}])
    assert envelope_layer(_manifest(cose)).media_type == COSE_MEDIA_TYPE
    artifact = {
        "mediaType": notation.OCI_ARTIFACT_MANIFEST,
        "artifactType": NOTATION_ARTIFACT_TYPE,
        "blobs": [ENVELOPE],
        "subject": SUBJECT_JSON,
    }
    assert envelope_layer(_manifest(artifact, notation.OCI_ARTIFACT_MANIFEST)) == current
    assert is_signature_artifact(NOTATION_ARTIFACT_TYPE)
    assert not is_signature_artifact(None) and not is_signature_artifact("application/vnd.dev.cosign")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layers": [{**ENVELOPE, "mediaType": "application/vnd.oci.image.layer.v1.tar"}]}, "v1.tar layer"),
        ({"layers": [ENVELOPE, ENVELOPE]}, "exactly one envelope layer, found 2"),
        ({"layers": []}, "exactly one envelope layer, found 0"),
        ({"config": {**EMPTY, "mediaType": "application/vnd.oci.image.config.v1+json"}}, "not the empty"),
        ({"config": {**EMPTY, "mediaType": NOTATION_ARTIFACT_TYPE}}, "not the empty"),
        ({"artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}, "not application/vnd.cncf"),
        ({"artifactType": None}, "not a Notary Project signature"),
        ({"layers": [{"mediaType": JWS_MEDIA_TYPE}]}, "envelope layer descriptor lacks"),
    ],
)
def test_envelope_layer_rejects(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(NotationFormatError) as caught:
        envelope_layer(_manifest(_signature_manifest(**fields)))
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_envelope_layer_rejects_non_manifests() -> None:
    with pytest.raises(NotationFormatError, match="not an OCI image manifest"):
        envelope_layer(_manifest({"schemaVersion": 2, "manifests": []}, mediatypes.OCI_INDEX))
    raw = b"not json"
    with pytest.raises(NotationFormatError, match="not valid JSON"):
        envelope_layer(Manifest(Descriptor(mediatypes.OCI_MANIFEST, "sha256:" + "c" * 64, len(raw)), raw))


# Hostile bytes: test_fuzz.py::test_fuzz_notation_envelopes (hypothesis, seeded from these vectors).


def test_pss_salt_length_follows_the_go_verifiers() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _cert(key, "rsa signer")
    zero_salt = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0)
    headers = _jws_headers(alg="PS256")
    encoded, payload = b64url(json.dumps(headers).encode()), b64url(PAYLOAD)
    signature = key.sign(f"{encoded}.{payload}".encode(), zero_salt, hashes.SHA256())
    jws = {
        "payload": payload,
        "protected": encoded,
        "header": {"x5c": [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]},
        "signature": b64url(signature),
    }
    # golang-jwt accepts any PSS salt length for JWS ...
    assert check(parse(json.dumps(jws).encode()), "signature")[0] is Outcome.PASSED
    protected_raw = cbor2.dumps(_cose_headers() | {1: -37})
    to_sign = cbor2.dumps(["Signature1", protected_raw, b"", PAYLOAD])
    cose = cbor2.CBORTag(
        18,
        [
            protected_raw,
            {33: [cert.public_bytes(Encoding.DER)]},
            PAYLOAD,
            key.sign(to_sign, zero_salt, hashes.SHA256()),
        ],
    )
    # ... go-cose wants salt = hash length.
    assert check(parse(cbor2.dumps(cose)), "signature")[0] is Outcome.FAILED
