"""One bound on the bytes being read into memory at once, shared by the fetches of one client.

A per-blob cap bounds one fetch; it does not bound sixteen of them started together (a `.sig` of 16 layers
claiming 128 MiB each took 2.1 GB). Each fetch into memory holds its limit from this budget until its bytes
are read, so however many are asked for, at most `total` bytes are in flight; a fetch larger than the
whole budget waits until it can run alone rather than never.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

DEFAULT_IN_FLIGHT = 64 * 1024 * 1024


class ByteBudget:
    """Bytes that may be in flight at once. Made in the event loop that uses it (asyncio primitives bind
    to their loop), so each client owns one."""

    def __init__(self, total: int = DEFAULT_IN_FLIGHT) -> None:
        if total < 1:
            raise ValueError("a byte budget needs at least one byte")
        self.total = total
        self._free = total
        self._changed = asyncio.Condition()

    @property
    def free(self) -> int:
        return self._free

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes (at most the whole budget, at least one) while the body is read."""
        want = min(max(size, 1), self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= want)
            self._free -= want
        try:
            yield
        finally:
            async with self._changed:
                self._free += want
                self._changed.notify_all()
