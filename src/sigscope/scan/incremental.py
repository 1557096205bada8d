"""Incremental re-scans: which images' signature sets are unchanged since a run that remembered them.

A digest's signature set is what the tag list and the referrers listing say about it, before anything
is fetched: its attachment tags (`sha256-<hex>.sig/.att/.sbom`), whether a referrers fallback tag exists,
and, on a registry with the referrers API, the referrers listed. Its fingerprint, equal to the one stored
with the same trust material and policy, means the stored result stands and nothing is fetched or verified
again. On a registry without the API the fallback tag's presence stands for its content, so that an
unchanged image costs only its HEAD; what this misses (docs/inventory.md) `--full` sees.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

from sigscope.model import Attachment, Descriptor, Manifest, Signature
from sigscope.oci.client import RegistryClient
from sigscope.oci.store import Repository
from sigscope.scan.discover import TagIndex


@dataclass(frozen=True)
class Recalled:
    """An earlier run's result for one digest, to report again."""

    evidence_id: int
    signatures: list[Signature]
    attachments: list[Attachment]
    # with --policy: the decision recorded with it (decision, rule, reason, policy version) and the tags it
    # was made for; signatures come back as records without their signed bytes, so they cannot be judged again
    decision: tuple[str, str | None, str, str] | None = None
    tags: tuple[str, ...] = ()


class ReuseSource(Protocol):
    """Where earlier results come from (the inventory; sigscope.store.reuse)."""

    async def previous(self, source: str, repository: str) -> dict[str, tuple[str, int]]:
        """digest -> (signature set fingerprint, evidence id), for results judged with the trust material
        and policy of this scan and still valid now."""
        ...

    async def recall(self, evidence_ids: list[int]) -> dict[int, Recalled]: ...


class ListingCache:
    """A registry repository whose referrers listings are read once per scan of it: the signature set's
    fingerprint and the discovery that follows share one request."""

    def __init__(self, repository: Repository, client: RegistryClient) -> None:
        self._repository = repository
        self.client = client
        self._listings: dict[str, list[Descriptor]] = {}

    @property
    def display(self) -> str:
        return self._repository.display

    async def list_tags(self) -> list[str]:
        return await self._repository.list_tags()

    async def resolve(self, reference: str) -> Descriptor:
        return await self._repository.resolve(reference)

    async def get_manifest(self, reference: str) -> Manifest:
        return await self._repository.get_manifest(reference)

    async def get_blob(self, digest: str, *, max_size: int | None = None) -> bytes:
        return await self._repository.get_blob(digest, max_size=max_size)

    async def put_blob(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        return await self._repository.put_blob(data, media_type)

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        return await self._repository.put_manifest(data, media_type, tag)

    async def delete_manifest(self, digest: str) -> None:
        await self._repository.delete_manifest(digest)

    async def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        return await self._repository.referrers(digest, artifact_type)

    async def push_referrer(self, data: bytes, media_type: str) -> Descriptor:
        return await self._repository.push_referrer(data, media_type)

    async def discover_referrers(self, digest: str, *, fallback_tag_listed: bool) -> list[Descriptor]:
        # Only the API's listings are kept: without the API, the fingerprint reads no listing at all.
        if digest in self._listings:
            return self._listings[digest]
        found = await self._repository.discover_referrers(digest, fallback_tag_listed=fallback_tag_listed)
        if self.client.referrers_api:
            self._listings[digest] = found
        return found

    def forget(self, digest: str) -> None:
        """Done with `digest`: its listings need not stay in memory."""
        self._listings.pop(digest, None)


async def signature_set(repository: Repository, tags: TagIndex, digest: str) -> str:
    """The fingerprint of what signs `digest` as far as the tag list and referrers listing tell."""
    fallback = digest in tags.fallback
    listed: list[list[str]] | None = None
    if isinstance(repository, ListingCache):
        if repository.client.referrers_api is not False:
            # While the API is unprobed, no fallback index is read: without the API, the fallback tag's
            # presence is what counts, and reading the index would cost the request this saves.
            known = repository.client.referrers_api is True
            found = await repository.discover_referrers(digest, fallback_tag_listed=fallback and known)
            if repository.client.referrers_api:
                listed = sorted([d.digest, d.artifact_type or ""] for d in found)
    else:  # a layout: local reads cost nothing
        listed = sorted([d.digest, d.artifact_type or ""] for d in await repository.referrers(digest))
    document = {
        "attached": sorted(tags.attachments.get(digest, ())),
        "fallback": fallback,
        "referrers": listed,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
