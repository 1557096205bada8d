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

from sigscope.errors import UsageError
from sigscope.keys.small_file import read_small_file
from sigscope.listen.events import ACCEPTED_TYPES, EnvelopeError, parse
from sigscope.listen.queue import ScanQueue
from sigscope.report.escape import printable
from sigscope.serve.asgi import Answer, AsgiApp, Receive, Scope, header, media_type, read_body

log = logging.getLogger("sigscope.listen")

DEFAULT_MAX_BODY = 1024 * 1024
EVENT_PATHS = frozenset({"/", "/events"})


def read_secret(path: str, flag: str) -> str:
    """One line of a file (a token, or USER:PASSWORD), never echoed."""
    text = read_small_file(path, flag).strip()
    if not text or "\n" in text:
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


class ListenApp(AsgiApp):
    log = log

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

    async def startup(self) -> None:
        if self.on_startup is not None:
            await self.on_startup()
        self._runner = asyncio.create_task(self.queue.run())

    async def shutdown(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self.on_shutdown is not None:
            await self.on_shutdown()

    def _authorized(self, scope: Scope) -> bool:
        if not self.accepted:
            return True
        given = header(scope, b"authorization")
        # Every accepted value compared, in constant time: no early exit tells which was close.
        matches = [hmac.compare_digest(given, value) for value in self.accepted]
        return any(matches)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            counts = {
                "events": self.events,
                "scans": self.queue.scans,
                "failures": self.queue.failures,
                "pending": self.queue.pending,
            }
            return _text(200, json.dumps(counts) + "\n")
        if path not in EVENT_PATHS:
            return _text(404, "not found\n")
        if method != "POST":
            return _text(405, "POST notification envelopes here\n", [(b"allow", b"POST")])
        if not self._authorized(scope):
            return _text(401, "unauthorized\n")
        if media_type(scope).decode("latin-1") not in ACCEPTED_TYPES:
            return _text(415, "expected application/vnd.docker.distribution.events.v2+json (or v1)\n")
        body = await read_body(scope, receive, self.max_body)  # 413 past max_body
        try:
            events, total = parse(body)
        except EnvelopeError as exc:
            return _text(400, f"{exc}\n")
        self.events += total
        refused = False
        for event in events:
            what = event.tag or event.digest
            log.info("%s %s %s", event.action, printable(event.repository), printable(what))
            if not self.queue.offer(event.repository):
                refused = True
        if refused:
            return _text(
                503, "too many repositories waiting; deliver again later\n", [(b"retry-after", b"5")]
            )
        return _text(200, "ok\n")


def _text(status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", text.encode(), headers or ())
