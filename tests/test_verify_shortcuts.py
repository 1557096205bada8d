"""The per-signature shortcuts of the key path (bench/verify.py) never turn into a verdict of their own.

Payloads parsed once per distinct blob, verified signatures remembered, keys tried busiest first: each
is checked here against what a cold, fresh judgement says, including the cases where a shortcut would
be wrong if it were keyed too loosely (another key, another subject digest, other signature bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sigscope.formats import cosign
from sigscope.keys import FileSigner, generate, public_pem
from sigscope.model import Check, Descriptor, Outcome, Signature, Status, trust_satisfied
from sigscope.sign import build_payload
from sigscope.trust import keys as trust_keys
from sigscope.trust.certs import utcnow
from sigscope.trust.keys import apply_keys, load_public_key

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
NOW = utcnow()


@pytest.fixture(autouse=True)
def cold() -> Iterator[None]:
    cosign.clear_caches()
    trust_keys.clear_caches()
    yield
    cosign.clear_caches()
    trust_keys.clear_caches()


def signer() -> tuple[FileSigner, ec.EllipticCurvePublicKey]:
    s = FileSigner(generate("ecdsa-p256"))
    key = load_public_key(public_pem(s.private_key))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return s, key


def layer(payload: bytes, signature: bytes, **extra: str) -> Descriptor:
    annotations = {cosign.SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(), **extra}
    return Descriptor(cosign.SIMPLESIGNING_MEDIA_TYPE, "sha256:" + "00" * 32, len(payload), annotations)


def parse(desc: Descriptor, payload: bytes, subject: str = DIGEST) -> Signature:
    return cosign.parse_signature_layer(desc, payload, subject_digest=subject, location="t", now=NOW)


def payload() -> bytes:
    return build_payload("registry.test/app", DIGEST, {})


def test_remembered_verification_needs_the_same_key_supplied_again() -> None:
    (a, key_a), (_, key_b) = signer(), signer()
    body = payload()
    desc = layer(body, a.sign(body))
    assert apply_keys(parse(desc, body), [key_a]).status is Status.VERIFIED
    # Same bytes again, but only B supplied: the memory of A's verify must not vouch for it.
    again = apply_keys(parse(desc, body), [key_b])
    assert again.status is Status.UNTRUSTED
    assert [c.outcome for c in again.checks if c.name == "trusted-key"] == [Outcome.FAILED]
    # Remembered for A: verified, with A's identity and the same checks as the cold judgement.
    warm = apply_keys(parse(desc, body), [key_b, key_a])
    assert warm.status is Status.VERIFIED
    assert warm.signer is not None and warm.signer.public_key is not None
    cold = apply_keys(parse(desc, body), [key_a])
    assert warm.checks == cold.checks and warm.signer == cold.signer


def test_remembered_verification_is_for_the_exact_signature_bytes() -> None:
    a, key_a = signer()
    body = payload()
    good = a.sign(body)
    assert apply_keys(parse(layer(body, good), body), [key_a]).status is Status.VERIFIED
    forged = bytearray(good)
    forged[-1] ^= 1
    tampered = apply_keys(parse(layer(body, bytes(forged)), body), [key_a])
    assert tampered.status is Status.UNTRUSTED
    # The same signature over another payload (same length, one byte changed) is not remembered either.
    other = body.replace(b'"critical"', b'"Critical"')
    assert len(other) == len(body)
    assert apply_keys(parse(layer(other, good), other), [key_a]).status is Status.INVALID


def test_a_payload_parsed_once_is_judged_per_subject_digest() -> None:
    a, key_a = signer()
    body = payload()
    desc = layer(body, a.sign(body))
    first = apply_keys(parse(desc, body), [key_a])
    assert first.status is Status.VERIFIED and first.signed_digest == DIGEST
    # The same blob found attached to another image: the digest check fails there.
    elsewhere = parse(desc, body, subject=OTHER)
    assert elsewhere.status is Status.INVALID
    assert [c.outcome for c in elsewhere.checks if c.name == "payload-digest"] == [Outcome.FAILED]
    assert apply_keys(elsewhere, [key_a]).status is Status.INVALID
    # Records do not share mutable state: changing one leaves the next parse untouched.
    first.claims["docker-reference"] = "changed"
    first.checks.clear()
    again = parse(desc, body)
    assert again.claims["docker-reference"] == "registry.test/app" and again.checks


def test_malformed_payload_is_reported_every_time() -> None:
    a, key_a = signer()
    body = b'{"critical": 1}'
    desc = layer(body, a.sign(body))
    for _ in range(2):
        sig = parse(desc, body)
        assert sig.status is Status.INVALID and sig.error == "payload has no critical section"
        assert apply_keys(sig, [key_a]).status is Status.INVALID


def test_attached_annotation_takes_the_full_path() -> None:
    # A certificate annotation that is not a certificate must not be skipped by the key-only shortcut.
    a, _ = signer()
    body = payload()
    sig = parse(
        layer(body, a.sign(body), **{cosign.CERTIFICATE_ANNOTATION: "-----BEGIN CERTIFICATE-----"}), body
    )
    assert sig.status is Status.INVALID and sig.error is not None and "certificate" in sig.error
    plain = parse(layer(body, a.sign(body)), body)
    assert plain.claims.get("keyOnly") is True and plain.status is Status.UNVERIFIED


def test_busiest_key_is_tried_first_and_others_still_verify() -> None:
    (a, key_a), (b, key_b), (_, key_c) = signer(), signer(), signer()
    keys = [key_c, key_a, key_b]
    body = payload()
    for _ in range(3):
        assert apply_keys(parse(layer(body, b.sign(body)), body), keys).status is Status.VERIFIED
    probe = parse(layer(body, a.sign(body)), body)
    assert next(trust_keys._candidates(probe, keys)) is key_b
    # Ordering only: a signature by another supplied key still verifies, one by no supplied key does not.
    assert apply_keys(probe, keys).status is Status.VERIFIED
    assert probe.signer is not None and probe.signer.public_key == trust_keys._key_info(key_a)
    stranger = FileSigner(generate("ecdsa-p256"))
    assert apply_keys(parse(layer(body, stranger.sign(body)), body), keys).status is Status.UNTRUSTED


def test_one_trust_check_alone() -> None:
    # The single-check shortcut of trust_satisfied: a lone member of a certificate group never suffices.
    assert trust_satisfied([Check.passed("trusted-key", "k")])
    assert not trust_satisfied([Check.failed("trusted-key", "k")])
    for name in ("certificate-chain", "certificate-identity", "sigstore", "transparency-log"):
        assert not trust_satisfied([Check.passed(name, "x")])
    assert trust_satisfied([Check.passed("trusted-identity", "x")])
