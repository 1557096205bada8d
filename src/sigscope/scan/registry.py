"""The registry crawl: catalog → repositories → tags → digests → signatures, concurrently, streamed.

Results are yielded as each image completes, so a report can print NDJSON while the crawl
goes on and memory does not grow with the number of tags. One broken image (or repository)
becomes a result with an error; only a failure to read the catalog itself ends a scan.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import NotFoundError, SigscopeError
from sigscope.model import Attachment, Descriptor, Signature, Status
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryRepository
from sigscope.oci.paging import PaginationError
from sigscope.oci.reference import name_problem
from sigscope.oci.store import Repository
from sigscope.scan import usable_cpus
from sigscope.scan.discover import DiscoverContext, TagIndex, discover
from sigscope.scan.incremental import ListingCache, Recalled, ReuseSource, signature_set
from sigscope.scan.shard import in_shard
from sigscope.sources.lookaside import RegistriesD
from sigscope.trust.apply import TrustSet, apply_trust
from sigscope.trust.identity import CertificateTrust
from sigscope.trust.keys import judge_ahead

if TYPE_CHECKING:  # trust material types only: their modules load when the material is given
    from sigscope.policy import Decision, LoadedPolicy
    from sigscope.policy.document import Rule
    from sigscope.trust.notation_policy import NotationTrust
    from sigscope.trust.pgp import Keyring
    from sigscope.trust.timestamp import TimestampTrust


@dataclass
class ImageResult:
    """One image (manifest or index, by digest) with every tag that names it and what signs it."""

    source: str  # registry host, or "oci:PATH"
    repository: str
    digest: str
    media_type: str = ""
    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    parent: str | None = None  # the index a platform manifest belongs to
    signatures: list[Signature] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    error: str | None = None  # the image itself could not be read
    problems: list[str] = field(default_factory=list)  # part of its discovery failed; the rest is reported
    sigset: str | None = None  # its signature set's fingerprint, when the scan keeps an inventory
    evidence_id: int | None = None  # set: reported from an earlier run's result (incremental re-scan)
    decision: Decision | None = None  # with --policy: what admission would decide (the worst over its tags)
    discovered: bool = True  # False: the policy decided without looking for signatures (static, exempt, …)

    @property
    def path(self) -> str:
        """`repo:tag` as sigscan prints it; `repo@digest` for untagged platform manifests."""
        name = self.repository or self.source
        if self.tags:
            return f"{name}:{self.tags[0]}"
        return f"{name}@{self.digest}" if self.digest else name

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    def statuses(self) -> set[Status]:
        return {s.status for s in self.signatures}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "source": self.source,
            "repository": self.repository,
            "tags": self.tags,
            "digest": self.digest,
            "mediaType": self.media_type,
            "signed": self.signed,
            "signatureCount": len(self.signatures),
        }
        if self.platform:
            out["platform"] = self.platform
        if self.parent:
            out["parent"] = self.parent
        if self.attachments:
            out["attachments"] = [a.to_json() for a in self.attachments]
        if self.error:
            out["error"] = self.error
        if self.problems:
            out["problems"] = self.problems
        if not self.discovered:
            out["discovered"] = False
        if self.decision is not None:
            out["decision"] = self.decision.to_json()
        return out


@dataclass
class ScanOptions:
    now: datetime
    repo_patterns: list[str] = field(default_factory=list)
    platforms: bool = False
    registries_d: RegistriesD | None = None
    repo_concurrency: int = 8
    keys: list[PublicKeyTypes] = field(default_factory=list)  # --key: trusted cosign public keys
    gpg_keyring: Keyring | None = None  # --gpg-keyring: trusted OpenPGP keys for simple signatures
    certificates: CertificateTrust | None = None  # --ca-roots/--trusted-root + --certificate-identity…
    notation: NotationTrust | None = None  # --notation-config: notation trust policy + trust store
    timestamps: TimestampTrust | None = None  # --timestamp-certificate-chain: TSA roots for RFC 3161
    lookaside_timeout: float = 30.0  # --timeout: the deadline of each lookaside request too
    fingerprint: bool = False  # --db: fingerprint each digest's signature set (ImageResult.sigset)
    reuse: ReuseSource | None = None  # --db without --full: earlier results of unchanged digests
    shard: tuple[int, int] | None = None  # --shard I/N: only the repositories of shard I
    # --policy: each image decided by the policy engine over records discovered without trust material
    policy: LoadedPolicy | None = None


class Progress:
    """Counts for a progress bar; the face decides whether to draw it."""

    def __init__(
        self, on_total: Callable[[int], None] | None = None, on_advance: Callable[[], None] | None = None
    ):
        self._on_total = on_total or (lambda n: None)
        self._on_advance = on_advance or (lambda: None)

    def add_total(self, n: int) -> None:
        self._on_total(n)

    def advance(self) -> None:
        self._on_advance()


def valid_names(kind: str, names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """`names` a registry listed, split into those that may become URL paths and (name, why not)."""
    good: list[str] = []
    bad: list[tuple[str, str]] = []
    for name in names:
        problem = name_problem(kind, name)
        if problem is None:
            good.append(name)
        else:
            bad.append((name, problem))
    return good, bad


def repo_matches(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _context(
    repo: Repository, repo_name: str, registry: str, index: TagIndex, options: ScanOptions
) -> DiscoverContext:
    lookaside_base = (
        options.registries_d.lookaside_for(registry, repo_name) if options.registries_d and registry else None
    )
    return DiscoverContext(
        repository=repo,
        repo_name=repo_name,
        registry=registry,
        tags=index,
        now=options.now,
        lookaside_base=lookaside_base,
        lookaside_timeout=options.lookaside_timeout,
        keys=options.keys,
        gpg_keyring=options.gpg_keyring,
        certificates=options.certificates,
        notation=options.notation,
        timestamps=options.timestamps,
    )


async def scan_repository(
    repo: Repository,
    *,
    source: str,
    repo_name: str,
    registry: str,
    options: ScanOptions,
    progress: Progress,
) -> AsyncIterator[ImageResult]:
    """Every tagged image of one repository (or layout), each with its signatures."""
    try:
        tags = await repo.list_tags()
    except SigscopeError as exc:
        yield ImageResult(source=source, repository=repo_name, digest="", error=exc.message)
        return
    if registry:
        # A tag becomes a URL path: one the grammar refuses is reported and never requested.
        tags, rejected = valid_names("tag", tags)
        for tag, problem in rejected:
            error = f"{repo_name} lists {tag!r}, not a valid tag ({problem}); not requested"
            yield ImageResult(source=source, repository=repo_name, digest="", tags=[tag], error=error)
    index = TagIndex.from_tags(tags)
    progress.add_total(len(index.image_tags))
    if options.fingerprint and isinstance(repo, RegistryRepository):
        repo = ListingCache(repo, repo.client)
    ctx = _context(repo, repo_name, registry, index, options)

    async def resolve(tag: str) -> tuple[str, Descriptor | SigscopeError]:
        try:
            return tag, await repo.resolve(tag)
        except SigscopeError as exc:
            return tag, exc

    by_digest: dict[str, tuple[Descriptor, list[str]]] = {}
    for tag, outcome in await asyncio.gather(*(resolve(t) for t in sorted(index.image_tags))):
        if isinstance(outcome, SigscopeError):
            progress.advance()
            yield ImageResult(
                source=source, repository=repo_name, digest="", tags=[tag], error=outcome.message
            )
            continue
        entry = by_digest.setdefault(outcome.digest, (outcome, []))
        entry[1].append(tag)

    reuse = await _Reuse.load(ctx, options, source, repo_name)
    await reuse.prepare(list(by_digest))

    async def one(descriptor: Descriptor, tags_of: list[str]) -> list[ImageResult]:
        results = [await reuse.image(source, repo_name, descriptor, tags_of)]
        if options.platforms and mediatypes.is_index(results[0].media_type):
            results.extend(await _children(ctx, source, repo_name, descriptor, reuse))
        for _ in tags_of:
            progress.advance()
        return results

    pending: list[Awaitable[list[ImageResult]]] = [one(d, t) for d, t in by_digest.values()]
    for finished in asyncio.as_completed(pending):
        for result in await finished:
            yield result


async def _image(
    ctx: DiscoverContext,
    source: str,
    repo_name: str,
    descriptor: Descriptor,
    tags: list[str],
    policy: LoadedPolicy | None = None,
) -> ImageResult:
    result = ImageResult(
        source=source,
        repository=repo_name,
        digest=descriptor.digest,
        media_type=descriptor.media_type,
        tags=tags,
    )
    if policy is not None:
        from sigscope.scan.policy import decide_image

        return await decide_image(policy, ctx, result, lambda c: _discovered(c, result, descriptor))
    return await _discovered(ctx, result, descriptor)


async def _discovered(ctx: DiscoverContext, result: ImageResult, descriptor: Descriptor) -> ImageResult:
    try:
        found = await discover(ctx, descriptor)
    except SigscopeError as exc:
        result.error = exc.message
        return result
    result.signatures = _trust_all(ctx, found.signatures)
    result.attachments = found.attachments
    result.problems = found.problems
    for attachment in result.attachments:
        attachment.signatures = [_trust(ctx, s) for s in attachment.signatures]
    return result


def verify_threads() -> int:
    """Threads for verifying one image's signatures ahead (trust/keys.verify_ahead): one per usable CPU, at
    most 4."""
    return min(usable_cpus(), 4)


def _trust_all(ctx: DiscoverContext, signatures: list[Signature]) -> list[Signature]:
    if not ctx.keys:
        return [_trust(ctx, s) for s in signatures]
    return judge_ahead(signatures, ctx.keys, verify_threads(), lambda s: _trust(ctx, s))


def _trust(ctx: DiscoverContext, signature: Signature) -> Signature:
    # Notation trust policies select statements by repository (host/path); layouts only match "*".
    scope = f"{ctx.registry}/{ctx.repo_name}" if ctx.registry else None
    trust = TrustSet(ctx.keys, ctx.gpg_keyring, ctx.certificates, ctx.notation, ctx.timestamps)
    return apply_trust(signature, trust, scope, ctx.now)


class _Reuse:
    """One repository's incremental re-scan: each digest's signature set fingerprinted (when the scan keeps
    an inventory), and an unchanged one reported from the earlier result instead of fetched."""

    def __init__(self, ctx: DiscoverContext, options: ScanOptions, previous: dict[str, tuple[str, int]]):
        self.ctx = ctx
        self.options = options
        self.previous = previous
        self.sigsets: dict[str, str | None] = {}
        self.recalled: dict[str, Recalled] = {}

    @classmethod
    async def load(cls, ctx: DiscoverContext, options: ScanOptions, source: str, repo_name: str) -> _Reuse:
        previous: dict[str, tuple[str, int]] = {}
        # Lookaside signatures live outside the registry: nothing in the tag list says they changed.
        if options.fingerprint and options.reuse is not None and ctx.lookaside_base is None:
            previous = await options.reuse.previous(source, repo_name)
        return cls(ctx, options, previous)

    async def _sigset(self, digest: str) -> str | None:
        if not self.options.fingerprint:
            return None
        try:
            return await signature_set(self.ctx.repository, self.ctx.tags, digest)
        except SigscopeError:
            return None  # the listing failed: discovery reads it again and reports why

    async def prepare(self, digests: list[str]) -> None:
        """The repository's tagged digests at once: their fingerprints concurrently, and one read of the
        earlier results of those unchanged."""
        if not self.options.fingerprint:
            return
        found = await asyncio.gather(*(self._sigset(d) for d in digests))
        self.sigsets.update(zip(digests, found, strict=True))
        await self._recall(digests)

    async def _recall(self, digests: list[str]) -> None:
        wanted: dict[int, str] = {}
        for digest in digests:
            known = self.previous.get(digest)
            if known is not None and self.sigsets.get(digest) == known[0]:
                wanted[known[1]] = digest
        if wanted and self.options.reuse is not None:
            for evidence_id, recalled in (await self.options.reuse.recall(list(wanted))).items():
                self.recalled[wanted[evidence_id]] = recalled

    async def image(
        self, source: str, repo_name: str, descriptor: Descriptor, tags: list[str]
    ) -> ImageResult:
        digest = descriptor.digest
        if digest not in self.sigsets:  # a platform manifest: not among the tagged digests prepared
            self.sigsets[digest] = await self._sigset(digest)
            await self._recall([digest])
        sigset = self.sigsets.pop(digest, None)
        recalled = self.recalled.pop(digest, None)
        policy = self.options.policy
        if recalled is not None:
            result = ImageResult(
                source=source,
                repository=repo_name,
                digest=descriptor.digest,
                media_type=descriptor.media_type,
                tags=tags,
                signatures=recalled.signatures,
                attachments=recalled.attachments,
                evidence_id=recalled.evidence_id,
            )
            if policy is not None:
                result = await self._decide_recalled(policy, result, descriptor, recalled)
        else:
            result = await _image(self.ctx, source, repo_name, descriptor, tags, policy)
        result.sigset = sigset
        if isinstance(self.ctx.repository, ListingCache):
            self.ctx.repository.forget(descriptor.digest)
        return result

    async def _decide_recalled(
        self, policy: LoadedPolicy, result: ImageResult, descriptor: Descriptor, recalled: Recalled
    ) -> ImageResult:
        """An unchanged image under --policy, decided by the same matching as any image. Where a rule with
        authorities matches, the decision recorded with the earlier result stands when it was made under this
        policy version for the same tags (so the same rules matched): the trust fingerprint already holds the
        policy version, and recalled records lack the signed bytes an authority would judge. Otherwise
        (another tag set, no recorded decision, a lookaside rule) it is discovered and decided afresh."""
        from sigscope.policy.engine import Decision
        from sigscope.scan.policy import decide_image

        def recorded(rules: list[Rule], image: str) -> Decision | None:
            stored = recalled.decision
            if stored is None or stored[3] != policy.version or sorted(recalled.tags) != sorted(result.tags):
                return None
            decision, rule, reason, version = stored
            on_error = next((r.on_error for r in rules if r.name == rule), "deny")
            return Decision(image, result.digest, decision, rule, reason, [], version, on_error=on_error)

        fresh = dataclasses.replace(result, signatures=[], attachments=[], evidence_id=None)
        return await decide_image(
            policy, self.ctx, result, lambda c: _discovered(c, fresh, descriptor), recorded
        )


async def _children(
    ctx: DiscoverContext,
    source: str,
    repo_name: str,
    index: Descriptor,
    reuse: _Reuse | None = None,
    policy: LoadedPolicy | None = None,
) -> list[ImageResult]:
    try:
        manifest = await ctx.repository.get_manifest(index.digest)
        children = manifest.children()
    except SigscopeError as exc:
        return [ImageResult(source=source, repository=repo_name, digest=index.digest, error=exc.message)]
    results = []
    for child in children:
        if reuse is not None:
            result = await reuse.image(source, repo_name, child, [])
        else:
            result = await _image(ctx, source, repo_name, child, [], policy)
        result.parent = index.digest
        result.platform = str(child.platform) if child.platform else None
        results.append(result)
    return results


async def scan_registry(
    client: RegistryClient, namespace: str, options: ScanOptions, progress: Progress
) -> AsyncIterator[ImageResult]:
    """Crawl a registry (or one namespace of it), yielding results as they complete."""
    queue: asyncio.Queue[ImageResult | BaseException | None] = asyncio.Queue(maxsize=512)
    limiter = asyncio.Semaphore(options.repo_concurrency)

    async def one(name: str) -> None:
        async with limiter:
            async for result in scan_repository(
                client.repository(name),
                source=client.registry,
                repo_name=name,
                registry=client.registry,
                options=options,
                progress=progress,
            ):
                await queue.put(result)

    def error_row(name: str, message: str) -> ImageResult:
        return ImageResult(source=client.registry, repository=name, digest="", error=message)

    async def catalog() -> AsyncIterator[list[str]]:
        """The catalog's pages. A registry that keeps no catalog (404: olareg, and many hosted registries)
        still lets HOST/NAMESPACE name one repository, scanned as such."""
        listed = False
        try:
            async for page in client.catalog_pages():
                listed = True
                yield page
        except NotFoundError:
            if listed or not namespace:
                raise
            yield [namespace.rstrip("/")]

    async def produce() -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                # catalog_pages names each repository once, so none is scanned twice
                async for page in catalog():
                    page, rejected = valid_names("repository", page)
                    for name, problem in rejected:
                        message = f"the catalog lists {name!r}, not a valid repository name ({problem})"
                        await queue.put(error_row(name, message + "; not requested"))
                    for name in page:
                        in_namespace = (
                            not namespace or name == namespace or name.startswith(namespace.rstrip("/") + "/")
                        )
                        if (
                            in_namespace
                            and repo_matches(name, options.repo_patterns)
                            and in_shard(name, options.shard)
                        ):
                            tasks.append(asyncio.create_task(one(name)))
            except PaginationError as exc:
                # The pages read are good: their repositories are scanned, the catalog gets an error row.
                await queue.put(error_row("", exc.message))
            await asyncio.gather(*tasks)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            for task in tasks:
                task.cancel()
            await queue.put(exc)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)


async def scan_image(
    repo: Repository,
    reference: str,
    *,
    source: str,
    repo_name: str,
    registry: str,
    options: ScanOptions,
) -> list[ImageResult]:
    """One image by tag or digest (and, with `options.platforms`, each platform of an index)."""
    descriptor = await repo.resolve(reference)
    tags = await repo.list_tags()
    index = TagIndex.from_tags(tags)
    ctx = _context(repo, repo_name, registry, index, options)
    named_by = [t for t in index.image_tags if t == reference]
    results = [await _image(ctx, source, repo_name, descriptor, named_by, options.policy)]
    if options.platforms and mediatypes.is_index(descriptor.media_type):
        results.extend(await _children(ctx, source, repo_name, descriptor, policy=options.policy))
    return results
