"""Scanning the one image a command names (verify, verify-attestation, verify --containers-policy)."""

from __future__ import annotations

from sigscope.errors import SigscopeError
from sigscope.model import Signature
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import ImageReference
from sigscope.oci.store import OpenedImage, open_image
from sigscope.scan.registry import ImageResult, ScanOptions, scan_image
from sigscope.verify import image_identity


async def scan_opened(opened: OpenedImage, scan: ScanOptions) -> ImageResult:
    """The image's scan result; an image that cannot be read is an error, not an unsigned image."""
    parsed = opened.parsed
    registry, repo_name = (
        (parsed.registry, parsed.repository) if isinstance(parsed, ImageReference) else ("", "")
    )
    [result, *_] = await scan_image(
        opened.repository,
        opened.reference,
        source=registry or opened.display,
        repo_name=repo_name,
        registry=registry,
        options=scan,
    )
    if result.error:
        raise SigscopeError(result.error)
    return result


async def discover(
    image: str, registry_options: RegistryOptions, scan: ScanOptions
) -> tuple[str, str, list[Signature]]:
    """IMAGE's identity (as payloads name it), digest and signatures."""
    async with open_image(image, registry_options) as opened:
        result = await scan_opened(opened, scan)
        return image_identity(opened.parsed), result.digest, result.signatures
