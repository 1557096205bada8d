"""containers/image "simple signing" (skopeo, podman, buildah, CRI-O): bytes in, a Signature record out.

A simple signature is a binary OpenPGP *signed message* (RFC 4880 §11.3) whose literal data is a small JSON
document naming a manifest digest and a docker reference (FORMATS §4). This module reads the message with its
own packet parser and never needs a keyring, so a scan can show who *claims* to have signed what. It checks
no cryptography: the `signature` check stays skipped until a verifier with the signer's public key runs, and
the status can be `unverified` at best. The JSON is reported although the spec says not to parse it before
authentication, because showing claims is a scan's job; nothing here treats them as true.

Pure: no I/O, no clock of its own (the caller passes `now`), no trust decisions.
"""

from __future__ import annotations

import bz2
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sigscope.errors import SigscopeError
from sigscope.formats import payload as payload_format
from sigscope.formats.payload import payload_digest_problem as payload_digest_problem  # re-exported
from sigscope.formats.payload import reference_problem as reference_problem  # re-exported
from sigscope.model import Check, PGPSigner, Signature, SignatureFormat, SignerIdentity

# No registered media type exists for these blobs; this is the closest honest name for an OpenPGP signature.
MEDIA_TYPE = "application/pgp-signature"
PAYLOAD_TYPE = "atomic container signature"
FRAME_PREFIX = b"\x00simple-signing\n"
SIGNATURE_SKIPPED = "needs the signer's OpenPGP public key (verify with --gpg-keyring)"

# A real payload is a few hundred bytes; these bounds only keep hostile input (zip bombs, deep nesting,
# floods of tiny packets) from costing more than a legitimate signature ever could.
MAX_DECOMPRESSED = 8 * 1024 * 1024
MAX_NESTING = 8
MAX_PACKETS = 64

# c/image `FromBlob` sniffing (internal/signature/signature.go). Upstream lists 0x3D where the one-pass
# signature with an indeterminate length, 0x93, was clearly meant: 0x3D is kept so that what c/image calls a
# simple signature is one here too, and 0x93 is added because it is what the comment describes.
_SNIFF_BYTES = frozenset(
    {0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0x93, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2}
)

TAG_PKESK = 1
TAG_SIGNATURE = 2
TAG_SKESK = 3
TAG_ONE_PASS = 4
TAG_COMPRESSED = 8
TAG_SED = 9
TAG_MARKER = 10
TAG_LITERAL = 11
TAG_SEIPD = 18
TAG_AEAD = 20
_ENCRYPTED_TAGS = frozenset({TAG_PKESK, TAG_SKESK, TAG_SED, TAG_SEIPD, TAG_AEAD})
# Only data packets may use partial body lengths (RFC 4880 §4.2.2.4).
_PARTIAL_OK_TAGS = frozenset({TAG_COMPRESSED, TAG_SED, TAG_LITERAL, TAG_SEIPD, TAG_AEAD})

PACKET_NAMES = {
    1: "public-key encrypted session key",
    2: "signature",
    3: "symmetric-key encrypted session key",
    4: "one-pass signature",
    5: "secret key",
    6: "public key",
    7: "secret subkey",
    8: "compressed data",
    9: "symmetrically encrypted data",
    10: "marker",
    11: "literal data",
    12: "trust",
    13: "user ID",
    14: "public subkey",
    17: "user attribute",
    18: "encrypted and integrity protected data",
    19: "modification detection code",
    20: "AEAD encrypted data",
    21: "padding",
}

PUBLIC_KEY_ALGORITHMS = {
    1: "RSA",
    2: "RSA (encrypt-only)",
    3: "RSA (sign-only)",
    16: "Elgamal",
    17: "DSA",
    18: "ECDH",
    19: "ECDSA",
    20: "Elgamal (sign+encrypt)",
    22: "EdDSA",
    25: "X25519",
    26: "X448",
    27: "Ed25519",
    28: "Ed448",
}

HASH_ALGORITHMS = {
    1: "MD5",
    2: "SHA1",
    3: "RIPEMD160",
    8: "SHA256",
    9: "SHA384",
    10: "SHA512",
    11: "SHA224",
    12: "SHA3-256",
    14: "SHA3-512",
}

COMPRESSION_ALGORITHMS = {0: "uncompressed", 1: "ZIP", 2: "ZLIB", 3: "BZip2"}

SIGNATURE_TYPES = {
    0x00: "binary document",
    0x01: "canonical text document",
    0x02: "standalone",
    0x10: "generic certification",
    0x11: "persona certification",
    0x12: "casual certification",
    0x13: "positive certification",
    0x18: "subkey binding",
    0x19: "primary key binding",
    0x1F: "direct key",
    0x20: "key revocation",
    0x28: "subkey revocation",
    0x30: "certification revocation",
    0x40: "timestamp",
    0x50: "third-party confirmation",
}
_DOCUMENT_TYPES = frozenset({0x00, 0x01})

SUBPACKET_CREATED = 2
SUBPACKET_EXPIRES = 3
SUBPACKET_ISSUER = 16
SUBPACKET_ISSUER_FINGERPRINT = 33
# Subpackets gpg and Go's openpgp understand; an unknown one marked critical makes the signature invalid
# (RFC 4880 §5.2.3.1), and both implementations reject it.
_KNOWN_SUBPACKETS = frozenset(
    {2, 3, 4, 5, 6, 7, 9, 11, 12, 16, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33}
)

# go-digest's registered algorithms; the payload may name any of them even if sigscope fetches only some.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class SimpleSigningError(SigscopeError, ValueError):
    """A simple signature (envelope or payload) is malformed; the message says what and where."""


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class OnePassSignature:
    signature_type: int
    hash_algorithm: int
    public_key_algorithm: int
    key_id: str  # "0000000000000000" is the wildcard some signers emit to hide the key
    last: bool


@dataclass(frozen=True)
class OpenPGPSignature:
    """What a signature packet says about itself; none of it is authenticated until verified."""

    version: int
    signature_type: int
    public_key_algorithm: int
    hash_algorithm: int
    created: datetime | None
    expires: datetime | None  # from the hashed signature-expiration subpacket; None if it never expires
    issuer_key_ids: tuple[str, ...]  # every issuer key ID the packet names (V3 header or subpacket 16)
    fingerprint: str | None  # issuer fingerprint subpacket 33, uppercase hex
    unknown_critical: tuple[int, ...]
    one_pass: OnePassSignature | None
    # The packet body as read: what a verifier hashes and checks (sigscope.trust.pgp); not part of equality.
    packet: bytes = field(default=b"", repr=False, compare=False)

    @property
    def key_id(self) -> str | None:
        """The key ID a verifier would look up: named by the packet itself, else by its one-pass header."""
        if self.issuer_key_ids:
            return self.issuer_key_ids[0]
        if self.fingerprint:
            return _key_id_from_fingerprint(self.fingerprint)
        if self.one_pass is not None and self.one_pass.key_id != _WILDCARD_KEY_ID:
            return self.one_pass.key_id
        return None

    @property
    def public_key_algorithm_name(self) -> str:
        return _name(PUBLIC_KEY_ALGORITHMS, self.public_key_algorithm)

    @property
    def hash_algorithm_name(self) -> str:
        return _name(HASH_ALGORITHMS, self.hash_algorithm)

    @property
    def signature_type_name(self) -> str:
        return SIGNATURE_TYPES.get(self.signature_type, f"type {self.signature_type:#04x}")


@dataclass(frozen=True)
class SignedMessage:
    """The packet structure of an OpenPGP message, as far as it matters to a signature scan."""

    literal: bytes | None
    literal_format: str | None
    literal_filename: bytes | None
    literal_date: datetime | None
    signatures: tuple[OpenPGPSignature, ...]
    compression: tuple[str, ...]  # compression layers, outermost first


_WILDCARD_KEY_ID = "0" * 16


# ------------------------------------------------------------------ sniffing and framing


def looks_like_simple_signing(blob: bytes) -> bool:
    """Whether containers/image would take `blob` for a simple signature (FORMATS §4.2)."""
    if not blob:
        return False
    if blob[0] == 0x00:
        return blob.startswith(FRAME_PREFIX)
    return blob[0] in _SNIFF_BYTES


def unframe(blob: bytes) -> bytes:
    """The OpenPGP message in `blob`: framed (`\\x00simple-signing\\n<data>`) or the historical bare form."""
    if not blob:
        raise SimpleSigningError("empty signature blob")
    if blob[0] != 0x00:
        return blob
    header, newline, rest = blob[1:].partition(b"\n")
    if not newline:
        raise SimpleSigningError("framed signature blob lacks the newline after its format name")
    if any(b < 0x20 or b >= 0x7F for b in header):
        raise SimpleSigningError("framed signature blob has a non-ASCII format name")
    name = header.decode("ascii")
    if name != "simple-signing":
        raise SimpleSigningError(f"signature blob is framed as {name!r}, not 'simple-signing'")
    return rest


# ------------------------------------------------------------------ packets


@dataclass(frozen=True)
class _Packet:
    tag: int
    body: bytes
    offset: int


@dataclass
class _Budget:
    """Decompressed bytes left across every nested layer, so nesting cannot multiply the limit."""

    remaining: int = MAX_DECOMPRESSED
    compression: list[str] = field(default_factory=list)


def _need(data: bytes, pos: int, count: int, what: str) -> None:
    if count < 0 or pos + count > len(data):
        raise SimpleSigningError(f"truncated {what} at offset {pos}")


def _new_format_length(data: bytes, pos: int) -> tuple[int, bool, int]:
    """(length, is_partial, next position) of an RFC 4880 §4.2.2 new-format length."""
    _need(data, pos, 1, "packet length")
    first = data[pos]
    if first < 192:
        return first, False, pos + 1
    if first < 224:
        _need(data, pos, 2, "packet length")
        return ((first - 192) << 8) + data[pos + 1] + 192, False, pos + 2
    if first == 255:
        _need(data, pos, 5, "packet length")
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), False, pos + 5
    return 1 << (first & 0x1F), True, pos + 1


def _read_packets(data: bytes, max_packets: int = MAX_PACKETS) -> list[_Packet]:
    packets: list[_Packet] = []
    pos = 0
    while pos < len(data):
        start = pos
        ctb = data[pos]
        pos += 1
        if not ctb & 0x80:
            raise SimpleSigningError(f"byte {ctb:#04x} at offset {start} does not start an OpenPGP packet")
        if ctb & 0x40:
            tag = ctb & 0x3F
            length, partial, pos = _new_format_length(data, pos)
            if partial and tag not in _PARTIAL_OK_TAGS:
                raise SimpleSigningError(
                    f"{_packet_name(tag)} packet at offset {start} uses a partial body length"
                )
            chunks: list[bytes] = []
            while True:
                _need(data, pos, length, f"{_packet_name(tag)} packet body")
                chunks.append(data[pos : pos + length])
                pos += length
                if not partial:
                    break
                length, partial, pos = _new_format_length(data, pos)
            body = b"".join(chunks)
        else:
            tag = (ctb >> 2) & 0x0F
            length_type = ctb & 0x03
            if length_type == 3:
                # Indeterminate length: the packet runs to the end of the enclosing data (gpg's usual
                # framing for the outer compressed packet).
                body = data[pos:]
                pos = len(data)
            else:
                size = (1, 2, 4)[length_type]
                _need(data, pos, size, "packet length")
                length = int.from_bytes(data[pos : pos + size], "big")
                pos += size
                _need(data, pos, length, f"{_packet_name(tag)} packet body")
                body = data[pos : pos + length]
                pos += length
        if tag == 0:
            raise SimpleSigningError(f"packet at offset {start} has the reserved tag 0")
        if tag == TAG_MARKER:
            continue  # RFC 4880 §5.8: marker packets are ignored wherever they appear
        if len(packets) >= max_packets:
            raise SimpleSigningError(f"more than {max_packets} packets; not a signature")
        packets.append(_Packet(tag, body, start))
    return packets


def _decompress(body: bytes, budget: _Budget) -> bytes:
    if not body:
        raise SimpleSigningError("compressed data packet is empty")
    algorithm, data = body[0], body[1:]
    name = COMPRESSION_ALGORITHMS.get(algorithm)
    if name is None:
        raise SimpleSigningError(f"unknown compression algorithm {algorithm}")
    budget.compression.append(name)
    if algorithm == 0:
        out = data
    else:
        limit = budget.remaining + 1
        eof: bool
        try:
            if algorithm == 3:
                bz = bz2.BZ2Decompressor()
                out = bz.decompress(data, max_length=limit)
                eof = bz.eof
            else:
                z = zlib.decompressobj(-15 if algorithm == 1 else 15)
                out = z.decompress(data, limit)
                eof = z.eof
        except (OSError, ValueError, zlib.error, EOFError) as exc:
            raise SimpleSigningError(f"{name}-compressed data is corrupt: {exc}") from None
        if len(out) > budget.remaining:
            raise SimpleSigningError(f"compressed data expands beyond {MAX_DECOMPRESSED} bytes")
        if not eof:
            raise SimpleSigningError(f"{name}-compressed data is truncated")
    if len(out) > budget.remaining:
        raise SimpleSigningError(f"message data exceeds {MAX_DECOMPRESSED} bytes")
    budget.remaining -= len(out)
    return out


def _parse_one_pass(packet: _Packet) -> OnePassSignature:
    body = packet.body
    if not body:
        raise SimpleSigningError(f"empty one-pass signature packet at offset {packet.offset}")
    if body[0] != 3:
        raise SimpleSigningError(f"unsupported one-pass signature version {body[0]}")
    if len(body) != 13:
        raise SimpleSigningError(f"one-pass signature packet is {len(body)} bytes, not 13")
    return OnePassSignature(
        signature_type=body[1],
        hash_algorithm=body[2],
        public_key_algorithm=body[3],
        key_id=body[4:12].hex().upper(),
        last=body[12] != 0,
    )


def _subpackets(area: bytes, hashed: bool) -> list[tuple[int, bool, bytes]]:
    """(type, critical, data) for each subpacket of one area (RFC 4880 §5.2.3.1)."""
    out: list[tuple[int, bool, bytes]] = []
    pos = 0
    where = "hashed" if hashed else "unhashed"
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            _need(area, pos, 2, f"{where} subpacket length")
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            _need(area, pos, 5, f"{where} subpacket length")
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        if length == 0:
            raise SimpleSigningError(f"{where} subpacket with length 0")
        _need(area, pos, length, f"{where} subpacket")
        kind = area[pos]
        out.append((kind & 0x7F, bool(kind & 0x80), area[pos + 1 : pos + length]))
        pos += length
    return out


def _timestamp(data: bytes, what: str) -> int:
    if len(data) != 4:
        raise SimpleSigningError(f"{what} subpacket is {len(data)} bytes, not 4")
    return int.from_bytes(data, "big")


def _parse_signature_packet(packet: _Packet, one_pass: OnePassSignature | None) -> OpenPGPSignature:
    body = packet.body
    if not body:
        raise SimpleSigningError(f"empty signature packet at offset {packet.offset}")
    version = body[0]
    if version in (2, 3):
        # RFC 4880 §5.2.2: hashed material length (always 5), type, creation time, key ID, algorithms.
        _need(body, 0, 20, "V3 signature packet")
        if body[1] != 5:
            raise SimpleSigningError(f"V3 signature declares {body[1]} bytes of hashed material, not 5")
        v3_created = int.from_bytes(body[3:7], "big")
        return OpenPGPSignature(
            version=version,
            signature_type=body[2],
            public_key_algorithm=body[15],
            hash_algorithm=body[16],
            created=datetime.fromtimestamp(v3_created, UTC),
            expires=None,
            issuer_key_ids=(body[7:15].hex().upper(),),
            fingerprint=None,
            unknown_critical=(),
            one_pass=one_pass,
            packet=body,
        )
    if version != 4:
        # V5/V6 (RFC 9580) are unknown to gpg 2.2 and to the Go openpgp code containers/image links.
        raise SimpleSigningError(f"unsupported signature packet version {version}")
    _need(body, 0, 6, "V4 signature packet")
    signature_type, pk_algorithm, hash_algorithm = body[1], body[2], body[3]
    hashed_length = int.from_bytes(body[4:6], "big")
    _need(body, 6, hashed_length + 2, "V4 signature hashed subpackets")
    hashed = body[6 : 6 + hashed_length]
    pos = 6 + hashed_length
    unhashed_length = int.from_bytes(body[pos : pos + 2], "big")
    pos += 2
    _need(body, pos, unhashed_length + 2, "V4 signature unhashed subpackets")
    unhashed = body[pos : pos + unhashed_length]
    pos += unhashed_length + 2  # the 16 left bits of the hash follow
    if pos >= len(body):
        raise SimpleSigningError("V4 signature packet has no signature value")

    created: int | None = None
    expires_after: int | None = None
    key_ids: list[str] = []
    fingerprint: str | None = None
    unknown_critical: list[int] = []
    for area, is_hashed in ((hashed, True), (unhashed, False)):
        for kind, critical, data in _subpackets(area, is_hashed):
            if critical and kind not in _KNOWN_SUBPACKETS:
                unknown_critical.append(kind)
            # Creation and expiry count only where the signature covers them (RFC 4880 §5.2.3.4).
            if kind == SUBPACKET_CREATED and is_hashed and created is None:
                created = _timestamp(data, "signature creation time")
            elif kind == SUBPACKET_EXPIRES and is_hashed and expires_after is None:
                expires_after = _timestamp(data, "signature expiration time")
            elif kind == SUBPACKET_ISSUER:
                if len(data) != 8:
                    raise SimpleSigningError(f"issuer subpacket is {len(data)} bytes, not 8")
                key_id = data.hex().upper()
                if key_id not in key_ids:
                    key_ids.append(key_id)
            elif kind == SUBPACKET_ISSUER_FINGERPRINT and fingerprint is None:
                fingerprint = _parse_issuer_fingerprint(data)

    created_at = datetime.fromtimestamp(created, UTC) if created is not None else None
    expires_at = None
    if created_at is not None and expires_after:  # 0 means "never" (RFC 4880 §5.2.3.10)
        expires_at = created_at + timedelta(seconds=expires_after)
    return OpenPGPSignature(
        version=4,
        signature_type=signature_type,
        public_key_algorithm=pk_algorithm,
        hash_algorithm=hash_algorithm,
        created=created_at,
        expires=expires_at,
        issuer_key_ids=tuple(key_ids),
        fingerprint=fingerprint,
        unknown_critical=tuple(unknown_critical),
        one_pass=one_pass,
        packet=body,
    )


@dataclass(frozen=True)
class SignatureParts:
    """The byte ranges of a signature packet that a verifier needs (RFC 4880 §5.2.3, §5.2.4)."""

    hashed: bytes  # V4: version through the hashed subpackets; V3: signature type and creation time
    hashed_subpackets: bytes  # V4 only
    unhashed_subpackets: bytes  # V4 only
    left16: bytes  # the first two bytes of the signed hash, a cheap "wrong data" test
    value: bytes  # the algorithm-specific signature (MPIs, or raw bytes for algorithms 27 and 28)


def signature_parts(body: bytes) -> SignatureParts:
    """Split a V3 or V4 signature packet body; raises SimpleSigningError if it is not one."""
    _need(body, 0, 1, "signature packet")
    if body[0] in (2, 3):
        _need(body, 0, 19, "V3 signature packet")
        if body[1] != 5:
            raise SimpleSigningError(f"V3 signature declares {body[1]} bytes of hashed material, not 5")
        return SignatureParts(body[2:7], b"", b"", body[17:19], body[19:])
    if body[0] != 4:
        raise SimpleSigningError(f"unsupported signature packet version {body[0]}")
    _need(body, 0, 6, "V4 signature packet")
    hashed_length = int.from_bytes(body[4:6], "big")
    _need(body, 6, hashed_length + 2, "V4 signature hashed subpackets")
    pos = 6 + hashed_length
    unhashed_length = int.from_bytes(body[pos : pos + 2], "big")
    _need(body, pos + 2, unhashed_length + 2, "V4 signature unhashed subpackets")
    value_at = pos + 2 + unhashed_length + 2
    return SignatureParts(
        hashed=body[:pos],
        hashed_subpackets=body[6:pos],
        unhashed_subpackets=body[pos + 2 : pos + 2 + unhashed_length],
        left16=body[value_at - 2 : value_at],
        value=body[value_at:],
    )


def parse_signature_packet(body: bytes) -> OpenPGPSignature:
    """One signature packet body outside a message (key certifications, bindings, revocations)."""
    return _parse_signature_packet(_Packet(TAG_SIGNATURE, body, 0), None)


def subpackets(area: bytes, *, hashed: bool) -> list[tuple[int, bool, bytes]]:
    """(type, critical, data) of each subpacket in one area; raises SimpleSigningError if malformed."""
    return _subpackets(area, hashed)


def read_packets(data: bytes, *, max_packets: int) -> list[tuple[int, bytes]]:
    """(tag, body) of each top-level packet in `data` (markers dropped); raises SimpleSigningError."""
    return [(p.tag, p.body) for p in _read_packets(data, max_packets)]


def _parse_issuer_fingerprint(data: bytes) -> str:
    if not data:
        raise SimpleSigningError("empty issuer fingerprint subpacket")
    key_version, fingerprint = data[0], data[1:]
    expected = {4: 20, 5: 32, 6: 32}.get(key_version)
    if expected is None:
        raise SimpleSigningError(f"issuer fingerprint for unknown key version {key_version}")
    if len(fingerprint) != expected:
        raise SimpleSigningError(
            f"V{key_version} issuer fingerprint is {len(fingerprint)} bytes, not {expected}"
        )
    return fingerprint.hex().upper()


def _key_id_from_fingerprint(fingerprint: str) -> str:
    # V4 key IDs are the low 64 bits of the fingerprint; V5/V6 ones the high 64 bits.
    return fingerprint[-16:] if len(fingerprint) == 40 else fingerprint[:16]


@dataclass
class _Walk:
    literal: _Packet | None = None
    signatures: list[OpenPGPSignature] = field(default_factory=list)


def _message(packets: list[_Packet], index: int, walk: _Walk, budget: _Budget, depth: int) -> int:
    """Match one RFC 4880 §11.3 "OpenPGP Message" at `index`; return the index after it."""
    if depth > MAX_NESTING:
        raise SimpleSigningError(f"message nests deeper than {MAX_NESTING} levels")
    if index >= len(packets):
        raise SimpleSigningError("message ends before its literal data")
    packet = packets[index]
    if packet.tag == TAG_COMPRESSED:
        inner = _read_packets(_decompress(packet.body, budget))
        end = _message(inner, 0, walk, budget, depth + 1)
        if end != len(inner):
            extra = inner[end]
            raise SimpleSigningError(
                f"unexpected {_packet_name(extra.tag)} packet after the message inside compressed data"
            )
        return index + 1
    if packet.tag == TAG_LITERAL:
        walk.literal = packet
        return index + 1
    if packet.tag == TAG_ONE_PASS:
        one_pass = _parse_one_pass(packet)
        end = _message(packets, index + 1, walk, budget, depth + 1)
        if end >= len(packets) or packets[end].tag != TAG_SIGNATURE:
            raise SimpleSigningError("one-pass signature without its closing signature packet")
        walk.signatures.append(_parse_signature_packet(packets[end], one_pass))
        return end + 1
    if packet.tag == TAG_SIGNATURE:
        signature = _parse_signature_packet(packet, None)
        end = _message(packets, index + 1, walk, budget, depth + 1)
        walk.signatures.append(signature)
        return end
    if packet.tag in _ENCRYPTED_TAGS:
        raise SimpleSigningError("an encrypted OpenPGP message, not a signed one")
    raise SimpleSigningError(
        f"unexpected {_packet_name(packet.tag)} packet where an OpenPGP message should start"
    )


def parse_message(data: bytes) -> SignedMessage:
    """Parse a binary OpenPGP message without any keyring.

    Raises SimpleSigningError for anything that is not a well-formed, unencrypted message. A message
    without signatures (bare literal data) parses: deciding it is unacceptable is the caller's job.
    """
    if not data:
        raise SimpleSigningError("empty OpenPGP message")
    if data[:5] == b"-----":
        raise SimpleSigningError("ASCII-armored or cleartext-signed data, not a binary signed message")
    packets = _read_packets(data)
    if not packets:
        raise SimpleSigningError("no OpenPGP packets")
    if all(p.tag == TAG_SIGNATURE for p in packets):
        raise SimpleSigningError("a detached signature: the signed payload is not inside it")
    if packets[0].tag in (5, 6):
        raise SimpleSigningError("an OpenPGP key, not a signed message")
    walk = _Walk()
    budget = _Budget()
    end = _message(packets, 0, walk, budget, 0)
    if end != len(packets):
        raise SimpleSigningError(f"unexpected {_packet_name(packets[end].tag)} packet after the message")
    literal = walk.literal
    assert literal is not None  # _message only returns once it has matched literal data
    body = literal.body
    _need(body, 0, 2, "literal data header")
    name_length = body[1]
    _need(body, 2, name_length + 4, "literal data header")
    date = int.from_bytes(body[2 + name_length : 6 + name_length], "big")
    literal_format = chr(body[0]) if 0x20 <= body[0] < 0x7F else f"{body[0]:#04x}"
    return SignedMessage(
        literal=body[6 + name_length :],
        literal_format=literal_format,
        literal_filename=body[2 : 2 + name_length],
        literal_date=datetime.fromtimestamp(date, UTC) if date else None,
        signatures=tuple(walk.signatures),
        compression=tuple(budget.compression),
    )


def envelope_problems(message: SignedMessage) -> list[str]:
    """Why containers/image (gpgme or its Go openpgp mechanism) would refuse this message, before crypto."""
    signatures = message.signatures
    if not signatures:
        return ["not a signed message: literal data without any signature"]
    problems: list[str] = []
    if len(signatures) > 1:
        problems.append(f"{len(signatures)} signatures; containers/image accepts exactly one")
    for sig in signatures:
        if sig.signature_type not in _DOCUMENT_TYPES:
            problems.append(f"a {sig.signature_type_name} signature does not sign a document")
        if sig.created is None:
            problems.append("V4 signature has no creation time in its hashed subpackets")
        if sig.hash_algorithm == 1:
            problems.append("MD5 signatures are rejected by gpg")
        if sig.unknown_critical:
            kinds = ", ".join(str(k) for k in sig.unknown_critical)
            problems.append(f"unsupported critical subpacket(s) {kinds}")
        ids = set(sig.issuer_key_ids)
        if sig.fingerprint:
            ids.add(_key_id_from_fingerprint(sig.fingerprint))
        one_pass = sig.one_pass
        if one_pass is not None:
            if one_pass.key_id != _WILDCARD_KEY_ID:
                ids.add(one_pass.key_id)
            for what, left, right in (
                ("signature type", one_pass.signature_type, sig.signature_type),
                ("hash algorithm", one_pass.hash_algorithm, sig.hash_algorithm),
                ("public-key algorithm", one_pass.public_key_algorithm, sig.public_key_algorithm),
            ):
                if left != right:
                    problems.append(f"one-pass header and signature packet disagree on the {what}")
        if len(ids) > 1:
            problems.append(f"the message names several issuer keys ({', '.join(sorted(ids))})")
        elif not ids:
            problems.append("the signature names no issuer key, so no verifier can find its public key")
    return problems


# ------------------------------------------------------------------ payload


def _exact_object(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SimpleSigningError(f"{where} is not a JSON object")
    for key in value:
        if key not in keys:
            raise SimpleSigningError(f"unknown key {key!r} in {where}")
    for key in keys:
        if key not in value:
            raise SimpleSigningError(f"key {key!r} missing in {where}")
    return value


def _int64(value: Any) -> int | None:
    """Go decodes optional.timestamp into a float64 and accepts it when it is integral."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float) and value.is_integer() and _INT64_MIN <= value < 2.0**63:
        return int(value)
    return None


def parse_payload(data: bytes) -> dict[str, Any]:
    """Strictly parse a simple-signing JSON payload (FORMATS §4.1, c/image `strictUnmarshalJSON`).

    Returns the JSON object as parsed, with `optional.timestamp` normalised to an int. Raises
    SimpleSigningError naming the first problem.
    """
    try:
        value = payload_format.read(data).document
    except payload_format.PayloadError as exc:
        raise SimpleSigningError(str(exc)) from None
    top = _exact_object(value, ("critical", "optional"), "payload")

    optional = top["optional"]
    if not isinstance(optional, dict):
        raise SimpleSigningError("optional is not a JSON object")
    # Go decodes JSON null into a string or float64 without complaint, so null optional members are accepted.
    creator = optional.get("creator")
    if creator is not None and not isinstance(creator, str):
        raise SimpleSigningError("optional.creator is not a string")
    if "timestamp" in optional and optional["timestamp"] is not None:
        timestamp = _int64(optional["timestamp"])
        if timestamp is None:
            raise SimpleSigningError("optional.timestamp is not an integer")
        optional["timestamp"] = timestamp

    critical = _exact_object(top["critical"], ("type", "image", "identity"), "critical")
    signature_type = critical["type"]
    if not isinstance(signature_type, str):
        raise SimpleSigningError("critical.type is not a string")
    if signature_type != PAYLOAD_TYPE:
        raise SimpleSigningError(f"critical.type is {signature_type!r}, not {PAYLOAD_TYPE!r}")

    image = _exact_object(critical["image"], ("docker-manifest-digest",), "critical.image")
    digest = image["docker-manifest-digest"]
    if not isinstance(digest, str):
        raise SimpleSigningError("critical.image.docker-manifest-digest is not a string")
    if problem := payload_digest_problem(digest):
        raise SimpleSigningError(f"invalid docker-manifest-digest {digest!r}: {problem}")

    identity = _exact_object(critical["identity"], ("docker-reference",), "critical.identity")
    reference = identity["docker-reference"]
    if not isinstance(reference, str):
        raise SimpleSigningError("critical.identity.docker-reference is not a string")
    if problem := reference_problem(reference):
        raise SimpleSigningError(f"invalid docker-reference {reference!r}: {problem}")
    return top


def _claims(payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Claims and manifest digest from a (possibly invalid) payload; wrong-typed members are left out."""
    claims: dict[str, Any] = {}
    digest: str | None = None
    critical = payload.get("critical")
    optional = payload.get("optional")
    if isinstance(critical, dict):
        identity = critical.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("docker-reference"), str):
            claims["docker-reference"] = identity["docker-reference"]
        if isinstance(critical.get("type"), str):
            claims["type"] = critical["type"]
        image = critical.get("image")
        if isinstance(image, dict) and isinstance(image.get("docker-manifest-digest"), str):
            digest = image["docker-manifest-digest"]
    if isinstance(optional, dict):
        if isinstance(optional.get("creator"), str):
            claims["creator"] = optional["creator"]
        timestamp = _int64(optional.get("timestamp"))
        if timestamp is not None:
            claims["timestamp"] = timestamp
    return claims, digest


# ------------------------------------------------------------------ the record


def parse_signature(blob: bytes, *, subject_digest: str, location: str, now: datetime) -> Signature:
    """The record for one simple-signature blob found for `subject_digest`; never raises on bad input."""
    sig = Signature(
        format=SignatureFormat.SIMPLE_SIGNING,
        subject_digest=subject_digest,
        location=location,
        media_type=MEDIA_TYPE,
    )
    try:
        _fill(sig, blob, now if now.tzinfo is not None else now.replace(tzinfo=UTC))
    except Exception as exc:  # bulk scans report a broken record instead of dying (rule 5)
        sig.error = f"internal error reading simple signature: {type(exc).__name__}: {exc}"
    return sig.settle()


def _fill(sig: Signature, blob: bytes, now: datetime) -> None:
    try:
        data = unframe(blob)
        # Anything with the packet bit set is parsed even when c/image would not sniff it as a simple
        # signature, so an encrypted or bare-literal blob is reported as such rather than as noise.
        recognised = looks_like_simple_signing(data)
        if not data or not (recognised or data[0] & 0x80):
            head = f"{data[0]:#04x}" if data else "nothing"
            raise SimpleSigningError(f"not an OpenPGP message (starts with {head})")
        sig.evidence["openpgp"] = data
        message = parse_message(data)
    except SimpleSigningError as exc:
        sig.error = f"unreadable simple signature: {exc}"
        sig.checks.append(Check.failed("envelope", str(exc)))
        return

    assert message.literal is not None
    sig.evidence["payload"] = message.literal
    first = message.signatures[0] if message.signatures else None
    if first is not None:
        sig.signing_time = first.created
        sig.expiry = first.expires
        if first.key_id is not None:
            sig.signer = SignerIdentity(
                pgp=PGPSigner(
                    key_id=first.key_id,
                    fingerprint=first.fingerprint,
                    algorithm=first.public_key_algorithm_name,
                    created=first.created,
                )
            )

    problems = envelope_problems(message)
    if not recognised:
        problems.append(f"containers/image does not recognise a blob starting with {data[0]:#04x}")
    if problems:
        sig.checks.append(Check.failed("envelope", "; ".join(problems)))
    else:
        assert first is not None
        sig.checks.append(Check.passed("envelope", _describe(message, first)))

    signed_digest: str | None = None
    try:
        payload = parse_payload(message.literal)
    except SimpleSigningError as exc:
        sig.checks.append(Check.failed("payload", str(exc)))
        try:
            loose: Any = payload_format.read(message.literal).document
        except payload_format.PayloadError:
            loose = None
        if isinstance(loose, dict):
            sig.claims, signed_digest = _claims(loose)
    else:
        sig.claims, signed_digest = _claims(payload)
        sig.checks.append(
            Check.passed("payload", f"{PAYLOAD_TYPE} for {sig.claims['docker-reference']} (unverified claim)")
        )

    if signed_digest is not None and payload_digest_problem(signed_digest) is None:
        sig.signed_digest = signed_digest
        if signed_digest == sig.subject_digest:
            sig.checks.append(Check.passed("payload-digest", f"payload names {signed_digest}"))
        else:
            sig.checks.append(
                Check.failed(
                    "payload-digest",
                    f"payload names {signed_digest}, but the signature was found for {sig.subject_digest}",
                )
            )
    else:
        sig.checks.append(Check.skipped("payload-digest", "the payload names no valid manifest digest"))

    if first is not None and first.expires is not None:
        when = first.expires.isoformat()
        if now >= first.expires:
            sig.checks.append(Check.failed("expiry", f"signature expired at {when}"))
        else:
            sig.checks.append(Check.passed("expiry", f"signature expires at {when}"))

    if first is None:
        sig.checks.append(Check.skipped("signature", "the message carries no signature to verify"))
    else:
        sig.checks.append(Check.skipped("signature", SIGNATURE_SKIPPED))


def _describe(message: SignedMessage, sig: OpenPGPSignature) -> str:
    layers = [c if c == "uncompressed" else f"{c}-compressed" for c in message.compression]
    wrapping = "".join(f"{layer} " for layer in layers)
    framing = "one-pass " if sig.one_pass is not None else ""
    return (
        f"{wrapping}{framing}OpenPGP signed message: V{sig.version} {sig.signature_type_name} signature, "
        f"{sig.public_key_algorithm_name}/{sig.hash_algorithm_name}, key {sig.key_id}"
    )


def _name(table: dict[int, str], value: int) -> str:
    return table.get(value, f"algorithm {value}")


def _packet_name(tag: int) -> str:
    return PACKET_NAMES.get(tag, f"tag-{tag}")
