"""One interface over registry repositories and OCI layouts, and the door to both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from sigscope.model import Descriptor, Manifest
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import ImageReference, LayoutReference, parse_image


class Repository(Protocol):
    """What a scan or a verification needs from where images live."""

    @property
    def display(self) -> str: ...

    async def list_tags(self) -> list[str]: ...

    async def resolve(self, reference: str) -> Descriptor: ...

    async def get_manifest(self, reference: str) -> Manifest: ...

    async def get_blob(self, digest: str, *, max_size: int | None = None) -> bytes: ...

    async def put_blob(self, data: bytes, media_type: str = ...) -> Descriptor: ...

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor: ...

    async def delete_manifest(self, digest: str) -> None: ...

    async def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]: ...

    async def push_referrer(self, data: bytes, media_type: str) -> Descriptor: ...

    async def discover_referrers(self, digest: str, *, fallback_tag_listed: bool) -> list[Descriptor]: ...


@dataclass(frozen=True)
class OpenedImage:
    repository: Repository
    reference: str
    parsed: ImageReference | LayoutReference

    @property
    def display(self) -> str:
        return str(self.parsed)


@asynccontextmanager
async def open_image(
    text: str, options: RegistryOptions | None = None, *, create_layout: bool = False
) -> AsyncIterator[OpenedImage]:
    """Open `IMAGE` (a registry reference or `oci:PATH[:TAG|@DIGEST]`) for reading or writing."""
    parsed = parse_image(text)
    if isinstance(parsed, LayoutReference):
        options = options or RegistryOptions()
        layout = OCILayout(
            parsed.path,
            create=create_layout,
            max_manifest_size=options.max_manifest_size,
            max_blob_size=options.max_blob_size,
        )
        reference = parsed.digest or parsed.tag or layout.default_reference()
        yield OpenedImage(layout, reference, parsed)
        return
    async with RegistryClient(parsed.registry, options) as client:
        yield OpenedImage(client.repository(parsed.repository), parsed.reference, parsed)
