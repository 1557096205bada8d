"""The notification endpoint as raw ASGI (uvicorn serves it, as it serves the admission webhook).

    POST /  or  /events   a notification envelope → 200 at once; the scans run after the answer
    GET  /healthz          counts: events seen, scans done and failed, repositories waiting

Bounded: the body (413 past --max-body, read no further), the events per envelope, and the repositories
waiting (503 when full: distribution keeps the events and delivers them again). With --token-file or
--basic-auth-file, a request without that Authorization header is refused (401) before its body is read.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sigscope.errors import UsageError
from sigscope.listen.events import ACCEPTED_TYPES, EnvelopeError, parse
from sigscope.listen.queue import ScanQueue
from sigscope.report.escape import printable

log = logging.getLogger("sigscope.listen")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY = 1024 * 1024
MAX_SECRET_FILE = 4096
EVENT_PATHS = frozenset({"/", "/events"})


def read_secret(path: str, flag: str) -> str:
    """One line of a file (a token, or USER:PASSWORD), never echoed."""
    file = Path(path)
    try:
        data = file.read_bytes()[: MAX_SECRET_FILE + 1]
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot read: {exc.strerror}") from None
    text = data.decode("utf-8", "replace").strip()
    if not text or len(data) > MAX_SECRET_FILE or "\n" in text:
        raise UsageError(f"{flag} {path}: expected one non-empty line")
    return text


def authorization_values(token: str | None, basic: str | None) -> list[bytes]:
    """The Authorization header values accepted (none: no authentication asked)."""
    values: list[bytes] = []
    if token:
        values.append(f"Bearer {token}".encode())
    if basic:
        if ":" not in basic:
            raise UsageError("--basic-auth-file: expected USER:PASSWORD")
        values.append(b"Basic " + base64.b64encode(basic.encode()))
    return values


class ListenApp:
    def __init__(
        self,
        queue: ScanQueue,
        *,
        accepted: list[bytes] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.queue = queue
        self.accepted = accepted or []
        self.max_body = max_body
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.events = 0
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body, extra = await self._answer(scope, receive)
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await self.on_startup()
                self._runner = asyncio.create_task(self.queue.run())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._runner is not None:
                    self._runner.cancel()
                    await asyncio.gather(self._runner, return_exceptions=True)
                if self.on_shutdown is not None:
                    await self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, scope: Scope) -> bool:
        if not self.accepted:
            return True
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                given = value
        # Every accepted value compared, in constant time: no early exit tells which was close.
        matches = [hmac.compare_digest(given, value) for value in self.accepted]
        return any(matches)

    async def _body(self, receive: Receive) -> bytes | None:
        """The request body, or None once it passes max_body (the rest is not read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            counts = {
                "events": self.events,
                "scans": self.queue.scans,
                "failures": self.queue.failures,
                "pending": self.queue.pending,
            }
            return 200, (json.dumps(counts) + "\n").encode(), []
        if path not in EVENT_PATHS:
            return 404, b"not found\n", []
        if method != "POST":
            return 405, b"POST notification envelopes here\n", [(b"allow", b"POST")]
        if not self._authorized(scope):
            return 401, b"unauthorized\n", []
        content_type = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-type":
                content_type = value
        media_type = content_type.split(b";")[0].strip().decode("latin-1").lower()
        if media_type not in ACCEPTED_TYPES:
            return 415, b"expected application/vnd.docker.distribution.events.v2+json (or v1)\n", []
        body = await self._body(receive)
        if body is None:
            return 413, f"body over {self.max_body} bytes\n".encode(), []
        try:
            events, total = parse(body)
        except EnvelopeError as exc:
            return 400, f"{exc}\n".encode(), []
        self.events += total
        refused = False
        for event in events:
            what = event.tag or event.digest
            log.info("%s %s %s", event.action, printable(event.repository), printable(what))
            if not self.queue.offer(event.repository):
                refused = True
        if refused:
            return 503, b"too many repositories waiting; deliver again later\n", [(b"retry-after", b"5")]
        return 200, b"ok\n", []
