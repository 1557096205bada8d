"""Reading an HTTP response body without trusting the peer about its size.

One helper for every fetch (registry, lookaside, TSA, OCSP/CRL): a declared Content-Length over the limit
is refused before reading, and a body that grows past the limit while streaming is refused at that point,
so a lying or endless peer costs at most `limit` bytes of memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigscope.errors import TooLargeError

if TYPE_CHECKING:
    import aiohttp

CHUNK = 65536


async def read_limited(resp: aiohttp.ClientResponse, limit: int | None, what: str) -> bytes:
    """The whole body; TooLargeError naming `what` past `limit` bytes (None: no limit)."""
    length = resp.content_length
    if limit is not None and length is not None and length > limit:
        raise TooLargeError(f"{what} is {length} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        total += len(chunk)
        if limit is not None and total > limit:
            # The error outlives this frame (its traceback holds it): it must not hold the body too.
            chunks.clear()
            raise TooLargeError(f"{what} exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
