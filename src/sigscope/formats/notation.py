"""Notary Project (notation) signatures: the signature manifest, JWS and COSE_Sign1 envelopes.

Pure: bytes in, a `Signature` out. Everything that can be judged without trust material is a
named check (FORMATS.md §2.1-§2.6); trust stores, trust policies, certificate-requirement rules,
RFC 3161 timestamps and revocation belong to the trust layer, which finds what it needs in
`Signature.evidence`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sigscope.errors import IntegrityError
from sigscope.formats import gojson
from sigscope.model import (
    Check,
    Descriptor,
    Manifest,
    Outcome,
    Signature,
    SignatureFormat,
    SignerIdentity,
)
from sigscope.oci import mediatypes
from sigscope.trust import certs

NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
PAYLOAD_MEDIA_TYPE = "application/vnd.cncf.notary.payload.v1+json"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
ENVELOPE_MEDIA_TYPES = frozenset({JWS_MEDIA_TYPE, COSE_MEDIA_TYPE})

# notation-go refuses bigger envelopes; a larger blob is not a signature it would ever have written.
MAX_ENVELOPE_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_SIGNATURES = 100  # notation's --max-signatures default

SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"

H_SCHEME = "io.cncf.notary.signingScheme"
H_SIGNING_TIME = "io.cncf.notary.signingTime"
H_AUTHENTIC_TIME = "io.cncf.notary.authenticSigningTime"
H_EXPIRY = "io.cncf.notary.expiry"
H_PLUGIN = "io.cncf.notary.verificationPlugin"
H_PLUGIN_MIN = "io.cncf.notary.verificationPluginMinVersion"
H_TIMESTAMP = "io.cncf.notary.timestampSignature"
H_AGENT = "io.cncf.notary.signingAgent"
NOTARY_PROTECTED = frozenset({H_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_TIME, H_EXPIRY, H_PLUGIN, H_PLUGIN_MIN})
_TIME_HEADERS = (H_SIGNING_TIME, H_AUTHENTIC_TIME, H_EXPIRY)
# Signature.evidence keys "x5c.0", "x5c.1", …: the DER certificates of the envelope chain, leaf first.
X5C_EVIDENCE = "x5c."

# RFC 7515 §4.1.11: a producer must not list headers every JWS implementation already understands.
_JWS_REGISTERED = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc", "zip"}
)
_COSE_ALG, _COSE_CRIT, _COSE_CTY, _COSE_X5CHAIN = 1, 2, 3, 33
_COSE_ALGS = {-37: "PS256", -38: "PS384", -39: "PS512", -7: "ES256", -35: "ES384", -36: "ES512"}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
    "ES256": hashes.SHA256,
    "ES384": hashes.SHA384,
    "ES512": hashes.SHA512,
}
_RSA_ALGS = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
)
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


class NotationFormatError(ValueError):
    """A signature manifest that is not a well-formed Notary Project signature."""


def is_signature_artifact(artifact_type: str | None) -> bool:
    return artifact_type == NOTATION_ARTIFACT_TYPE


def envelope_layer(manifest: Manifest) -> Descriptor:
    """The one envelope blob of a signature manifest, after the shape rules notation-go enforces."""
    try:
        data = manifest.json()
    except IntegrityError as exc:
        raise NotationFormatError(str(exc)) from None
    media_type = data.get("mediaType") or manifest.media_type
    artifact_type = data.get("artifactType") or ""
    if media_type == OCI_ARTIFACT_MANIFEST:
        # The short-lived OCI artifact manifest has no config; notation-go still reads old signatures in it.
        if artifact_type != NOTATION_ARTIFACT_TYPE:
            raise NotationFormatError(
                f"artifact manifest {manifest.digest} has artifactType {artifact_type or '(none)'}, "
                f"not {NOTATION_ARTIFACT_TYPE}"
            )
        layers = data.get("blobs")
    elif media_type == mediatypes.OCI_MANIFEST:
        config = data.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        if artifact_type:
            if artifact_type != NOTATION_ARTIFACT_TYPE:
                raise NotationFormatError(
                    f"signature manifest {manifest.digest} has artifactType {artifact_type}, "
                    f"not {NOTATION_ARTIFACT_TYPE}"
                )
            if config_type != mediatypes.OCI_EMPTY:
                raise NotationFormatError(
                    f"signature manifest {manifest.digest} has artifactType {NOTATION_ARTIFACT_TYPE} "
                    f"but its config is {config_type or '(missing)'}, not the empty {mediatypes.OCI_EMPTY}"
                )
        elif config_type != NOTATION_ARTIFACT_TYPE:
            raise NotationFormatError(
                f"manifest {manifest.digest} is not a Notary Project signature: no artifactType and "
                f"config mediaType {config_type or '(missing)'}"
            )
        layers = data.get("layers")
    else:
        raise NotationFormatError(
            f"signature manifest {manifest.digest} has media type {media_type or '(none)'}, "
            f"not an OCI image manifest"
        )
    if not isinstance(layers, list) or len(layers) != 1:
        count = len(layers) if isinstance(layers, list) else 0
        raise NotationFormatError(
            f"signature manifest {manifest.digest} must have exactly one envelope layer, found {count}"
        )
    try:
        layer = Descriptor.from_json(layers[0])
    except IntegrityError as exc:
        raise NotationFormatError(f"signature manifest {manifest.digest}: envelope layer {exc}") from None
    if layer.media_type not in ENVELOPE_MEDIA_TYPES:
        raise NotationFormatError(
            f"signature manifest {manifest.digest} has a {layer.media_type} layer, "
            f"not {JWS_MEDIA_TYPE} or {COSE_MEDIA_TYPE}"
        )
    return layer


def parse_envelope(
    blob: bytes,
    media_type: str,
    *,
    subject: Descriptor,
    location: str,
    now: datetime,
    manifest_annotations: dict[str, str] | None = None,
) -> Signature:
    """Parse one JWS or COSE envelope and run every check that needs no trust material. Never raises."""
    blob = bytes(blob)
    if media_type == COSE_MEDIA_TYPE or (media_type != JWS_MEDIA_TYPE and not blob.lstrip().startswith(b"{")):
        fmt = SignatureFormat.NOTATION_COSE
    else:
        fmt = SignatureFormat.NOTATION_JWS
    sig = Signature(
        format=fmt,
        subject_digest=subject.digest,
        location=location,
        media_type=media_type,
        evidence={"envelope": blob},
    )
    if now.tzinfo is None:
        # Certificate validity and expiry are aware datetimes; a naive clock is read as UTC, not refused.
        now = now.replace(tzinfo=UTC)
    try:
        if media_type not in ENVELOPE_MEDIA_TYPES:
            raise _Malformed(f"unsupported Notary Project envelope media type {media_type or '(none)'}")
        if len(blob) > MAX_ENVELOPE_SIZE:
            raise _Malformed(f"envelope is {len(blob)} bytes, over the {MAX_ENVELOPE_SIZE} byte limit")
        envelope = _parse_jws(blob) if fmt is SignatureFormat.NOTATION_JWS else _parse_cose(blob)
        _evaluate(sig, envelope, subject, now, manifest_annotations)
    except _Malformed as exc:
        sig.error = _one_line(str(exc))
        sig.checks.append(Check.failed("envelope", sig.error))
    except Exception as exc:
        # Errors are data in bulk work: a hostile blob must cost one INVALID record, never the scan.
        sig.error = _one_line(f"could not parse the {fmt} envelope: {type(exc).__name__}: {exc}")
        if not any(c.name == "envelope" for c in sig.checks):
            sig.checks.append(Check.failed("envelope", sig.error))
    return sig.settle()


# ---------------------------------------------------------------- envelope parsing


class _Malformed(Exception):
    """The envelope is too broken to read its parts."""


@dataclass
class _Envelope:
    """What both envelope encodings share, normalised; labels stay as written so messages quote them."""

    envelope_detail: str
    protected: dict[Any, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes
    crit: Any
    alg: str | None  # JOSE name when the format's alg is one we know
    alg_written: str
    alg_raw: Any
    content_type: Any
    known_labels: frozenset[Any]  # understood when critical
    registered_labels: frozenset[Any]  # never allowed in crit
    standard_labels: frozenset[Any]  # not "extended attributes"
    # golang-jwt verifies PS* with "salt length auto"; go-cose insists on salt = hash length.
    pss_auto_salt: bool
    problems: list[str] = field(default_factory=list)
    times: dict[str, datetime] = field(default_factory=dict)
    x5c: list[bytes] = field(default_factory=list)
    signing_agent: str | None = None
    timestamp_token: bytes | None = None


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _b64url(text: str, name: str, problems: list[str]) -> bytes:
    """Unpadded base64url as RFC 7515 demands; padded input is decoded but reported (Go refuses it)."""
    stripped = text.rstrip("=")
    if not _B64URL.fullmatch(stripped) or len(stripped) % 4 == 1:
        raise _Malformed(f"JWS {name} is not base64url")
    if stripped != text:
        problems.append(f"JWS {name} is padded base64url; RFC 7515 requires it unpadded")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def _std_b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not standard base64") from None


def _lookup_ci(header: Mapping[str, Any], name: str) -> Any:
    """Go's encoding/json matches struct fields case-insensitively; notation-go's own mocks rely on it."""
    if name in header:
        return header[name]
    folded = name.casefold()
    for key, value in header.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def _rfc3339(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"{name} is not an RFC 3339 time: {value!r}")
    date, clock, fraction, offset = match.groups()
    # fromisoformat takes at most microseconds; Go keeps nanoseconds, which no check here needs.
    text = f"{date}T{clock}{'.' + (fraction + '00000')[:6] if fraction else ''}"
    text += "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} is not a valid time: {value!r}") from None


def _parse_jws(blob: bytes) -> _Envelope:
    try:
        doc = gojson.read(blob, "JWS envelope")
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    if not isinstance(doc, dict):
        raise _Malformed("JWS envelope is not a JSON object")
    if "signatures" in doc:
        raise _Malformed(
            "JWS envelope uses the general serialization (a signatures array); "
            "Notary Project signatures are flattened with exactly one signature"
        )
    missing = [name for name in ("protected", "payload", "signature") if not isinstance(doc.get(name), str)]
    if missing:
        raise _Malformed(f"JWS envelope lacks the string member(s) {', '.join(missing)}")
    problems: list[str] = []
    extra = sorted(set(doc) - {"payload", "protected", "header", "signature"})
    if extra:
        problems.append(f"JWS envelope has unexpected member(s) {', '.join(extra)}")
    header = doc.get("header")
    if header is None:
        problems.append("JWS envelope has no unprotected header (x5c is required)")
        header = {}
    elif not isinstance(header, dict):
        problems.append("JWS unprotected header is not a JSON object")
        header = {}

    protected_raw = _b64url(doc["protected"], "protected header", problems)
    payload = _b64url(doc["payload"], "payload", problems)
    signature = _b64url(doc["signature"], "signature", problems)
    try:
        protected = gojson.read(protected_raw, "JWS protected header")
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    if not isinstance(protected, dict):
        raise _Malformed("JWS protected header is not a JSON object")

    alg = protected.get("alg")
    env = _Envelope(
        envelope_detail="flattened JWS JSON serialization",
        protected=protected,
        payload=payload,
        # The signature covers the strings as transmitted, never a re-encoding of the decoded parts.
        signing_input=f"{doc['protected']}.{doc['payload']}".encode("ascii"),
        signature=signature,
        crit=protected.get("crit"),
        alg=alg if isinstance(alg, str) and alg in _HASHES else None,
        alg_written=alg if isinstance(alg, str) else repr(alg),
        alg_raw=alg,
        content_type=protected.get("cty"),
        known_labels=NOTARY_PROTECTED,
        registered_labels=_JWS_REGISTERED,
        standard_labels=frozenset({"alg", "cty", "crit"}) | NOTARY_PROTECTED,
        pss_auto_salt=True,
        problems=problems,
    )
    for name in _TIME_HEADERS:
        if name in protected:
            try:
                env.times[name] = _rfc3339(protected[name], name)
            except ValueError as exc:
                problems.append(str(exc))

    x5c = _lookup_ci(header, "x5c")
    if x5c is not None:
        if isinstance(x5c, list):
            for position, entry in enumerate(x5c):
                try:
                    env.x5c.append(_std_b64(entry, f"x5c[{position}]"))
                except ValueError as exc:
                    problems.append(str(exc))
        else:
            problems.append("x5c is not a JSON array")
    token = _lookup_ci(header, H_TIMESTAMP)
    if token is not None:
        try:
            env.timestamp_token = _std_b64(token, H_TIMESTAMP)
        except ValueError as exc:
            problems.append(str(exc))
    agent = _lookup_ci(header, H_AGENT)
    if agent is not None:
        env.signing_agent = agent if isinstance(agent, str) else json.dumps(agent)
    return env


def _keep_tag(tag: int) -> Callable[[Any, bool], Any]:
    def keep(value: Any, immutable: bool) -> Any:
        return cbor2.CBORTag(tag, value)

    return keep


# cbor2 turns tags 0/1 into datetimes, which would hide whether the epoch tag (1) was really used.
_RAW_TIME_TAGS = {0: _keep_tag(0), 1: _keep_tag(1)}


def _cbor(data: bytes, what: str) -> Any:
    """One CBOR item, decoded as strictly as go-cose does (no duplicate keys, no indefinite lengths)."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_RAW_TIME_TAGS,
            read_size=1,  # so tell() is the end of the item and trailing bytes can be seen
            max_depth=64,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        ).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _Malformed(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise _Malformed(f"{what} has {len(data) - stream.tell()} trailing byte(s)")
    return item


def _cose_time(value: Any, name: str) -> datetime:
    if not isinstance(value, cbor2.CBORTag) or value.tag != 1:
        raise ValueError(f"{name} is not a CBOR tag-1 epoch time")
    if not isinstance(value.value, int) or isinstance(value.value, bool):
        raise ValueError(f"{name} is not an integer epoch time")
    try:
        return datetime.fromtimestamp(value.value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{name} is out of range: {value.value}") from None


def _parse_cose(blob: bytes) -> _Envelope:
    item = _cbor(blob, "COSE envelope")
    if not isinstance(item, cbor2.CBORTag):
        raise _Malformed("COSE envelope is not a tagged COSE_Sign1 message (CBOR tag 18)")
    if item.tag != 18:
        raise _Malformed(f"COSE envelope has CBOR tag {item.tag}, not 18 (COSE_Sign1)")
    parts = item.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        count = len(parts) if isinstance(parts, list | tuple) else "not an array of"
        raise _Malformed(f"COSE_Sign1 must be an array of 4 elements, found {count}")
    protected_raw, unprotected, payload, signature = parts
    if not isinstance(protected_raw, bytes):
        raise _Malformed("COSE_Sign1 protected header is not a byte string")
    # Inside a tag cbor2 decodes immutably (tuples, frozendict), hence Mapping rather than dict.
    if not isinstance(unprotected, Mapping):
        raise _Malformed("COSE_Sign1 unprotected header is not a map")
    unprotected = dict(unprotected)
    if payload is None:
        raise _Malformed("COSE_Sign1 has a detached payload; Notary Project envelopes embed it")
    if not isinstance(payload, bytes):
        raise _Malformed("COSE_Sign1 payload is not a byte string")
    if not isinstance(signature, bytes):
        raise _Malformed("COSE_Sign1 signature is not a byte string")
    protected = _cbor(protected_raw, "COSE protected header") if protected_raw else {}
    if not isinstance(protected, Mapping):
        raise _Malformed("COSE protected header is not a map")
    protected = dict(protected)

    problems: list[str] = []
    both = [label for label in protected if label in unprotected]
    if both:
        problems.append(f"header label(s) {', '.join(map(str, both))} are both protected and unprotected")
    alg = protected.get(_COSE_ALG)
    alg_name = _COSE_ALGS.get(alg) if isinstance(alg, int) and not isinstance(alg, bool) else None
    env = _Envelope(
        envelope_detail="COSE_Sign1 (CBOR tag 18)",
        protected=protected,
        payload=payload,
        signing_input=cbor2.dumps(["Signature1", protected_raw, b"", payload]),
        signature=signature,
        crit=protected.get(_COSE_CRIT),
        alg=alg_name,
        alg_written=alg_name or repr(alg),
        alg_raw=alg,
        content_type=protected.get(_COSE_CTY),
        known_labels=NOTARY_PROTECTED | {_COSE_ALG, _COSE_CTY},
        registered_labels=frozenset({_COSE_CRIT}),
        standard_labels=frozenset({_COSE_ALG, _COSE_CRIT, _COSE_CTY, _COSE_X5CHAIN}) | NOTARY_PROTECTED,
        pss_auto_salt=False,
        problems=problems,
    )
    for name in _TIME_HEADERS:
        if name in protected:
            try:
                env.times[name] = _cose_time(protected[name], name)
            except ValueError as exc:
                problems.append(str(exc))

    # RFC 9360 lets x5chain be one bstr or an array, protected or not.
    chain = unprotected.get(_COSE_X5CHAIN, protected.get(_COSE_X5CHAIN))
    if isinstance(chain, bytes):
        env.x5c = [chain]
    elif isinstance(chain, list | tuple):
        for position, entry in enumerate(chain):
            if isinstance(entry, bytes):
                env.x5c.append(entry)
            else:
                problems.append(f"x5chain[{position}] is not a byte string")
    elif chain is not None:
        problems.append("x5chain is neither a byte string nor an array")
    token = unprotected.get(H_TIMESTAMP)
    if token is not None:
        if isinstance(token, bytes):
            env.timestamp_token = token
        else:
            problems.append(f"{H_TIMESTAMP} is not a byte string")
    agent = unprotected.get(H_AGENT)
    if agent is not None:
        env.signing_agent = agent if isinstance(agent, str) else repr(agent)
    return env


# ---------------------------------------------------------------- checks


def _jsonable(value: Any) -> Any:
    """Claims end up in JSON reports; CBOR can carry bytes, tags and non-string keys."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _jsonable(value.value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return repr(value)


def _label(label: Any) -> str:
    return label if isinstance(label, str) else repr(label)


def _evaluate(
    sig: Signature,
    env: _Envelope,
    subject: Descriptor,
    now: datetime,
    manifest_annotations: dict[str, str] | None,
) -> None:
    if env.problems:
        sig.error = _one_line("; ".join(env.problems))
        sig.checks.append(Check.failed("envelope", sig.error))
    else:
        sig.checks.append(Check.passed("envelope", env.envelope_detail))
    sig.evidence["signature-value"] = env.signature
    if env.timestamp_token is not None:
        sig.evidence["timestamp-token"] = env.timestamp_token

    protected = env.protected
    claims: dict[str, Any] = {"alg": env.alg or _jsonable(env.alg_raw)}
    for key, name in (
        (H_SCHEME, "signingScheme"),
        (H_PLUGIN, "verificationPlugin"),
        (H_PLUGIN_MIN, "verificationPluginMinVersion"),
    ):
        if key in protected:
            claims[name] = _jsonable(protected[key])
    if env.content_type is not None:
        claims["contentType"] = _jsonable(env.content_type)
    if env.crit is not None:
        claims["critical"] = _jsonable(env.crit)
    if env.signing_agent is not None:
        claims["signingAgent"] = env.signing_agent
    extended = {k: v for k, v in protected.items() if k not in env.standard_labels}
    if extended:
        claims["extendedAttributes"] = _jsonable(extended)
    if env.timestamp_token is not None:
        # Presence is only a claim; `timestamped` means a token verified against TSA roots, which the
        # Notary evaluator (trust/notation_verify.py) decides with the policy's tsa store.
        claims["timestampCountersignature"] = True
    sig.claims = claims
    sig.signing_time = env.times.get(H_SIGNING_TIME) or env.times.get(H_AUTHENTIC_TIME)
    sig.expiry = env.times.get(H_EXPIRY)

    chain, cert_problems = _load_chain(env.x5c)
    # The trust layer (trust/notation_verify.py) needs the chain exactly as carried, in envelope order.
    for position, der in enumerate(env.x5c):
        sig.evidence[f"{X5C_EVIDENCE}{position}"] = der
    # Identity comes from x5c[0] alone; a broken certificate further up must not hide who signed.
    leaf = chain[0] if chain and not (cert_problems and cert_problems[0].startswith("x5c[0]:")) else None
    if leaf is not None:
        sig.signer = SignerIdentity(
            certificate=certs.summarize(leaf, now), chain=tuple(certs.summarize(c, now) for c in chain[1:])
        )

    target, payload_check = _payload_check(env)
    if target is not None:
        sig.signed_digest = str(target["digest"])
        sig.claims["targetArtifact"] = _jsonable(target)
        annotations = target.get("annotations")
        if isinstance(annotations, dict) and annotations:
            sig.claims["userMetadata"] = _jsonable(annotations)
    sig.checks.append(payload_check)
    sig.checks.append(_critical_check(env))
    key = _leaf_key(leaf)
    sig.checks.append(_algorithm_check(env, key))
    sig.checks.append(_signature_check(env, key, leaf, cert_problems))
    sig.checks.append(_chain_check(chain, cert_problems))
    sig.checks.append(_digest_check(target, subject))
    sig.checks.append(_expiry_check(env, now))
    sig.checks.append(_thumbprint_check(env.x5c, manifest_annotations))


def evidence_chain(sig: Signature) -> list[bytes]:
    """The DER certificates a parsed envelope carried (x5c / x5chain), leaf first."""
    ders: list[bytes] = []
    while (der := sig.evidence.get(f"{X5C_EVIDENCE}{len(ders)}")) is not None:
        ders.append(der)
    return ders


def _load_chain(ders: list[bytes]) -> tuple[list[x509.Certificate], list[str]]:
    chain: list[x509.Certificate] = []
    problems: list[str] = []
    for position, der in enumerate(ders):
        try:
            chain.append(certs.load_der(der))
        except certs.CertificateError as exc:
            problems.append(f"x5c[{position}]: {exc}")
    return chain, problems


def _leaf_key(leaf: x509.Certificate | None) -> Any:
    if leaf is None:
        return None
    try:
        return leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def _payload_check(env: _Envelope) -> tuple[dict[str, Any] | None, Check]:
    if env.content_type != PAYLOAD_MEDIA_TYPE:
        return None, Check.failed(
            "payload", f"content type is {_label(env.content_type)}, not {PAYLOAD_MEDIA_TYPE}"
        )
    try:
        payload = gojson.read(env.payload, "payload")
    except ValueError as exc:
        return None, Check.failed("payload", str(exc))
    target = payload.get("targetArtifact") if isinstance(payload, dict) else None
    if not isinstance(target, dict):
        return None, Check.failed("payload", "payload has no targetArtifact object")
    media_type, digest, size = target.get("mediaType"), target.get("digest"), target.get("size")
    problems = []
    if not isinstance(media_type, str) or not media_type:
        problems.append("mediaType")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        problems.append("digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append("size")
    if problems:
        return None, Check.failed("payload", f"targetArtifact lacks a valid {', '.join(problems)}")
    return target, Check.passed("payload", f"targetArtifact {media_type} {digest} ({size} bytes)")


def _critical_check(env: _Envelope) -> Check:
    crit = env.crit
    protected = env.protected
    if crit is None:
        return Check.failed("critical-headers", f"no crit header; {H_SCHEME} must be marked critical")
    if (
        not isinstance(crit, list)
        or not crit
        or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in crit)
    ):
        return Check.failed("critical-headers", "crit is not a non-empty list of header names")
    listed = set(crit)
    problems: list[str] = []
    for label in crit:
        if label in env.registered_labels:
            problems.append(f"crit lists the registered header {_label(label)}")
        elif label not in protected:
            problems.append(f"{_label(label)} is marked critical but not present")

    scheme = protected.get(H_SCHEME)
    if scheme is None:
        problems.append(f"{H_SCHEME} is missing")
    elif scheme not in (SCHEME_X509, SCHEME_SIGNING_AUTHORITY):
        problems.append(f"unsupported signing scheme {_label(scheme)}")
    must_be_critical = [H_SCHEME, H_EXPIRY, H_PLUGIN, H_PLUGIN_MIN]
    if scheme == SCHEME_X509:
        if H_SIGNING_TIME not in protected:
            problems.append(f"{SCHEME_X509} requires {H_SIGNING_TIME}")
        if H_AUTHENTIC_TIME in protected:
            problems.append(f"{H_AUTHENTIC_TIME} must be absent for {SCHEME_X509}")
    elif scheme == SCHEME_SIGNING_AUTHORITY:
        if H_AUTHENTIC_TIME not in protected:
            problems.append(f"{SCHEME_SIGNING_AUTHORITY} requires {H_AUTHENTIC_TIME}")
        if H_SIGNING_TIME in protected:
            problems.append(f"{H_SIGNING_TIME} must be absent for {SCHEME_SIGNING_AUTHORITY}")
        must_be_critical.append(H_AUTHENTIC_TIME)
    for name in must_be_critical:
        if name in protected and name not in listed:
            problems.append(f"{name} must be marked critical")

    plugin = protected.get(H_PLUGIN)
    needs = f"requires plugin {_label(plugin)}" if plugin is not None else "requires a verification plugin"
    for label in crit:
        if label in protected and label not in env.known_labels and label not in env.registered_labels:
            problems.append(f"unknown critical header {_label(label)} ({needs})")
    if plugin is not None:
        minimum = protected.get(H_PLUGIN_MIN)
        at_least = f" (version {_label(minimum)} or later)" if minimum is not None else ""
        # The spec makes a verifier without the plugin fail the signature: we implement none.
        problems.append(
            f"verification plugin {_label(plugin)}{at_least} required; sigscope implements no plugins"
        )
    if problems:
        return Check.failed("critical-headers", _one_line("; ".join(problems)))
    return Check.passed("critical-headers", f"{', '.join(map(_label, crit))} understood")


def _expected_alg(key: Any) -> tuple[str | None, str]:
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGS.get(key.key_size), f"RSA {key.key_size}-bit key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGS.get(key.curve.name), f"EC {key.curve.name} key"
    return None, f"{type(key).__name__.removeprefix('_')} key"


def _algorithm_check(env: _Envelope, key: Any) -> Check:
    if key is None:
        return Check.skipped("algorithm", "no usable signing certificate to compare the algorithm with")
    expected, described = _expected_alg(key)
    if expected is None:
        return Check.failed(
            "algorithm",
            f"the signing certificate has an unsupported {described} "
            f"(RSA 2048/3072/4096 or EC P-256/P-384/P-521 only)",
        )
    if env.alg != expected:
        return Check.failed(
            "algorithm", f"alg {env.alg_written} does not match the {described} (which requires {expected})"
        )
    return Check.passed("algorithm", f"{expected} matches the {described}")


def _signature_check(
    env: _Envelope, key: Any, leaf: x509.Certificate | None, cert_problems: list[str]
) -> Check:
    if leaf is None:
        why = cert_problems[0] if cert_problems else "the envelope carries no signing certificate"
        return Check.skipped("signature", f"nothing to verify with: {why}")
    if env.alg is None:
        return Check.failed("signature", f"unsupported signature algorithm {env.alg_written}")
    digest = _HASHES[env.alg]()
    if env.alg.startswith("PS"):
        if not isinstance(key, rsa.RSAPublicKey):
            return Check.failed(
                "signature", f"alg {env.alg} needs an RSA key; the signing certificate has none"
            )
        ok = certs.verify_with_key(key, env.signature, env.signing_input, hash_algorithm=digest, pss=True)
        if not ok and env.pss_auto_salt:
            ok = _verify_pss_auto(key, env.signature, env.signing_input, digest)
    else:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return Check.failed(
                "signature", f"alg {env.alg} needs an EC key; the signing certificate has none"
            )
        width = (key.curve.key_size + 7) // 8
        if len(env.signature) != 2 * width:
            return Check.failed(
                "signature",
                f"{env.alg} signature is {len(env.signature)} bytes, not the {2 * width} of raw r||s",
            )
        # JOSE and COSE carry ECDSA as fixed-width r||s; cryptography wants DER.
        der = encode_dss_signature(
            int.from_bytes(env.signature[:width], "big"), int.from_bytes(env.signature[width:], "big")
        )
        ok = certs.verify_with_key(key, der, env.signing_input, hash_algorithm=digest)
    subject = leaf.subject.rfc4514_string()
    if ok:
        return Check.passed("signature", f"{env.alg} signature verifies under the key of {subject}")
    return Check.failed("signature", f"{env.alg} signature does not verify under the key of {subject}")


def _verify_pss_auto(
    key: rsa.RSAPublicKey, signature: bytes, data: bytes, digest: hashes.HashAlgorithm
) -> bool:
    try:
        key.verify(
            signature, data, padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO), digest
        )
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _is_sha1_signed(cert: x509.Certificate) -> bool:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    return isinstance(algorithm, hashes.SHA1)


def _chain_check(chain: list[x509.Certificate], cert_problems: list[str]) -> Check:
    if cert_problems:
        return Check.failed("chain", _one_line("; ".join(cert_problems)))
    if not chain:
        return Check.failed("chain", "the envelope carries no certificate chain (x5c is required)")
    for position, cert in enumerate(chain):
        if _is_sha1_signed(cert):
            return Check.failed(
                "chain", f"certificate {position} ({cert.subject.rfc4514_string()}) is signed with SHA-1"
            )
    root = chain[-1]
    if len(chain) == 1:
        if certs.is_self_signed(root):
            return Check.passed("chain", "a single self-signed certificate")
        return Check.failed(
            "chain",
            f"the only certificate ({root.subject.rfc4514_string()}) is not self-signed, "
            "so the chain does not end in a root",
        )
    links = certs.chain_links(chain)
    if links.outcome is Outcome.FAILED:
        return links
    for position, cert in enumerate(chain[:-1]):
        if certs.is_self_signed(cert):
            return Check.failed(
                "chain",
                f"certificate {position} ({cert.subject.rfc4514_string()}) is self-signed "
                "but is not the last of the chain",
            )
    if not certs.is_self_signed(root):
        return Check.failed(
            "chain", f"the chain ends in {root.subject.rfc4514_string()}, which is not a self-signed root"
        )
    return Check.passed("chain", f"{len(chain)} certificates link up to the self-signed root")


def _digest_check(target: dict[str, Any] | None, subject: Descriptor) -> Check:
    if target is None:
        return Check.skipped("payload-digest", "the payload names no usable targetArtifact")
    mismatches = []
    if target["digest"] != subject.digest:
        mismatches.append(f"digest {target['digest']} (signed) vs {subject.digest} (artifact)")
    if subject.media_type and target["mediaType"] != subject.media_type:
        mismatches.append(f"mediaType {target['mediaType']} (signed) vs {subject.media_type} (artifact)")
    # A zero size is how callers say "size unknown"; the digest already pins the content.
    if subject.size > 0 and target["size"] != subject.size:
        mismatches.append(f"size {target['size']} (signed) vs {subject.size} (artifact)")
    if mismatches:
        return Check.failed("payload-digest", "signed target differs: " + "; ".join(mismatches))
    return Check.passed("payload-digest", f"signs {subject.digest}")


def _expiry_check(env: _Envelope, now: datetime) -> Check:
    expiry = env.times.get(H_EXPIRY)
    if expiry is None:
        return Check.skipped("expiry", "the signature sets no expiry")
    signed = env.times.get(H_SIGNING_TIME) or env.times.get(H_AUTHENTIC_TIME)
    if signed is not None and expiry <= signed:
        return Check.failed(
            "expiry", f"expiry {expiry.isoformat()} is not after the signing time {signed.isoformat()}"
        )
    if now >= expiry:
        return Check.failed("expiry", f"signature expired on {expiry.isoformat()}")
    return Check.passed("expiry", f"valid until {expiry.isoformat()}")


def _thumbprint_check(ders: list[bytes], annotations: dict[str, str] | None) -> Check:
    if annotations is None:
        return Check.skipped("thumbprints", "no signature manifest annotations to compare with")
    raw = annotations.get(THUMBPRINT_ANNOTATION)
    if raw is None:
        return Check.skipped(
            "thumbprints", f"the signature manifest has no {THUMBPRINT_ANNOTATION} annotation"
        )
    try:
        listed = gojson.read(raw, THUMBPRINT_ANNOTATION)
    except ValueError:
        listed = None
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        return Check.failed("thumbprints", f"{THUMBPRINT_ANNOTATION} is not a JSON array of strings")
    actual = [hashlib.sha256(der).hexdigest() for der in ders]
    if [t.lower() for t in listed] != actual:
        return Check.failed(
            "thumbprints",
            f"the manifest lists {len(listed)} thumbprint(s) that do not match "
            f"the {len(actual)} certificate(s) in the envelope",
        )
    return Check.passed("thumbprints", f"{len(actual)} certificate thumbprint(s) match the manifest")
