"""`report serve`: the inventory as a read-only web report (raw ASGI served by uvicorn, as the admission
webhook: four routes need no framework; sigscope.serve).

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
from urllib.parse import parse_qs

from sigscope.report import web_pages
from sigscope.report.htmlstyle import STYLE
from sigscope.report.web_model import Model, TableQuery, build
from sigscope.serve.asgi import TEXT, Answer, AsgiApp, Receive, Scope
from sigscope.store import queries
from sigscope.store.inventory import Inventory
from sigscope.trust.certs import utcnow

log = logging.getLogger("sigscope.report")

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


class ReportApp(AsgiApp):
    log = log
    headers = HEADERS

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

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        if scope["method"] not in ("GET", "HEAD"):
            return Answer(405, TEXT, b"read-only: GET and HEAD only\n", [(b"allow", b"GET, HEAD")])
        path = scope["path"]
        html = "text/html; charset=utf-8"
        if path == "/healthz":
            return Answer(200, TEXT, b"ok\n")
        if path == "/style.css":
            return Answer(200, "text/css; charset=utf-8", STYLE.encode())
        if path == "/":
            raw = scope.get("query_string", b"")[:MAX_QUERY_STRING].decode("utf-8", "replace")
            query = TableQuery.parse(parse_qs(raw, max_num_fields=16))
            model = await asyncio.to_thread(self.model)
            return Answer(200, html, web_pages.dashboard(model, query).encode())
        if path.startswith("/image/"):
            ident = path.removeprefix("/image/")
            if ident.isdigit() and len(ident) < 12:
                found = await asyncio.to_thread(queries.evidence, self.inventory, int(ident))
                if found is not None:
                    return Answer(200, html, web_pages.evidence_page(found, utcnow()).encode())
            return Answer(404, html, web_pages.not_found("No such image in the inventory.").encode())
        return Answer(404, html, web_pages.not_found("No such page.").encode())
