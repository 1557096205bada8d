"""`report serve`: the inventory as a read-only web report (raw ASGI served by uvicorn, as the admission
webhook: four routes need no framework).

    GET /              overview: counts, share over time, repositories, latest changes, the image table
                       (?q= &status= &registry= &sort= &dir= &page=), signers, expiring certificates
    GET /image/ID      one image's evidence: its signatures, their checks and certificate chains
    GET /style.css     the stylesheet (the pages carry no script, and a CSP says so)
    GET /healthz

Only GET and HEAD; nothing a request sends reaches SQL but an integer id. Derived data is computed once
per inventory revision (a run started or completed), in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from sigscope.report import web_pages
from sigscope.report.htmlstyle import STYLE
from sigscope.report.web_model import Model, TableQuery, build
from sigscope.store import queries
from sigscope.store.inventory import Inventory
from sigscope.trust.certs import utcnow

log = logging.getLogger("sigscope.report")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_QUERY_STRING = 4096
HEADERS = [
    # No script runs; styles may be inline (bar and column widths), never loaded from elsewhere.
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class ReportApp:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._model: Model | None = None
        self._lock = threading.Lock()

    def model(self) -> Model:
        """The derived data, rebuilt when the inventory's revision moved (runs in a worker thread)."""
        with self._lock:
            revision = queries.revision(self.inventory)
            if self._model is None or self._model.revision != revision:
                self._model = build(self.inventory, utcnow())
            return self._model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            status, content_type, body = await self._route(scope)
        except Exception as exc:
            log.error("internal error answering %r: %s: %s", scope.get("path"), type(exc).__name__, exc)
            status, content_type, body = 500, "text/plain", b"internal error\n"
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *HEADERS,
        ]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _route(self, scope: Scope) -> tuple[int, str, bytes]:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, "text/plain", b"read-only: GET and HEAD only\n"
        path = scope["path"]
        html = "text/html; charset=utf-8"
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/style.css":
            return 200, "text/css; charset=utf-8", STYLE.encode()
        if path == "/":
            raw = scope.get("query_string", b"")[:MAX_QUERY_STRING].decode("utf-8", "replace")
            query = TableQuery.parse(parse_qs(raw, max_num_fields=16))
            model = await asyncio.to_thread(self.model)
            return 200, html, web_pages.dashboard(model, query).encode()
        if path.startswith("/image/"):
            ident = path.removeprefix("/image/")
            if ident.isdigit() and len(ident) < 12:
                found = await asyncio.to_thread(queries.evidence, self.inventory, int(ident))
                if found is not None:
                    return 200, html, web_pages.evidence_page(found, utcnow()).encode()
            return 404, html, web_pages.not_found("No such image in the inventory.").encode()
        return 404, html, web_pages.not_found("No such page.").encode()


def serve(inventory: Inventory, address: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        ReportApp(inventory),
        host=address,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()
