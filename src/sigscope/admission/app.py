"""The webhook as an ASGI application (raw ASGI: five routes do not need a framework, and each review
is answered in well under a millisecond of our own time when its verdicts are cached).

    POST /validate   AdmissionReview → allowed, or 403 naming each denied image (warnings for `warn`)
    POST /mutate     AdmissionReview → JSON Patch pinning each allowed `name:tag` to its digest
    GET  /healthz    the process answers
    GET  /readyz     a policy is loaded
    GET  /metrics    Prometheus text format

A request that is not an AdmissionReview we can answer gets a 400 (or 413, 415) with one line; the API
server then applies the webhook's failurePolicy. Nothing a client sends produces a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sigscope.admission.audit import AuditLog, audit_record
from sigscope.admission.metrics import Metrics
from sigscope.admission.reload import PolicyHolder, watch
from sigscope.admission.review import (
    ReviewError,
    mutate_response,
    overall,
    parse_review,
    review,
    validate_response,
)
from sigscope.admission.verifier import Verifier
from sigscope.admission.workloads import DEFAULT_MAX_CONTAINERS, pin_patch
from sigscope.serve.asgi import TEXT, Answer, AsgiApp, HttpError, Receive, Scope, media_type, read_body

log = logging.getLogger("sigscope.webhook")

# The API server sends the whole object and its old version: etcd holds at most 1.5 MiB per object.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
# What the review's own deadline leaves for the answer to travel back and be read.
DEADLINE_SHARE = 0.8
MAX_TIMEOUT = 30.0  # the API server's own upper bound on timeoutSeconds
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration such as `10s` or `1m30s` (how the API server writes `?timeout=`)."""
    if not text or len(text) > 32:
        return None
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and total > 0 else None


@functools.lru_cache(maxsize=64)
def _given_deadline(query_string: bytes) -> float:
    """What a query string's `?timeout=` leaves for the review (inf without one). An API server sends the
    same query with every review: parsed once, not per review (a bounded cache)."""
    values = parse_qs(query_string.decode("latin-1")).get("timeout")
    given = go_duration(values[0]) if values else None
    return math.inf if given is None else min(given, MAX_TIMEOUT) * DEADLINE_SHARE


@dataclass(frozen=True)
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    max_containers: int = DEFAULT_MAX_CONTAINERS
    reload_interval: float = 2.0


class WebhookApp(AsgiApp):
    log = log

    def __init__(
        self,
        holder: PolicyHolder,
        verifier: Verifier,
        metrics: Metrics,
        audit: AuditLog,
        limits: Limits | None = None,
        *,
        watched: list[Callable[[], object]] | None = None,
    ) -> None:
        self.holder = holder
        self.verifier = verifier
        self.metrics = metrics
        self.audit = audit
        self.limits = limits or Limits()
        self.watched: list[Callable[[], object]] = [holder.check, *(watched or [])]
        # Long-running work beside the reviews (the SigscopePolicy watch), started and stopped with the app.
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def startup(self) -> None:
        # What start-up made (modules, the policy, TLS) lives as long as the process: out of the collector's
        # way, so a full collection stays short and does not land on a review's latency.
        gc.collect()
        gc.freeze()
        if self._watcher is None and self.limits.reload_interval > 0:
            self._watcher = asyncio.create_task(watch(self.watched, self.limits.reload_interval))
        if not self._tasks:
            self._tasks = [asyncio.create_task(run()) for run in self.background]

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        await self.verifier.close()
        self.audit.close()

    # ---------------------------------------------------------------- routes

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        path, method = scope["path"], scope["method"]
        if path in ("/validate", "/mutate"):
            if method != "POST":
                raise HttpError(405, f"{path} takes POST")
            if media_type(scope) != b"application/json":
                raise HttpError(415, "an AdmissionReview is application/json")
            body = await read_body(scope, receive, self.limits.max_body)
            return Answer(200, "application/json", await self._review(path[1:], scope, body))
        if path not in ("/healthz", "/readyz", "/metrics"):
            raise HttpError(404, f"no such endpoint {path[:64]!r}")
        if method not in ("GET", "HEAD"):
            raise HttpError(405, f"{path} takes GET")
        if path == "/healthz":
            return Answer(200, TEXT, b"ok\n")
        if path == "/readyz":
            if self.holder.policy is None:
                raise HttpError(503, "no policy loaded")
            return Answer(200, TEXT, f"ok {self.holder.policy.version}\n".encode())
        return Answer(200, self.metrics.content_type, self.metrics.render())

    def _deadline(self, scope: Scope) -> float:
        """Seconds this review may take: below the API server's `?timeout=`, within our own bound."""
        return min(self.verifier.settings.deadline, _given_deadline(scope.get("query_string", b"")))

    async def _review(self, endpoint: str, scope: Scope, body: bytes) -> bytes:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        until = loop.time() + self._deadline(scope)
        try:
            request = parse_review(body, max_containers=self.limits.max_containers)
        except ReviewError as exc:
            self.metrics.reviews.labels(endpoint, "error").inc()
            raise HttpError(400, exc.message) from None
        policy = self.holder.policy
        if policy is None:
            self.metrics.reviews.labels(endpoint, "error").inc()
            raise HttpError(503, "no policy loaded")
        verdicts = await self.verifier.judge(policy, request.namespace, request.images, until)
        pinned: int | None = None
        if endpoint == "validate":
            response = validate_response(request, verdicts, policy.version)
        else:
            allowed = {v.image for v in verdicts if v.allowed}
            digests = {v.image: v.digest for v in verdicts if v.digest}
            patch = pin_patch(list(request.sites), digests, allowed)
            pinned = sum(1 for op in patch if op["op"] == "replace")
            response = mutate_response(request, verdicts, patch, policy.version)
        elapsed = time.perf_counter() - started
        decision = overall(verdicts)
        self.metrics.reviews.labels(endpoint, decision).inc()
        self.metrics.review_seconds.labels(endpoint).observe(elapsed)
        self.audit.write(audit_record(endpoint, request, verdicts, policy.version, elapsed, pinned=pinned))
        return review(response)
