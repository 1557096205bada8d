"""Raw ASGI for the faces uvicorn serves (the admission webhook, `inventory listen`, `report serve`): a few
routes each, so no framework, but one copy of the protocol: the lifespan, a request body read under a cap
(413 past it, the rest unread), and each answer written whole with its length.

A subclass of AsgiApp answers `answer(scope, receive)` with an Answer, or raises HttpError for a one-line
refusal; anything else it raises becomes a 500 with one log line, never a traceback to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

TEXT = "text/plain"


class HttpError(Exception):
    """A refusal: its status, and one line of text for the client."""

    def __init__(self, status: int, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Answer(NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: Headers = ()


def header(scope: Scope, name: bytes) -> bytes:
    """The last value of header `name` (lower-case, as ASGI servers give names), or b""."""
    found = b""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            found = value
    return found


def media_type(scope: Scope) -> bytes:
    """The request's Content-Type without its parameters, lower-case."""
    return header(scope, b"content-type").split(b";")[0].strip().lower()


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; HttpError 413 once it passes `limit` bytes (a Content-Length that says so
    is refused before anything is read), 400 when the client goes away."""
    declared = header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class AsgiApp:
    log = logging.getLogger("sigscope.serve")
    #: Sent with every answer (a report's Content-Security-Policy, say).
    headers: Headers = ()

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        raise NotImplementedError

    async def startup(self) -> None:
        """Run once the server starts (the lifespan's startup)."""

    async def shutdown(self) -> None:
        """Run once the server stops."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, content_type, body, extra = await self.answer(scope, receive)
        except HttpError as exc:
            status, content_type, body, extra = exc.status, TEXT, (exc.message + "\n").encode(), exc.headers
        except Exception as exc:
            self.log.error("internal error answering %r: %s: %s", scope.get("path"), type(exc).__name__, exc)
            status, content_type, body, extra = 500, TEXT, b"internal error\n", ()
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *self.headers,
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
