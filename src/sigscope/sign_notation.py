"""Sign images as `notation sign` does: JWS or COSE envelope, signature manifest, OCI 1.1 referrer.

The flow (FORMATS §2): the reference is resolved to its manifest (never a tag), the payload names that
manifest's descriptor (plus `-m` user metadata), the signing material is checked as notation-go checks it
before signing (the key is the leaf's, the chain meets the Notary certificate requirements at the signing
time, the key size has an algorithm), the envelope is signed, optionally countersigned by an RFC 3161 TSA
(imprint = the primitive signature bytes, hashed like the signature) whose token must verify against the
roots the user names, and the signature manifest is pushed as an OCI 1.1 referrer of the image: through the
referrers API where the registry has it, else by amending the `sha256-<hex>` fallback index (entries already
there are kept), and the same for `oci:` layouts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope import __version__
from sigscope.errors import IntegrityError, SigscopeError, UsageError
from sigscope.formats import notation_build as build
from sigscope.formats.notation import COSE_MEDIA_TYPE, SCHEME_SIGNING_AUTHORITY, SCHEME_X509
from sigscope.keys import HashSigner
from sigscope.model import Descriptor
from sigscope.oci import mediatypes
from sigscope.oci.store import Repository
from sigscope.trust import certs, notary_certs

DEFAULT_SIGNING_AGENT = f"sigscope/{__version__}"
# RFC 3628 baseline policy: a token without an explicit accuracy is good to one second (notation-core-go).
_BASELINE_POLICY = "0.4.0.2023.1.1"
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


class NotationSignError(UsageError):
    """Signing material notation refuses (key/certificate mismatch, broken chain requirements)."""


class TimestampVerifyError(SigscopeError):
    """The TSA's token does not verify against the --timestamp-root certificates."""


def parse_duration(text: str) -> timedelta:
    """A Go duration (`24h`, `1h30m`, `90s`; notation's --expiry) or days (`7d`); positive only."""
    value = text.strip()
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not value or position != len(value):
        raise UsageError(f"duration {text!r} is not like 24h, 30m, 1h30m or 7d")
    if seconds < 1:
        raise UsageError(f"duration {text!r} must be at least one second")
    return timedelta(seconds=seconds)


def parse_user_metadata(items: Sequence[str]) -> dict[str, str]:
    """`-m key=value` flags; notation refuses duplicates and keys under `io.cncf.notary`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"user metadata {item!r} is not KEY=VALUE")
        if key in out:
            raise UsageError(f"user metadata key {key!r} is given twice")
        out[key] = value
    build.check_user_metadata(out)
    return out


def _spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def check_signing_material(
    public_key: PublicKeyTypes, chain: Sequence[x509.Certificate], signing_time: datetime
) -> str:
    """The envelope algorithm for `chain[0]`, after the checks notation-go makes before it signs; raises
    NotationSignError naming the first problem."""
    if not chain:
        raise NotationSignError(
            "the certificate chain is empty (--cert needs the leaf, any intermediates and the root)"
        )
    leaf = chain[0]
    try:
        leaf_key = leaf.public_key()
    except (ValueError, TypeError) as exc:
        raise NotationSignError(f"the signing certificate's public key is unreadable: {exc}") from None
    if _spki(leaf_key) != _spki(public_key):
        raise NotationSignError(
            f"the signing key (sha256:{certs.spki_sha256(public_key)[:16]}…) does not match the certificate "
            f"{leaf.subject.rfc4514_string()} (sha256:{certs.spki_sha256(leaf_key)[:16]}…)"
        )
    alg = build.algorithm_for(leaf_key)
    try:
        notary_certs.validate_code_signing_chain(chain, signing_time)
    except notary_certs.CertRequirementError as exc:
        raise NotationSignError(
            f"the certificate chain does not meet the Notary Project requirements: {exc}"
        ) from None
    return alg


def envelope_signature(signer: HashSigner, prepared: build.PreparedEnvelope) -> bytes:
    """The primitive signature over `prepared.signing_input`: RSASSA-PSS (salt = hash length) or raw r‖s."""
    signature = signer.sign_with(prepared.signing_input, prepared.hash, pss=build.is_pss(prepared.alg))
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return build.raw_ecdsa(signature, key)
    return signature


@dataclass(frozen=True)
class NotationSignOptions:
    """What goes into one `sign --format notation[-cose]` run."""

    chain: tuple[x509.Certificate, ...]  # leaf first, root last
    envelope: str = build.ENVELOPE_JWS
    signing_scheme: str = SCHEME_X509
    expiry: timedelta | None = None
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    timestamp_url: str | None = None
    timestamp_roots: tuple[x509.Certificate, ...] = ()
    timestamp_timeout: float = 30.0
    signing_agent: str = DEFAULT_SIGNING_AGENT
    now: datetime | None = None  # the signing time (default: the clock), truncated to seconds

    def checked(self) -> NotationSignOptions:
        if self.envelope not in build.ENVELOPE_MEDIA_TYPES:
            raise UsageError(f"unknown envelope format {self.envelope!r}")
        if self.signing_scheme not in build.SCHEMES:
            raise UsageError(f"--signing-scheme must be {SCHEME_X509} or {SCHEME_SIGNING_AUTHORITY}")
        if self.timestamp_url is not None:
            if self.signing_scheme != SCHEME_X509:
                # The spec defines countersignatures for notary.x509 only; signingAuthority is its own time.
                raise UsageError(f"--timestamp-url goes with --signing-scheme {SCHEME_X509} only")
            if not self.timestamp_roots:
                raise UsageError("--timestamp-url needs --timestamp-root (the TSA's root certificate)")
        build.check_user_metadata(self.user_metadata)
        return self


@dataclass(frozen=True)
class SignedEnvelope:
    """An envelope made for one target, before it is stored anywhere."""

    envelope: bytes
    media_type: str
    alg: str
    signature: bytes
    signing_time: datetime
    expiry: datetime | None
    chain: tuple[bytes, ...]
    timestamp: datetime | None = None


@dataclass(frozen=True)
class NotationSignResult:
    """One signature pushed as a referrer."""

    digest: str
    signature_manifest: str
    envelope: SignedEnvelope

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "format": "notation-cose" if self.envelope.media_type == COSE_MEDIA_TYPE else "notation-jws",
            "signatureManifest": self.signature_manifest,
            "envelopeMediaType": self.envelope.media_type,
            "alg": self.envelope.alg,
            "signingTime": self.envelope.signing_time.isoformat(),
            "thumbprints": build.thumbprints(self.envelope.chain),
        }
        if self.envelope.expiry is not None:
            out["expiry"] = self.envelope.expiry.isoformat()
        if self.envelope.timestamp is not None:
            out["timestamp"] = self.envelope.timestamp.isoformat()
        return out


def prepare_envelope(
    signer: HashSigner, target: Descriptor, options: NotationSignOptions
) -> tuple[build.PreparedEnvelope, bytes, build.SignRequest]:
    """Check the material, build and sign the envelope for `target` (pure but for the key)."""
    options = options.checked()
    signing_time = signing_time_of(options)
    alg = check_signing_material(signer.public_key(), options.chain, signing_time)
    request = sign_request(target, options, signing_time)
    prepared = build.prepare(options.envelope, request, alg, [_der(c) for c in options.chain])
    return prepared, envelope_signature(signer, prepared), request


def signing_time_of(options: NotationSignOptions) -> datetime:
    """The signing time: `options.now` or the clock, in UTC, truncated to seconds."""
    signing_time = (options.now or datetime.now(UTC)).replace(microsecond=0)
    if signing_time.tzinfo is None:
        signing_time = signing_time.replace(tzinfo=UTC)
    return signing_time


def sign_request(
    target: Descriptor, options: NotationSignOptions, signing_time: datetime
) -> build.SignRequest:
    """What the envelope for `target` signs."""
    return build.SignRequest(
        payload=build.build_payload(target, options.user_metadata),
        signing_time=signing_time,
        signing_scheme=options.signing_scheme,
        expiry=signing_time + options.expiry if options.expiry is not None else None,
        signing_agent=options.signing_agent,
    ).checked()


def check_timestamp_token(
    token_der: bytes,
    signature: bytes,
    roots: Sequence[x509.Certificate],
    signing_chain: Sequence[x509.Certificate],
) -> datetime:
    """What notation-go checks of a fresh countersignature before embedding it: the token covers the
    signature, chains to `roots` with a timeStamping TSA that meets the Notary timestamping requirements,
    and its time range lies within every signing certificate's validity. Returns genTime."""
    from sigscope.trust import timestamp as rfc3161

    try:
        token = rfc3161.parse_token(token_der)
    except rfc3161.TimestampError as exc:
        raise TimestampVerifyError(f"the TSA's timestamp token is malformed: {exc.message}") from None
    result = rfc3161.verify_timestamp(token, signature, roots)
    if not result.ok:
        raise TimestampVerifyError(
            f"the TSA's timestamp does not verify against --timestamp-root: {result.detail}"
        )
    try:
        notary_certs.validate_timestamping_chain(list(result.chain))
    except notary_certs.CertRequirementError as exc:
        raise TimestampVerifyError(f"the TSA's certificate chain: {exc}") from None
    accuracy = token.accuracy
    if accuracy is None:
        accuracy = timedelta(seconds=1) if token.policy == _BASELINE_POLICY else timedelta(0)
    start, end = token.gen_time - accuracy, token.gen_time + accuracy
    for cert in signing_chain:
        if start < cert.not_valid_before_utc or end > cert.not_valid_after_utc:
            raise TimestampVerifyError(
                f"the timestamp [{start.isoformat()}, {end.isoformat()}] is outside the validity of "
                f"{cert.subject.rfc4514_string()} ({cert.not_valid_before_utc.isoformat()} to "
                f"{cert.not_valid_after_utc.isoformat()})"
            )
    return token.gen_time


async def make_envelope(
    signer: HashSigner, target: Descriptor, options: NotationSignOptions
) -> SignedEnvelope:
    """The signed (and optionally time-stamped) envelope for `target`."""
    prepared, signature, request = prepare_envelope(signer, target, options)
    return await seal_envelope(prepared, signature, request, options)


async def seal_envelope(
    prepared: build.PreparedEnvelope,
    signature: bytes,
    request: build.SignRequest,
    options: NotationSignOptions,
) -> SignedEnvelope:
    """The envelope around a checked `signature` (time-stamped when `options` name a TSA); `options.chain`
    is the chain the envelope carries."""
    token: bytes | None = None
    stamped: datetime | None = None
    if options.timestamp_url is not None:
        from sigscope.sources.tsa import fetch_timestamp

        stamp = await fetch_timestamp(
            options.timestamp_url,
            signature,
            hash_algorithm=prepared.hash.name,
            timeout=options.timestamp_timeout,
        )
        # The envelope carries the TimeStampToken, not the TimeStampResp around it (FORMATS §2.10).
        token = stamp.token.der
        stamped = check_timestamp_token(token, signature, options.timestamp_roots, options.chain)
    return SignedEnvelope(
        envelope=prepared.assemble(signature, token),
        media_type=prepared.media_type,
        alg=prepared.alg,
        signature=signature,
        signing_time=request.signing_time,
        expiry=request.expiry,
        chain=prepared.chain,
        timestamp=stamped,
    )


async def push_signature(repository: Repository, target: Descriptor, signed: SignedEnvelope) -> str:
    """Store the envelope and its signature manifest as a referrer of `target`; the manifest's digest."""
    manifest = build.signature_manifest(
        signed.envelope, signed.media_type, target, signed.chain, signed.signing_time
    )
    await repository.put_blob(signed.envelope, signed.media_type)
    await repository.put_blob(mediatypes.EMPTY_JSON, mediatypes.OCI_EMPTY)
    descriptor = await repository.push_referrer(manifest, mediatypes.OCI_MANIFEST)
    return descriptor.digest


async def resolve_target(repository: Repository, reference: str) -> Descriptor:
    """The manifest descriptor a signature names: media type, digest and size of the bytes as stored."""
    resolved = await repository.resolve(reference)
    manifest = await repository.get_manifest(resolved.digest)
    if not manifest.media_type:
        raise IntegrityError(f"manifest {resolved.digest} has no media type")
    return Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw))


async def sign_notation(
    repository: Repository, reference: str, signer: HashSigner, options: NotationSignOptions
) -> NotationSignResult:
    """Resolve `reference`, sign its manifest descriptor and push the signature as a referrer."""
    return await sign_notation_with(
        repository, reference, lambda target: make_envelope(signer, target, options)
    )


async def sign_notation_with(
    repository: Repository, reference: str, make: Callable[[Descriptor], Awaitable[SignedEnvelope]]
) -> NotationSignResult:
    """Resolve `reference`, have `make` sign its manifest descriptor and push the signature as a referrer."""
    target = await resolve_target(repository, reference)
    signed = await make(target)
    digest = await push_signature(repository, target, signed)
    return NotationSignResult(target.digest, digest, signed)
