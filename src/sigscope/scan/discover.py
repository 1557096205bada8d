"""Every signature on one image, in every format, from whatever the repository offers.

This is the source side of a scan: it fetches (digest-checked) bytes and hands them to the
pure parsers in `sigscope.formats`. It knows the repository's tag list up front, so the
attachment tags (`sha256-<hex>.sig/.att/.sbom`) and the referrers fallback tag tell it where
signatures are without a request per image.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import SigscopeError, TooLargeError
from sigscope.formats import bundle, cosign, notation, simplesigning
from sigscope.model import Attachment, Check, Descriptor, Manifest, Signature, SignatureFormat
from sigscope.oci.layout import OCILayout
from sigscope.oci.store import Repository
from sigscope.sources import lookaside
from sigscope.trust.identity import CertificateTrust

if TYPE_CHECKING:  # trust material types only: their modules load when the material is given
    from sigscope.trust.notation_policy import NotationTrust
    from sigscope.trust.pgp import Keyring
    from sigscope.trust.timestamp import TimestampTrust

MAX_LAYERS = 1000  # cosign's own bound on a .sig manifest
# The referrer walk (subject -> its referrers -> theirs ...): referrers read per subject, and levels
# followed. A signature on an SBOM on an image is 2 levels; a referrers index that listed the image itself
# made the recursive walk go 967 requests deep and end in RecursionError.
MAX_REFERRERS = 1000
MAX_REFERRER_DEPTH = 8
# Signature blobs one image may hold in memory (they stay as evidence): a .sig of 1,000 distinct layers at
# the per-blob limit would otherwise be 4 GB.
MAX_BLOB_BYTES_PER_IMAGE = 64 * 1024 * 1024
MAX_ENVELOPE_SIZE = 32 * 1024 * 1024

COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
INTOTO_ARTIFACT = "application/vnd.in-toto+json"

_FALLBACK_TAG = re.compile(r"^sha256-[0-9a-f]{64}$")


@dataclass(frozen=True)
class TagIndex:
    """What a repository's tag list says before any manifest is fetched."""

    image_tags: list[str]
    attachments: dict[str, set[str]]  # digest -> {"sig", "att", "sbom"}
    fallback: set[str]  # digests with a referrers fallback tag

    @classmethod
    def from_tags(cls, tags: list[str]) -> TagIndex:
        images: list[str] = []
        attachments: dict[str, set[str]] = {}
        fallback: set[str] = set()
        for tag in tags:
            parsed = cosign.parse_attachment_tag(tag)
            if parsed is not None:
                attachments.setdefault(parsed[0], set()).add(parsed[1])
            elif _FALLBACK_TAG.match(tag):
                fallback.add("sha256:" + tag[len("sha256-") :])
            else:
                images.append(tag)
        return cls(images, attachments, fallback)

    @property
    def anything_attached(self) -> bool:
        return bool(self.attachments or self.fallback)


@dataclass
class Discovery:
    signatures: list[Signature] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts of discovery that failed


@dataclass
class DiscoverContext:
    repository: Repository
    repo_name: str  # repository path without host, for lookaside URLs
    registry: str  # host, for registries.d scopes; "" for layouts
    tags: TagIndex
    now: datetime
    lookaside_base: str | None = None
    lookaside_timeout: float = lookaside.DEFAULT_TIMEOUT
    keys: list[PublicKeyTypes] = field(default_factory=list)
    gpg_keyring: Keyring | None = None
    certificates: CertificateTrust | None = None
    notation: NotationTrust | None = None  # --notation-config: trust policy + trust store
    timestamps: TimestampTrust | None = None  # --timestamp-certificate-chain: TSA roots


def _error_signature(fmt: SignatureFormat, subject: str, location: str, message: str) -> Signature:
    return Signature(format=fmt, subject_digest=subject, location=location, error=message).settle()


async def _guard(
    fmt: SignatureFormat, subject: str, location: str, work: Callable[[], Awaitable[list[Signature]]]
) -> list[Signature]:
    """A signature that cannot be fetched is reported, with why, instead of vanishing."""
    try:
        return await work()
    except SigscopeError as exc:
        return [_error_signature(fmt, subject, location, exc.message)]


async def _cosign_tag(ctx: DiscoverContext, subject: str, suffix: str, found: Discovery) -> None:
    tag = cosign.attachment_tag(subject, suffix)
    fmt = {
        "sig": SignatureFormat.COSIGN,
        "att": SignatureFormat.COSIGN_ATTESTATION,
        "sbom": SignatureFormat.COSIGN_SBOM,
    }[suffix]

    async def work() -> list[Signature]:
        manifest = await ctx.repository.get_manifest(tag)
        layers = manifest.layers()
        if len(layers) > MAX_LAYERS:
            return [_error_signature(fmt, subject, f"tag {tag}", f"{len(layers)} layers, over {MAX_LAYERS}")]
        if suffix == "sbom":
            found.attachments.extend(
                Attachment(
                    artifact_type=layer.media_type,
                    digest=layer.digest,
                    location=f"tag {tag}",
                    media_type=layer.media_type,
                    annotations=layer.annotations,
                    signed=False,
                )
                for layer in layers
            )
            return []
        return await _cosign_layers(ctx, subject, tag, layers, suffix)

    found.signatures.extend(await _guard(fmt, subject, f"tag {tag}", work))


async def _cosign_layers(
    ctx: DiscoverContext, subject: str, where: str, layers: list[Descriptor], suffix: str
) -> list[Signature]:
    """One signature per layer, in order; each distinct blob is fetched once.

    cosign appends a layer per signature over the same payload blob, so layers often share a digest.
    Fetched bytes are checked against their digest, so one fetch stands for every layer naming it; the
    size limit is part of the key because it comes from each layer's own (claimed) size.
    """
    fmt = SignatureFormat.COSIGN if suffix == "sig" else SignatureFormat.COSIGN_ATTESTATION
    wanted = list(dict.fromkeys((layer.digest, cosign_blob_limit(layer)) for layer in layers))
    # The bytes read stay as evidence: past the image's total, the remaining blobs are not fetched (those
    # in flight when it is reached may overshoot it by the source's budget of bytes in flight).
    held = 0

    async def fetch(digest: str, limit: int) -> bytes | SigscopeError:
        nonlocal held
        if held >= MAX_BLOB_BYTES_PER_IMAGE:
            return TooLargeError(
                f"signature blobs of this image came to more than {MAX_BLOB_BYTES_PER_IMAGE >> 20} MiB "
                f"in all; blob {digest} not read"
            )
        try:
            blob = await ctx.repository.get_blob(digest, max_size=limit)
        except SigscopeError as exc:
            # kept as data until the layers are parsed: without the frames (and bytes) it was raised in
            return exc.with_traceback(None)
        held += len(blob)
        return blob

    if isinstance(ctx.repository, OCILayout):
        # Local reads do not wait on anything: a task per blob would only add scheduling.
        fetched = [await fetch(digest, limit) for digest, limit in wanted]
    else:
        fetched = list(await asyncio.gather(*(fetch(digest, limit) for digest, limit in wanted)))
    blobs = dict(zip(wanted, fetched, strict=True))
    parse = cosign.parse_signature_layer if suffix == "sig" else cosign.parse_attestation_layer
    signatures = []
    for n, layer in enumerate(layers):
        location = f"{where} layer {n + 1}"
        blob = blobs[(layer.digest, cosign_blob_limit(layer))]
        if isinstance(blob, SigscopeError):
            signatures.append(_error_signature(fmt, subject, location, blob.message))
        else:
            signatures.append(parse(layer, blob, subject_digest=subject, location=location, now=ctx.now))
    return signatures


def cosign_blob_limit(layer: Descriptor) -> int:
    # The descriptor's size is a claim: never read more than it says. A registry refuses a claim over its
    # limit for blobs in memory (--max-blob-size, 4 MiB) before any request; the ceiling here is cosign's
    # and holds for layouts.
    return min(max(layer.size, 0), 128 * 1024 * 1024)


def _envelope_limit(layer: Descriptor) -> int:
    # notation's and Sigstore's envelopes: their claim, within notation-go's 32 MiB
    return min(max(layer.size, 0), MAX_ENVELOPE_SIZE)


def _subject_check(manifest: Manifest, subject: str) -> Check:
    """A referrer listed for an image must name that image as its subject."""
    try:
        named = manifest.subject()
    except SigscopeError as exc:
        return Check.failed("subject", exc.message)
    if named is None:
        return Check.failed("subject", "referrer manifest has no subject")
    if named.digest != subject:
        return Check.failed("subject", f"referrer names subject {named.digest}, listed for {subject}")
    return Check.passed("subject", "referrer names this image")


async def _referrer(
    ctx: DiscoverContext, subject: Descriptor, descriptor: Descriptor, found: Discovery
) -> Attachment | None:
    """One referrer of `subject`: its signatures go into `found`; anything else becomes an attachment,
    returned so that the walk can look for what signs it."""
    location = f"referrer {descriptor.digest}"
    artifact_type = descriptor.artifact_type or ""
    if notation.is_signature_artifact(artifact_type):
        fmt = SignatureFormat.NOTATION_JWS
    elif bundle.is_bundle_media_type(artifact_type):
        fmt = SignatureFormat.SIGSTORE_BUNDLE
    elif artifact_type == COSIGN_SIG_ARTIFACT:
        fmt = SignatureFormat.COSIGN
    elif artifact_type == INTOTO_ARTIFACT:
        fmt = SignatureFormat.COSIGN_ATTESTATION
    else:
        attachment = Attachment(
            artifact_type=descriptor.artifact_type or descriptor.media_type,
            digest=descriptor.digest,
            location=location,
            media_type=descriptor.media_type,
            annotations=descriptor.annotations,
        )
        found.attachments.append(attachment)
        return attachment

    async def work() -> list[Signature]:
        manifest = await ctx.repository.get_manifest(descriptor.digest)
        subject_check = _subject_check(manifest, subject.digest)
        signatures = await _referrer_signatures(ctx, subject, manifest, fmt, location)
        for signature in signatures:
            signature.checks.insert(0, subject_check)
            signature.settle()
        return signatures

    found.signatures.extend(await _guard(fmt, subject.digest, location, work))
    return None


async def _referrer_signatures(
    ctx: DiscoverContext, subject: Descriptor, manifest: Manifest, fmt: SignatureFormat, location: str
) -> list[Signature]:
    if fmt is SignatureFormat.NOTATION_JWS:
        try:
            layer = notation.envelope_layer(manifest)
        except ValueError as exc:
            return [_error_signature(fmt, subject.digest, location, str(exc))]
        blob = await ctx.repository.get_blob(layer.digest, max_size=_envelope_limit(layer))
        return [
            notation.parse_envelope(
                blob,
                layer.media_type,
                subject=subject,
                location=location,
                now=ctx.now,
                manifest_annotations=manifest.annotations(),
            )
        ]
    layers = manifest.layers()
    if fmt is SignatureFormat.SIGSTORE_BUNDLE:
        bundles = [layer for layer in layers if bundle.is_bundle_media_type(layer.media_type)]
        if len(bundles) != 1:
            return [
                _error_signature(
                    fmt, subject.digest, location, f"expected one bundle layer, found {len(bundles)}"
                )
            ]
        blob = await ctx.repository.get_blob(bundles[0].digest, max_size=_envelope_limit(bundles[0]))
        return [bundle.parse_bundle(blob, subject_digest=subject.digest, location=location, now=ctx.now)]
    suffix = "sig" if fmt is SignatureFormat.COSIGN else "att"
    return await _cosign_layers(ctx, subject.digest, location, layers[:MAX_LAYERS], suffix)


async def _lookaside(ctx: DiscoverContext, subject: str, found: Discovery) -> None:
    base = ctx.lookaside_base
    if not base:
        return

    async def work() -> list[Signature]:
        blobs = await lookaside.read_signatures(base, ctx.repo_name, subject, timeout=ctx.lookaside_timeout)
        return [
            simplesigning.parse_signature(
                blob, subject_digest=subject, location=f"lookaside {url}", now=ctx.now
            )
            for url, blob in blobs
        ]

    found.signatures.extend(await _guard(SignatureFormat.SIMPLE_SIGNING, subject, f"lookaside {base}", work))


@dataclass
class _Subject:
    """One node of the referrer walk: `descriptor` at `depth` (1: the image's own referrers), whose
    signatures belong to `owner` (None: the image)."""

    descriptor: Descriptor
    depth: int
    owner: Attachment | None


async def _walk_referrers(ctx: DiscoverContext, image: Descriptor, found: Discovery) -> None:
    """The image's referrers, then theirs, level by level: iterative, each digest read once (a referrers
    index that lists an image itself, or two that list each other, end here), at most MAX_REFERRERS per
    subject and MAX_REFERRER_DEPTH levels, each limit reached said in `found.problems`.

    Signatures sign the subject they were listed for (the image, or an attachment); attachments of
    attachments are reported beside the image's own."""
    visited = {image.digest}
    level = [_Subject(image, 1, None)]
    while level:
        following: list[_Subject] = []

        async def visit(node: _Subject, following: list[_Subject] = following) -> None:
            digest = node.descriptor.digest
            try:
                listed = await ctx.repository.discover_referrers(
                    digest, fallback_tag_listed=digest in ctx.tags.fallback
                )
            except SigscopeError as exc:
                # Not a signature of any format: the listing itself failed. Say so beside what was found.
                found.problems.append(f"referrers of {digest}: {exc.message}")
                return
            if not listed:
                return
            if node.depth > MAX_REFERRER_DEPTH:
                found.problems.append(
                    f"referrers of {digest}: the referrer chain goes deeper than {MAX_REFERRER_DEPTH} "
                    "levels; not followed further"
                )
                return
            if len(listed) > MAX_REFERRERS:
                found.problems.append(
                    f"referrers of {digest}: {len(listed)} referrers listed, "
                    f"only the first {MAX_REFERRERS} read"
                )
                listed = listed[:MAX_REFERRERS]
            fresh = []
            for descriptor in listed:
                if descriptor.digest in visited:
                    found.problems.append(
                        f"referrers of {digest}: {descriptor.digest} already visited (a referrer cycle); "
                        "not read again"
                    )
                else:
                    visited.add(descriptor.digest)
                    fresh.append(descriptor)
            holder = found if node.owner is None else Discovery()
            attached = await asyncio.gather(*(_referrer(ctx, node.descriptor, d, holder) for d in fresh))
            if node.owner is not None:
                node.owner.signatures.extend(holder.signatures)
                node.owner.signed = bool(node.owner.signatures)
                found.attachments.extend(holder.attachments)
            following.extend(
                _Subject(d, node.depth + 1, a) for d, a in zip(fresh, attached, strict=True) if a is not None
            )

        await asyncio.gather(*(visit(node) for node in level))
        level = following


async def discover(ctx: DiscoverContext, subject: Descriptor) -> Discovery:
    """All signatures and attachments of one image (manifest or index) by digest."""
    found = Discovery()
    tasks: list[Awaitable[None]] = [
        _cosign_tag(ctx, subject.digest, suffix, found)
        for suffix in sorted(ctx.tags.attachments.get(subject.digest, ()))
    ]

    tasks.append(_walk_referrers(ctx, subject, found))
    tasks.append(_lookaside(ctx, subject.digest, found))
    await asyncio.gather(*tasks)
    found.signatures.sort(key=_report_order)
    return found


_NUMBER = re.compile(r"(\d+)")


def _report_order(signature: Signature) -> tuple[str, list[tuple[int, str]], str]:
    """Format, then location with its numbers compared as numbers: layer 2 before layer 10, as the
    manifest lists them (each part is (number, "") or (-1, text), so parts of either kind compare;
    the location itself breaks ties such as "01" and "1")."""
    location = signature.location
    parts = _NUMBER.split(location)
    return (
        str(signature.format),
        [(int(p), "") if n % 2 else (-1, p) for n, p in enumerate(parts)],
        location,
    )
