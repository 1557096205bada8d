"""OpenPGP trust for simple signatures (`--gpg-keyring`): c/image fixtures, real gpg, forged keys, the CLI.

The c/image fixtures and real gpg pin interoperability; the keys forged here with `cryptography` reach the
cases neither provides (algorithm 27, ECDSA curves, text signatures, missing back-signatures, forged
bindings, revoked primaries, expired keys) with exact bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from testbed import GpgHome, PeerMissing, SignedRegistry, vectors

from sigscope.formats import simplesigning as ss
from sigscope.model import Outcome, Signature, SignatureFormat, Status
from sigscope.trust import pgp

VECTORS = vectors.ROOT
FIXTURES = VECTORS / "containers-image" / "signature" / "fixtures"
# After every fixture signature was made (the latest, subkey-revoked, is from 2025-07-23) and after
# expired.signature lapsed (2025-06-24).
NOW = datetime(2025, 8, 1, tzinfo=UTC)
TEST_KEY_FPR = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
TEST_KEY_UID = "skopeo testing key"
SUBKEY_PRIMARY_FPR = "B9F4CDB9FD8C475BFA340AC38D54A947EE396F36"
SUBKEY_FPR = "57D1D95BBC53BA0EAFF0718CD75B3109B3BAAEAF"
SUBKEY_UID = "c/image test key with subkey"
REVOKED_PRIMARY_FPR = "6D88C5A1993648A17B2BB0DC6B8499AF63388D63"
PASSPHRASE_KEY_FPR = "F2B501009F78B0B340221A12A3CD242DA6028093"

needs_vectors = pytest.mark.vectors


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def keyring(*names: str) -> pgp.Keyring:
    return pgp.load_keyrings([fixture(n) for n in names])


def fixture_digest(manifest: str = "image.manifest.json") -> str:
    return "sha256:" + hashlib.sha256(fixture(manifest)).hexdigest()


def verify(blob: bytes, ring: pgp.Keyring, *, digest: str | None = None, now: datetime = NOW) -> Signature:
    sig = ss.parse_signature(blob, subject_digest=digest or fixture_digest(), location="test", now=now)
    result = pgp.verify_signature(sig, ring, now)
    assert result is sig
    assert sig.error is None or "internal error" not in sig.error, sig.error
    return sig


def check(sig: Signature, name: str) -> tuple[Outcome, str]:
    [found] = [c for c in sig.checks if c.name == name]
    return found.outcome, found.detail


def signer(sig: Signature) -> tuple[str | None, tuple[str, ...]]:
    assert sig.signer is not None and sig.signer.pgp is not None
    return sig.signer.pgp.fingerprint, sig.signer.pgp.user_ids


# ----------------------------------------------------------------------------- c/image fixtures


@needs_vectors
def test_image_signature_verified_by_armored_key() -> None:
    assert fixture("public-key.gpg").startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    sig = verify(fixture("image.signature"), keyring("public-key.gpg"))
    assert sig.status is Status.VERIFIED
    assert signer(sig) == (TEST_KEY_FPR, (TEST_KEY_UID,))
    assert sig.signer is not None and sig.signer.display_name == TEST_KEY_UID
    assert check(sig, "trusted-key") == (Outcome.PASSED, f"signed by {TEST_KEY_UID} {TEST_KEY_FPR}")
    outcome, detail = check(sig, "signature")
    assert outcome is Outcome.PASSED and detail.startswith("GOODSIG RSA/SHA256 V4")
    # The real outcome replaces the parser's placeholder where it stood.
    assert [c.name for c in sig.checks] == [
        "envelope",
        "payload",
        "payload-digest",
        "signature",
        "trusted-key",
    ]


@needs_vectors
def test_binary_export_of_the_same_key_verifies_too() -> None:
    # public-key-1.gpg is not another key: it is the binary form of public-key.gpg (c/image uses it with
    # public-key-2.gpg to test two keyring blobs). The key that did not sign is public-key-2.gpg.
    ring = keyring("public-key-1.gpg")
    assert [c.fingerprint for c in ring.certificates] == [TEST_KEY_FPR]
    assert verify(fixture("image.signature"), ring).status is Status.VERIFIED
    other = verify(fixture("image.signature"), keyring("public-key-2.gpg"))
    assert other.status is Status.UNTRUSTED
    assert check(other, "trusted-key") == (
        Outcome.FAILED,
        "signed by key E932F44B23E8DD43, not in the supplied keyring",
    )


@needs_vectors
@pytest.mark.parametrize(
    ("name", "manifest"),
    [
        ("no-optional-fields.signature", "image.manifest.json"),
        ("dir-img-valid/signature-1", "dir-img-valid/manifest.json"),
        ("dir-img-valid-2/signature-2", "dir-img-valid-2/manifest.json"),
    ],
)
def test_more_good_signatures(name: str, manifest: str) -> None:
    sig = verify(fixture(name), keyring("public-key.gpg"), digest=fixture_digest(manifest))
    assert sig.status is Status.VERIFIED
    assert signer(sig) == (TEST_KEY_FPR, (TEST_KEY_UID,))


@needs_vectors
@pytest.mark.parametrize("name", ["corrupt.signature", "corrupt.signature-v3"])
def test_corrupt_signature_is_badsig(name: str) -> None:
    sig = verify(fixture(name), keyring("public-key.gpg"))
    assert sig.status is Status.INVALID
    outcome, detail = check(sig, "signature")
    assert outcome is Outcome.FAILED and detail.startswith("BADSIG")
    assert TEST_KEY_FPR in detail
    assert not [c for c in sig.checks if c.name == "trusted-key"]  # nobody is vouched for by bad math


@needs_vectors
def test_expired_signature_is_expsig() -> None:
    sig = verify(fixture("expired.signature"), keyring("public-key.gpg"))
    assert sig.status is Status.INVALID
    outcome, detail = check(sig, "signature")
    assert outcome is Outcome.FAILED
    assert detail.startswith("EXPSIG good RSA/SHA256 signature") and "2025-06-24T10:00:00+00:00" in detail
    # Before it lapsed the same bytes were good (the payload is not JSON, so still not valid overall).
    early = verify(
        fixture("expired.signature"), keyring("public-key.gpg"), now=datetime(2025, 6, 24, tzinfo=UTC)
    )
    assert check(early, "signature")[0] is Outcome.PASSED


@needs_vectors
@pytest.mark.parametrize("name", ["unknown-key.signature", "unknown-key.signature-v3"])
def test_unknown_key_is_untrusted(name: str) -> None:
    sig = verify(fixture(name), keyring("public-key.gpg", "public-key-with-subkey.gpg"))
    assert sig.status is Status.UNTRUSTED
    assert check(sig, "trusted-key") == (
        Outcome.FAILED,
        "signed by key 5F9470E3BC6C3B55, not in the supplied keyring",
    )
    assert check(sig, "signature")[0] is Outcome.SKIPPED
    assert signer(sig) == (None, ())


@needs_vectors
@pytest.mark.parametrize("name", ["subkey.signature", "subkey.signature-v3"])
def test_subkey_signature_reports_the_primary(name: str) -> None:
    sig = verify(fixture(name), keyring("public-key-with-subkey.gpg"))
    assert sig.status is Status.VERIFIED
    assert signer(sig) == (SUBKEY_PRIMARY_FPR, (SUBKEY_UID,))
    assert sig.signer is not None and sig.signer.pgp is not None
    assert sig.signer.pgp.key_id == SUBKEY_FPR[-16:]
    assert check(sig, "trusted-key") == (
        Outcome.PASSED,
        f"signed by {SUBKEY_UID} {SUBKEY_PRIMARY_FPR} (subkey {SUBKEY_FPR})",
    )
    # The primary alone (public-key.gpg is another certificate) vouches for nothing here.
    assert verify(fixture(name), keyring("public-key.gpg")).status is Status.UNTRUSTED


@needs_vectors
@pytest.mark.parametrize("name", ["subkey-revoked.signature", "subkey-revoked.signature-v3"])
def test_revoked_subkey_is_rejected(name: str) -> None:
    sig = verify(fixture(name), keyring("public-key-with-revoked-subkey.gpg"))
    assert sig.status is Status.UNTRUSTED
    assert check(sig, "signature")[0] is Outcome.PASSED  # the math holds; the keyring withdraws the key
    outcome, detail = check(sig, "trusted-key")
    assert outcome is Outcome.FAILED
    assert "REVKEYSIG the subkey was revoked by its owner (key compromised)" in detail
    assert signer(sig)[0] == REVOKED_PRIMARY_FPR


@needs_vectors
def test_crypto_valid_but_not_json() -> None:
    sig = verify(fixture("invalid-blob.signature-v3"), keyring("public-key.gpg"))
    assert check(sig, "signature")[0] is Outcome.PASSED
    assert check(sig, "trusted-key")[0] is Outcome.PASSED
    assert check(sig, "payload")[0] is Outcome.FAILED
    assert sig.status is Status.INVALID


@needs_vectors
def test_unsigned_messages_stay_as_parsed() -> None:
    for name in ("unsigned-literal.signature", "unsigned-encrypted.signature"):
        sig = verify(fixture(name), keyring("public-key.gpg"))
        assert sig.status is Status.INVALID
        assert not [c for c in sig.checks if c.name == "trusted-key"]


@needs_vectors
def test_gnupg_home_keyring_with_trust_packets() -> None:
    ring = keyring("pubring.gpg")
    assert sorted(c.fingerprint for c in ring.certificates) == sorted(
        [PASSPHRASE_KEY_FPR, TEST_KEY_FPR, SUBKEY_PRIMARY_FPR, REVOKED_PRIMARY_FPR]
    )
    assert verify(fixture("image.signature"), ring).status is Status.VERIFIED
    assert verify(fixture("subkey.signature"), ring).status is Status.VERIFIED
    assert verify(fixture("subkey-revoked.signature"), ring).status is Status.UNTRUSTED


@needs_vectors
def test_keyring_facts() -> None:
    [cert] = keyring("public-key-with-revoked-subkey.gpg").certificates
    assert cert.fingerprint == REVOKED_PRIMARY_FPR
    assert cert.user_ids == ("c/image test key with a REVOKED subkey",)
    assert cert.primary.flags == 0x21 and cert.primary.revoked is None and cert.primary.problem is None
    [sub] = cert.subkeys
    assert sub.key.key_id == "3EF0F93A1F602997" and sub.flags == 0x02
    assert sub.revoked == "key compromised" and sub.cross_certified
    # Two files holding the same key merge into one certificate.
    assert len(keyring("public-key.gpg", "public-key-1.gpg")) == 1


# ----------------------------------------------------------------------------- packet surgery


def new_packet(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        head = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        head = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + head + body


def subpacket(kind: int, data: bytes, *, critical: bool = False) -> bytes:
    body = bytes([kind | (0x80 if critical else 0)]) + data
    n = len(body)
    if n < 192:
        return bytes([n]) + body
    return bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF]) + body


def packets(data: bytes) -> list[tuple[int, bytes]]:
    if data.startswith(b"-----"):
        data = pgp._dearmor(data)
    return ss.read_packets(data, max_packets=1000)


def rebuild(items: list[tuple[int, bytes]]) -> bytes:
    return b"".join(new_packet(tag, body) for tag, body in items)


def without_unhashed(body: bytes, kind: int) -> bytes:
    """A V4 signature body with every unhashed subpacket of `kind` removed (the signature stays valid)."""
    parts = ss.signature_parts(body)
    kept = b"".join(
        subpacket(k, data, critical=crit)
        for k, crit, data in ss.subpackets(parts.unhashed_subpackets, hashed=False)
        if k != kind
    )
    return parts.hashed + len(kept).to_bytes(2, "big") + kept + parts.left16 + parts.value


@needs_vectors
def test_revocation_survives_merging_with_an_older_copy() -> None:
    # Someone hands over the revoked certificate and an older copy without the revocation: gpg merges the
    # two, and so must we, or the older copy would resurrect the subkey.
    items = packets(fixture("public-key-with-revoked-subkey.gpg"))
    stripped = [
        (t, b) for t, b in items if not (t == 2 and ss.parse_signature_packet(b).signature_type == 0x28)
    ]
    assert len(stripped) == len(items) - 1
    alone = pgp.load_keyring(rebuild(stripped))
    assert verify(fixture("subkey-revoked.signature"), alone).status is Status.VERIFIED
    merged = pgp.load_keyrings([rebuild(stripped), fixture("public-key-with-revoked-subkey.gpg")])
    assert verify(fixture("subkey-revoked.signature"), merged).status is Status.UNTRUSTED


@needs_vectors
def test_signing_subkey_needs_its_back_signature() -> None:
    items = packets(fixture("public-key-with-subkey.gpg"))
    changed = [
        (t, without_unhashed(b, 32) if t == 2 and ss.parse_signature_packet(b).signature_type == 0x18 else b)
        for t, b in items
    ]
    ring = pgp.load_keyring(rebuild(changed))
    [sub] = ring.certificates[0].subkeys
    assert sub.problem is None and not sub.cross_certified  # the binding itself is still good
    sig = verify(fixture("subkey.signature"), ring)
    assert sig.status is Status.UNTRUSTED
    assert "not cross-certified" in check(sig, "trusted-key")[1]


@needs_vectors
def test_subkey_with_a_broken_binding_belongs_to_nobody() -> None:
    items = packets(fixture("public-key-with-subkey.gpg"))
    changed = []
    for tag, body in items:
        if tag == 2 and ss.parse_signature_packet(body).signature_type == 0x18:
            body = body[:-1] + bytes([body[-1] ^ 0x01])
        changed.append((tag, body))
    ring = pgp.load_keyring(rebuild(changed))
    [sub] = ring.certificates[0].subkeys
    assert sub.problem is not None and "no valid binding signature" in sub.problem
    sig = verify(fixture("subkey.signature"), ring)
    assert sig.status is Status.UNTRUSTED
    assert "not bound to it" in check(sig, "trusted-key")[1]
    # Whoever appended the subkey must not borrow the certificate's name.
    assert signer(sig) == (None, ())


@needs_vectors
def test_forged_self_signature_leaves_no_usable_key() -> None:
    items = packets(fixture("public-key-1.gpg"))
    changed = []
    for tag, body in items:
        if tag == 2 and ss.parse_signature_packet(body).signature_type == 0x13:
            body = body[:-1] + bytes([body[-1] ^ 0x01])
        changed.append((tag, body))
    ring = pgp.load_keyring(rebuild(changed))
    [cert] = ring.certificates
    assert cert.user_ids == () and cert.primary.problem == "the primary key has no valid self-signature"
    sig = verify(fixture("image.signature"), ring)
    assert sig.status is Status.UNTRUSTED
    assert "no valid self-signature" in check(sig, "trusted-key")[1]


# ----------------------------------------------------------------------------- keys forged here

PAYLOAD_DIGEST = "sha256:" + "5a" * 32
PAYLOAD = json.dumps(
    {
        "critical": {
            "identity": {"docker-reference": "example.com/app:1"},
            "image": {"docker-manifest-digest": PAYLOAD_DIGEST},
            "type": "atomic container signature",
        },
        "optional": {"creator": "sigscope test"},
    },
    sort_keys=True,
    separators=(",", ":"),
).encode()
T0 = 1_700_000_000  # key creation time of forged keys
_HASH_NAMES = {
    2: ("sha1", hashes.SHA1),
    8: ("sha256", hashes.SHA256),
    9: ("sha384", hashes.SHA384),
    10: ("sha512", hashes.SHA512),
}
_CURVE_OIDS = {
    "secp256r1": bytes.fromhex("2A8648CE3D030107"),
    "secp384r1": bytes.fromhex("2B81040022"),
    "secp521r1": bytes.fromhex("2B81040023"),
}


def mpi(value: bytes | int) -> bytes:
    raw = value if isinstance(value, bytes) else value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    raw = raw.lstrip(b"\x00")
    bits = (len(raw) - 1) * 8 + raw[0].bit_length() if raw else 0
    return bits.to_bytes(2, "big") + raw


@dataclass
class ForgedKey:
    algorithm: int  # 1 RSA, 19 ECDSA, 22 legacy EdDSA, 27 Ed25519
    private: Any
    created: int = T0

    @classmethod
    def make(cls, algorithm: int, curve: str = "secp256r1", created: int = T0) -> ForgedKey:
        if algorithm == 1:
            return cls(1, rsa.generate_private_key(65537, 2048), created)
        if algorithm == 19:
            return cls(19, ec.generate_private_key(getattr(ec, curve.upper())()), created)
        return cls(algorithm, ed25519.Ed25519PrivateKey.generate(), created)

    @property
    def body(self) -> bytes:
        public = self.private.public_key()
        if self.algorithm == 1:
            numbers = public.public_numbers()
            material = mpi(numbers.n) + mpi(numbers.e)
        elif self.algorithm == 19:
            oid = _CURVE_OIDS[public.curve.name]
            point = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            material = bytes([len(oid)]) + oid + mpi(point)
        elif self.algorithm == 22:
            oid = bytes.fromhex("2B06010401DA470F01")
            material = (
                bytes([len(oid)]) + oid + mpi(b"\x40" + public.public_bytes(Encoding.Raw, PublicFormat.Raw))
            )
        else:
            material = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b"\x04" + self.created.to_bytes(4, "big") + bytes([self.algorithm]) + material

    @property
    def prefix(self) -> bytes:
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(self.prefix).hexdigest().upper()

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]

    def sign(
        self,
        sig_type: int,
        data: bytes,
        *,
        hashed: bytes = b"",
        unhashed: bytes = b"",
        hash_alg: int = 8,
        created: int | None = None,
    ) -> bytes:
        area = (
            subpacket(2, (created if created is not None else self.created + 60).to_bytes(4, "big"))
            + subpacket(33, b"\x04" + bytes.fromhex(self.fingerprint))
            + hashed
        )
        head = bytes([4, sig_type, self.algorithm, hash_alg]) + len(area).to_bytes(2, "big") + area
        name, hash_class = _HASH_NAMES[hash_alg]
        digest = hashlib.new(name, data + head + b"\x04\xff" + len(head).to_bytes(4, "big")).digest()
        if self.algorithm == 1:
            value = mpi(self.private.sign(digest, padding.PKCS1v15(), utils.Prehashed(hash_class())))
        elif self.algorithm == 19:
            r, s = utils.decode_dss_signature(
                self.private.sign(digest, ec.ECDSA(utils.Prehashed(hash_class())))
            )
            value = mpi(r) + mpi(s)
        elif self.algorithm == 22:
            raw = self.private.sign(digest)
            value = mpi(raw[:32]) + mpi(raw[32:])
        else:
            value = self.private.sign(digest)
        unhashed_area = subpacket(16, bytes.fromhex(self.key_id)) + unhashed
        return head + len(unhashed_area).to_bytes(2, "big") + unhashed_area + digest[:2] + value


def uid_data(key: ForgedKey, uid: bytes) -> bytes:
    return key.prefix + b"\xb4" + len(uid).to_bytes(4, "big") + uid


def certificate(
    primary: ForgedKey,
    uids: tuple[bytes, ...] = (b"Forged <forged@sigscope.test>",),
    *,
    flags: int = 0x03,
    expires_after: int | None = None,
    revoked: bool = False,
    uid_hashed: bytes = b"",
    subkeys: tuple[tuple[ForgedKey, int, bool], ...] = (),  # (key, flags, with back-signature)
    binder: ForgedKey | None = None,
) -> bytes:
    out = new_packet(6, primary.body)
    if revoked:
        out += new_packet(2, primary.sign(0x20, primary.prefix, hashed=subpacket(29, b"\x02leaked")))
    for uid in uids:
        hashed = subpacket(27, bytes([flags])) + uid_hashed
        if expires_after is not None:
            hashed += subpacket(9, expires_after.to_bytes(4, "big"))
        out += new_packet(13, uid) + new_packet(2, primary.sign(0x13, uid_data(primary, uid), hashed=hashed))
    for sub, sub_flags, back in subkeys:
        data = primary.prefix + sub.prefix
        embedded = subpacket(32, sub.sign(0x19, data)) if back else b""
        signer_key = binder or primary
        binding = signer_key.sign(0x18, data, hashed=subpacket(27, bytes([sub_flags])), unhashed=embedded)
        out += new_packet(14, sub.body) + new_packet(2, binding)
    return out


def message(
    key: ForgedKey,
    payload: bytes = PAYLOAD,
    *,
    sig_type: int = 0x00,
    hash_alg: int = 8,
    created: int | None = None,
) -> bytes:
    data = payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if sig_type == 0x01 else payload
    sig = key.sign(sig_type, data, hash_alg=hash_alg, created=created)
    one_pass = bytes([3, sig_type, hash_alg, key.algorithm]) + bytes.fromhex(key.key_id) + b"\x01"
    literal = (b"t" if sig_type else b"b") + b"\x00" + b"\x00\x00\x00\x00" + payload
    return new_packet(4, one_pass) + new_packet(11, literal) + new_packet(2, sig)


def forged_verify(blob: bytes, ring_bytes: bytes, now: datetime | None = None) -> Signature:
    when = now or datetime.fromtimestamp(T0 + 3600, UTC)
    return verify(blob, pgp.load_keyring(ring_bytes), digest=PAYLOAD_DIGEST, now=when)


@pytest.mark.parametrize(
    ("algorithm", "curve", "hash_alg", "name"),
    [
        (22, "", 8, "EdDSA/SHA256"),
        (27, "", 10, "Ed25519/SHA512"),
        (19, "secp256r1", 8, "ECDSA/SHA256"),
        (19, "secp384r1", 9, "ECDSA/SHA384"),
        (19, "secp521r1", 10, "ECDSA/SHA512"),
        (1, "", 9, "RSA/SHA384"),
    ],
)
def test_forged_algorithms_verify(algorithm: int, curve: str, hash_alg: int, name: str) -> None:
    key = ForgedKey.make(algorithm, curve or "secp256r1")
    ring = certificate(key)
    sig = forged_verify(message(key, hash_alg=hash_alg), ring)
    assert sig.status is Status.VERIFIED, sig.checks
    assert check(sig, "signature")[1].startswith(f"GOODSIG {name}")
    assert signer(sig) == (key.fingerprint, ("Forged <forged@sigscope.test>",))
    # One flipped payload byte: same key, bad math.
    tampered = message(key, hash_alg=hash_alg).replace(b"sigscope test", b"sigscope tesT")
    assert forged_verify(tampered, ring).status is Status.INVALID


def test_text_signature_is_over_crlf_lines() -> None:
    key = ForgedKey.make(27)
    sig = forged_verify(message(key, PAYLOAD + b"\n", sig_type=0x01), certificate(key))
    assert sig.status is Status.VERIFIED


def test_sha1_document_signature_is_refused() -> None:
    key = ForgedKey.make(22)
    sig = forged_verify(message(key, hash_alg=2), certificate(key))
    assert sig.status is Status.INVALID
    assert "SHA1 document signatures are refused" in check(sig, "signature")[1]


def test_sha1_self_signatures_are_still_accepted() -> None:
    key = ForgedKey.make(22)
    uid = b"Old <old@sigscope.test>"
    ring = new_packet(6, key.body) + new_packet(13, uid)
    ring += new_packet(2, key.sign(0x13, uid_data(key, uid), hashed=subpacket(27, b"\x03"), hash_alg=2))
    assert forged_verify(message(key), ring).status is Status.VERIFIED


def test_primary_without_sign_flag_cannot_sign_documents() -> None:
    key = ForgedKey.make(27)
    sig = forged_verify(message(key), certificate(key, flags=0x01))
    assert sig.status is Status.UNTRUSTED
    assert "not certified for signing data (key flags 0x01)" in check(sig, "trusted-key")[1]


def test_expired_key_is_expkeysig() -> None:
    key = ForgedKey.make(27)
    ring = certificate(key, expires_after=86400)
    blob = message(key)
    assert forged_verify(blob, ring).status is Status.VERIFIED
    late = forged_verify(blob, ring, datetime.fromtimestamp(T0 + 2 * 86400, UTC))
    assert late.status is Status.UNTRUSTED
    assert "EXPKEYSIG the key expired at" in check(late, "trusted-key")[1]
    assert check(late, "signature")[0] is Outcome.PASSED


def test_revoked_primary_revokes_its_subkeys() -> None:
    primary, sub = ForgedKey.make(27), ForgedKey.make(27)
    ring = certificate(primary, flags=0x01, revoked=True, subkeys=((sub, 0x02, True),))
    for signer_key, role in ((primary, "key"), (sub, "primary key")):
        sig = forged_verify(message(signer_key), ring)
        assert sig.status is Status.UNTRUSTED
        assert (
            f"REVKEYSIG the {role} was revoked by its owner (key compromised: leaked)"
            in check(sig, "trusted-key")[1]
        )


def test_subkey_bound_by_someone_else_is_not_bound() -> None:
    primary, sub, intruder = ForgedKey.make(27), ForgedKey.make(27), ForgedKey.make(27)
    ring = certificate(primary, subkeys=((sub, 0x02, True),), binder=intruder)
    sig = forged_verify(message(sub), ring)
    assert sig.status is Status.UNTRUSTED
    # Only the fingerprint the signature itself names (the subkey's), never the primary's name.
    assert signer(sig) == (sub.fingerprint, ())


def test_signature_older_than_its_key() -> None:
    key = ForgedKey.make(27)
    sig = forged_verify(message(key, created=T0 - 10), certificate(key))
    assert sig.status is Status.UNTRUSTED
    assert "after the signature" in check(sig, "trusted-key")[1]


def test_user_ids_primary_first_and_revoked_ones_dropped() -> None:
    key = ForgedKey.make(27)
    first, second, gone = b"First <1@sigscope.test>", b"Second <2@sigscope.test>", b"Gone <3@sigscope.test>"
    ring = new_packet(6, key.body)
    ring += new_packet(13, first) + new_packet(
        2, key.sign(0x13, uid_data(key, first), hashed=subpacket(27, b"\x03"))
    )
    ring += new_packet(13, second) + new_packet(
        2, key.sign(0x13, uid_data(key, second), hashed=subpacket(27, b"\x03") + subpacket(25, b"\x01"))
    )
    ring += new_packet(13, gone) + new_packet(
        2, key.sign(0x13, uid_data(key, gone), hashed=subpacket(27, b"\x03"))
    )
    ring += new_packet(2, key.sign(0x30, uid_data(key, gone), created=T0 + 120))
    [cert] = pgp.load_keyring(ring).certificates
    assert cert.user_ids == ("Second <2@sigscope.test>", "First <1@sigscope.test>")


def test_unknown_critical_subpacket_voids_a_self_signature() -> None:
    key = ForgedKey.make(27)
    ring = certificate(key, uid_hashed=subpacket(99, b"x", critical=True))
    sig = forged_verify(message(key), ring)
    assert sig.status is Status.UNTRUSTED
    assert "no valid self-signature" in check(sig, "trusted-key")[1]


def test_key_that_cannot_verify_is_not_trusted() -> None:
    # A certificate whose key sigscope cannot use (here: declared encryption-only) never vouches, and the
    # signature is reported as unchecked rather than bad.
    key = ForgedKey.make(27)
    unusable = pgp.PublicKey(
        18, datetime.fromtimestamp(T0, UTC), key.fingerprint, key.key_id, 256, None, key.body,
        problem="an ECDH key cannot sign",
    )  # fmt: skip
    ring = pgp.Keyring((pgp.Certificate(pgp.SigningKey(unusable), ("X",), ()),))
    sig = verify(message(key), ring, digest=PAYLOAD_DIGEST, now=datetime.fromtimestamp(T0 + 60, UTC))
    assert sig.status is Status.UNTRUSTED
    assert check(sig, "signature") == (
        Outcome.SKIPPED,
        f"cannot verify with key {key.key_id} of X {key.fingerprint}: an ECDH key cannot sign",
    )


# ----------------------------------------------------------------------------- keyring loading


def test_keyring_errors() -> None:
    cases = {
        b"": "empty keyring",
        b"hello": "neither binary OpenPGP packets nor an ASCII-armored",
        b"\x00\x00\x00\x20\x01\x01\x00\x00KBXf" + b"\x00" * 20: "GnuPG keybox",
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----\n": "secret key",
        b"-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n": "not a PGP PUBLIC KEY BLOCK",
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n": "no END line",
        new_packet(11, b"b\x00\x00\x00\x00\x00hi"): "literal data packet where a public key should start",
        new_packet(5, b"\x04"): "secret key material",
        new_packet(6, b"\x03" + b"\x00" * 20): "no usable OpenPGP public key (V3 key",
    }
    for data, message_part in cases.items():
        with pytest.raises(pgp.KeyringError) as info:
            pgp.load_keyring(data)
        assert message_part in str(info.value), (data, str(info.value))


def pgp_armor(data: bytes) -> str:
    body = base64.b64encode(data).decode()
    crc = base64.b64encode(pgp._crc24(data).to_bytes(3, "big")).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    end = "-----END PGP PUBLIC KEY BLOCK-----"
    return "\n".join(["-----BEGIN PGP PUBLIC KEY BLOCK-----", "", *lines, f"={crc}", end, ""])


@needs_vectors
def test_armor_checksum_is_checked() -> None:
    text = fixture("public-key.gpg").decode()
    lines = text.splitlines()
    [crc_index] = [i for i, line in enumerate(lines) if line.startswith("=") and len(line) == 5]
    lines[crc_index] = "=AAAA"
    with pytest.raises(pgp.KeyringError, match="CRC-24"):
        pgp.load_keyring("\n".join(lines).encode())
    # Armor headers and CRLF line ends are fine; two armored blocks in one file are both read.
    header = text.replace("-----\n\n", "-----\nComment: test\n\n", 1).replace("\n", "\r\n")
    assert len(pgp.load_keyring(header.encode())) == 1
    assert len(pgp.load_keyring(b"\xef\xbb\xbf" + text.encode())) == 1  # a byte-order mark from an editor
    assert len(pgp.load_keyring((text + text).encode())) == 1
    two = pgp.load_keyring((text + "\n" + pgp_armor(fixture("public-key-2.gpg"))).encode())
    assert sorted(c.fingerprint for c in two.certificates) == sorted([TEST_KEY_FPR, PASSPHRASE_KEY_FPR])
    with pytest.raises(pgp.KeyringError) as info:
        pgp.load_keyrings([fixture("public-key.gpg"), b"junk"])
    assert info.value.index == 1


def test_apply_keyring_leaves_other_formats_alone() -> None:
    key = ForgedKey.make(27)
    ring = pgp.load_keyring(certificate(key))
    cosign = Signature(format=SignatureFormat.COSIGN, subject_digest=PAYLOAD_DIGEST, location="x")
    assert pgp.apply_keyring(cosign, ring, NOW) is cosign and cosign.checks == []
    simple = ss.parse_signature(message(key), subject_digest=PAYLOAD_DIGEST, location="x", now=NOW)
    assert pgp.apply_keyring(simple, None, NOW).status is Status.UNVERIFIED
    assert pgp.apply_keyring(simple, ring, NOW).status is Status.VERIFIED
    # Applying twice does not pile up checks.
    assert [c.name for c in pgp.apply_keyring(simple, ring, NOW).checks].count("trusted-key") == 1


# ----------------------------------------------------------------------------- fuzz


def _mutants(data: bytes, seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for cut in sorted({rng.randrange(len(data)) for _ in range(count // 4)}):
        yield data[:cut]
    for _ in range(count):
        blob = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 8))):
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        yield bytes(blob)


def _inner_message(blob: bytes) -> bytes:
    """The uncompressed packets inside gpg's ZIP-compressed message: flips there reach the parser."""
    [(tag, body)] = ss.read_packets(blob, max_packets=4)
    assert tag == 8 and body[0] == 1
    return zlib.decompress(body[1:], -15)


@needs_vectors
def test_fuzzed_keyrings_never_raise_and_never_verify_another_key() -> None:
    payload_sig = fixture("image.signature")
    for name in ("public-key-1.gpg", "public-key-with-subkey.gpg", "public-key-with-revoked-subkey.gpg"):
        for mutant in _mutants(fixture(name), seed=len(name), count=300):
            try:
                ring = pgp.load_keyring(mutant)
            except pgp.KeyringError:
                continue
            for blob in (payload_sig, fixture("subkey.signature"), fixture("subkey-revoked.signature")):
                sig = verify(blob, ring)
                if sig.status is Status.VERIFIED:
                    # Only an untouched certificate can vouch: the signer must be one of the real keys.
                    assert signer(sig)[0] in (TEST_KEY_FPR, SUBKEY_PRIMARY_FPR)
                    assert blob != fixture("subkey-revoked.signature")


@needs_vectors
def test_fuzzed_signatures_never_raise_and_never_verify_other_bytes() -> None:
    ring = keyring("public-key.gpg", "public-key-with-subkey.gpg")
    for name in ("image.signature", "subkey.signature-v3"):
        original = fixture(name)
        payload = ss.parse_message(original).literal
        inner = _inner_message(original)
        for seed, source in ((1, original), (2, inner)):
            for mutant in _mutants(source, seed=seed, count=400):
                sig = verify(mutant, ring)
                if sig.status is Status.VERIFIED:
                    assert sig.evidence["payload"] == payload


def test_fuzzed_forged_messages() -> None:
    key = ForgedKey.make(22)
    ring = pgp.load_keyring(certificate(key))
    blob = message(key)
    for mutant in _mutants(blob, seed=3, count=400):
        sig = verify(mutant, ring, digest=PAYLOAD_DIGEST, now=datetime.fromtimestamp(T0 + 3600, UTC))
        if sig.status is Status.VERIFIED:
            assert sig.evidence["payload"] == PAYLOAD


# ----------------------------------------------------------------------------- real gpg


@pytest.fixture(scope="module", params=["ed25519", "rsa"])
def gpg_signer(request: pytest.FixtureRequest) -> Iterator[GpgHome]:
    try:
        home = GpgHome(f"sigscope {request.param} <{request.param}@sigscope.test>", algo=request.param)
    except PeerMissing as exc:
        pytest.skip(str(exc))
    with home:  # closing stops the home's gpg-agent (gpgconf --kill gpg-agent) and deletes it
        yield home


def gpg_status(home: GpgHome, blob: bytes, tmp_path: Path) -> str:
    path = tmp_path / "blob.sig"
    path.write_bytes(blob)
    return home.gpg("--status-fd", "1", "--verify", str(path), check=False).stdout.decode()


def test_gpg_made_signatures_both_ways(gpg_signer: GpgHome, tmp_path: Path) -> None:
    home = gpg_signer
    public = pgp.load_keyring(home.export_public(tmp_path / "key.asc", armor=True).read_bytes())
    binary = pgp.load_keyring(home.export_public(tmp_path / "key.gpg").read_bytes())
    now = datetime.now(UTC) + timedelta(seconds=5)
    for extra in ((), ("--compress-algo", "none"), ("--textmode",), ("--digest-algo", "SHA512")):
        blob = home.gpg("--sign", *extra, "--output", "-", input=PAYLOAD).stdout
        for ring in (public, binary):
            sig = verify(blob, ring, digest=PAYLOAD_DIGEST, now=now)
            assert sig.status is Status.VERIFIED, (extra, sig.checks)
            assert signer(sig) == (home.fingerprint, (home.uid,))
        assert "[GNUPG:] GOODSIG" in gpg_status(home, blob, tmp_path)
    # Tamper with the signed bytes of an uncompressed message: gpg and sigscope both say BADSIG.
    blob = home.gpg("--sign", "--compress-algo", "none", "--output", "-", input=PAYLOAD).stdout
    tampered = blob.replace(b"sigscope test", b"sigscope tesT")
    assert tampered != blob
    sig = verify(tampered, public, digest=PAYLOAD_DIGEST, now=now)
    assert sig.status is Status.INVALID and check(sig, "signature")[1].startswith("BADSIG")
    assert "[GNUPG:] BADSIG" in gpg_status(home, tampered, tmp_path)


def test_gpg_key_expiry_and_revocation(tmp_path: Path) -> None:
    try:
        home = GpgHome("sigscope lifecycle <life@sigscope.test>")
    except PeerMissing as exc:
        pytest.skip(str(exc))
    with home:
        blob = home.gpg("--sign", "--output", "-", input=PAYLOAD).stdout
        home.gpg("--quick-set-expire", home.fingerprint, "1d")
        ring = pgp.load_keyring(home.export_public(tmp_path / "expiring.gpg").read_bytes())
        now = datetime.now(UTC) + timedelta(seconds=5)
        assert verify(blob, ring, digest=PAYLOAD_DIGEST, now=now).status is Status.VERIFIED
        late = verify(blob, ring, digest=PAYLOAD_DIGEST, now=now + timedelta(days=2))
        assert late.status is Status.UNTRUSTED and "EXPKEYSIG" in check(late, "trusted-key")[1]
        # gpg leaves a revocation certificate in the home, defused with a ":" before the armor line.
        revocation = (home.home / "openpgp-revocs.d" / f"{home.fingerprint}.rev").read_text()
        armored = revocation.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"
        )
        home.gpg("--import", input=armored.encode())
        revoked = pgp.load_keyring(home.export_public(tmp_path / "revoked.gpg").read_bytes())
        sig = verify(blob, revoked, digest=PAYLOAD_DIGEST, now=now)
        assert (
            sig.status is Status.UNTRUSTED and "REVKEYSIG the key was revoked" in check(sig, "trusted-key")[1]
        )
        assert "[GNUPG:] REVKEYSIG" in gpg_status(home, blob, tmp_path)


def test_gpg_curves_and_dsa(tmp_path: Path) -> None:
    try:
        home = GpgHome("sigscope curves <curves@sigscope.test>")
    except PeerMissing as exc:
        pytest.skip(str(exc))
    with home:
        for algo in ("nistp256", "nistp384", "nistp521", "brainpoolP256r1", "dsa2048"):
            uid = f"sigscope {algo} <{algo.lower()}@sigscope.test>"
            home.gpg(
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
                "--quick-gen-key",
                uid,
                algo,
                "sign",
                "never",
            )
            listing = home.gpg("--with-colons", "--list-keys", uid).stdout.decode()
            fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            blob = home.gpg("--sign", "--local-user", f"{fpr}!", "--output", "-", input=PAYLOAD).stdout
            ring = pgp.load_keyring(home.gpg("--export", fpr).stdout)
            sig = verify(blob, ring, digest=PAYLOAD_DIGEST, now=datetime.now(UTC) + timedelta(seconds=5))
            assert sig.status is Status.VERIFIED, (algo, sig.checks)
            assert signer(sig) == (fpr, (uid,))


# ----------------------------------------------------------------------------- the CLI, end to end


def sigscope(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent-sigscope-test"}
    result = subprocess.run(
        [sys.executable, "-m", "sigscope", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def scan_gpg(signed: SignedRegistry, *keyrings: Path) -> subprocess.CompletedProcess[str]:
    flags = [arg for ring in keyrings for arg in ("--gpg-keyring", str(ring))]
    return sigscope(
        "scan", "registry", signed.host, "--insecure", "--registries.d", str(signed.registries_d),
        *flags, "--repo", "signed/gpg", "-o", "json",
    )  # fmt: skip


def test_cli_scan_with_gpg_keyring(signed_registry: SignedRegistry) -> None:
    result = scan_gpg(signed_registry, signed_registry.gpg_public_key)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["registry"]["signatures"]
    assert entry["format"] == "simple-signing" and entry["status"] == "verified"
    assert entry["subjectname"] == signed_registry.gpg.uid
    if FIXTURES.is_dir():
        result = scan_gpg(signed_registry, FIXTURES / "public-key.gpg")
        assert result.returncode == 0, result.stderr
        [entry] = json.loads(result.stdout)["registry"]["signatures"]
        assert entry["status"] == "untrusted"


def test_cli_inspect_with_gpg_keyring(signed_registry: SignedRegistry) -> None:
    result = sigscope(
        "inspect", f"{signed_registry.host}/signed/gpg:1.0", "--insecure", "--signatures",
        "--registries.d", str(signed_registry.registries_d),
        "--gpg-keyring", str(signed_registry.gpg_public_key), "-o", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [sig] = json.loads(result.stdout)["signatures"]
    assert sig["status"] == "verified"
    assert sig["signer"]["pgp"]["fingerprint"] == signed_registry.gpg.fingerprint
    assert sig["signer"]["pgp"]["userIds"] == [signed_registry.gpg.uid]


def test_cli_bad_keyring_is_a_one_line_usage_error(signed_registry: SignedRegistry, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-key.gpg"
    bad.write_text("hello\n")
    result = scan_gpg(signed_registry, signed_registry.gpg_public_key, bad)
    assert result.returncode == 2
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = scan_gpg(signed_registry, tmp_path / "missing.gpg")
    assert missing.returncode == 2 and f"{tmp_path / 'missing.gpg'}: no such file" in missing.stderr
