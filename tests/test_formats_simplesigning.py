"""containers/image simple signatures: c/image fixtures, gpg- and skopeo-made ones, hand-built packets."""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testbed import absent, vectors

from sigscope.formats import simplesigning as ss
from sigscope.model import Outcome, Signature, SignatureFormat, Status

VECTORS = vectors.ROOT
FIXTURES = VECTORS / "containers-image" / "signature" / "fixtures"
NOW = datetime(2025, 7, 1, tzinfo=UTC)
OTHER_DIGEST = "sha256:" + "ab" * 32
TEST_KEY_ID = "E932F44B23E8DD43"
TEST_KEY_FPR = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
SUBKEY_ID = "D75B3109B3BAAEAF"

needs_vectors = pytest.mark.vectors


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def manifest_digest() -> str:
    return "sha256:" + hashlib.sha256(fixture("image.manifest.json")).hexdigest()


def parse(blob: bytes, digest: str | None = None, now: datetime = NOW) -> Signature:
    return ss.parse_signature(blob, subject_digest=digest or manifest_digest(), location="test", now=now)


def outcome(sig: Signature, name: str) -> Outcome | None:
    found = [c.outcome for c in sig.checks if c.name == name]
    return found[0] if found else None


def detail(sig: Signature, name: str) -> str:
    return next(c.detail for c in sig.checks if c.name == name)


def key_id(sig: Signature) -> str | None:
    if sig.signer is None or sig.signer.pgp is None:
        return None
    return sig.signer.pgp.key_id


# ----------------------------------------------------------------------------- c/image fixtures


@needs_vectors
def test_image_signature() -> None:
    sig = parse(fixture("image.signature"))
    assert sig.format is SignatureFormat.SIMPLE_SIGNING
    assert sig.error is None
    assert key_id(sig) == TEST_KEY_ID
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.fingerprint == TEST_KEY_FPR  # from issuer fingerprint subpacket 33
    assert sig.signer.pgp.algorithm == "RSA"
    assert sig.signer.pgp.created == datetime.fromtimestamp(1750706529, UTC)
    assert sig.signing_time == sig.signer.pgp.created
    assert sig.claims == {
        "docker-reference": "testing/manifest",
        "type": "atomic container signature",
        "creator": "atomic ",
        "timestamp": 1458239713,
    }
    assert sig.signed_digest == manifest_digest()
    assert outcome(sig, "envelope") is Outcome.PASSED
    assert "RSA/SHA256" in detail(sig, "envelope")
    assert outcome(sig, "payload") is Outcome.PASSED
    assert outcome(sig, "payload-digest") is Outcome.PASSED
    assert outcome(sig, "signature") is Outcome.SKIPPED
    assert "--gpg-keyring" in detail(sig, "signature")
    # Nothing was verified, so nothing may claim more than "unverified".
    assert sig.status is Status.UNVERIFIED
    assert sig.evidence["payload"].startswith(b'{"critical"')
    assert sig.evidence["openpgp"] == fixture("image.signature")


@needs_vectors
def test_payload_digest_mismatch_names_both() -> None:
    sig = parse(fixture("image.signature"), digest=OTHER_DIGEST)
    assert outcome(sig, "payload-digest") is Outcome.FAILED
    assert manifest_digest() in detail(sig, "payload-digest")
    assert OTHER_DIGEST in detail(sig, "payload-digest")
    assert sig.status is Status.INVALID


@needs_vectors
@pytest.mark.parametrize(
    ("name", "key", "reference", "version"),
    [
        ("no-optional-fields.signature", TEST_KEY_ID, "testing/manifest", 4),
        ("subkey.signature", SUBKEY_ID, "testing/manifest:latest", 4),
        ("subkey.signature-v3", SUBKEY_ID, "testing/manifest:latest", 3),
        ("unknown-key.signature", "5F9470E3BC6C3B55", "testing/manifest", 4),
        ("unknown-key.signature-v3", "5F9470E3BC6C3B55", "testing/manifest", 3),
        # Bad crypto is invisible without the key: the scan can only say "unverified".
        ("corrupt.signature", TEST_KEY_ID, "testing/manifest", 4),
        ("corrupt.signature-v3", TEST_KEY_ID, "testing/manifest", 3),
        ("dir-img-valid/signature-1", TEST_KEY_ID, "testing/manifest:latest", 4),
        ("dir-img-valid-2/signature-2", TEST_KEY_ID, "testing/manifest:latest", 4),
        ("dir-img-valid-subkey/signature-1", SUBKEY_ID, "testing/manifest:latest", 4),
    ],
)
def test_well_formed_fixtures(name: str, key: str, reference: str, version: int) -> None:
    sig = parse(fixture(name))
    assert key_id(sig) == key
    assert sig.claims["docker-reference"] == reference
    assert f"V{version} " in detail(sig, "envelope")
    assert [c.outcome for c in sig.checks] == [
        Outcome.PASSED,
        Outcome.PASSED,
        Outcome.PASSED,
        Outcome.SKIPPED,
    ]
    assert sig.status is Status.UNVERIFIED


@needs_vectors
def test_no_optional_fields() -> None:
    sig = parse(fixture("no-optional-fields.signature"))
    assert "creator" not in sig.claims and "timestamp" not in sig.claims


@needs_vectors
def test_v3_signature_has_no_fingerprint() -> None:
    sig = parse(fixture("subkey.signature-v3"))
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.fingerprint is None
    assert sig.signer.pgp.created == datetime.fromtimestamp(1753303215, UTC)


@needs_vectors
def test_invalid_reference() -> None:
    sig = parse(fixture("invalid-reference.signature"))
    assert outcome(sig, "payload") is Outcome.FAILED
    assert "UPPERCASEISINVALID" in detail(sig, "payload")
    assert "reference" in detail(sig, "payload")
    # The claim is still shown (it is what the bytes say), and the digest still compared.
    assert sig.claims["docker-reference"] == "UPPERCASEISINVALID"
    assert outcome(sig, "payload-digest") is Outcome.PASSED
    assert sig.status is Status.INVALID


@needs_vectors
@pytest.mark.parametrize(
    "name", ["invalid-blob.signature", "invalid-blob.signature-v3", "dir-img-mixed/signature-1"]
)
def test_invalid_blob(name: str) -> None:
    sig = parse(fixture(name))
    assert outcome(sig, "envelope") is Outcome.PASSED
    assert outcome(sig, "payload") is Outcome.FAILED
    assert "payload is not valid JSON" in detail(sig, "payload")
    assert outcome(sig, "payload-digest") is Outcome.SKIPPED
    assert sig.evidence["payload"] == b"This is not JSON\n"
    assert key_id(sig) == TEST_KEY_ID
    assert sig.status is Status.INVALID


@needs_vectors
def test_unsigned_literal() -> None:
    sig = parse(fixture("unsigned-literal.signature"))
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert "not a signed message" in detail(sig, "envelope")
    assert sig.signer is None
    assert sig.status is Status.INVALID


@needs_vectors
def test_unsigned_encrypted() -> None:
    sig = parse(fixture("unsigned-encrypted.signature"))
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert "encrypted" in detail(sig, "envelope")
    assert sig.error is not None
    assert sig.status is Status.INVALID


@needs_vectors
def test_expired_signature() -> None:
    sig = parse(fixture("expired.signature"))
    assert sig.expiry is not None and sig.signing_time is not None
    assert timedelta(hours=12) < sig.expiry - sig.signing_time < timedelta(hours=13)  # "expires after 12h59m"
    assert outcome(sig, "expiry") is Outcome.FAILED
    before = parse(fixture("expired.signature"), now=sig.signing_time + timedelta(minutes=1))
    assert outcome(before, "expiry") is Outcome.PASSED


@needs_vectors
def test_framed_form_reads_like_the_bare_one() -> None:
    bare = parse(fixture("image.signature"))
    framed = parse(ss.FRAME_PREFIX + fixture("image.signature"))
    assert framed.checks == bare.checks
    assert framed.claims == bare.claims
    assert key_id(framed) == TEST_KEY_ID


def test_other_framed_formats_are_not_simple_signing() -> None:
    blob = b'\x00sigstore-json\n{"mimeType":"x","payload":""}'
    assert not ss.looks_like_simple_signing(blob)
    sig = parse(blob, digest=OTHER_DIGEST)
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert "sigstore-json" in detail(sig, "envelope")
    assert sig.status is Status.INVALID


@needs_vectors
def test_sniffing_accepts_every_fixture_signature() -> None:
    for path in sorted(FIXTURES.glob("*.signature*")) + sorted(FIXTURES.glob("dir-img-*/signature-*")):
        if path.name != "unsigned-encrypted.signature":
            assert ss.looks_like_simple_signing(path.read_bytes()), path


def test_sniffing_bytes() -> None:
    accepted = {b for b in range(256) if ss.looks_like_simple_signing(bytes([b, 0, 0]))}
    assert accepted == {0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x93, 0x3D, 0xC4} | {
        0x88,
        0x89,
        0x8A,
        0x8B,
        0xC2,
    }
    assert ss.looks_like_simple_signing(ss.FRAME_PREFIX + b"\xa3")
    assert not ss.looks_like_simple_signing(b"")
    assert not ss.looks_like_simple_signing(b"\x00simple-signing")  # no newline
    assert not ss.looks_like_simple_signing(b"-----BEGIN PGP SIGNED MESSAGE-----\n")


@pytest.mark.parametrize(
    "blob", [b"", b"\x00", b"{}", b"-----BEGIN PGP MESSAGE-----\n", b"\x00simple-signing\n", b"\xff" * 10]
)
def test_garbage_is_reported_not_raised(blob: bytes) -> None:
    sig = parse(blob, digest=OTHER_DIGEST)
    assert sig.status is Status.INVALID
    assert sig.error is not None
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert "internal error" not in sig.error


# ----------------------------------------------------------------------------- payload


def critical(**changes: object) -> dict[str, object]:
    """A c/image `critical` section, with keys replaced (`docker_reference=` etc. name the nested members)."""
    body: dict[str, object] = {
        "identity": {"docker-reference": changes.pop("docker_reference", "docker.io/library/busybox:latest")},
        "image": {"docker-manifest-digest": changes.pop("digest", "sha256:" + "0" * 64)},
        "type": "atomic container signature",
    }
    body.update(changes)
    return body


def payload(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "critical": critical(),
        "optional": {"creator": "atomic 5.0", "timestamp": 1458239713},
    }
    body.update(changes)
    return body


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_parse_payload_accepts_cimage_output() -> None:
    parsed = ss.parse_payload(encode(payload()))
    assert parsed["critical"]["identity"]["docker-reference"] == "docker.io/library/busybox:latest"
    assert parsed["optional"]["timestamp"] == 1458239713


@pytest.mark.parametrize(
    ("text", "accepted_timestamp"),
    [
        (b"1458239713", 1458239713),
        (b"1458239713.0", 1458239713),  # Go decodes into float64 and only asks for an integral value
        (b"1.5e3", 1500),
        (b"null", None),  # Go leaves the float at zero without complaint
    ],
)
def test_timestamp_numbers(text: bytes, accepted_timestamp: int | None) -> None:
    raw = encode(payload(optional={"timestamp": "X"})).replace(b'"X"', text)
    assert ss.parse_payload(raw)["optional"]["timestamp"] == accepted_timestamp


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"This is not JSON\n", "payload is not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"\xef\xbb\xbf{}", "payload is not valid JSON"),
        (b'{"critical":{}, "optional":{}} x', "payload is not valid JSON"),
        (b"\xff", "not UTF-8"),
        (b"[" * 100000, "payload nests JSON deeper than 64 levels"),
        (encode({"critical": critical()}), "'optional' missing"),
        (encode(payload(extra=1)), "unknown key 'extra'"),
        (encode(payload(optional=None)), "optional is not a JSON object"),
        (encode(payload(optional=[])), "optional is not a JSON object"),
        (encode(payload(optional={"creator": 5})), "creator is not a string"),
        (encode(payload(optional={"timestamp": 1.5})), "timestamp is not an integer"),
        (encode(payload(optional={"timestamp": "1"})), "timestamp is not an integer"),
        (encode(payload(optional={"timestamp": True})), "timestamp is not an integer"),
        (encode(payload(optional={"timestamp": 2**63})), "timestamp is not an integer"),
        (encode(payload(optional={"timestamp": 1})).replace(b"1}", b"NaN}"), "NaN is not a JSON number"),
        (encode(payload(critical={"type": "atomic container signature"})), "missing in critical"),
        (
            encode(payload(critical=critical(type="cosign container image signature"))),
            "not 'atomic container signature'",
        ),
        (
            encode(payload(critical=critical(digest="sha256:abc"))),
            "invalid docker-manifest-digest",
        ),
        (
            encode(payload(critical=critical(digest="md5:" + "0" * 32))),
            "unsupported digest algorithm",
        ),
        (
            encode(payload(critical=critical(digest=None))),
            "not a string",
        ),
        (
            encode(payload(critical=critical(docker_reference="docker://a/b"))),
            "invalid docker-reference",
        ),
        (
            encode(payload(critical=critical(docker_reference=""))),
            "invalid docker-reference",
        ),
        (
            encode(payload(critical=critical(identity={"docker-reference": "a", "x": 1}))),
            "unknown key 'x' in critical.identity",
        ),
        (b'{"critical":{},"critical":{},"optional":{}}', "duplicate key 'critical' in the top level"),
        (
            encode(payload()).replace(b'"type"', b'"type":"x","type"'),
            "duplicate key 'type' in critical",
        ),
    ],
)
def test_parse_payload_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(ss.SimpleSigningError) as info:
        ss.parse_payload(raw)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_payload_tolerates_what_go_tolerates() -> None:
    # Unknown optional members are ignored; null creator/timestamp decode to Go zero values; sha384 is a
    # registered go-digest algorithm.
    raw = encode(payload(optional={"creator": None, "timestamp": None, "extra": {"a": 1}}))
    ss.parse_payload(raw)
    # Duplicates inside them c/image would ignore, but a first-wins reader reads optional.extra otherwise.
    with pytest.raises(ss.SimpleSigningError, match=r"duplicate key 'a' in optional\.extra"):
        ss.parse_payload(raw.replace(b'{"a": 1}', b'{"a": 1, "a": 2}'))
    ss.parse_payload(encode(payload(critical=critical(digest="sha384:" + "0" * 96))))
    # A name-only identity (what cosign signs) parses; whether policy accepts it is another matter.
    ss.parse_payload(encode(payload(critical=critical(docker_reference="example.com/ns/app"))))


# ----------------------------------------------------------------------------- hand-built packets


def new_packet(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 192:
        header = bytes([length])
    elif length < 8384:
        length -= 192
        header = bytes([(length >> 8) + 192, length & 0xFF])
    else:
        header = b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + header + body


def partial_packet(tag: int, body: bytes, chunk_power: int = 9) -> bytes:
    """New-format packet with partial body lengths of 2**chunk_power, then a final normal length."""
    chunk = 1 << chunk_power
    out = bytes([0xC0 | tag])
    rest = body
    while len(rest) > chunk:
        out += bytes([0xE0 | chunk_power]) + rest[:chunk]
        rest = rest[chunk:]
    return out + new_packet(0, rest)[1:]


def old_packet(tag: int, body: bytes, length_type: int = 1) -> bytes:
    ctb = 0x80 | (tag << 2) | length_type
    if length_type == 3:
        return bytes([ctb]) + body
    size = (1, 2, 4)[length_type]
    return bytes([ctb]) + len(body).to_bytes(size, "big") + body


def subpacket(kind: int, data: bytes, critical: bool = False) -> bytes:
    return bytes([len(data) + 1, kind | (0x80 if critical else 0)]) + data


KEY_ID = bytes.fromhex("0123456789ABCDEF")
FPR = bytes.fromhex("00112233445566778899AABB") + KEY_ID
CREATED = 1700000000


def v4_signature(
    hashed: bytes | None = None,
    unhashed: bytes | None = None,
    sig_type: int = 0,
    pk: int = 1,
    hash_algorithm: int = 8,
) -> bytes:
    if hashed is None:
        hashed = subpacket(33, b"\x04" + FPR) + subpacket(2, CREATED.to_bytes(4, "big"))
    if unhashed is None:
        unhashed = subpacket(16, KEY_ID)
    return (
        bytes([4, sig_type, pk, hash_algorithm])
        + len(hashed).to_bytes(2, "big")
        + hashed
        + len(unhashed).to_bytes(2, "big")
        + unhashed
        + b"\xab\xcd"
        + b"\x00\x08\xff"  # a tiny MPI stands in for the signature value
    )


def one_pass(key: bytes = KEY_ID, sig_type: int = 0, pk: int = 1, hash_algorithm: int = 8) -> bytes:
    return bytes([3, sig_type, hash_algorithm, pk]) + key + b"\x01"


def literal(data: bytes, name: bytes = b"") -> bytes:
    return b"b" + bytes([len(name)]) + name + CREATED.to_bytes(4, "big") + data


def compressed(algorithm: int, inner: bytes) -> bytes:
    if algorithm == 1:
        z = zlib.compressobj(wbits=-15)
        data = z.compress(inner) + z.flush()
    elif algorithm == 2:
        data = zlib.compress(inner)
    elif algorithm == 3:
        data = bz2.compress(inner)
    else:
        data = inner
    return bytes([algorithm]) + data


PAYLOAD = encode(payload())
PAYLOAD_DIGEST = "sha256:" + "0" * 64


def signed(data: bytes = PAYLOAD, signature: bytes | None = None, ops: bytes | None = None) -> bytes:
    return (
        new_packet(4, ops if ops is not None else one_pass())
        + new_packet(11, literal(data))
        + new_packet(2, signature if signature is not None else v4_signature())
    )


def check_ok(blob: bytes) -> Signature:
    sig = parse(blob, digest=PAYLOAD_DIGEST)
    assert sig.error is None, sig.error
    assert outcome(sig, "envelope") is Outcome.PASSED, sig.checks
    assert outcome(sig, "payload") is Outcome.PASSED, sig.checks
    assert outcome(sig, "payload-digest") is Outcome.PASSED
    assert key_id(sig) == KEY_ID.hex().upper()
    assert sig.status is Status.UNVERIFIED
    return sig


def check_envelope_failed(blob: bytes, words: str) -> Signature:
    sig = parse(blob, digest=PAYLOAD_DIGEST)
    assert outcome(sig, "envelope") is Outcome.FAILED, sig.checks
    assert words in detail(sig, "envelope")
    assert sig.status is Status.INVALID
    assert sig.error is None or "internal error" not in sig.error
    return sig


@pytest.mark.parametrize("algorithm", [0, 1, 2, 3])
def test_compression_algorithms(algorithm: int) -> None:
    blob = old_packet(8, compressed(algorithm, signed()), length_type=3)
    sig = check_ok(blob)
    name = ss.COMPRESSION_ALGORITHMS[algorithm]
    assert name in detail(sig, "envelope")


def test_new_format_compressed_and_nested_compression() -> None:
    inner = new_packet(8, compressed(2, signed()))
    check_ok(new_packet(8, compressed(1, inner)))


def test_compression_nesting_limit() -> None:
    blob = signed()
    for _ in range(ss.MAX_NESTING + 2):
        blob = new_packet(8, compressed(0, blob))
    check_envelope_failed(blob, "nests deeper")


def test_decompression_bomb_is_bounded() -> None:
    bomb = zlib.compress(b"\x00" * (ss.MAX_DECOMPRESSED + 1024), 9)
    blob = old_packet(8, b"\x02" + bomb, length_type=3)
    sig = check_envelope_failed(blob, "expands beyond")
    assert sig.error is not None


def test_truncated_compressed_stream() -> None:
    blob = old_packet(8, compressed(2, signed())[:-8], length_type=3)
    check_envelope_failed(blob, "truncated")


def test_partial_body_lengths_for_literal_data() -> None:
    body = json.loads(PAYLOAD)
    body["optional"]["padding"] = "x" * 3000  # unknown optional members are ignored
    data = encode(body)
    blob = new_packet(4, one_pass()) + partial_packet(11, literal(data)) + new_packet(2, v4_signature())
    sig = check_ok(blob)
    assert sig.evidence["payload"] == data


def test_partial_body_length_on_a_signature_packet_is_malformed() -> None:
    blob = (
        new_packet(4, one_pass()) + new_packet(11, literal(PAYLOAD)) + partial_packet(2, v4_signature() * 40)
    )
    sig = check_envelope_failed(blob, "partial body length")
    assert sig.error is not None


@pytest.mark.parametrize("length_type", [0, 1, 2])
def test_old_format_headers(length_type: int) -> None:
    blob = (
        old_packet(4, one_pass(), length_type)
        + old_packet(11, literal(PAYLOAD), length_type if length_type else 1)
        + old_packet(2, v4_signature(), length_type)
    )
    check_ok(blob)


def test_marker_packets_are_ignored() -> None:
    check_ok(old_packet(8, compressed(0, new_packet(10, b"PGP") + signed()), 3))
    # Parsed, but c/image's sniffing would not take a blob starting with a marker for a signature.
    check_envelope_failed(new_packet(10, b"PGP") + signed(), "does not recognise a blob starting with 0xca")


def test_signature_before_data_form() -> None:
    # RFC 4880 §11.3 also allows "Signature Packet, OpenPGP Message" (no one-pass header).
    check_ok(new_packet(2, v4_signature()) + new_packet(11, literal(PAYLOAD)))


def test_fingerprint_only_signature() -> None:
    sig = check_ok(signed(signature=v4_signature(unhashed=b""), ops=one_pass(key=b"\x00" * 8)))
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.fingerprint == FPR.hex().upper()


def test_issuer_key_id_only_signature() -> None:
    hashed = subpacket(2, CREATED.to_bytes(4, "big"))
    sig = check_ok(signed(signature=v4_signature(hashed=hashed)))
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.fingerprint is None


def test_signature_without_any_issuer() -> None:
    hashed = subpacket(2, CREATED.to_bytes(4, "big"))
    blob = signed(signature=v4_signature(hashed=hashed, unhashed=b""), ops=one_pass(key=b"\x00" * 8))
    sig = check_envelope_failed(blob, "names no issuer key")
    assert sig.signer is None


def test_conflicting_issuers() -> None:
    check_envelope_failed(signed(ops=one_pass(key=b"\x11" * 8)), "several issuer keys")
    other = subpacket(16, b"\x22" * 8)
    check_envelope_failed(signed(signature=v4_signature(unhashed=other)), "several issuer keys")


def test_one_pass_header_must_match_the_signature() -> None:
    check_envelope_failed(signed(ops=one_pass(hash_algorithm=10)), "hash algorithm")
    check_envelope_failed(signed(ops=one_pass(pk=17)), "public-key algorithm")


def test_not_a_document_signature() -> None:
    blob = signed(signature=v4_signature(sig_type=0x13), ops=one_pass(sig_type=0x13))
    check_envelope_failed(blob, "positive certification")


def test_text_signature_is_a_document_signature() -> None:
    sig = check_ok(signed(signature=v4_signature(sig_type=1), ops=one_pass(sig_type=1)))
    assert "canonical text document" in detail(sig, "envelope")


def test_missing_creation_time() -> None:
    blob = signed(signature=v4_signature(hashed=subpacket(33, b"\x04" + FPR)))
    check_envelope_failed(blob, "no creation time")


def test_creation_time_only_counts_when_hashed() -> None:
    unhashed = subpacket(16, KEY_ID) + subpacket(2, CREATED.to_bytes(4, "big"))
    blob = signed(signature=v4_signature(hashed=subpacket(33, b"\x04" + FPR), unhashed=unhashed))
    check_envelope_failed(blob, "no creation time")


def test_unknown_critical_subpacket() -> None:
    hashed = subpacket(2, CREATED.to_bytes(4, "big")) + subpacket(99, b"x", critical=True)
    check_envelope_failed(signed(signature=v4_signature(hashed=hashed)), "critical subpacket(s) 99")
    # The same subpacket without the critical bit is simply ignored.
    hashed = subpacket(2, CREATED.to_bytes(4, "big")) + subpacket(99, b"x")
    check_ok(signed(signature=v4_signature(hashed=hashed)))


def test_md5_is_refused() -> None:
    blob = signed(signature=v4_signature(hash_algorithm=1), ops=one_pass(hash_algorithm=1))
    check_envelope_failed(blob, "MD5")


def test_two_signatures() -> None:
    blob = (
        new_packet(4, one_pass()[:-1] + b"\x00")
        + new_packet(4, one_pass())
        + new_packet(11, literal(PAYLOAD))
        + new_packet(2, v4_signature())
        + new_packet(2, v4_signature())
    )
    check_envelope_failed(blob, "2 signatures")


def test_signature_expiry_subpacket() -> None:
    hashed = subpacket(2, CREATED.to_bytes(4, "big")) + subpacket(3, (3600).to_bytes(4, "big"), critical=True)
    blob = signed(signature=v4_signature(hashed=hashed))
    created = datetime.fromtimestamp(CREATED, UTC)
    sig = parse(blob, digest=PAYLOAD_DIGEST, now=created + timedelta(hours=2))
    assert sig.expiry == created + timedelta(hours=1)
    assert outcome(sig, "expiry") is Outcome.FAILED
    sig = parse(blob, digest=PAYLOAD_DIGEST, now=created + timedelta(minutes=5))
    assert outcome(sig, "expiry") is Outcome.PASSED
    # A naive clock is taken as UTC rather than crashing the comparison.
    sig = parse(blob, digest=PAYLOAD_DIGEST, now=datetime(2000, 1, 1))
    assert outcome(sig, "expiry") is Outcome.PASSED


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (new_packet(2, v4_signature()), "detached signature"),
        (new_packet(6, b"\x04" + b"\x00" * 20), "OpenPGP key"),
        (new_packet(4, one_pass()) + new_packet(11, literal(PAYLOAD)), "without its closing signature"),
        (signed() + new_packet(11, literal(PAYLOAD)), "after the message"),
        (new_packet(2, b"\x06" + b"\x00" * 40) + new_packet(11, literal(PAYLOAD)), "version 6"),
        (
            new_packet(4, b"\x06" + b"\x00" * 12) + new_packet(11, literal(PAYLOAD)),
            "one-pass signature version",
        ),
        (new_packet(1, b"\x03" + b"\x00" * 20) + new_packet(18, b"\x01" + b"\x00" * 30), "encrypted"),
        (new_packet(13, b"user"), "unexpected user ID packet"),
        (b"\xc4\xff\x00\x00", "truncated"),
        (bytes([0x80 | (4 << 2)]), "truncated"),
    ],
)
def test_malformed_envelopes(blob: bytes, words: str) -> None:
    sig = parse(blob, digest=PAYLOAD_DIGEST)
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert words in detail(sig, "envelope")
    assert sig.status is Status.INVALID


def test_too_many_packets() -> None:
    blob = new_packet(2, v4_signature()) * (ss.MAX_PACKETS + 1) + new_packet(11, literal(PAYLOAD))
    sig = parse(blob, digest=PAYLOAD_DIGEST)
    assert "more than" in detail(sig, "envelope")


def test_bare_literal_not_sniffed_by_cimage_still_reported() -> None:
    sig = parse(new_packet(11, literal(PAYLOAD)), digest=PAYLOAD_DIGEST)
    text = detail(sig, "envelope")
    assert "not a signed message" in text and "does not recognise" in text
    assert sig.claims["docker-reference"] == "docker.io/library/busybox:latest"


def test_parse_message_api() -> None:
    message = ss.parse_message(old_packet(8, compressed(2, signed()), length_type=3))
    assert message.literal == PAYLOAD
    assert message.literal_format == "b"
    assert message.compression == ("ZLIB",)
    (signature,) = message.signatures
    assert signature.key_id == KEY_ID.hex().upper()
    assert signature.hash_algorithm_name == "SHA256"
    assert signature.public_key_algorithm_name == "RSA"
    assert signature.signature_type_name == "binary document"
    assert ss.envelope_problems(message) == []


# ----------------------------------------------------------------------------- fuzz


def _corpus() -> list[bytes]:
    blobs = [signed(), old_packet(8, compressed(2, signed()), 3), old_packet(8, compressed(3, signed()), 3)]
    if FIXTURES.is_dir():
        blobs += [
            fixture(n) for n in ("image.signature", "subkey.signature-v3", "unsigned-encrypted.signature")
        ]
    return blobs


def _assert_reported(blob: bytes) -> None:
    sig = parse(blob, digest=PAYLOAD_DIGEST)
    assert sig.status in (Status.INVALID, Status.UNVERIFIED)
    assert sig.error is None or "internal error" not in sig.error, (blob.hex(), sig.error)
    json.dumps(sig.to_json())  # the record must stay reportable


def test_fuzz_truncations() -> None:
    for blob in _corpus():
        for end in range(len(blob)):
            _assert_reported(blob[:end])
            _assert_reported(ss.FRAME_PREFIX + blob[:end])


def test_fuzz_bit_flips() -> None:
    for blob in _corpus():
        for position in range(len(blob)):
            for bit in (0, 3, 7):
                mutated = bytearray(blob)
                mutated[position] ^= 1 << bit
                _assert_reported(bytes(mutated))


def test_fuzz_random_mutations() -> None:
    rng = random.Random(20250701)
    corpus = _corpus()
    for _ in range(3000):
        mutated = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            position = rng.randrange(len(mutated) + 1)
            if action < 0.5 and mutated:
                mutated[min(position, len(mutated) - 1)] = rng.randrange(256)
            elif action < 0.75:
                mutated[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del mutated[position : position + rng.randint(1, 8)]
        _assert_reported(bytes(mutated))


# ----------------------------------------------------------------------------- real gpg and skopeo


@dataclass
class GpgKey:
    home: Path
    fingerprint: str
    key_id: str
    algorithm: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.home)}

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(
            ["gpg", "--batch", "--no-tty", *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            check=True,
        ).stdout


@pytest.fixture(scope="module")
def gpg_keys() -> Iterator[dict[str, GpgKey]]:
    """Throwaway RSA and Ed25519 signing keys in a private GNUPGHOME; the agent is stopped afterwards."""
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    # A short path: gpg-agent's socket path must fit in sun_path.
    home = Path(tempfile.mkdtemp(prefix="ssgpg-"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        keys: dict[str, GpgKey] = {}
        for name, algorithm in (("rsa", "rsa2048"), ("ed25519", "ed25519")):
            subprocess.run(
                [
                    "gpg",
                    "--batch",
                    "--passphrase",
                    "",
                    "--quick-gen-key",
                    f"{name} <{name}@sigscope.test>",
                    algorithm,
                    "sign",
                    "never",
                ],
                env=env,
                capture_output=True,
                check=True,
            )
            listing = subprocess.run(
                ["gpg", "--batch", "--list-keys", "--with-colons", f"{name}@sigscope.test"],
                env=env,
                capture_output=True,
                check=True,
                text=True,
            ).stdout
            pub = next(line.split(":") for line in listing.splitlines() if line.startswith("pub:"))
            fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            keys[name] = GpgKey(home, fpr, pub[4], "RSA" if name == "rsa" else "EdDSA")
        yield keys
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


GPG_PAYLOAD_DIGEST = "sha256:" + "1" * 64


def gpg_payload() -> bytes:
    return encode(payload(critical=critical(digest=GPG_PAYLOAD_DIGEST)))


@pytest.mark.parametrize("key_name", ["rsa", "ed25519"])
@pytest.mark.parametrize("compress", [None, "zip", "zlib", "bzip2", "none"])
def test_gpg_sign(gpg_keys: dict[str, GpgKey], key_name: str, compress: str | None) -> None:
    key = gpg_keys[key_name]
    args = ["--local-user", key.fingerprint, "--sign"]
    if compress is not None:
        args = ["--compress-algo", compress, *args]
    blob = key.run(*args, stdin=gpg_payload())
    sig = ss.parse_signature(blob, subject_digest=GPG_PAYLOAD_DIGEST, location="gpg", now=datetime.now(UTC))
    assert sig.error is None
    assert key_id(sig) == key.key_id
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.fingerprint == key.fingerprint
    assert sig.signer.pgp.algorithm == key.algorithm
    assert [c.outcome for c in sig.checks] == [Outcome.PASSED] * 3 + [Outcome.SKIPPED]
    assert sig.status is Status.UNVERIFIED
    # gpg compresses by default (ZIP here, whatever the key's preferences say).
    expected_layer = {None: "-compressed", "zip": "ZIP", "zlib": "ZLIB", "bzip2": "BZip2", "none": None}[
        compress
    ]
    if expected_layer:
        assert expected_layer in detail(sig, "envelope")
    else:
        assert "compressed" not in detail(sig, "envelope")


def test_gpg_streamed_input_uses_partial_lengths(gpg_keys: dict[str, GpgKey]) -> None:
    body = json.loads(gpg_payload())
    body["optional"]["padding"] = "x" * 50000
    data = encode(body)
    key = gpg_keys["ed25519"]
    blob = key.run("--compress-algo", "none", "--local-user", key.fingerprint, "--sign", stdin=data)
    assert blob[16] >= 0xE0  # gpg streamed stdin with a partial body length
    sig = ss.parse_signature(blob, subject_digest=GPG_PAYLOAD_DIGEST, location="gpg", now=datetime.now(UTC))
    assert sig.evidence["payload"] == data
    assert outcome(sig, "payload") is Outcome.PASSED


def test_gpg_textmode_signature(gpg_keys: dict[str, GpgKey]) -> None:
    key = gpg_keys["rsa"]
    blob = key.run("--textmode", "--local-user", key.fingerprint, "--sign", stdin=gpg_payload())
    sig = ss.parse_signature(blob, subject_digest=GPG_PAYLOAD_DIGEST, location="gpg", now=datetime.now(UTC))
    assert "canonical text document" in detail(sig, "envelope")
    assert outcome(sig, "envelope") is Outcome.PASSED


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--detach-sign"], "detached signature"),
        (["--clearsign"], "not an OpenPGP message"),
        (["--armor", "--sign"], "not an OpenPGP message"),
        (["--store"], "not a signed message"),
    ],
)
def test_gpg_outputs_that_are_not_simple_signatures(
    gpg_keys: dict[str, GpgKey], args: list[str], words: str
) -> None:
    key = gpg_keys["rsa"]
    blob = key.run("--local-user", key.fingerprint, *args, stdin=gpg_payload())
    sig = ss.parse_signature(blob, subject_digest=GPG_PAYLOAD_DIGEST, location="gpg", now=datetime.now(UTC))
    assert outcome(sig, "envelope") is Outcome.FAILED
    assert words in detail(sig, "envelope")
    assert sig.status is Status.INVALID


def test_gpg_encrypted_and_signed(gpg_keys: dict[str, GpgKey]) -> None:
    key = gpg_keys["rsa"]
    # A sign-only key cannot be an encryption recipient, so encrypt symmetrically.
    blob = key.run(
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "x",
        "--symmetric",
        "--sign",
        "--local-user",
        key.fingerprint,
        stdin=gpg_payload(),
    )
    sig = ss.parse_signature(blob, subject_digest=GPG_PAYLOAD_DIGEST, location="gpg", now=datetime.now(UTC))
    assert "encrypted" in detail(sig, "envelope")
    assert sig.status is Status.INVALID


def test_skopeo_standalone_sign(gpg_keys: dict[str, GpgKey], tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        absent.unavailable("skopeo not installed (apt-get install -y skopeo)")
    key = gpg_keys["rsa"]
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}')
    digest = "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()
    out = tmp_path / "signature"
    subprocess.run(
        [
            "skopeo",
            "standalone-sign",
            str(manifest),
            "registry.example/ns/app:1.0",
            key.fingerprint,
            "--output",
            str(out),
        ],
        env=key.env(),
        capture_output=True,
        check=True,
    )
    blob = out.read_bytes()
    assert ss.looks_like_simple_signing(blob)
    sig = ss.parse_signature(blob, subject_digest=digest, location=str(out), now=datetime.now(UTC))
    assert key_id(sig) == key.key_id
    assert sig.claims["docker-reference"] == "registry.example/ns/app:1.0"
    assert sig.claims["creator"].startswith("atomic ")
    assert isinstance(sig.claims["timestamp"], int)
    assert sig.signed_digest == digest
    assert [c.outcome for c in sig.checks] == [Outcome.PASSED] * 3 + [Outcome.SKIPPED]
    assert sig.status is Status.UNVERIFIED
