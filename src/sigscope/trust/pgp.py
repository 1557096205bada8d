"""Trust in OpenPGP public keys (`--gpg-keyring`): containers/image simple signatures checked without gpg.

A keyring is read the way gpg imports one (RFC 4880 §11.1 transferable public keys, binary or armored), but
only what a verifier needs survives: primary keys with a valid self-signature, the user IDs they certify,
and the subkeys they bind (with a valid back-signature for signing subkeys), each with its expiry, key flags
and any valid revocation. Every self-signature, binding and revocation is checked cryptographically;
nothing in a keyring counts because it is merely present.

A simple signature is then judged as gpg would report it: GOODSIG, BADSIG, EXPSIG, EXPKEYSIG, REVKEYSIG or
NO_PUBKEY, mapped onto sigscope's checks. What the signature itself says (its math, its own expiry) is
integrity; what the supplied keyring says about the key (unknown, revoked, expired, unbound, not for
signing) is trust, so the same bytes are `invalid` for everyone but `untrusted` only for this keyring.

Pure: no I/O, the clock is a parameter; the CLI reads the files.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, utils

from sigscope.errors import SigscopeError
from sigscope.formats import simplesigning as ss
from sigscope.model import Check, PGPSigner, Signature, SignatureFormat, SignerIdentity

# Real keyrings (a distribution's, with years of certifications) run to hundreds of thousands of packets;
# this only bounds what a hostile file can make us hold.
MAX_KEYRING_PACKETS = 1_000_000
# gpg 2.2 still accepts 1024-bit RSA and DSA; anything smaller is trivially factored.
MIN_RSA_BITS = 1024
MIN_DSA_BITS = 1024

TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_TRUST = 12
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
TAG_USER_ATTRIBUTE = 17
TAG_PADDING = 21

SIG_BINARY = 0x00
SIG_TEXT = 0x01
SIG_CERTIFICATIONS = frozenset({0x10, 0x11, 0x12, 0x13})
SIG_SUBKEY_BINDING = 0x18
SIG_PRIMARY_BINDING = 0x19
SIG_DIRECT_KEY = 0x1F
SIG_KEY_REVOCATION = 0x20
SIG_SUBKEY_REVOCATION = 0x28
SIG_CERT_REVOCATION = 0x30

SUBPACKET_KEY_EXPIRES = 9
SUBPACKET_PRIMARY_UID = 25
SUBPACKET_KEY_FLAGS = 27
SUBPACKET_REVOCATION_REASON = 29
SUBPACKET_EMBEDDED_SIGNATURE = 32

FLAG_CERTIFY = 0x01
FLAG_SIGN = 0x02

# hashlib name and cryptography class for each hash gpg would accept. SHA-1 stays for self-signatures and
# bindings only: keys certified in the 2000s still carry them, and there a collision buys an attacker
# nothing they could not get by making a key of their own. Documents need a SHA-2 hash.
_HASHES: dict[int, tuple[str, type[hashes.HashAlgorithm]]] = {
    2: ("sha1", hashes.SHA1),
    8: ("sha256", hashes.SHA256),
    9: ("sha384", hashes.SHA384),
    10: ("sha512", hashes.SHA512),
    11: ("sha224", hashes.SHA224),
}
_DOCUMENT_HASHES = frozenset({8, 9, 10, 11})

_CURVES: dict[bytes, tuple[str, type[ec.EllipticCurve]]] = {
    bytes.fromhex("2A8648CE3D030107"): ("NIST P-256", ec.SECP256R1),
    bytes.fromhex("2B81040022"): ("NIST P-384", ec.SECP384R1),
    bytes.fromhex("2B81040023"): ("NIST P-521", ec.SECP521R1),
    bytes.fromhex("2B2403030208010107"): ("brainpoolP256r1", ec.BrainpoolP256R1),
    bytes.fromhex("2B240303020801010B"): ("brainpoolP384r1", ec.BrainpoolP384R1),
    bytes.fromhex("2B240303020801010D"): ("brainpoolP512r1", ec.BrainpoolP512R1),
}
_ED25519_LEGACY_OID = bytes.fromhex("2B06010401DA470F01")
_ENCRYPTION_ONLY = {2: "RSA (encrypt-only)", 16: "Elgamal", 18: "ECDH", 25: "X25519", 26: "X448"}

REVOCATION_REASONS = {
    0: "no reason specified",
    1: "key superseded",
    2: "key compromised",
    3: "key retired",
    32: "user ID no longer valid",
}

_ARMOR_BEGIN = b"-----BEGIN PGP "
_ARMOR_DASHES = b"-----"

_Verifier = (
    rsa.RSAPublicKey
    | dsa.DSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)


class KeyringError(SigscopeError, ValueError):
    """Bytes that are not an OpenPGP keyring sigscope can use; the message says why.

    `index` is the position of the offending blob in a `load_keyrings` call, so a face can name the file.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class _Malformed(Exception):
    pass


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class PublicKey:
    """One V4 public key or subkey packet."""

    algorithm: int
    created: datetime
    fingerprint: str  # uppercase hex, SHA-1 over 0x99 ‖ length ‖ body (RFC 4880 §12.2)
    key_id: str  # low 64 bits of the fingerprint
    bits: int
    curve: str | None
    body: bytes = field(repr=False)
    verifier: _Verifier | None = field(default=None, repr=False, compare=False)
    problem: str | None = None  # why this key can verify nothing (encryption-only, unsupported, too weak)

    @property
    def algorithm_name(self) -> str:
        return ss.PUBLIC_KEY_ALGORITHMS.get(self.algorithm, f"algorithm {self.algorithm}")

    def hash_prefix(self) -> bytes:
        """How a key is fed to the hash of a signature over it (RFC 4880 §5.2.4)."""
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body


@dataclass(frozen=True)
class SigningKey:
    """A primary key or subkey, with what its certificate's valid self-signatures say about it."""

    key: PublicKey
    expires: datetime | None = None  # from the key-expiration subpacket of the newest valid self-signature
    flags: int | None = None  # key flags subpacket; None when the self-signature states none
    revoked: str | None = None  # reason given by a valid revocation signature
    problem: str | None = None  # why the certificate does not vouch for this key at all
    cross_certified: bool = True  # subkeys: a valid primary-key binding (back-)signature was found

    def refusals(self, now: datetime, role: str, *, signer: bool = True) -> list[str]:
        """Why this key may not vouch for a document signature at `now` (empty when it may).

        `signer` is False for a primary key whose subkey made the signature: then only revocation, expiry
        and validity pass down, not the primary's own key flags.
        """
        out: list[str] = []
        if self.problem:
            out.append(self.problem)
        if self.revoked is not None:
            out.append(f"REVKEYSIG the {role} was revoked by its owner ({self.revoked})")
        if self.expires is not None and now >= self.expires:
            out.append(f"EXPKEYSIG the {role} expired at {self.expires.isoformat()}")
        if signer and self.flags is not None and not self.flags & FLAG_SIGN:
            out.append(f"the {role} is not certified for signing data (key flags {self.flags:#04x})")
        if not self.cross_certified:
            out.append(f"the signing {role} is not cross-certified (no valid primary key binding signature)")
        return out


@dataclass(frozen=True)
class Certificate:
    """A transferable public key: a primary key, its valid user IDs (primary first) and its subkeys."""

    primary: SigningKey
    user_ids: tuple[str, ...]
    subkeys: tuple[SigningKey, ...]

    @property
    def fingerprint(self) -> str:
        return self.primary.key.fingerprint

    @property
    def name(self) -> str:
        return f"{self.user_ids[0]} {self.fingerprint}" if self.user_ids else self.fingerprint


@dataclass(frozen=True)
class Keyring:
    """Certificates from one or more `--gpg-keyring` files, merged by fingerprint as gpg would."""

    certificates: tuple[Certificate, ...]
    skipped: tuple[str, ...] = ()  # keys left out while loading, and why
    _index: dict[str, list[tuple[Certificate, SigningKey]]] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for cert in self.certificates:
            for key in (cert.primary, *cert.subkeys):
                self._index.setdefault(key.key.key_id, []).append((cert, key))

    def __len__(self) -> int:
        return len(self.certificates)

    def lookup(
        self, key_ids: Iterable[str], fingerprint: str | None = None
    ) -> list[tuple[Certificate, SigningKey]]:
        """Keys (with their certificate) that a signature naming `key_ids` / `fingerprint` may be by."""
        found: list[tuple[Certificate, SigningKey]] = []
        wanted = {k.upper() for k in key_ids}
        if fingerprint:
            wanted.add(fingerprint.upper()[-16:])
        for key_id in sorted(wanted):
            for cert, key in self._index.get(key_id, ()):
                # A fingerprint, when the signature names one, pins the key; a key ID alone can collide.
                if fingerprint and key.key.fingerprint != fingerprint.upper():
                    continue
                if all(key is not other for _, other in found):
                    found.append((cert, key))
        return found


# ------------------------------------------------------------------ armor


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _dearmor(data: bytes) -> bytes:
    """The binary packets of every `PGP PUBLIC KEY BLOCK` in `data` (RFC 4880 §6.2), concatenated."""
    lines = data.splitlines()
    out: list[bytes] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line.startswith(_ARMOR_BEGIN):
            continue
        kind = line[len(_ARMOR_BEGIN) :].rstrip(b"-").decode("ascii", "replace")
        if kind in ("PRIVATE KEY BLOCK", "SECRET KEY BLOCK"):
            raise KeyringError("armored secret key material; supply the public key (gpg --export --armor)")
        if kind != "PUBLIC KEY BLOCK":
            raise KeyringError(f"armored {kind}, not a PGP PUBLIC KEY BLOCK")
        # Armor headers ("Version: …", "Comment: …") are the only lines with a colon, which base64 never
        # contains; dropping them also copes with writers that omit the blank line after the headers.
        body: list[bytes] = []
        checksum: bytes | None = None
        while True:
            if i >= len(lines):
                raise KeyringError(f"armored {kind} has no END line")
            text = lines[i].strip()
            i += 1
            if text.startswith(b"-----END PGP "):
                break
            if text.startswith(b"=") and len(text) == 5:
                checksum = text[1:]
            elif text and b":" not in text:
                body.append(text)
        try:
            packets = binascii.a2b_base64(b"".join(body), strict_mode=True)
            crc = binascii.a2b_base64(checksum, strict_mode=True) if checksum is not None else None
        except binascii.Error as exc:
            raise KeyringError(f"armored {kind} is not valid base64: {exc}") from None
        if crc is not None and int.from_bytes(crc, "big") != _crc24(packets):
            raise KeyringError(f"armored {kind} fails its CRC-24 checksum (damaged in transit?)")
        out.append(packets)
    if not out:
        raise KeyringError("ASCII data without a BEGIN PGP PUBLIC KEY BLOCK line")
    return b"".join(out)


# ------------------------------------------------------------------ packets


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise _Malformed("truncated key material")
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def mpi_bytes(self) -> bytes:
        bits = int.from_bytes(self.take(2), "big")
        return self.take((bits + 7) // 8)

    def mpi(self) -> int:
        return int.from_bytes(self.mpi_bytes(), "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise _Malformed("trailing bytes after the key material")


def _parse_key(body: bytes) -> PublicKey:
    """A V4 key packet body; raises _Malformed for anything else (V3/V5/V6 keys, truncated bodies)."""
    if not body:
        raise _Malformed("empty key packet")
    if body[0] != 4:
        # V3 keys are MD5-fingerprinted and gone from gpg since 2.1; V5/V6 are unknown to gpg 2.2 and to
        # the Go openpgp code containers/image links, so neither could verify a simple signature either.
        raise _Malformed(f"V{body[0]} key (only V4 keys are supported)")
    if len(body) > 0xFFFF:
        raise _Malformed("key packet longer than a V4 fingerprint can cover")
    reader = _Reader(body)
    reader.take(1)
    created = datetime.fromtimestamp(int.from_bytes(reader.take(4), "big"), UTC)
    algorithm = reader.take(1)[0]
    fingerprint = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    base = PublicKey(algorithm, created, fingerprint, fingerprint[-16:], 0, None, body)
    try:
        return _key_material(base, reader)
    except _Malformed as exc:
        return replace(base, problem=f"malformed {base.algorithm_name} key material: {exc}")
    except (ValueError, UnsupportedAlgorithm) as exc:
        return replace(base, problem=f"unusable {base.algorithm_name} key: {exc}")


def _key_material(key: PublicKey, reader: _Reader) -> PublicKey:
    algorithm = key.algorithm
    verifier: _Verifier
    if algorithm in (1, 2, 3):
        n, e = reader.mpi(), reader.mpi()
        key = replace(key, bits=n.bit_length())
        if algorithm == 2:
            return replace(key, problem="an encrypt-only RSA key cannot sign")
        if key.bits < MIN_RSA_BITS:
            return replace(key, problem=f"{key.bits}-bit RSA is too weak to trust")
        verifier = rsa.RSAPublicNumbers(e, n).public_key()
    elif algorithm == 17:
        p, q, g, y = reader.mpi(), reader.mpi(), reader.mpi(), reader.mpi()
        key = replace(key, bits=p.bit_length())
        if key.bits < MIN_DSA_BITS:
            return replace(key, problem=f"{key.bits}-bit DSA is too weak to trust")
        verifier = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    elif algorithm == 19:
        oid = reader.take(reader.take(1)[0])
        point = reader.mpi_bytes()
        if oid not in _CURVES:
            return replace(key, problem=f"ECDSA on an unsupported curve (OID {oid.hex()})")
        curve_name, curve = _CURVES[oid]
        verifier = ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
        key = replace(key, curve=curve_name, bits=verifier.key_size)
    elif algorithm == 22:
        oid = reader.take(reader.take(1)[0])
        point = reader.mpi_bytes()
        if oid != _ED25519_LEGACY_OID:
            return replace(key, problem=f"EdDSA on an unsupported curve (OID {oid.hex()})")
        if len(point) != 33 or point[0] != 0x40:
            raise _Malformed("Ed25519 point is not 0x40 followed by 32 bytes")
        verifier = ed25519.Ed25519PublicKey.from_public_bytes(point[1:])
        key = replace(key, curve="Ed25519", bits=256)
    elif algorithm == 27:
        verifier = ed25519.Ed25519PublicKey.from_public_bytes(reader.take(32))
        key = replace(key, curve="Ed25519", bits=256)
    elif algorithm == 28:
        verifier = ed448.Ed448PublicKey.from_public_bytes(reader.take(57))
        key = replace(key, curve="Ed448", bits=448)
    elif algorithm in _ENCRYPTION_ONLY:
        # The fingerprint is all an encryption subkey contributes here; its material is never needed.
        return replace(key, problem=f"an {_ENCRYPTION_ONLY[algorithm]} key cannot sign")
    else:
        return replace(key, problem=f"unsupported public-key algorithm {algorithm}")
    reader.end()
    return replace(key, verifier=verifier)


@dataclass(frozen=True)
class _Sig:
    """A signature packet read for verification: what it claims, the bytes it covers, the value."""

    info: ss.OpenPGPSignature
    parts: ss.SignatureParts
    hashed: dict[int, bytes]  # first occurrence of each hashed subpacket type
    unhashed: dict[int, bytes]

    @property
    def created(self) -> datetime:
        return self.info.created or datetime.fromtimestamp(0, UTC)


def _read_sig(body: bytes) -> _Sig | None:
    """None for a packet no verifier could use (malformed, unknown version): gpg skips those too."""
    try:
        info = ss.parse_signature_packet(body)
        parts = ss.signature_parts(body)
        hashed: dict[int, bytes] = {}
        unhashed: dict[int, bytes] = {}
        for area, table, is_hashed in (
            (parts.hashed_subpackets, hashed, True),
            (parts.unhashed_subpackets, unhashed, False),
        ):
            for kind, _, data in ss.subpackets(area, hashed=is_hashed):
                table.setdefault(kind, data)
    except ss.SimpleSigningError:
        return None
    return _Sig(info, parts, hashed, unhashed)


def _issued_by(sig: _Sig, key: PublicKey) -> bool:
    if sig.info.fingerprint:
        return sig.info.fingerprint == key.fingerprint
    if sig.info.issuer_key_ids:
        return key.key_id in sig.info.issuer_key_ids
    return True  # no issuer named: only the math can tell, and that is checked next


def _digest(sig: _Sig, data: bytes) -> bytes | None:
    algorithm = _HASHES.get(sig.info.hash_algorithm)
    if algorithm is None:
        return None
    h = hashlib.new(algorithm[0])
    h.update(data)
    h.update(sig.parts.hashed)
    if sig.info.version == 4:
        h.update(b"\x04\xff" + len(sig.parts.hashed).to_bytes(4, "big"))
    return h.digest()


def _verify_value(key: PublicKey, sig: _Sig, digest: bytes) -> bool:
    """Whether the signature value checks out under `key` for this digest (never raises)."""
    verifier = key.verifier
    hash_class = _HASHES[sig.info.hash_algorithm][1]
    if verifier is None or (sig.info.public_key_algorithm != key.algorithm and not _same_family(sig, key)):
        return False
    reader = _Reader(sig.parts.value)
    try:
        if isinstance(verifier, rsa.RSAPublicKey):
            value = reader.mpi_bytes()
            reader.end()
            size = (verifier.key_size + 7) // 8
            if len(value) > size:
                return False
            verifier.verify(
                value.rjust(size, b"\x00"), digest, padding.PKCS1v15(), utils.Prehashed(hash_class())
            )
        elif isinstance(verifier, dsa.DSAPublicKey):
            r, s = reader.mpi(), reader.mpi()
            reader.end()
            verifier.verify(utils.encode_dss_signature(r, s), digest, utils.Prehashed(hash_class()))
        elif isinstance(verifier, ec.EllipticCurvePublicKey):
            r, s = reader.mpi(), reader.mpi()
            reader.end()
            verifier.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hash_class())))
        elif key.algorithm == 22:
            # Legacy EdDSA carries R and S as MPIs, which drop leading zero bytes.
            r_bytes, s_bytes = reader.mpi_bytes(), reader.mpi_bytes()
            reader.end()
            if len(r_bytes) > 32 or len(s_bytes) > 32:
                return False
            verifier.verify(r_bytes.rjust(32, b"\x00") + s_bytes.rjust(32, b"\x00"), digest)
        else:
            # Algorithms 27 and 28 (RFC 9580) sign the digest too, with a raw fixed-size value.
            width = 64 if key.algorithm == 27 else 114
            raw = reader.take(width)
            reader.end()
            verifier.verify(raw, digest)
    except (InvalidSignature, _Malformed, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _same_family(sig: _Sig, key: PublicKey) -> bool:
    # RSA keys flagged sign-only (3) or general (1) make the same signatures; gpg treats them alike.
    return {sig.info.public_key_algorithm, key.algorithm} <= {1, 3}


def _verifies(sig: _Sig, key: PublicKey, data: bytes, types: Iterable[int]) -> bool:
    """A key-level signature (certification, binding, revocation) by `key` over `data` that holds."""
    info = sig.info
    if info.signature_type not in types or not _issued_by(sig, key):
        return False
    # RFC 4880 §5.2.3.1: an unknown critical subpacket voids a signature; a V4 one must say when it was made.
    if info.unknown_critical or info.created is None:
        return False
    digest = _digest(sig, data)
    return digest is not None and digest[:2] == sig.parts.left16 and _verify_value(key, sig, digest)


# ------------------------------------------------------------------ certificates


@dataclass
class _Block:
    """One primary key's packets, possibly merged from several files; signatures deduplicated by bytes."""

    primary: bytes
    direct: list[bytes] = field(default_factory=list)
    user_ids: dict[bytes, list[bytes]] = field(default_factory=dict)
    subkeys: dict[bytes, list[bytes]] = field(default_factory=dict)

    def merge(self, other: _Block) -> None:
        _extend(self.direct, other.direct)
        for uid, sigs in other.user_ids.items():
            _extend(self.user_ids.setdefault(uid, []), sigs)
        for subkey, sigs in other.subkeys.items():
            _extend(self.subkeys.setdefault(subkey, []), sigs)


def _extend(target: list[bytes], items: Iterable[bytes]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def _blocks(data: bytes) -> list[_Block]:
    if not data:
        raise KeyringError("empty keyring")
    if data[8:12] == b"KBXf":
        raise KeyringError(
            "a GnuPG keybox (pubring.kbx), not OpenPGP packets: export the keys with gpg --export"
        )
    # Editors add a byte-order mark to text files; a binary keyring always starts with a packet tag.
    if data.startswith(b"\xef\xbb\xbf") or not data[0] & 0x80:
        data = data.removeprefix(b"\xef\xbb\xbf")
        if _ARMOR_BEGIN not in data:
            raise KeyringError("neither binary OpenPGP packets nor an ASCII-armored PGP PUBLIC KEY BLOCK")
        data = _dearmor(data)
        if not data:
            raise KeyringError("armored PGP PUBLIC KEY BLOCK is empty")
    try:
        packets = ss.read_packets(data, max_packets=MAX_KEYRING_PACKETS)
    except ss.SimpleSigningError as exc:
        raise KeyringError(f"not an OpenPGP keyring: {exc}") from None
    blocks: list[_Block] = []
    current: _Block | None = None
    target: list[bytes] = []
    for tag, body in packets:
        if tag in (TAG_SECRET_KEY, TAG_SECRET_SUBKEY):
            raise KeyringError("secret key material; supply the public key (gpg --export)")
        if tag in (TAG_TRUST, TAG_PADDING):
            continue  # trust packets are gpg's local owner-trust notes; they mean nothing outside that home
        if tag == TAG_PUBLIC_KEY:
            current = _Block(body)
            blocks.append(current)
            target = current.direct
        elif current is None:
            name = ss.PACKET_NAMES.get(tag, f"tag-{tag}")
            raise KeyringError(f"not an OpenPGP keyring: a {name} packet where a public key should start")
        elif tag == TAG_USER_ID:
            target = current.user_ids.setdefault(body, [])
        elif tag == TAG_USER_ATTRIBUTE:
            target = []  # photo IDs name nobody a report could show; their certifications are dropped
        elif tag == TAG_PUBLIC_SUBKEY:
            target = current.subkeys.setdefault(body, [])
        elif tag == ss.TAG_SIGNATURE:
            _extend(target, (body,))
        else:
            name = ss.PACKET_NAMES.get(tag, f"tag-{tag}")
            raise KeyringError(f"not an OpenPGP keyring: unexpected {name} packet")
    if not blocks:
        raise KeyringError("no OpenPGP public key in the data")
    return blocks


def _timestamp(data: bytes | None) -> int | None:
    return int.from_bytes(data, "big") if data is not None and len(data) == 4 else None


def _expiry(key: PublicKey, sig: _Sig | None) -> datetime | None:
    """When the newest self-signature stops vouching for `key`: its key expiration, or its own expiry."""
    if sig is None:
        return None
    ends: list[datetime] = []
    seconds = _timestamp(sig.hashed.get(SUBPACKET_KEY_EXPIRES))
    if seconds:  # 0 means "never"
        ends.append(key.created + timedelta(seconds=seconds))
    if sig.info.expires is not None:
        ends.append(sig.info.expires)
    return min(ends) if ends else None


def _flags(sig: _Sig | None) -> int | None:
    data = sig.hashed.get(SUBPACKET_KEY_FLAGS) if sig is not None else None
    return data[0] if data else None


def _reason(sig: _Sig) -> str:
    data = sig.hashed.get(SUBPACKET_REVOCATION_REASON)
    if not data:
        return "no reason given"
    reason = REVOCATION_REASONS.get(data[0], f"reason code {data[0]}")
    text = data[1:].decode("utf-8", "replace").strip()
    return f"{reason}: {text}" if text else reason


def _newest(sigs: Iterable[_Sig]) -> _Sig | None:
    return max(sigs, key=lambda s: s.created, default=None)


def _certificate(block: _Block) -> Certificate:
    """Raises _Malformed when the primary key itself is unusable as a V4 key."""
    primary = _parse_key(block.primary)
    key_data = primary.hash_prefix()
    self_sigs: list[_Sig] = []
    revoked: str | None = None
    for sig in filter(None, map(_read_sig, block.direct)):
        if revoked is None and _verifies(sig, primary, key_data, (SIG_KEY_REVOCATION,)):
            revoked = _reason(sig)
        elif _verifies(sig, primary, key_data, (SIG_DIRECT_KEY,)):
            self_sigs.append(sig)

    user_ids: list[tuple[bool, str]] = []
    for uid, bodies in block.user_ids.items():
        sigs = [s for s in map(_read_sig, bodies) if s is not None]
        # V4 signatures frame the user ID (0xB4 ‖ length); V3 ones hash it bare.
        certs = [s for s in sigs if _verifies(s, primary, key_data + _uid_frame(s, uid), SIG_CERTIFICATIONS)]
        newest = _newest(certs)
        if newest is None:
            continue
        revocations = [
            s for s in sigs if _verifies(s, primary, key_data + _uid_frame(s, uid), (SIG_CERT_REVOCATION,))
        ]
        if any(r.created >= newest.created for r in revocations):
            continue
        self_sigs.append(newest)
        primary_flag = newest.hashed.get(SUBPACKET_PRIMARY_UID)
        user_ids.append((bool(primary_flag and primary_flag[0]), uid.decode("utf-8", "replace")))
    user_ids.sort(key=lambda item: not item[0])  # stable: primary user ID first, then keyring order

    current = _newest(self_sigs)
    primary_key = SigningKey(
        key=primary,
        expires=_expiry(primary, current),
        flags=_flags(current),
        revoked=revoked,
        problem=None if current is not None else "the primary key has no valid self-signature",
    )
    subkeys = tuple(_subkey(primary, body, bodies) for body, bodies in block.subkeys.items())
    return Certificate(primary_key, tuple(uid for _, uid in user_ids), tuple(s for s in subkeys if s))


def _uid_frame(sig: _Sig, uid: bytes) -> bytes:
    return uid if sig.info.version < 4 else b"\xb4" + len(uid).to_bytes(4, "big") + uid


def _subkey(primary: PublicKey, body: bytes, bodies: list[bytes]) -> SigningKey | None:
    try:
        key = _parse_key(body)
    except _Malformed:
        return None  # an unusable subkey (V3, V5) cannot have signed anything we could check
    data = primary.hash_prefix() + key.hash_prefix()
    sigs = [s for s in map(_read_sig, bodies) if s is not None]
    binding = _newest(s for s in sigs if _verifies(s, primary, data, (SIG_SUBKEY_BINDING,)))
    revocation = next((s for s in sigs if _verifies(s, primary, data, (SIG_SUBKEY_REVOCATION,))), None)
    if binding is None:
        return SigningKey(
            key=key,
            revoked=_reason(revocation) if revocation else None,
            problem=f"subkey {key.key_id} has no valid binding signature from its primary key",
        )
    flags = _flags(binding)
    # gpg refuses data signatures from a subkey that has not signed the primary back (a "cross-certified"
    # embedded 0x19 signature): without it anyone could bind someone else's signing key as their own.
    cross_certified = True
    if key.verifier is not None and (flags is None or flags & FLAG_SIGN):
        embedded = binding.hashed.get(SUBPACKET_EMBEDDED_SIGNATURE) or binding.unhashed.get(
            SUBPACKET_EMBEDDED_SIGNATURE
        )
        back = _read_sig(embedded) if embedded else None
        cross_certified = back is not None and _verifies(back, key, data, (SIG_PRIMARY_BINDING,))
    return SigningKey(
        key=key,
        expires=_expiry(key, binding),
        flags=flags,
        revoked=_reason(revocation) if revocation else None,
        cross_certified=cross_certified,
    )


def load_keyrings(blobs: Sequence[bytes]) -> Keyring:
    """One keyring from several files' bytes (each binary or armored); the same key in two is merged."""
    by_fingerprint: dict[bytes, _Block] = {}
    for index, data in enumerate(blobs):
        try:
            blocks = _blocks(data)
        except KeyringError as exc:
            raise KeyringError(exc.message, index) from None
        # A file that adds nothing is almost certainly the wrong file; saying so beats a scan full of
        # NO_PUBKEY. Only the primary packets are parsed here: the signatures are checked once, below.
        problems = [_key_problem(block.primary) for block in blocks]
        if all(problems):
            raise KeyringError(
                f"no usable OpenPGP public key ({'; '.join(sorted(set(filter(None, problems))))})", index
            )
        for block in blocks:
            known = by_fingerprint.get(block.primary)
            if known is None:
                by_fingerprint[block.primary] = block
            else:
                known.merge(block)
    certificates: list[Certificate] = []
    skipped: list[str] = []
    for block in by_fingerprint.values():
        try:
            certificates.append(_certificate(block))
        except _Malformed as exc:
            skipped.append(str(exc))
    if not certificates:
        raise KeyringError(f"no usable OpenPGP public key ({'; '.join(skipped)})")
    return Keyring(tuple(certificates), tuple(skipped))


def _key_problem(body: bytes) -> str | None:
    try:
        _parse_key(body)
    except _Malformed as exc:
        return str(exc)
    return None


def load_keyring(data: bytes) -> Keyring:
    """Transferable public keys (`gpg --export`, binary or ASCII-armored) as a Keyring.

    Raises KeyringError when `data` is not a keyring or holds no usable key; broken or unverifiable
    signatures inside an otherwise good keyring are dropped, as gpg drops them on import.
    """
    return load_keyrings([data])


# ------------------------------------------------------------------ verdicts


def _canonical_text(data: bytes) -> bytes:
    # RFC 4880 §5.2.1: a text signature is over the data with every line ending as CR LF.
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _replace_check(signature: Signature, check: Check) -> None:
    """Put `check` where the parser left its placeholder, so the report keeps the parser's order."""
    for i, old in enumerate(signature.checks):
        if old.name == check.name:
            signature.checks[i] = check
            return
    signature.checks.append(check)


def _fill_signer(signature: Signature, cert: Certificate, key: SigningKey, key_id: str) -> None:
    # containers/image reports the primary key's fingerprint for subkey signatures; so does this.
    previous = signature.signer.pgp if signature.signer is not None else None
    pgp = PGPSigner(
        key_id=key_id,
        fingerprint=cert.fingerprint,
        user_ids=cert.user_ids,
        algorithm=key.key.algorithm_name,
        created=previous.created if previous is not None else None,
    )
    signature.signer = replace(signature.signer, pgp=pgp) if signature.signer else SignerIdentity(pgp=pgp)


def verify_signature(signature: Signature, keyring: Keyring, now: datetime) -> Signature:
    """Judge a simple signature against `keyring` at `now`; other formats are returned untouched.

    The `signature` check gets the cryptographic outcome (GOODSIG, BADSIG, EXPSIG) and `trusted-key` what
    the keyring says about the key (trusted, NO_PUBKEY, REVKEYSIG, EXPKEYSIG, ...). Never raises.
    """
    if signature.format is not SignatureFormat.SIMPLE_SIGNING:
        return signature
    data = signature.evidence.get("openpgp")
    if data is None:
        return signature  # unreadable: the parser already said why
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    try:
        message = ss.parse_message(data)
    except ss.SimpleSigningError:
        return signature
    if not message.signatures or message.literal is None:
        return signature
    signature.checks = [c for c in signature.checks if c.name != "trusted-key"]
    try:
        _judge(signature, message.signatures[0], message.literal, keyring, now)
    except Exception as exc:  # bulk scans report a broken record instead of dying (rule 5)
        signature.error = f"internal error verifying simple signature: {type(exc).__name__}: {exc}"
    return signature.settle()


def apply_keyring(signature: Signature, keyring: Keyring | None, now: datetime) -> Signature:
    """`verify_signature` for the scan pipeline: no keyring, or not a simple signature, leaves it as it is.

    Unlike `apply_keys`, a simple signature the parser already found invalid is still checked, so the
    report can say BADSIG or EXPSIG; `settle` keeps integrity failures first, so it cannot become trusted.
    """
    if keyring is None or not len(keyring) or signature.format is not SignatureFormat.SIMPLE_SIGNING:
        return signature
    return verify_signature(signature, keyring, now)


def _judge(
    signature: Signature, info: ss.OpenPGPSignature, literal: bytes, keyring: Keyring, now: datetime
) -> None:
    key_ids = list(info.issuer_key_ids)
    if info.one_pass is not None and info.one_pass.key_id != "0" * 16:
        key_ids.append(info.one_pass.key_id)
    named = info.key_id
    candidates = keyring.lookup(key_ids, info.fingerprint)
    if not candidates:
        if named is None:
            _replace_check(signature, Check.skipped("signature", "the signature names no issuer key"))
            signature.checks.append(Check.failed("trusted-key", "the signature names no issuer key"))
            return
        _replace_check(
            signature, Check.skipped("signature", f"NO_PUBKEY {named}: no such key in the supplied keyring")
        )
        signature.checks.append(
            Check.failed("trusted-key", f"signed by key {named}, not in the supplied keyring")
        )
        return

    sig = _read_sig(info.packet)
    if sig is None:  # parse_message read this packet already; only a changed parser could get here
        raise ValueError("signature packet no longer parses")
    refusal: str | None = None
    if info.signature_type not in (SIG_BINARY, SIG_TEXT):
        refusal = f"a {info.signature_type_name} signature does not sign a document"
    elif info.hash_algorithm not in _DOCUMENT_HASHES:
        refusal = f"{info.hash_algorithm_name} document signatures are refused (only SHA-2 is accepted)"
    elif info.version == 4 and info.created is None:
        refusal = "V4 signature without a creation time"

    digest = None
    if refusal is None:
        digest = _digest(sig, _canonical_text(literal) if info.signature_type == SIG_TEXT else literal)
    verified: tuple[Certificate, SigningKey] | None = None
    if digest is not None and digest[:2] == sig.parts.left16:
        verified = next((c for c in candidates if _verify_value(c[1].key, sig, digest)), None)
    cert, key = verified or candidates[0]
    is_subkey = key is not cert.primary
    role = f"subkey {key.key.key_id}" if is_subkey else f"key {key.key.key_id}"
    if is_subkey and key.problem:
        # Anyone can append a subkey packet to someone else's certificate; without a valid binding it
        # belongs to nobody, so the primary's name must not be shown as the signer.
        who = f"{role}, listed under {cert.fingerprint} but not bound to it"
    else:
        who = f"{role} of {cert.name}"
        _fill_signer(signature, cert, key, named or key.key.key_id)

    if refusal is not None:
        _replace_check(signature, Check.failed("signature", f"{refusal} (claimed signer: {who})"))
        return
    if verified is None:
        unusable = [c[1].key.problem for c in candidates if c[1].key.verifier is None]
        if len(unusable) == len(candidates):
            # The math cannot be done at all (encryption-only or unsupported key): not checked is not bad.
            _replace_check(signature, Check.skipped("signature", f"cannot verify with {who}: {unusable[0]}"))
            signature.checks.append(Check.failed("trusted-key", f"signed by {who}, which cannot verify it"))
            return
        _replace_check(
            signature, Check.failed("signature", f"BADSIG the signature does not verify under {who}")
        )
        return

    algorithm = f"{key.key.algorithm_name}/{info.hash_algorithm_name}"
    # An expired signature is the signer's own statement, carried in the signed bytes: no keyring can
    # revive it, so it is an integrity failure (gpg's EXPSIG; containers/image rejects it) like BADSIG.
    if info.expires is not None and now >= info.expires:
        _replace_check(
            signature,
            Check.failed(
                "signature",
                f"EXPSIG good {algorithm} signature by {who}, but it expired at {info.expires.isoformat()}",
            ),
        )
    else:
        _replace_check(
            signature, Check.passed("signature", f"GOODSIG {algorithm} V{info.version} signature by {role}")
        )

    # Revocation, key expiry, a missing binding or the wrong key flags are what the supplied keyring says
    # about the key, not about these bytes: the signature stays sound and becomes untrusted (gpg's
    # REVKEYSIG / EXPKEYSIG, which containers/image rejects).
    refusals = cert.primary.refusals(now, "primary key", signer=False) if is_subkey else []
    refusals += key.refusals(now, "subkey" if is_subkey else "key")
    created = info.created
    if created is not None and created < key.key.created:
        refusals.append(f"the {role} was created at {key.key.created.isoformat()}, after the signature")
    if refusals:
        signature.checks.append(Check.failed("trusted-key", f"signed by {who}: {'; '.join(refusals)}"))
        return
    subkey = f" (subkey {key.key.fingerprint})" if is_subkey else ""
    signature.checks.append(Check.passed("trusted-key", f"signed by {cert.name}{subkey}"))
