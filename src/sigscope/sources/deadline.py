"""A deadline per request, not per read (ARCHITECTURE rule 7).

aiohttp's `sock_read` restarts with every byte, so a server that trickles one byte a second, or the headers
one byte at a time, kept a request alive for ever. One clock per request covers connect, headers and the
whole body; when it runs out the request is over, and the error names the host, the request and how far it
got (nothing came, or the body did not finish), in the same words for every fetch that uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sigscope.errors import DeadlineError


@dataclass
class RequestClock:
    """Handed to the request's body so it can say when the response headers arrived."""

    answered: bool = False


@asynccontextmanager
async def request_deadline(seconds: float, who: str, request: str) -> AsyncIterator[RequestClock]:
    """Run one request within `seconds`; on expiry raise DeadlineError naming `who` (a host, or "token
    service HOST") and `request` ("GET /v2/_catalog")."""
    clock = RequestClock()
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            yield clock
    except TimeoutError:
        if not scope.expired():
            raise  # somebody else's timeout (aiohttp's connect limit): the caller describes it
        part = "response body not complete" if clock.answered else "no response"
        raise DeadlineError(f"{who}: {part} within {seconds:g}s ({request})") from None


# The loop time by which the whole operation must be over, when a caller has one (the webhook's deadline
# below the API server's timeout). Retry waits consult it: a Retry-After that ends past it is not waited.
_OVERALL: ContextVar[float | None] = ContextVar("sigscope_overall_deadline", default=None)


@contextmanager
def overall_deadline(seconds: float) -> Iterator[None]:
    """Within this block (and tasks started in it), `deadline_left()` counts down from `seconds`."""
    token = _OVERALL.set(asyncio.get_running_loop().time() + seconds)
    try:
        yield
    finally:
        _OVERALL.reset(token)


def deadline_left() -> float | None:
    """Seconds left before the overall deadline, or None when there is none."""
    until = _OVERALL.get()
    return None if until is None else until - asyncio.get_running_loop().time()
