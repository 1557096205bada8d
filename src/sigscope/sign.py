"""Sign images in cosign's legacy format: a simple-signing payload layer on the ``sha256-<hex>.sig`` tag.

The flow (FORMATS §1.1 to 1.4): resolve the reference to a manifest digest (tags are never signed), build the
payload naming that digest, sign it with a :class:`~sigscope.keys.Signer`, then read-modify-write the
``.sig`` manifest: existing layers are kept as they are, one layer is appended (unless an identical signature
is already there), the config blob is rebuilt for N layers exactly as go-containerregistry writes it, and
blobs plus manifest are put through the :class:`~sigscope.oci.store.Repository` interface (registry or OCI
layout alike).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import IntegrityError, NotFoundError, UsageError
from sigscope.formats import bundle, dsse
from sigscope.formats.cosign import (
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIGNATURE_TAG_SUFFIX,
    SIMPLESIGNING_MEDIA_TYPE,
    TIMESTAMP_ANNOTATION,
    attachment_tag,
    timestamp_annotation,
)
from sigscope.formats.gojson import go_json as go_json  # re-exported: sigscope.sign.go_json
from sigscope.keys import Signer
from sigscope.model import Manifest
from sigscope.oci import digest as digests
from sigscope.oci import mediatypes
from sigscope.oci.reference import DOCKER_HUB, ImageReference, LayoutReference
from sigscope.oci.store import Repository
from sigscope.trust import certs

PAYLOAD_TYPE = "cosign container image signature"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_LAYERS = 1000  # cosign refuses to grow a .sig manifest beyond this
LEGACY_DOCKER_HUB = "index.docker.io"
# --registry-referrers-mode: the `.sig`/`.att` tags, or Sigstore bundle v0.3 referrers (OCI 1.1).
REFERRERS_LEGACY = "legacy"
REFERRERS_OCI_1_1 = "oci-1-1"
REFERRERS_MODES = (REFERRERS_LEGACY, REFERRERS_OCI_1_1)


def parse_annotations(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`-a key=value` flags → a dict (later repeats win, as in cosign); bad syntax is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"annotation {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def docker_identity(parsed: ImageReference | LayoutReference) -> str:
    """`docker-reference` as cosign writes it: the repository without tag or digest, Docker Hub spelled
    `index.docker.io` (ggcr's name); for an OCI layout, `oci:PATH`."""
    if isinstance(parsed, LayoutReference):
        return f"oci:{parsed.path}"
    registry = LEGACY_DOCKER_HUB if parsed.registry == DOCKER_HUB else parsed.registry
    return f"{registry}/{parsed.repository}"


def build_payload(identity: str, digest: str, optional: dict[str, str] | None = None) -> bytes:
    """The cosign simple-signing payload, byte for byte (FORMATS §1.4)."""
    digests.parse(digest)
    payload = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": {k: optional[k] for k in sorted(optional)} if optional else None,
    }
    return go_json(payload)


def config_blob(diff_ids: list[str]) -> bytes:
    """The config go-containerregistry writes for an empty image with N appended layers (FORMATS §1.2)."""
    config = {
        "architecture": "",
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in diff_ids],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "config": {},
    }
    return go_json(config)


def _der_spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def check_certificate(certificate_pem: bytes, public_key: PublicKeyTypes) -> x509.Certificate:
    """The leaf of `certificate_pem`; a usage error unless it certifies `public_key`."""
    try:
        loaded = certs.load_pem_chain(certificate_pem)
    except certs.CertificateError as exc:
        raise UsageError(f"certificate: {exc}") from None
    if not loaded:
        raise UsageError("certificate: no PEM CERTIFICATE block found")
    leaf = loaded[0]
    try:
        cert_key = leaf.public_key()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"certificate public key unreadable: {exc}") from None
    if _der_spki(cert_key) != _der_spki(public_key):
        raise UsageError(
            f"the certificate's public key (sha256:{certs.spki_sha256(cert_key)[:16]}…) "
            f"does not match the signing key (sha256:{certs.spki_sha256(public_key)[:16]}…)"
        )
    return leaf


@dataclass(frozen=True)
class SignOptions:
    """What goes into every signature of one `sign` run."""

    annotations: dict[str, str] = field(default_factory=dict)
    certificate: str | None = None  # PEM leaf (checked against the key by the caller)
    chain: str | None = None  # PEM intermediates…root
    recursive: bool = False
    identity: str | None = None  # overrides the default docker-reference
    referrers_mode: str = REFERRERS_LEGACY
    now: datetime | None = None  # creation time for referrer annotations (default: the clock)
    timestamp_url: str | None = None  # RFC 3161 TSA for each signature (cosign --timestamp-server-url)
    timestamp_timeout: float = 30.0


@dataclass(frozen=True)
class SignResult:
    """One signed manifest digest."""

    digest: str
    tag: str
    payload: bytes
    signature: bytes
    appended: bool  # False: an identical signature was already there
    layers: int  # layers of the .sig manifest afterwards
    manifest_digest: str  # digest of the .sig manifest (the referrer manifest in oci-1-1 mode)
    referrer: bool = False  # written as a Sigstore bundle referrer, not on the .sig tag
    timestamp: datetime | None = None  # genTime of the RFC 3161 timestamp attached, if any

    def to_json(self) -> dict[str, Any]:
        if self.referrer:
            return {
                "digest": self.digest,
                "mode": REFERRERS_OCI_1_1,
                "referrer": self.manifest_digest,
                "signature": base64.b64encode(self.signature).decode(),
            }
        out: dict[str, Any] = {
            "digest": self.digest,
            "signatureTag": self.tag,
            "signatureManifest": self.manifest_digest,
            "layers": self.layers,
            "appended": self.appended,
            "signature": base64.b64encode(self.signature).decode(),
        }
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp.isoformat()
        return out


def layer_annotations(
    signature: bytes, options: SignOptions, timestamp: bytes | None = None
) -> dict[str, str]:
    """The per-layer annotations (Go map: sorted keys); a certificate always comes with a chain entry;
    `timestamp` is a DER TimeStampResp over the raw signature bytes (FORMATS §1.7)."""
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    if options.certificate is not None:
        annotations[CERTIFICATE_ANNOTATION] = options.certificate
        annotations[CHAIN_ANNOTATION] = options.chain or ""
    if timestamp is not None:
        annotations[TIMESTAMP_ANNOTATION] = timestamp_annotation(timestamp)
    return {k: annotations[k] for k in sorted(annotations)}


def _existing_layers(manifest: Manifest | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if manifest is None:
        return {}, []
    data = manifest.json()
    layers = data.get("layers") or []
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise IntegrityError(f"signature manifest {manifest.digest} has a malformed layers list")
    return data, list(layers)


def _duplicate(
    layers: list[dict[str, Any]], payload: bytes, public_key: PublicKeyTypes, options: SignOptions
) -> bytes | None:
    """The signature of an existing layer with our payload that verifies with our key, if any."""
    payload_digest = digests.of(payload)
    for layer in layers:
        if layer.get("digest") != payload_digest or layer.get("mediaType") != SIMPLESIGNING_MEDIA_TYPE:
            continue
        annotations = layer.get("annotations") or {}
        if not isinstance(annotations, dict):
            continue
        if annotations.get(CERTIFICATE_ANNOTATION) != options.certificate:
            continue
        try:
            signature = base64.b64decode(str(annotations.get(SIGNATURE_ANNOTATION, "")), validate=True)
        except ValueError:
            continue
        if signature and certs.verify_with_key(public_key, signature, payload):
            return signature
    return None


def assemble_manifest(existing: dict[str, Any], layers: list[dict[str, Any]]) -> tuple[bytes, bytes, str]:
    """(manifest bytes, config bytes, manifest media type) of a `.sig` manifest holding `layers`.

    OCI media types unless the existing manifest used Docker's (COSIGN_DOCKER_MEDIA_TYPES); top-level
    annotations and subject of an existing manifest survive. ggcr field order throughout.
    """
    media_type = str(existing.get("mediaType") or mediatypes.OCI_MANIFEST)
    if media_type not in (mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST):
        media_type = mediatypes.OCI_MANIFEST
    config_type = DOCKER_CONFIG if media_type == mediatypes.DOCKER_MANIFEST else OCI_CONFIG
    config = config_blob([str(layer["digest"]) for layer in layers])
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": digests.of(config)},
        "layers": layers,
    }
    if existing.get("annotations"):
        manifest["annotations"] = existing["annotations"]
    if existing.get("subject"):
        manifest["subject"] = existing["subject"]
    return go_json(manifest), config, media_type


async def _get_optional(repository: Repository, reference: str) -> Manifest | None:
    try:
        manifest: Manifest = await repository.get_manifest(reference)
    except NotFoundError:
        return None
    return manifest


def _certificates(options: SignOptions) -> list[x509.Certificate] | None:
    if options.certificate is None:
        return None
    try:
        return certs.load_pem_chain(options.certificate + (options.chain or ""))
    except certs.CertificateError as exc:
        raise UsageError(f"certificate: {exc}") from None


async def push_bundle_referrer(
    repository: Repository, digest: str, blob: bytes, annotations: dict[str, str]
) -> str:
    """Push a bundle and its referrer manifest for `digest` (referrers API, else the fallback tag index,
    whose existing entries are kept); returns the referrer manifest's digest."""
    subject = await repository.get_manifest(digest)
    manifest = bundle.referrer_manifest(blob, subject.media_type, digest, len(subject.raw), annotations)
    await repository.put_blob(blob, bundle.BUNDLE_MEDIA_TYPE_V03)
    await repository.put_blob(bundle.EMPTY_CONFIG, mediatypes.OCI_EMPTY)
    descriptor = await repository.push_referrer(manifest, mediatypes.OCI_MANIFEST)
    return descriptor.digest


async def sign_digest_referrer(
    repository: Repository, digest: str, signer: Signer, options: SignOptions
) -> SignResult:
    """oci-1-1 mode: the bundle cosign v3 `sign` writes. A v0.3 bundle holding a DSSE envelope (payloadType
    application/vnd.in-toto+json, signed over the PAE) whose in-toto statement names `digest` under predicate
    https://sigstore.dev/cosign/sign/v1, `-a` annotations on that subject; pushed as an OCI 1.1 referrer of
    `digest` with cosign's manifest annotations (content dsse-envelope, the predicate type, the time)."""
    statement = bundle.cosign_sign_statement(digest, options.annotations or None)
    envelope = dsse.build_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement, signer.sign)
    blob = bundle.build_dsse_bundle(envelope, signer.public_key(), certificates=_certificates(options))
    created = options.now or datetime.now(UTC)
    annotations = bundle.referrer_annotations(
        bundle.CONTENT_DSSE_ENVELOPE, created, bundle.COSIGN_SIGN_PREDICATE
    )
    referrer = await push_bundle_referrer(repository, digest, blob, annotations)
    signature = envelope.signatures[0][1]
    return SignResult(digest, f"referrer {referrer}", statement, signature, True, 1, referrer, referrer=True)


async def sign_digest(
    repository: Repository, digest: str, identity: str, signer: Signer, options: SignOptions
) -> SignResult:
    """Sign one manifest digest and append the signature layer to its `.sig` manifest."""
    if options.referrers_mode == REFERRERS_OCI_1_1:
        return await sign_digest_referrer(repository, digest, signer, options)
    tag = attachment_tag(digest, SIGNATURE_TAG_SUFFIX)
    payload = build_payload(identity, digest, options.annotations or None)
    current = await _get_optional(repository, tag)
    existing, layers = _existing_layers(current)
    public_key = signer.public_key()
    duplicate = _duplicate(layers, payload, public_key, options)
    if duplicate is not None and current is not None:
        return SignResult(digest, tag, payload, duplicate, False, len(layers), current.digest)
    if len(layers) >= MAX_LAYERS:
        raise UsageError(f"{tag} already holds {len(layers)} signatures (cosign's limit is {MAX_LAYERS})")
    signature = signer.sign(payload)
    stamp = None
    if options.timestamp_url is not None:
        from sigscope.sources.tsa import fetch_timestamp

        # cosign time-stamps the raw signature bytes, before the layer exists (FORMATS §1.7).
        stamp = await fetch_timestamp(options.timestamp_url, signature, timeout=options.timestamp_timeout)
    layers.append(
        {
            "mediaType": SIMPLESIGNING_MEDIA_TYPE,
            "size": len(payload),
            "digest": digests.of(payload),
            "annotations": layer_annotations(signature, options, stamp.response if stamp else None),
        }
    )
    manifest, config, media_type = assemble_manifest(existing, layers)
    await repository.put_blob(payload, SIMPLESIGNING_MEDIA_TYPE)
    await repository.put_blob(config, OCI_CONFIG)
    descriptor = await repository.put_manifest(manifest, media_type, tag)
    return SignResult(
        digest,
        tag,
        payload,
        signature,
        True,
        len(layers),
        descriptor.digest,
        timestamp=stamp.token.gen_time if stamp else None,
    )


async def sign_image(
    repository: Repository, reference: str, identity: str, signer: Signer, options: SignOptions
) -> list[SignResult]:
    """Resolve `reference` and sign its digest; with `options.recursive`, also every child of an index.

    The first result is the top-level digest.
    """
    descriptor = await repository.resolve(reference)
    results = [await sign_digest(repository, descriptor.digest, identity, signer, options)]
    if options.recursive and mediatypes.is_index(descriptor.media_type):
        index: Manifest = await repository.get_manifest(descriptor.digest)
        for child in index.children():
            results.append(await sign_digest(repository, child.digest, identity, signer, options))
    return results
