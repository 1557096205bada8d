"""`sigscope sign --format notation|notation-cose`: Notary Project envelopes, signature manifests, referrers.

Bytes are proven against the vectors (notation-core-go's conformance envelopes, and notation-go's real JWS and
COSE signatures, rebuilt byte for byte with their own signature spliced in); signatures we make are checked by
our parser and trust-policy verifier (formats/notation.py, trust/notation_verify.py); round trips run through
the CLI against the session's Debian registry (no referrers API: the fallback tag index), the same registry
behind ``RegistryProxy(referrers_api=True)`` (the referrers API) and OCI layouts, with and without RFC 3161
timestamps from the loopback ``openssl ts`` TSA, then ``sigscope verify --trust-policy/--trust-store`` and
``sigscope scan registry`` judge them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from testbed import RegistryHandle, build_layout, fetch_blob, fetch_manifest, push_layout, vectors
from testbed.cli import assert_clean_failure
from testbed.cli import run_sigscope as run
from testbed.pki import PKI
from testbed.proxy import RegistryProxy
from testbed.tsa import TSAServer

from sigscope.cli.cert import generate_test_certificate
from sigscope.errors import UsageError
from sigscope.formats import notation
from sigscope.formats import notation_build as build
from sigscope.keys import FileSigner, load_private_key
from sigscope.model import Descriptor, Outcome, Signature
from sigscope.oci.layout import OCILayout
from sigscope.oci.mediatypes import EMPTY_DIGEST
from sigscope.sign_notation import (
    NotationSignError,
    NotationSignOptions,
    TimestampVerifyError,
    check_timestamp_token,
    make_envelope,
    parse_duration,
    parse_user_metadata,
    prepare_envelope,
    push_signature,
    resolve_target,
)
from sigscope.trust.notation_policy import parse_policy
from sigscope.trust.notation_verify import evaluate
from sigscope.trust.truststore import StoreRef, TrustStore

VECTORS = vectors.ROOT
CORE = VECTORS / "notaryproject-notation-core-go" / "signature"
NOTATION_GO = VECTORS / "notaryproject-notation-go" / "internal" / "testdata"
VECTOR_SUBJECT = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
    size=481,
)
TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "ab" * 32,
    size=1234,
)
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
INTEGRITY = (
    "envelope",
    "payload",
    "critical-headers",
    "algorithm",
    "signature",
    "chain",
    "payload-digest",
    "thumbprints",
)


def vector(path: Path) -> Path:
    return vectors.require(path)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check(sig: Signature, name: str) -> Any:
    [found] = [c for c in sig.checks if c.name == name]
    return found


def parse(blob: bytes, media_type: str, subject: Descriptor = TARGET, at: datetime = NOW) -> Signature:
    manifest = build.signature_manifest(blob, media_type, subject, chain_of_envelope(blob, media_type), at)
    annotations = json.loads(manifest)["annotations"]
    return notation.parse_envelope(
        blob, media_type, subject=subject, location="test", now=at, manifest_annotations=annotations
    )


def chain_of_envelope(blob: bytes, media_type: str) -> list[bytes]:
    if media_type == notation.JWS_MEDIA_TYPE:
        return [base64.b64decode(c) for c in json.loads(blob)["header"]["x5c"]]
    return list(cbor2.loads(blob).value[1][33])


def statement(*stores: str, identity: str = "*", **verification: Any) -> Any:
    body = {
        "name": "p",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict", **verification},
        "trustStores": list(stores or ("ca:test",)),
        "trustedIdentities": [identity],
    }
    document = json.dumps({"version": "1.0", "trustPolicies": [body]}).encode()
    return parse_policy(document, "test policy").statements[0]


# ---------------------------------------------------------------- conformance: bytes from the vectors


def test_jws_conformance_headers_byte_for_byte() -> None:
    """notation-core-go's JWS conformance vector: `protected` and `payload` are fixed expected output."""
    doc = json.loads(vector(CORE / "jws" / "testdata" / "conformance.json").read_text())
    attributes = (
        build.Attribute("signedCritKey1", "signedCritValue1", critical=True),
        *(build.Attribute(f"signedKey{i}", "signedValue1") for i in range(1, 5)),
    )
    request = build.SignRequest(
        payload=b'{"key":"hello JWS"}',
        signing_time=datetime(2022, 8, 29, 13, 50, tzinfo=UTC),
        expiry=datetime(2099, 8, 30, 13, 50, tzinfo=UTC),
        extended_attributes=attributes,
        signing_agent="NotationConformanceTest/1.0.0",
    )
    prepared = build.prepare(build.ENVELOPE_JWS, request, "ES256")
    assert build.b64url(prepared.protected) == doc["protected"]
    assert build.b64url(prepared.payload) == doc["payload"]
    assert prepared.signing_input == f"{doc['protected']}.{doc['payload']}".encode()
    # no chain in the vector: the unprotected header is the agent alone (x5c is written, empty)
    envelope = json.loads(prepared.assemble(b64url_decode(doc["signature"])))
    assert envelope["header"]["io.cncf.notary.signingAgent"] == doc["header"]["io.cncf.notary.signingAgent"]
    assert list(envelope) == ["payload", "protected", "header", "signature"]


def test_cose_conformance_envelope_byte_for_byte() -> None:
    """notation-core-go's COSE conformance vector: protected and unprotected headers are exact CBOR, and the
    whole COSE_Sign1 equals the expected output once the vector's (random PSS) signature is spliced in."""
    doc = json.loads(vector(CORE / "cose" / "testdata" / "conformance.json").read_text())
    request = build.SignRequest(
        payload=bytes.fromhex(doc["payload"]),
        signing_time=datetime.fromtimestamp(doc["signingTime"], UTC),
        expiry=datetime.fromtimestamp(doc["expiry"], UTC),
        extended_attributes=(
            build.Attribute("signedCritKey1", "signedCritValue1", critical=True),
            build.Attribute("signedKey1", "signedValue1"),
        ),
        signing_agent="NotationConformanceTest/1.0.0",
    )
    prepared = build.prepare(build.ENVELOPE_COSE, request, "PS384")
    assert prepared.protected.hex().upper() == doc["protectedHeaders"]["cborHex"]
    unprotected = build.cose_unprotected_header((), "NotationConformanceTest/1.0.0", None)
    assert unprotected.hex().upper() == doc["unprotectedHeaders"]["cborHex"]
    expected = bytes.fromhex(doc["expectedOutput"]["cborHex"])
    assert prepared.assemble(cbor2.loads(expected).value[3]) == expected
    assert prepared.signing_input == cbor2.dumps(["Signature1", prepared.protected, b"", request.payload])


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_notation_go_signatures_rebuilt_byte_for_byte(envelope: str) -> None:
    """notation-go's real signatures of its OCI layout: same payload, protected header (the JWS one with a
    +08:00 signing time), x5c and agent — the whole envelope, once its signature is spliced in."""
    if envelope == "jws":
        raw = vector(NOTATION_GO / "jws_signature.sig").read_bytes()
        doc = json.loads(raw)
        chain = [base64.b64decode(c) for c in doc["header"]["x5c"]]
        signing_time = datetime(2023, 3, 14, 16, 10, 2, tzinfo=timezone(timedelta(hours=8)))
        signature = b64url_decode(doc["signature"])
    else:
        raw = vector(NOTATION_GO / "cose_signature.sig").read_bytes()
        parts = cbor2.loads(raw).value
        chain = list(parts[1][33])
        signing_time = datetime.fromtimestamp(
            cbor2.loads(parts[0])["io.cncf.notary.signingTime"].timestamp(), UTC
        )
        signature = parts[3]
    request = build.SignRequest(
        payload=build.build_payload(VECTOR_SUBJECT), signing_time=signing_time, signing_agent="Notation/1.0.0"
    )
    prepared = build.prepare(envelope, request, "PS256", chain)
    assert prepared.assemble(signature) == raw
    # and our parser agrees the rebuilt bytes verify (they are the vector's)
    sig = notation.parse_envelope(
        prepared.assemble(signature), prepared.media_type, subject=VECTOR_SUBJECT, location="v", now=NOW
    )
    assert check(sig, "signature").outcome is Outcome.PASSED


def test_payload_and_manifest_bytes() -> None:
    payload = build.build_payload(TARGET, {"b": "2", "a": "<1>"})
    assert payload == (
        b'{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'
        + b"ab" * 32
        + b'","size":1234,"annotations":{"a":"\\u003c1\\u003e","b":"2"}}}'
    )
    # JWS signs the map-sorted form (golang-jwt re-marshals the claims)
    assert build.jws_payload(payload).startswith(b'{"targetArtifact":{"annotations":{"a":"\\u003c1')
    chain = [b"leaf-der", b"root-der"]
    manifest = build.signature_manifest(b"ENVELOPE", notation.COSE_MEDIA_TYPE, TARGET, chain, NOW)
    data = json.loads(manifest)
    assert list(data) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    assert data["artifactType"] == "application/vnd.cncf.notary.signature"
    assert data["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
        "data": "e30=",
    }
    assert data["layers"][0]["mediaType"] == "application/cose" and data["layers"][0]["size"] == 8
    assert data["subject"] == {"mediaType": TARGET.media_type, "digest": TARGET.digest, "size": TARGET.size}
    thumbs = json.loads(data["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"])
    assert thumbs == build.thumbprints(chain) and all(t == t.lower() and len(t) == 64 for t in thumbs)
    assert data["annotations"]["org.opencontainers.image.created"] == "2026-06-01T12:00:00Z"
    assert b" " not in manifest


# ---------------------------------------------------------------- envelopes we sign, judged by our verifier


@pytest.fixture(scope="module")
def generated() -> dict[str, tuple[FileSigner, tuple[x509.Certificate, ...]]]:
    out = {}
    for key_type in ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"):
        made = generate_test_certificate(f"sig-{key_type}", key_type=key_type, now=NOW - timedelta(days=1))
        out[key_type] = (FileSigner(made.key), made.chain)
    return out


ALGS = {
    "rsa-2048": "PS256",
    "rsa-3072": "PS384",
    "rsa-4096": "PS512",
    "ecdsa-p256": "ES256",
    "ecdsa-p384": "ES384",
    "ecdsa-p521": "ES512",
}


@pytest.mark.parametrize("envelope", ["jws", "cose"])
@pytest.mark.parametrize("key_type", list(ALGS))
def test_signed_envelopes_verify(
    generated: dict[str, tuple[FileSigner, tuple[x509.Certificate, ...]]], key_type: str, envelope: str
) -> None:
    signer, chain = generated[key_type]
    options = NotationSignOptions(
        chain=chain, envelope=envelope, expiry=timedelta(hours=24), user_metadata={"env": "prod"}, now=NOW
    )
    signed = asyncio.run(make_envelope(signer, TARGET, options))
    assert signed.alg == ALGS[key_type]
    sig = parse(signed.envelope, signed.media_type)
    for name in INTEGRITY:
        assert check(sig, name).outcome is Outcome.PASSED, (name, check(sig, name).detail)
    assert check(sig, "expiry").outcome is Outcome.PASSED
    assert sig.claims["alg"] == ALGS[key_type] and sig.claims["userMetadata"] == {"env": "prod"}
    assert sig.signing_time == NOW and sig.expiry == NOW + timedelta(hours=24)
    store = TrustStore.from_certificates({StoreRef("ca", "test"): [chain[-1]]})
    result = evaluate(
        sig, statement(identity="x509.subject:" + chain[0].subject.rfc4514_string()), store, NOW
    )
    assert result.satisfied and result.trusted, result.reason
    # and not under a store holding someone else's root
    other = TrustStore.from_certificates({StoreRef("ca", "test"): [generated["rsa-2048"][1][-1]]})
    if key_type != "rsa-2048":
        assert not evaluate(sig, statement(), other, NOW).satisfied
    # ECDSA is raw r||s; PSS uses salt = hash length (go-cose insists; checked here with the exact length)
    key = chain[0].public_key()
    signing_input = build.prepare(
        envelope,
        build.SignRequest(
            payload=build.build_payload(TARGET, {"env": "prod"}),
            signing_time=NOW,
            expiry=NOW + timedelta(hours=24),
            signing_agent=options.signing_agent,
        ),
        signed.alg,
    ).signing_input
    digest = build.hash_for(signed.alg)
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            signed.signature,
            signing_input,
            padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
            digest,
        )
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert len(signed.signature) == 2 * ((key.curve.key_size + 7) // 8)


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_signing_authority_scheme(
    generated: dict[str, tuple[FileSigner, tuple[x509.Certificate, ...]]], envelope: str
) -> None:
    signer, chain = generated["ecdsa-p256"]
    options = NotationSignOptions(
        chain=chain, envelope=envelope, signing_scheme=notation.SCHEME_SIGNING_AUTHORITY, now=NOW
    )
    prepared, signature, _ = prepare_envelope(signer, TARGET, options)
    if envelope == "jws":
        header = json.loads(prepared.protected)
    else:
        header = cbor2.loads(prepared.protected)
        header["crit"] = header[2]
    assert header["crit"] == ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"]
    assert "io.cncf.notary.signingTime" not in header and "io.cncf.notary.authenticSigningTime" in header
    sig = parse(prepared.assemble(signature), prepared.media_type)
    assert all(check(sig, n).outcome is Outcome.PASSED for n in INTEGRITY)
    store = TrustStore.from_certificates({StoreRef("signingAuthority", "sa"): [chain[-1]]})
    assert evaluate(sig, statement("signingAuthority:sa"), store, NOW).satisfied
    # a ca: store does not vouch for a signingAuthority signature
    ca_store = TrustStore.from_certificates({StoreRef("ca", "test"): [chain[-1]]})
    assert not evaluate(sig, statement(), ca_store, NOW).satisfied


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_short_expiry_expires(
    generated: dict[str, tuple[FileSigner, tuple[x509.Certificate, ...]]], envelope: str
) -> None:
    """A fixed clock in the pure layer: signed at NOW with a 1s expiry, judged at NOW+2s → expired."""
    signer, chain = generated["rsa-2048"]
    options = NotationSignOptions(chain=chain, envelope=envelope, expiry=parse_duration("1s"), now=NOW)
    signed = asyncio.run(make_envelope(signer, TARGET, options))
    assert check(parse(signed.envelope, signed.media_type, at=NOW), "expiry").outcome is Outcome.PASSED
    late = parse(signed.envelope, signed.media_type, at=NOW + timedelta(seconds=2))
    assert check(late, "expiry").outcome is Outcome.FAILED and "expired" in check(late, "expiry").detail
    store = TrustStore.from_certificates({StoreRef("ca", "test"): [chain[-1]]})
    result = evaluate(late, statement(), store, NOW + timedelta(seconds=2))
    assert not result.satisfied and "expired" in result.reason


def test_signing_material_refused(pki_dir: PKI) -> None:
    """What notation refuses before it signs: key/cert mismatch, certificate requirements, chain shape."""

    def signer(name: str) -> FileSigner:
        return FileSigner(load_private_key(pki_dir[name].key_path.read_bytes()))

    def chain(name: str) -> tuple[x509.Certificate, ...]:
        return (pki_dir[name].cert, *pki_dir[name].chain)

    def sign(who: str, certs: tuple[x509.Certificate, ...]) -> None:
        prepare_envelope(signer(who), TARGET, NotationSignOptions(chain=certs, now=datetime.now(UTC)))

    sign("rsa-signer", chain("rsa-signer"))  # the good case, for contrast
    with pytest.raises(NotationSignError, match="does not match the certificate"):
        sign("rsa-signer", chain("ec-signer"))
    with pytest.raises(NotationSignError, match="extended key usage must not contain ServerAuth"):
        sign("server-only", chain("server-only"))
    with pytest.raises(NotationSignError, match="invalid at signing time"):
        sign("expired-signer", chain("expired-signer"))
    with pytest.raises(NotationSignError, match="The only certificate of the chain must be self-signed"):
        sign("rsa-signer", chain("rsa-signer")[:1])  # no root: the chain must end in one
    with pytest.raises(NotationSignError, match="is not issued by"):
        sign("rsa-signer", (pki_dir["rsa-signer"].cert, pki_dir["other-root"].cert))
    with pytest.raises(NotationSignError, match="extended key usage must not contain Timestamping"):
        # a TSA leaf is not a code-signing leaf
        sign("tsa", chain("tsa"))
    sign("self-signer", chain("self-signer"))  # one self-signed code-signing certificate is a valid chain


def test_unsupported_keys_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ed")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, None)
    )
    with pytest.raises(UsageError, match="Ed25519 keys are not supported"):
        prepare_envelope(FileSigner(key), TARGET, NotationSignOptions(chain=(cert,), now=NOW))
    with pytest.raises(UsageError, match="RSA key size 1024"):
        build.algorithm_for(rsa.generate_private_key(65537, 1024).public_key())
    with pytest.raises(UsageError, match="secp224r1"):
        build.algorithm_for(ec.generate_private_key(ec.SECP224R1()).public_key())


def test_request_rules() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90s") == timedelta(seconds=90)
    for bad in ("", "24", "h", "-1h", "1x", "0s", "500ms", "1h 30m"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert parse_user_metadata(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    for items in (["noequals"], ["=v"], ["a=1", "a=2"], ["io.cncf.notary.thing=1"]):
        with pytest.raises(UsageError):
            parse_user_metadata(items)
    with pytest.raises(UsageError, match="not after the signing time"):
        build.SignRequest(payload=b"{}", signing_time=NOW, expiry=NOW).checked()
    with pytest.raises(UsageError, match="signing scheme"):
        build.SignRequest(payload=b"{}", signing_time=NOW, signing_scheme="notary.other").checked()
    with pytest.raises(UsageError, match="clashes"):
        build.SignRequest(
            payload=b"{}",
            signing_time=NOW,
            extended_attributes=(build.Attribute("io.cncf.notary.expiry", 1),),
        ).checked()
    # times are truncated to seconds, as notation does
    fractional = build.SignRequest(payload=b"{}", signing_time=NOW.replace(microsecond=999)).checked()
    assert fractional.signing_time == NOW
    with pytest.raises(UsageError, match="--timestamp-root"):
        NotationSignOptions(chain=(), timestamp_url="http://127.0.0.1:1/").checked()
    with pytest.raises(UsageError, match=r"notary\.x509 only"):
        NotationSignOptions(
            chain=(),
            timestamp_url="http://127.0.0.1:1/",
            timestamp_roots=(generate_test_certificate("x", now=NOW).anchor,),
            signing_scheme=notation.SCHEME_SIGNING_AUTHORITY,
        ).checked()


# ---------------------------------------------------------------- timestamps from the loopback TSA


@pytest.fixture(scope="module")
def pki_dir(tsa_pki: PKI) -> PKI:
    return tsa_pki


@pytest.mark.parametrize("envelope", ["jws", "cose"])
@pytest.mark.parametrize("entity", ["rsa-signer", "ec-signer"])
def test_timestamped_envelope(pki_dir: PKI, tsa: TSAServer, envelope: str, entity: str) -> None:
    signer = FileSigner(load_private_key(pki_dir[entity].key_path.read_bytes()))
    chain = (pki_dir[entity].cert, *pki_dir[entity].chain)
    root = pki_dir["root"].cert
    options = NotationSignOptions(
        chain=chain, envelope=envelope, timestamp_url=tsa.url, timestamp_roots=(root,), now=datetime.now(UTC)
    )
    signed = asyncio.run(make_envelope(signer, TARGET, options))
    assert signed.timestamp is not None
    sig = parse(signed.envelope, signed.media_type, at=datetime.now(UTC))
    # carried, but only a claim until a policy names a tsa: store
    assert sig.evidence["timestamp-token"] and not sig.timestamped
    store = TrustStore.from_certificates({StoreRef("ca", "test"): [root], StoreRef("tsa", "tsa"): [root]})
    result = evaluate(sig, statement("ca:test", "tsa:tsa"), store, datetime.now(UTC))
    assert result.satisfied, result.reason
    [stamp] = [c for c in result.checks if c.name == "authentic-timestamp"]
    assert stamp.outcome is Outcome.PASSED and "time-stamped" in stamp.detail
    # the token covers the primitive signature, hashed like the envelope (imprint = hash(signature))
    from sigscope.trust.timestamp import parse_token

    token = parse_token(sig.evidence["timestamp-token"])
    assert token.hash_algorithm == build.hash_for(signed.alg).name
    # a TSA root the user did not name is refused at signing time
    with pytest.raises(TimestampVerifyError, match="does not verify against --timestamp-root"):
        check_timestamp_token(
            sig.evidence["timestamp-token"], signed.signature, [pki_dir["other-root"].cert], chain
        )
    # a token over other bytes is refused too
    with pytest.raises(TimestampVerifyError):
        check_timestamp_token(sig.evidence["timestamp-token"], b"other", [root], chain)


# ---------------------------------------------------------------- round trips through the CLI


def net(image: str) -> tuple[str, ...]:
    return () if image.startswith("oci:") else ("--insecure",)


def trust_config(directory: Path, pki_dir: PKI, scope: str, *, with_tsa: bool) -> Path:
    """A notation config dir: ca:sigscope (and tsa:sigscope-tsa) hold the test root."""
    for store in ("ca/sigscope", "tsa/sigscope-tsa") if with_tsa else ("ca/sigscope",):
        path = directory / "truststore" / "x509" / store
        path.mkdir(parents=True, exist_ok=True)
        (path / "root.crt").write_bytes(pki_dir["root"].cert.public_bytes(serialization.Encoding.PEM))
    stores = ["ca:sigscope", "tsa:sigscope-tsa"] if with_tsa else ["ca:sigscope"]
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "signed-by-us",
                "registryScopes": [scope],
                "signatureVerification": {"level": "strict"},
                "trustStores": stores,
                # the test PKI's DNs lack ST, which an x509.subject identity must have (test_cert_cmd.py
                # checks a real identity); the trust store still decides
                "trustedIdentities": ["*"],
            }
        ],
    }
    (directory / "trustpolicy.json").write_text(json.dumps(policy))
    return directory


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


@pytest.fixture
def referrers_proxy(registry: RegistryHandle) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry.url, referrers_api=True) as proxy:
        yield proxy


CASES = [
    ("notation", "rsa-signer", False),
    ("notation-cose", "ec-signer", False),
    ("notation", "ec-signer", True),
    ("notation-cose", "rsa-signer", True),
]


@pytest.mark.parametrize("target", ["registry", "referrers-api", "layout"])
@pytest.mark.parametrize(("fmt", "entity", "with_tsa"), CASES)
def test_round_trip(
    target: str,
    fmt: str,
    entity: str,
    with_tsa: bool,
    registry: RegistryHandle,
    referrers_proxy: RegistryProxy,
    pki_dir: PKI,
    tsa: TSAServer,
    tmp_path: Path,
) -> None:
    name = f"notation-sign/{target}-{fmt}-{entity}-{'tsa' if with_tsa else 'plain'}"
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed=f"sigscope/{name}")
    if target == "layout":
        image, scope, host = f"oci:{layout}:v1", "*", ""
    else:
        push_layout(layout, "v1", registry.host, name, "1.0")
        host = referrers_proxy.host if target == "referrers-api" else registry.host
        image, scope = f"{host}/{name}:1.0", f"{host}/{name}"
    extra = (
        ("--timestamp-url", tsa.url, "--timestamp-root", str(pki_dir["root"].cert_path)) if with_tsa else ()
    )
    signed = run(
        "sign",
        image,
        *net(image),
        "--format",
        fmt,
        "--key",
        str(pki_dir[entity].key_path),
        "--cert",
        str(pki_dir[entity].chain_path),
        "--expiry",
        "24h",
        "-m",
        "build=42",
        *extra,
        "-o",
        "json",
    )
    assert signed.returncode == 0, signed.stderr
    [result] = json.loads(signed.stdout)["signed"]
    assert result["digest"] == digest and result["format"] == (
        "notation-cose" if fmt == "notation-cose" else "notation-jws"
    )
    assert ("timestamp" in result) == with_tsa
    referrer = result["signatureManifest"]

    # where the referrer went: the API (no fallback tag), the fallback index, or the layout's index
    if target == "registry":
        index = fetch_manifest(registry.host, name, fallback_tag(digest))
        assert index is not None and [m["digest"] for m in index["manifests"]] == [referrer]
        assert index["manifests"][0]["artifactType"] == "application/vnd.cncf.notary.signature"
    elif target == "referrers-api":
        # the registry said OCI-Subject, so no fallback index was written
        assert fetch_manifest(registry.host, name, fallback_tag(digest)) is None
        assert ("PUT", f"/v2/{name}/manifests/{referrer}") in referrers_proxy.requests
        assert not any(m == "PUT" and fallback_tag(digest) in p for m, p in referrers_proxy.requests)
    else:
        entries = json.loads((layout / "index.json").read_text())["manifests"]
        tags = {e.get("annotations", {}).get("org.opencontainers.image.ref.name"): e for e in entries}
        assert fallback_tag(digest) in tags
    if target != "layout":
        manifest = fetch_manifest(registry.host, name, referrer)
        assert manifest is not None and manifest["subject"]["digest"] == digest
        envelope = fetch_blob(registry.host, name, manifest["layers"][0]["digest"])
        assert manifest["layers"][0]["mediaType"] == (
            notation.COSE_MEDIA_TYPE if fmt == "notation-cose" else notation.JWS_MEDIA_TYPE
        )
        assert envelope

    config = trust_config(tmp_path / "notation", pki_dir, scope, with_tsa=with_tsa)
    verified = run(
        "verify",
        image,
        *net(image),
        "--trust-policy",
        str(config / "trustpolicy.json"),
        "--trust-store",
        str(config / "truststore"),
        "-o",
        "json",
    )
    assert verified.returncode == 0, verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["verified"]
    [judged] = verdict["signatures"]
    assert judged["status"] == "verified"

    # the scan finds it and names the signer
    scan_target = f"oci:{layout}" if target == "layout" else host
    scan = run(
        "scan", "registry", scan_target, *net(image), *(("--repo", name) if host else ()), "-o", "json"
    )
    assert scan.returncode == 0, scan.stderr
    found = [
        s
        for s in json.loads(scan.stdout)["registry"]["signatures"]
        if str(s.get("format", "")).startswith("notation")
    ]
    assert len(found) == 1 and pki_dir[entity].cert.subject.rfc4514_string() in found[0]["subjectname"]


def test_fallback_index_keeps_existing_entries(
    registry: RegistryHandle, pki_dir: PKI, tmp_path: Path
) -> None:
    """Two signatures on one image and a foreign entry already in the sha256-<hex> index: none is lost."""
    name = "notation-sign/keeps-entries"
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed=f"sigscope/{name}")
    push_layout(layout, "v1", registry.host, name, "1.0")

    from sigscope.oci.client import RegistryClient, RegistryOptions

    sbom = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2}],
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": 1,
            },
        }
    ).encode()

    async def seed() -> str:
        async with RegistryClient(registry.host, RegistryOptions(insecure=True)) as client:
            repo = client.repository(name)
            await repo.put_blob(b"{}", "application/vnd.oci.empty.v1+json")
            return (await repo.push_referrer(sbom, "application/vnd.oci.image.manifest.v1+json")).digest

    foreign = asyncio.run(seed())
    image = f"{registry.host}/{name}:1.0"
    made = []
    for fmt in ("notation", "notation-cose"):
        out = run(
            "sign",
            image,
            "--insecure",
            "--format",
            fmt,
            "--key",
            str(pki_dir["ec-signer"].key_path),
            "--cert",
            str(pki_dir["ec-signer"].chain_path),
            "-o",
            "json",
        )
        assert out.returncode == 0, out.stderr
        made.append(json.loads(out.stdout)["signed"][0]["signatureManifest"])
    index = fetch_manifest(registry.host, name, fallback_tag(digest))
    assert index is not None
    assert [m["digest"] for m in index["manifests"]] == [foreign, *made]
    assert index["manifests"][0]["artifactType"] == "application/spdx+json"
    thumbs = index["manifests"][1]["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"]
    assert json.loads(thumbs) == build.thumbprints(
        [
            c.public_bytes(serialization.Encoding.DER)
            for c in (pki_dir["ec-signer"].cert, *pki_dir["ec-signer"].chain)
        ]
    )


def test_expired_signature_fails_verify(pki_dir: PKI, tmp_path: Path) -> None:
    """Signed an hour ago (fixed clock) with a one-second expiry, stored in a layout: verify exits 1."""
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/notation-sign/expired")
    signer = FileSigner(load_private_key(pki_dir["rsa-signer"].key_path.read_bytes()))
    chain = (pki_dir["rsa-signer"].cert, *pki_dir["rsa-signer"].chain)
    options = NotationSignOptions(
        chain=chain, expiry=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(hours=1)
    )

    async def sign() -> None:
        repository = OCILayout(layout)
        target = await resolve_target(repository, "v1")
        await push_signature(repository, target, await make_envelope(signer, target, options))

    asyncio.run(sign())
    config = trust_config(tmp_path / "notation", pki_dir, "*", with_tsa=False)
    result = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert result.returncode == 1, result
    assert "expired" in result.stdout and "Traceback" not in result.stderr


def test_cli_refusals(registry: RegistryHandle, pki_dir: PKI, tsa: TSAServer, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/notation-sign/refusals")
    image = f"oci:{layout}:v1"

    def sign(entity: str, cert_entity: str | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
        cert = pki_dir[cert_entity or entity].chain_path
        return run(
            "sign",
            image,
            "--format",
            "notation",
            "--key",
            str(pki_dir[entity].key_path),
            "--cert",
            str(cert),
            *extra,
        )

    assert_clean_failure(sign("rsa-signer", "ec-signer"), "does not match the certificate")
    assert_clean_failure(sign("server-only"), "does not meet the Notary Project requirements")
    assert_clean_failure(sign("expired-signer"), "invalid at signing time")
    assert_clean_failure(sign("rsa-signer", None, "-m", "io.cncf.notary.x=1"), "reserved prefix")
    assert_clean_failure(sign("rsa-signer", None, "--expiry", "soon"), "duration 'soon'")
    assert_clean_failure(sign("rsa-signer", None, "--timestamp-url", tsa.url), "--timestamp-root")
    assert_clean_failure(sign("rsa-signer", None, "-a", "k=v"), "-a cannot be used with --format notation")
    assert_clean_failure(
        sign(
            "rsa-signer",
            None,
            "--timestamp-url",
            tsa.url,
            "--timestamp-root",
            str(pki_dir["other-root"].cert_path),
        ),
        "does not verify against --timestamp-root",
    )
    no_cert = run("sign", image, "--format", "notation-cose", "--key", str(pki_dir["rsa-signer"].key_path))
    assert_clean_failure(no_cert, "needs --cert")
    cosign_with_notation_flag = run(
        "sign", image, "--key", str(pki_dir["rsa-signer"].key_path), "--expiry", "1h"
    )
    assert_clean_failure(cosign_with_notation_flag, "go with --format notation")
    # nothing was written by any refusal
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    assert len(entries) == 1
