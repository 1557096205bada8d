"""Notary Project (notation) envelopes and signature manifests, built byte for byte as notation-go does.

Pure: no clock, no network, no key access. Signing is two-phase so the caller owns the key and the TSA:
:func:`prepare` turns a :class:`SignRequest` into a :class:`PreparedEnvelope` whose `signing_input` the key
signs (JWS: ASCII `protected.payload`; COSE: the `Sig_structure`), then :meth:`PreparedEnvelope.assemble`
adds the signature, the certificate chain and an optional RFC 3161 token (FORMATS §2.2-§2.5, §2.10).

Byte-level rules reproduced (checked against notation-core-go's conformance vectors and notation-go's
envelopes):

* JWS protected header: a Go map, so sorted keys, compact, Go's HTML escaping; times RFC 3339 truncated to
  seconds, in the offset of the time given (`Z` for UTC); `crit` = signingScheme, the critical extended
  attributes in request order, authenticSigningTime (signingAuthority scheme), expiry.
* JWS payload: the payload JSON re-serialized through a Go map (sorted keys); envelope members in
  notation-core-go's struct order `payload, protected, header{timestampSignature, x5c, signingAgent},
  signature`.
* COSE protected header: RFC 8949 core deterministic map (keys sorted by their encoding); times as CBOR
  tag 1 integers; `crit` = signingScheme, authenticSigningTime, expiry, then the critical extended
  attributes; the payload bytes are embedded as given (descriptor struct order).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sigscope.errors import UsageError
from sigscope.formats import gojson
from sigscope.formats.gojson import go_json as go_json  # re-exported: notation_build.go_json
from sigscope.formats.gojson import sorted_maps
from sigscope.formats.notation import (
    _COSE_ALG,
    _COSE_ALGS,
    _COSE_CRIT,
    _COSE_CTY,
    _COSE_X5CHAIN,
    _EC_ALGS,
    _HASHES,
    _RSA_ALGS,
    COSE_MEDIA_TYPE,
    H_AGENT,
    H_AUTHENTIC_TIME,
    H_EXPIRY,
    H_SCHEME,
    H_SIGNING_TIME,
    H_TIMESTAMP,
    JWS_MEDIA_TYPE,
    NOTARY_PROTECTED,
    NOTATION_ARTIFACT_TYPE,
    PAYLOAD_MEDIA_TYPE,
    SCHEME_SIGNING_AUTHORITY,
    SCHEME_X509,
    THUMBPRINT_ANNOTATION,
)
from sigscope.model import Descriptor
from sigscope.oci import mediatypes

ENVELOPE_JWS = "jws"
ENVELOPE_COSE = "cose"
ENVELOPE_MEDIA_TYPES = {ENVELOPE_JWS: JWS_MEDIA_TYPE, ENVELOPE_COSE: COSE_MEDIA_TYPE}
SCHEMES = (SCHEME_X509, SCHEME_SIGNING_AUTHORITY)
CREATED_ANNOTATION = "org.opencontainers.image.created"
RESERVED_PREFIX = "io.cncf.notary"

# The algorithm tables are the parser's: what we write is exactly what we accept.
_COSE_ALG_IDS = {name: ident for ident, name in _COSE_ALGS.items()}


class NotationBuildError(UsageError):
    """A signing request notation would refuse: unsupported key, bad times, reserved or clashing headers."""


# ---------------------------------------------------------------- algorithms


def algorithm_for(key: PublicKeyTypes) -> str:
    """The JOSE name of the one algorithm FORMATS §2.5 allows for `key` (the key-size minimums included)."""
    if isinstance(key, rsa.RSAPublicKey):
        alg = _RSA_ALGS.get(key.key_size)
        if alg is None:
            raise NotationBuildError(
                f"RSA key size {key.key_size} is not supported by the Notary Project (2048, 3072 or 4096)"
            )
        return alg
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(key.curve.name)
        if alg is None:
            raise NotationBuildError(
                f"EC curve {key.curve.name} is not supported by the Notary Project (P-256, P-384 or P-521)"
            )
        return alg
    kind = type(key).__name__.lstrip("_").removesuffix("PublicKey")
    raise NotationBuildError(f"{kind} keys are not supported by the Notary Project (RSA or ECDSA only)")


def hash_for(alg: str) -> hashes.HashAlgorithm:
    """The hash an algorithm signs with; also the hash of its RFC 3161 imprint (FORMATS §2.10)."""
    return _HASHES[alg]()


def is_pss(alg: str) -> bool:
    return alg.startswith("PS")


def raw_ecdsa(der: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """DER `SEQUENCE{r, s}` → the fixed-width r‖s that JWS ES* and COSE carry."""
    r, s = decode_dss_signature(der)
    width = (key.curve.key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


# ---------------------------------------------------------------- payload and request


def check_user_metadata(metadata: Mapping[str, str]) -> None:
    for key in metadata:
        if not key:
            raise NotationBuildError("user metadata keys must not be empty")
        if key.startswith(RESERVED_PREFIX):
            raise NotationBuildError(
                f"user metadata key {key!r} uses the reserved prefix {RESERVED_PREFIX} (notation refuses it)"
            )


def build_payload(target: Descriptor, user_metadata: Mapping[str, str] | None = None) -> bytes:
    """`application/vnd.cncf.notary.payload.v1+json` as notation-go marshals it: `targetArtifact` in OCI
    descriptor struct order (mediaType, digest, size, annotations), annotations sorted (a Go map)."""
    if not target.media_type or not target.digest:
        raise NotationBuildError("the target descriptor needs a media type and a digest")
    descriptor: dict[str, Any] = {
        "mediaType": target.media_type,
        "digest": target.digest,
        "size": target.size,
    }
    if user_metadata:
        check_user_metadata(user_metadata)
        descriptor["annotations"] = {k: user_metadata[k] for k in sorted(user_metadata)}
    return go_json({"targetArtifact": descriptor})


@dataclass(frozen=True)
class Attribute:
    """An extended signed attribute (a protected header notation-core-go calls ExtendedSignedAttributes)."""

    key: str
    value: Any
    critical: bool = False


@dataclass(frozen=True)
class SignRequest:
    """What one envelope signs: notation-core-go's SignRequest, minus the signer and the TSA."""

    payload: bytes
    signing_time: datetime
    signing_scheme: str = SCHEME_X509
    expiry: datetime | None = None
    extended_attributes: tuple[Attribute, ...] = ()
    signing_agent: str | None = None
    content_type: str = PAYLOAD_MEDIA_TYPE

    def checked(self) -> SignRequest:
        """Self, after the rules notation-core-go applies before signing; times truncated to seconds."""
        if self.signing_scheme not in SCHEMES:
            raise NotationBuildError(
                f"signing scheme {self.signing_scheme!r} is not {SCHEME_X509} or {SCHEME_SIGNING_AUTHORITY}"
            )
        if self.signing_time.tzinfo is None:
            raise NotationBuildError("the signing time must carry a time zone")
        signing_time = self.signing_time.replace(microsecond=0)
        expiry = self.expiry
        if expiry is not None:
            if expiry.tzinfo is None:
                raise NotationBuildError("the expiry must carry a time zone")
            expiry = expiry.replace(microsecond=0)
            if expiry <= signing_time:
                raise NotationBuildError(
                    f"expiry {expiry.isoformat()} is not after the signing time {signing_time.isoformat()}"
                )
        seen: set[str] = set()
        for attribute in self.extended_attributes:
            if attribute.key in NOTARY_PROTECTED or attribute.key in ("alg", "cty", "crit"):
                raise NotationBuildError(
                    f"extended attribute {attribute.key!r} clashes with a standard header"
                )
            if attribute.key in seen:
                raise NotationBuildError(f"extended attribute {attribute.key!r} is repeated")
            seen.add(attribute.key)
        return SignRequest(
            payload=self.payload,
            signing_time=signing_time,
            signing_scheme=self.signing_scheme,
            expiry=expiry,
            extended_attributes=self.extended_attributes,
            signing_agent=self.signing_agent,
            content_type=self.content_type,
        )

    @property
    def time_header(self) -> str:
        return H_SIGNING_TIME if self.signing_scheme == SCHEME_X509 else H_AUTHENTIC_TIME


# ---------------------------------------------------------------- JWS


def rfc3339(when: datetime) -> str:
    """Go's time.Time JSON form at second precision: `Z` for a zero offset, else `±hh:mm`."""
    offset = when.utcoffset() or timedelta(0)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if offset == timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jws_protected_header(request: SignRequest, alg: str) -> bytes:
    """The protected header JSON, as notation-core-go's getSignedAttributes + jwt marshal it."""
    request = request.checked()
    crit = [H_SCHEME]
    header: dict[str, Any] = {"alg": alg, "cty": request.content_type, H_SCHEME: request.signing_scheme}
    for attribute in request.extended_attributes:
        header[attribute.key] = attribute.value
        if attribute.critical:
            crit.append(attribute.key)
    header[request.time_header] = rfc3339(request.signing_time)
    if request.signing_scheme == SCHEME_SIGNING_AUTHORITY:
        crit.append(H_AUTHENTIC_TIME)
    if request.expiry is not None:
        crit.append(H_EXPIRY)
        header[H_EXPIRY] = rfc3339(request.expiry)
    header["crit"] = crit
    return go_json(sorted_maps(header))


def jws_payload(payload: bytes) -> bytes:
    """The payload as golang-jwt re-marshals the claims map: sorted keys (the signed bytes, not the input)."""
    try:
        decoded = gojson.read(payload, "payload")
    except ValueError:
        raise NotationBuildError("a JWS envelope needs a JSON payload") from None
    if not isinstance(decoded, dict):
        raise NotationBuildError("a JWS envelope needs a JSON object payload")
    return go_json(sorted_maps(decoded))


# ---------------------------------------------------------------- COSE


def _cbor_map(items: Mapping[Any, Any]) -> bytes:
    """A CBOR map in RFC 8949 core deterministic order (keys sorted by their encoded bytes), as go-cose
    writes headers."""
    encoded = sorted((cbor2.dumps(k), _cbor_value(v)) for k, v in items.items())
    count = len(encoded)
    head = cbor2.dumps({}) if count == 0 else _cbor_head(5, count)
    return head + b"".join(k + v for k, v in encoded)


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for extra, marker in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if length < 1 << (8 * extra):
            return bytes([major << 5 | marker]) + length.to_bytes(extra, "big")
    raise ValueError("CBOR length too large")


def _cbor_value(value: Any) -> bytes:
    if isinstance(value, Mapping):
        return _cbor_map(value)
    if isinstance(value, list | tuple):
        return _cbor_head(4, len(value)) + b"".join(_cbor_value(v) for v in value)
    return cbor2.dumps(value)


def _epoch(when: datetime) -> cbor2.CBORTag:
    return cbor2.CBORTag(1, int(when.timestamp()))


def cose_protected_header(request: SignRequest, alg: str) -> bytes:
    """The protected header bstr content, as notation-core-go's generateProtectedHeaders and go-cose
    encode it."""
    request = request.checked()
    protected: dict[Any, Any] = {_COSE_ALG: _COSE_ALG_IDS[alg]}
    crit: list[str] = [H_SCHEME]
    protected[H_SCHEME] = request.signing_scheme
    protected[request.time_header] = _epoch(request.signing_time)
    if request.signing_scheme == SCHEME_SIGNING_AUTHORITY:
        crit.append(H_AUTHENTIC_TIME)
    if request.expiry is not None:
        crit.append(H_EXPIRY)
        protected[H_EXPIRY] = _epoch(request.expiry)
    for attribute in request.extended_attributes:
        if attribute.critical:
            crit.append(attribute.key)
        protected[attribute.key] = attribute.value
    protected[_COSE_CRIT] = crit
    protected[_COSE_CTY] = request.content_type
    return _cbor_map(protected)


def cose_unprotected_header(
    chain: Sequence[bytes], signing_agent: str | None, timestamp_token: bytes | None
) -> bytes:
    unprotected: dict[Any, Any] = {}
    if signing_agent:
        unprotected[H_AGENT] = signing_agent
    if chain:
        unprotected[_COSE_X5CHAIN] = list(chain)
    if timestamp_token:
        unprotected[H_TIMESTAMP] = timestamp_token
    return _cbor_map(unprotected)


def cose_sign1(protected: bytes, unprotected: bytes, payload: bytes, signature: bytes) -> bytes:
    """`COSE_Sign1_Tagged` = 18([protected bstr, unprotected map, payload bstr, signature bstr])."""
    return b"\xd2\x84" + cbor2.dumps(protected) + unprotected + cbor2.dumps(payload) + cbor2.dumps(signature)


# ---------------------------------------------------------------- both envelopes


@dataclass(frozen=True)
class PreparedEnvelope:
    """An envelope waiting for its signature: sign `signing_input` with `hash` (PSS for PS*, raw r‖s for
    ES*), then :meth:`assemble`."""

    envelope: str  # ENVELOPE_JWS | ENVELOPE_COSE
    alg: str
    signing_input: bytes
    protected: bytes  # JWS: the header JSON; COSE: the encoded header map
    payload: bytes  # the payload bytes as signed
    signing_agent: str | None
    chain: tuple[bytes, ...] = field(default=())

    @property
    def media_type(self) -> str:
        return ENVELOPE_MEDIA_TYPES[self.envelope]

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return hash_for(self.alg)

    def assemble(self, signature: bytes, timestamp_token: bytes | None = None) -> bytes:
        """The envelope bytes with `signature` (JOSE/COSE form), the chain and an optional TimeStampToken."""
        if self.envelope == ENVELOPE_COSE:
            unprotected = cose_unprotected_header(self.chain, self.signing_agent, timestamp_token)
            return cose_sign1(self.protected, unprotected, self.payload, signature)
        header: dict[str, Any] = {}
        if timestamp_token:
            header[H_TIMESTAMP] = base64.b64encode(timestamp_token).decode("ascii")
        header["x5c"] = [base64.b64encode(der).decode("ascii") for der in self.chain]
        if self.signing_agent:
            header[H_AGENT] = self.signing_agent
        document = {
            "payload": b64url(self.payload),
            "protected": b64url(self.protected),
            "header": header,
            "signature": b64url(signature),
        }
        return go_json(document)


def prepare(envelope: str, request: SignRequest, alg: str, chain: Sequence[bytes] = ()) -> PreparedEnvelope:
    """Protected header and signing input for `request` under `alg`; `chain`: DER certificates, leaf
    first."""
    if envelope not in ENVELOPE_MEDIA_TYPES:
        raise NotationBuildError(f"unknown envelope format {envelope!r} (jws or cose)")
    if alg not in _HASHES:
        raise NotationBuildError(f"unsupported algorithm {alg!r}")
    if envelope == ENVELOPE_JWS:
        protected = jws_protected_header(request, alg)
        payload = jws_payload(request.payload)
        signing_input = f"{b64url(protected)}.{b64url(payload)}".encode("ascii")
    else:
        protected = cose_protected_header(request, alg)
        payload = request.payload
        signing_input = cbor2.dumps(["Signature1", protected, b"", payload])
    return PreparedEnvelope(
        envelope, alg, signing_input, protected, payload, request.signing_agent, tuple(chain)
    )


# ---------------------------------------------------------------- signature manifest


def thumbprints(chain: Sequence[bytes]) -> list[str]:
    """Lowercase SHA-256 hex of each certificate, in envelope order (what notation-go writes)."""
    return [hashlib.sha256(der).hexdigest() for der in chain]


def signature_manifest(
    envelope: bytes,
    envelope_media_type: str,
    subject: Descriptor,
    chain: Sequence[bytes],
    created: datetime,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The OCI 1.1 signature manifest oras.PackManifest (1.1) writes for notation-go: ocispec.Manifest field
    order, the empty config with its `data`, the subject, and the annotations map (sorted): the thumbprint
    array and the creation time in UTC."""
    notes: dict[str, str] = dict(annotations or {})
    notes[THUMBPRINT_ANNOTATION] = go_json(thumbprints(chain)).decode()
    notes.setdefault(CREATED_ANNOTATION, created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": NOTATION_ARTIFACT_TYPE,
        "config": {
            "mediaType": mediatypes.OCI_EMPTY,
            "digest": mediatypes.EMPTY_DIGEST,
            "size": len(mediatypes.EMPTY_JSON),
            "data": base64.b64encode(mediatypes.EMPTY_JSON).decode(),
        },
        "layers": [
            {
                "mediaType": envelope_media_type,
                "digest": "sha256:" + hashlib.sha256(envelope).hexdigest(),
                "size": len(envelope),
            }
        ],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {k: notes[k] for k in sorted(notes)},
    }
    return go_json(manifest)
