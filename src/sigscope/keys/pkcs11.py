"""Keys on PKCS#11 tokens (HSMs, smart cards, SoftHSM2): find, list, generate, sign; the key never leaves.

A `pkcs11:` URI (keys/pkcs11_uri.py) names the module, the token and the object. The token signs; sigscope
hashes in software and sends the digest whenever the token lacks the combined mechanism (SoftHSM2 has no
CKM_ECDSA_SHA256): CKM_ECDSA over the digest, CKM_RSA_PKCS over DigestInfo‖digest, CKM_RSA_PKCS_PSS with its
parameters. Signatures leave in cosign's forms (ECDSA raw r‖s becomes DER) and are checked against the public
key before they are used, so a token whose public object belongs to another key is caught here, not by a
verifier later.

The PIN comes from the URI (`pin-value`, `pin-source`), $SIGSCOPE_PKCS11_PIN (then $COSIGN_PKCS11_PIN), or
the caller's prompt; it is never put in a message or a log.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag

from sigscope.errors import SigscopeError, UsageError
from sigscope.keys.pkcs11_uri import Pkcs11Uri, Pkcs11UriError, parse_uri
from sigscope.keys.signer import (
    KeyFormatError,
    algorithm_name,
    check_signing_key,
    curve_name,
    same_public_key,
)

PIN_ENV = ("SIGSCOPE_PKCS11_PIN", "COSIGN_PKCS11_PIN")
MODULE_ENV = "SIGSCOPE_PKCS11_MODULE"
MAX_PIN_FILE = 1024
MAX_OBJECTS = 10_000  # bound on one object search: a token is outside input too
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
PinSource = Callable[[], str | None] | None

# Key kinds `sigscope key generate --pkcs11` makes on a token.
TOKEN_KEY_KINDS: dict[str, tuple[KeyType, int | str]] = {
    "ec-p256": (KeyType.EC, "secp256r1"),
    "ec-p384": (KeyType.EC, "secp384r1"),
    "rsa-2048": (KeyType.RSA, 2048),
    "rsa-3072": (KeyType.RSA, 3072),
    "rsa-4096": (KeyType.RSA, 4096),
}
_CURVES: dict[str, ec.EllipticCurve] = {
    "secp256r1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
}
# DER DigestInfo prefixes (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs DigestInfo, not the bare digest.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASH_MECHANISMS = {"sha256": Mechanism.SHA256, "sha384": Mechanism.SHA384, "sha512": Mechanism.SHA512}
_MGF = {"sha256": pkcs11.MGF.SHA256, "sha384": pkcs11.MGF.SHA384, "sha512": pkcs11.MGF.SHA512}
_COMBINED_ECDSA = {
    "sha256": Mechanism.ECDSA_SHA256,
    "sha384": Mechanism.ECDSA_SHA384,
    "sha512": Mechanism.ECDSA_SHA512,
}
_COMBINED_PKCS1 = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_COMBINED_PSS = {
    "sha256": Mechanism.SHA256_RSA_PKCS_PSS,
    "sha384": Mechanism.SHA384_RSA_PKCS_PSS,
    "sha512": Mechanism.SHA512_RSA_PKCS_PSS,
}


class Pkcs11Error(SigscopeError):
    """A PKCS#11 module, token or object that cannot be used as asked; the message says which and why."""


class Pkcs11PinError(Pkcs11Error):
    """The PIN is missing, wrong, or the token's user PIN is locked."""


def _hex(data: bytes) -> str:
    return data.hex() if data else "(none)"


# ---------------------------------------------------------------- PIN and module


def _read_pin_file(source: str) -> str:
    if source.startswith("file:"):
        path = source.removeprefix("file:")
        # file:///abs/path as well as file:/abs/path and file:relative
        path = path.removeprefix("//") if path.startswith("///") else path
    elif _SCHEME.match(source):
        raise Pkcs11UriError("PKCS#11 URI pin-source must be a file (file:PATH or a path)")
    else:
        path = source
    from sigscope.keys.small_file import first_line, read_small_file

    return first_line(read_small_file(path, "PIN file", limit=MAX_PIN_FILE, error=Pkcs11PinError))


def resolve_pin(uri: Pkcs11Uri, fallback: PinSource = None) -> str | None:
    """The PIN: the URI's pin-value, its pin-source file, $SIGSCOPE_PKCS11_PIN, $COSIGN_PKCS11_PIN, then
    `fallback` (a prompt); None when none gives one."""
    if "pin-value" in uri.query:
        return uri.query["pin-value"]
    if "pin-source" in uri.query:
        return _read_pin_file(uri.query["pin-source"])
    for name in PIN_ENV:
        if name in os.environ:
            return os.environ[name]
    return fallback() if fallback is not None else None


def module_path(uri: Pkcs11Uri) -> str:
    """The module the URI names (module-path, else $SIGSCOPE_PKCS11_MODULE)."""
    if "module-name" in uri.query:
        raise Pkcs11UriError("PKCS#11 URI module-name is not supported: give module-path=/path/to/module.so")
    path = uri.module_path or os.environ.get(MODULE_ENV)
    if not path:
        raise Pkcs11UriError(f"PKCS#11 URI needs module-path=/path/to/module.so (or ${MODULE_ENV})")
    return path


def load_module(path: str) -> Any:
    """The loaded and initialized module at `path` (python-pkcs11 keeps one per path per process)."""
    if not Path(path).is_file():
        problem = "no such file" if not Path(path).exists() else "not a file"
        raise Pkcs11Error(f"PKCS#11 module {path}: {problem}")
    try:
        return pkcs11.lib(path)
    except pkcs11.PKCS11Error as exc:
        reason = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__
        raise Pkcs11Error(f"PKCS#11 module {path} failed to load: {reason}") from None


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenInfo:
    """One slot and its token, as `key list` shows it."""

    slot_id: int
    slot_description: str
    label: str
    serial: str
    manufacturer: str
    model: str
    initialized: bool
    login_required: bool
    pin_locked: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "slotId": self.slot_id,
            "slotDescription": self.slot_description,
            "label": self.label,
            "serial": self.serial,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "initialized": self.initialized,
            "loginRequired": self.login_required,
            "pinLocked": self.pin_locked,
        }


def _token_info(slot: Any, token: Any) -> TokenInfo:
    flags = token.flags
    serial = token.serial
    return TokenInfo(
        slot_id=int(slot.slot_id),
        slot_description=str(slot.slot_description).strip(),
        label=str(token.label).strip(),
        serial=(serial.decode("ascii", "replace") if isinstance(serial, bytes) else str(serial)).strip(),
        manufacturer=str(token.manufacturer_id).strip(),
        model=str(token.model).strip(),
        initialized=bool(flags & TokenFlag.TOKEN_INITIALIZED),
        login_required=bool(flags & TokenFlag.LOGIN_REQUIRED),
        pin_locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
    )


def slots_with_tokens(lib: Any) -> Iterator[tuple[Any, Any, TokenInfo]]:
    try:
        slots = lib.get_slots(token_present=True)
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(f"PKCS#11 module {lib.so}: cannot list slots ({type(exc).__name__})") from None
    for slot in slots[:MAX_OBJECTS]:
        try:
            token = slot.get_token()
        except pkcs11.PKCS11Error:
            continue  # removed, or not recognised: not a token to use
        yield slot, token, _token_info(slot, token)


def _library_matches(lib: Any, uri: Pkcs11Uri) -> bool:
    wanted = {
        "library-manufacturer": str(getattr(lib, "manufacturer_id", "")).strip(),
        "library-description": str(getattr(lib, "library_description", "")).strip(),
    }
    for name, actual in wanted.items():
        value = uri.path.get(name)
        if value is not None and value != actual:
            return False
    version = uri.path.get("library-version")
    if version is not None:
        major, _, minor = version.partition(".")
        have = tuple(lib.library_version)
        if (int(major), int(minor or 0)) != (int(have[0]), int(have[1])):
            return False
    return True


def _token_matches(info: TokenInfo, uri: Pkcs11Uri) -> bool:
    fields = {
        "token": info.label,
        "serial": info.serial,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "slot-description": info.slot_description,
    }
    if any(uri.path.get(name) not in (None, actual) for name, actual in fields.items()):
        return False
    return uri.slot_id is None or uri.slot_id == info.slot_id


def find_token(lib: Any, uri: Pkcs11Uri) -> tuple[Any, Any, TokenInfo]:
    """The one initialized token the URI selects: (slot, token, info)."""
    if not _library_matches(lib, uri):
        raise Pkcs11Error(f"PKCS#11 module {lib.so} is not the library the URI names")
    found = [
        entry for entry in slots_with_tokens(lib) if entry[2].initialized and _token_matches(entry[2], uri)
    ]
    wanted = ";".join(f"{n}={v}" for n, v in sorted(uri.path.items()) if n not in ("object", "type")) or "any"
    if not found:
        present = sorted({e[2].label for e in slots_with_tokens(lib) if e[2].initialized})
        have = f"tokens present: {', '.join(present)}" if present else "no initialized token is present"
        raise Pkcs11Error(f"no PKCS#11 token matches {wanted} in {lib.so} ({have})")
    if len(found) > 1:
        raise Pkcs11Error(
            f"{len(found)} PKCS#11 tokens match {wanted}: add serial= or slot-id= to the URI "
            f"(slots {', '.join(str(e[2].slot_id) for e in found)})"
        )
    return found[0]


def open_session(
    token: Any, info: TokenInfo, pin: str | None, *, rw: bool = False, login: bool = True
) -> Any:
    """A session on `token`, logged in with `pin` (required when the token wants a login); with `login`
    False, a public session that sees public objects only."""
    if not login:
        try:
            return token.open(rw=rw)
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(
                f"cannot open a session on PKCS#11 token {info.label}: {type(exc).__name__}"
            ) from None
    if info.pin_locked:
        raise Pkcs11PinError(
            f"PKCS#11 token {info.label} is locked (CKR_PIN_LOCKED: its user PIN is blocked); "
            "its security officer must unblock it"
        )
    if pin is None and info.login_required:
        raise Pkcs11PinError(
            f"PKCS#11 token {info.label} needs a PIN: add pin-source=file:PATH to the URI, set "
            f"{PIN_ENV[0]}, or run on a terminal to be prompted"
        )
    try:
        return token.open(rw=rw, user_pin=pin)
    except pkcs11.UserAlreadyLoggedIn:
        # Login is per process and token, not per session: another key on this token (a service serving
        # two) logged in already, and every new session shares that state.
        return open_session(token, info, None, rw=rw, login=False)
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
        raise Pkcs11PinError(f"wrong PIN for PKCS#11 token {info.label}") from None
    except pkcs11.PinLocked:
        raise Pkcs11PinError(
            f"PKCS#11 token {info.label} is locked (CKR_PIN_LOCKED: too many wrong PINs); "
            "its security officer must unblock it"
        ) from None
    except pkcs11.PinExpired:
        raise Pkcs11PinError(f"the PIN of PKCS#11 token {info.label} has expired: change it first") from None
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(
            f"cannot open a session on PKCS#11 token {info.label}: {type(exc).__name__}"
        ) from None


# ---------------------------------------------------------------- objects


def _objects(session: Any, template: dict[Any, Any]) -> list[Any]:
    out = []
    try:
        for obj in session.get_objects(template):
            out.append(obj)
            if len(out) >= MAX_OBJECTS:
                break
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(f"cannot search the PKCS#11 token: {type(exc).__name__}") from None
    return out


def _selector(uri: Pkcs11Uri) -> dict[Any, Any]:
    template: dict[Any, Any] = {}
    if uri.object is not None:
        template[Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[Attribute.ID] = uri.id
    return template


def _attr(obj: Any, attribute: Any, default: Any = None) -> Any:
    try:
        return obj[attribute]
    except pkcs11.PKCS11Error:
        return default


def find_private_key(session: Any, uri: Pkcs11Uri, token_label: str) -> Any:
    """The one private key the URI selects (object= and/or id=)."""
    kind = uri.path.get("type")
    if kind not in (None, "private"):
        raise Pkcs11UriError(
            f"PKCS#11 URI type={kind} names no private key: use type=private or leave it out"
        )
    selector = _selector(uri)
    if not selector:
        raise Pkcs11UriError("PKCS#11 URI needs object= (the key's label) or id= to name a key")
    keys = _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, **selector})
    if not keys:
        raise Pkcs11Error(f"no private key matches {uri.describe()} on PKCS#11 token {token_label}")
    if len(keys) > 1:
        ids = sorted(_hex(bytes(_attr(k, Attribute.ID, b""))) for k in keys)
        raise Pkcs11Error(
            f"{len(keys)} private keys match {uri.describe()} on PKCS#11 token {token_label}: "
            f"add id= to the URI (ids: {', '.join(ids)})"
        )
    return keys[0]


def _unwrap_point(point: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point; some modules give the bare point."""
    from asn1crypto.core import OctetString

    try:
        wrapped = OctetString.load(point, strict=True).native
    except ValueError:
        return point
    return wrapped if isinstance(wrapped, bytes) and wrapped[:1] == b"\x04" else point


def _ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    from asn1crypto.keys import ECDomainParameters

    try:
        domain = ECDomainParameters.load(params)
        if domain.name != "named":
            raise KeyFormatError(
                "the token's EC key has explicit curve parameters; only named curves are used"
            )
        curve = _CURVES.get(domain.chosen.native)
        if curve is None:
            raise KeyFormatError(
                f"the token's EC key is on curve {domain.chosen.native}, not P-256/P-384/P-521"
            )
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, _unwrap_point(point))
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"the token's EC public key does not parse: {exc}") from None


def _public_from_object(obj: Any) -> PublicKeyTypes | None:
    key_type = _attr(obj, Attribute.KEY_TYPE)
    if key_type == KeyType.EC:
        params, point = _attr(obj, Attribute.EC_PARAMS), _attr(obj, Attribute.EC_POINT)
        if params is None or point is None:
            return None
        return _ec_public_key(bytes(params), bytes(point))
    if key_type == KeyType.RSA:
        modulus, exponent = _attr(obj, Attribute.MODULUS), _attr(obj, Attribute.PUBLIC_EXPONENT)
        if modulus is None or exponent is None:
            return None
        return rsa.RSAPublicNumbers(
            int.from_bytes(bytes(exponent), "big"), int.from_bytes(bytes(modulus), "big")
        ).public_key()
    return None


def _siblings(session: Any, key: Any, object_class: Any) -> list[Any]:
    """Objects of `object_class` beside `key`: the same CKA_ID when it has one, else the same label."""
    key_id = bytes(_attr(key, Attribute.ID, b"") or b"")
    if key_id:
        return _objects(session, {Attribute.CLASS: object_class, Attribute.ID: key_id})
    label = _attr(key, Attribute.LABEL)
    if label:
        return _objects(session, {Attribute.CLASS: object_class, Attribute.LABEL: label})
    return []


def _certificate(obj: Any) -> x509.Certificate | None:
    value = _attr(obj, Attribute.VALUE)
    if not value:
        return None
    try:
        return x509.load_der_x509_certificate(bytes(value))
    except ValueError:
        return None


def key_material(session: Any, key: Any) -> tuple[PublicKeyTypes, x509.Certificate | None]:
    """The public key of `key` (its public object, else its certificate, else the private object's public
    attributes) and the certificate beside it whose key is that key, if any."""
    publics = [
        p for p in (_public_from_object(o) for o in _siblings(session, key, ObjectClass.PUBLIC_KEY)) if p
    ]
    certificates = [
        c
        for c in (_certificate(o) for o in _siblings(session, key, ObjectClass.CERTIFICATE))
        if c is not None
    ]
    public = publics[0] if len(publics) == 1 else _public_from_object(key)
    if public is None and certificates:
        public = certificates[0].public_key()
    if public is None:
        raise Pkcs11Error(
            "the token holds no public key for this private key (no public object, certificate "
            "or public attributes with the same id)"
        )
    matching = [c for c in certificates if same_public_key(c.public_key(), public)]
    return public, (matching[0] if matching else None)


# ---------------------------------------------------------------- signing


def _hash_name(algorithm: hashes.HashAlgorithm) -> str:
    if algorithm.name not in _DIGEST_INFO:
        raise KeyFormatError(f"hash {algorithm.name} is not used with PKCS#11 keys (SHA-256/384/512 are)")
    return algorithm.name


class Pkcs11Signer:
    """A :class:`~sigscope.keys.signer.Signer` and ``HashSigner`` over a private key on a PKCS#11 token."""

    def __init__(self, lib: Any, session: Any, key: Any, token: TokenInfo, uri: Pkcs11Uri) -> None:
        self._lib = lib
        self._session = session
        self._key = key
        self.token = token
        self.uri = uri
        public, certificate = key_material(session, key)
        check_signing_key(public)
        self._public = public
        self._certificate = certificate
        self._algorithm = algorithm_name(public)
        try:  # mechanisms are the slot's
            slot = next(s for s in lib.get_slots() if int(s.slot_id) == token.slot_id)
            self._mechanisms = frozenset(slot.get_mechanisms())
        except (pkcs11.PKCS11Error, StopIteration):
            self._mechanisms = frozenset()

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The certificate stored beside the key (same id or label, same public key), if any."""
        return (self._certificate,) if self._certificate is not None else ()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            # As FileSigner: the hash cosign pairs with the curve.
            digest_for_curve = {"P-256": hashes.SHA256(), "P-384": hashes.SHA384(), "P-521": hashes.SHA512()}
            return self.sign_with(data, digest_for_curve[curve_name(self._public.curve)])
        return self.sign_with(data, hashes.SHA256())

    def sign_with(self, data: bytes, hash_algorithm: hashes.HashAlgorithm, *, pss: bool = False) -> bytes:
        name = _hash_name(hash_algorithm)
        combined = self._combined(name, pss)
        if combined is not None:
            raw = self._token_sign(data, combined, self._pss_params(name) if pss else None)
            return self._checked(self._finish(raw), data, hash_algorithm, pss)
        return self.sign_digest(hashlib.new(name, data).digest(), hash_algorithm, pss=pss)

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm, *, pss: bool = False) -> bytes:
        """Sign a digest made elsewhere: only the digest reaches the token (CKM_ECDSA, CKM_RSA_PKCS over
        DigestInfo, CKM_RSA_PKCS_PSS). The signature is in cosign's form (DER ECDSA)."""
        name = _hash_name(hash_algorithm)
        if len(digest) != hash_algorithm.digest_size:
            raise UsageError(f"a {name} digest is {hash_algorithm.digest_size} bytes, not {len(digest)}")
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            signature = self._finish(self._token_sign(digest, Mechanism.ECDSA, None))
        elif pss:
            signature = self._token_sign(digest, Mechanism.RSA_PKCS_PSS, self._pss_params(name))
        else:
            signature = self._token_sign(_DIGEST_INFO[name] + digest, Mechanism.RSA_PKCS, None)
        return self._checked(signature, digest, Prehashed(hash_algorithm), pss, hash_algorithm)

    def _combined(self, name: str, pss: bool) -> Any:
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            table = _COMBINED_ECDSA
        else:
            table = _COMBINED_PSS if pss else _COMBINED_PKCS1
        mechanism = table[name]
        return mechanism if mechanism in self._mechanisms else None

    def _pss_params(self, name: str) -> tuple[Any, Any, int]:
        # Salt as long as the hash: what Notary Project verifiers (and FileSigner) use.
        return (_HASH_MECHANISMS[name], _MGF[name], len(hashlib.new(name).digest()))

    def _token_sign(self, data: bytes, mechanism: Any, param: Any) -> bytes:
        try:
            signature: bytes = self._key.sign(data, mechanism=mechanism, mechanism_param=param)
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(
                f"PKCS#11 token {self.token.label} refused to sign with {mechanism.name}: "
                f"{type(exc).__name__}"
            ) from None
        return signature

    def _finish(self, raw: bytes) -> bytes:
        if not isinstance(self._public, ec.EllipticCurvePublicKey):
            return raw
        half = len(raw) // 2
        if len(raw) % 2 or half != (self._public.curve.key_size + 7) // 8:
            raise Pkcs11Error(f"PKCS#11 token {self.token.label} returned a malformed ECDSA signature")
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def _checked(
        self,
        signature: bytes,
        data: bytes,
        algorithm: hashes.HashAlgorithm | Prehashed,
        pss: bool,
        hash_algorithm: hashes.HashAlgorithm | None = None,
    ) -> bytes:
        """`signature` as made, once it verifies under the public key (`data` a digest when `algorithm` is
        Prehashed, `hash_algorithm` then naming its hash for PSS's MGF1)."""
        key = self._public
        inner = hash_algorithm or algorithm
        assert isinstance(inner, hashes.HashAlgorithm)
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(algorithm))
            elif isinstance(key, rsa.RSAPublicKey):
                pad: padding.AsymmetricPadding = (
                    padding.PSS(mgf=padding.MGF1(inner), salt_length=inner.digest_size)
                    if pss
                    else padding.PKCS1v15()
                )
                key.verify(signature, data, pad, algorithm)
        except InvalidSignature:
            raise Pkcs11Error(
                f"the signature of PKCS#11 token {self.token.label} does not verify under the key's public "
                "object: the public key or certificate with its id belongs to another key"
            ) from None
        return signature

    def close(self) -> None:
        try:
            self._session.close()
        except pkcs11.PKCS11Error:
            pass

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self._algorithm}, token={self.token.label!r}, {self.uri.describe()})"


def open_pkcs11_signer(spec: str, pin: PinSource = None) -> Pkcs11Signer:
    """The signer the `pkcs11:` URI `spec` names; `pin` is asked only when URI and environment give none."""
    uri = parse_uri(spec)
    lib = load_module(module_path(uri))
    _, token, info = find_token(lib, uri)
    session = open_session(token, info, resolve_pin(uri, pin) if info.login_required else None)
    key = find_private_key(session, uri, info.label)
    return Pkcs11Signer(lib, session, key, info, uri)


# ---------------------------------------------------------------- listing and generating


@dataclass(frozen=True)
class TokenKey:
    """One key on a token, as `key list` shows it."""

    label: str
    id: bytes
    key_type: str  # EC, RSA, or the token's name for another type
    size: int | None  # bits: curve size or modulus
    curve: str | None
    private: bool  # a private key object is there (known only when logged in)
    certificate: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "id": self.id.hex(),
            "keyType": self.key_type,
            "size": self.size,
            "curve": self.curve,
            "privateKey": self.private,
            "certificate": self.certificate,
        }


def _key_entry(session: Any, obj: Any, private: bool) -> TokenKey:
    public: PublicKeyTypes | None
    try:
        public = _public_from_object(obj)
        if public is None and private:
            public = key_material(session, obj)[0]
    except (SigscopeError, pkcs11.PKCS11Error):
        public = None
    key_type = _attr(obj, Attribute.KEY_TYPE)
    kind = {KeyType.EC: "EC", KeyType.RSA: "RSA"}.get(key_type, getattr(key_type, "name", str(key_type)))
    size = curve = None
    if isinstance(public, ec.EllipticCurvePublicKey):
        size, curve = public.curve.key_size, curve_name(public.curve)
    elif isinstance(public, rsa.RSAPublicKey):
        size = public.key_size
    certs = [c for c in (_certificate(o) for o in _siblings(session, obj, ObjectClass.CERTIFICATE)) if c]
    has_cert = (
        any(same_public_key(c.public_key(), public) for c in certs) if public is not None else bool(certs)
    )
    return TokenKey(
        label=str(_attr(obj, Attribute.LABEL, "") or ""),
        id=bytes(_attr(obj, Attribute.ID, b"") or b""),
        key_type=kind,
        size=size,
        curve=curve,
        private=private,
        certificate=has_cert,
    )


def list_keys(session: Any, logged_in: bool) -> list[TokenKey]:
    """The token's signing keys: its private keys when logged in (else its public keys), by label and id."""
    out: dict[tuple[str, bytes], TokenKey] = {}
    if logged_in:
        for obj in _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
            entry = _key_entry(session, obj, True)
            out.setdefault((entry.label, entry.id), entry)
    for obj in _objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
        entry = _key_entry(session, obj, False)
        if not logged_in:
            out.setdefault((entry.label, entry.id), entry)
        elif not any(k.id == entry.id and entry.id for k in out.values()):
            out.setdefault((entry.label, entry.id), entry)
    return sorted(out.values(), key=lambda k: (k.label, k.id))


def generate_on_token(spec: str, kind: str, pin: PinSource = None) -> tuple[Pkcs11Uri, TokenInfo, bytes]:
    """Make a key pair on the token the URI names, labelled with its object= (and id=, else a random id):
    the private half sensitive and never extractable. Returns (uri, token, the id used)."""
    if kind not in TOKEN_KEY_KINDS:
        raise UsageError(f"key type {kind} cannot be made on a token (use {', '.join(TOKEN_KEY_KINDS)})")
    uri = parse_uri(spec)
    if uri.object is None:
        raise Pkcs11UriError("PKCS#11 URI for a new key needs object= (the label the key will have)")
    if uri.path.get("type") not in (None, "private"):
        raise Pkcs11UriError("PKCS#11 URI for a new key cannot name type= other than private")
    lib = load_module(module_path(uri))
    _, token, info = find_token(lib, uri)
    session = open_session(token, info, resolve_pin(uri, pin), rw=True)
    try:
        clash = _objects(session, {Attribute.LABEL: uri.object})
        if uri.id is not None:
            clash += _objects(session, {Attribute.ID: uri.id})
        if clash:
            raise Pkcs11Error(
                f"PKCS#11 token {info.label} already holds an object with {uri.describe()}: choose another "
                "object= or id= (sigscope does not overwrite keys)"
            )
        key_id = uri.id if uri.id is not None else secrets.token_bytes(8)
        key_type, size = TOKEN_KEY_KINDS[kind]
        private_template = {
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
        }
        options: dict[str, Any] = {
            "id": key_id,
            "label": uri.object,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "private_template": private_template,
        }
        try:
            if key_type == KeyType.EC:
                from pkcs11.util.ec import encode_named_curve_parameters

                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(str(size))}, local=True
                )
                params.generate_keypair(**options)
            else:
                session.generate_keypair(KeyType.RSA, int(size), **options)
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(
                f"PKCS#11 token {info.label} could not generate a {kind} key: {type(exc).__name__}"
            ) from None
    finally:
        session.close()
    return uri, info, key_id


def open_token(spec: str, pin: PinSource = None) -> tuple[Any, TokenInfo, Pkcs11Uri, bool]:
    """A read-only session on the token a URI names, for reading keys: logged in when a PIN is at hand (the
    URI, the environment or `pin`), else public objects only. Returns (session, token, uri, logged in)."""
    uri = parse_uri(spec)
    lib = load_module(module_path(uri))
    _, token, info = find_token(lib, uri)
    pin_value = resolve_pin(uri, pin) if info.login_required else None
    return open_session(token, info, pin_value, login=pin_value is not None), info, uri, pin_value is not None


def public_material(spec: str, pin: PinSource = None) -> tuple[PublicKeyTypes, x509.Certificate | None]:
    """The public key (and the certificate beside it, if any) of the key a URI names; no PIN is needed when
    the token keeps the public key as a public object."""
    session, info, uri, logged_in = open_token(spec, pin)
    try:
        if logged_in and uri.path.get("type") in (None, "private"):
            return key_material(session, find_private_key(session, uri, info.label))
        selector = _selector(uri)
        if not selector:
            raise Pkcs11UriError("PKCS#11 URI needs object= (the key's label) or id= to name a key")
        found = _objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, **selector})
        if len(found) > 1:
            raise Pkcs11Error(
                f"{len(found)} public keys match {uri.describe()} on PKCS#11 token {info.label}: "
                "add id= to the URI"
            )
        if not found:
            hint = "" if logged_in else " (without a PIN only public objects are seen)"
            raise Pkcs11Error(f"no key matches {uri.describe()} on PKCS#11 token {info.label}{hint}")
        return key_material(session, found[0])
    finally:
        session.close()


def list_tokens(
    module: str, token_label: str | None, pin_source: str | None = None
) -> list[tuple[TokenInfo, list[TokenKey]]]:
    """Every token of `module` (or the one labelled `token_label`) and its keys. The PIN comes from the file
    `pin_source`, else the environment; without one, a token that needs a login shows its public keys only."""
    pin_uri = Pkcs11Uri(query={"pin-source": pin_source} if pin_source else {})
    lib = load_module(module)
    out: list[tuple[TokenInfo, list[TokenKey]]] = []
    entries = [e for e in slots_with_tokens(lib) if token_label is None or e[2].label == token_label]
    if token_label is not None and not entries:
        present = sorted({e[2].label for e in slots_with_tokens(lib) if e[2].initialized})
        have = f"tokens present: {', '.join(present)}" if present else "no initialized token is present"
        raise Pkcs11Error(f"no PKCS#11 token labelled {token_label} in {module} ({have})")
    pin_value = None
    for _, token, info in entries:
        if not info.initialized:
            out.append((info, []))
            continue
        if info.login_required and pin_value is None and not info.pin_locked:
            pin_value = resolve_pin(pin_uri)
        login = pin_value is not None and info.login_required and not info.pin_locked
        session = open_session(token, info, pin_value if login else None, login=login)
        try:
            out.append((info, list_keys(session, login or not info.login_required)))
        finally:
            session.close()
    return out
