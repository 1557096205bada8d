"""A fault-injecting reverse proxy in front of a real registry, with optional OCI referrers API emulation.

The Debian ``docker-registry`` (distribution 2.8.2) used by the tests has no OCI referrers API and cannot be
made to fail on demand. :class:`RegistryProxy` sits in front of it on loopback and forwards every request
unchanged, except for what a test asks for:

* faults: ``fail`` (429/5xx with OCI error JSON and ``Retry-After``), ``drop_connection``, ``delay``;
* lies: ``tamper`` (bytes that do not match ``Docker-Content-Digest``), ``override_header``;
* ``referrers_api=True``: the OCI distribution spec 1.1 referrers API (``GET /v2/<name>/referrers/<digest>``,
  ``OCI-Subject`` on manifest PUT, ``artifactType`` filtering, ``Link`` pagination) for manifests pushed
  *through this proxy* (manifests pushed straight to the upstream are not indexed).

The proxy runs its own event loop in a daemon thread, so synchronous and async tests can both use it::

    with RegistryProxy(registry.url, referrers_api=True) as proxy:
        client = Client(proxy.url)
        proxy.fail(r"/manifests/", 429, 1, retry_after="1")
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

OCI_INDEX = "application/vnd.oci.image.index.v1+json"

#: RFC 9110 §7.6.1 hop-by-hop headers (plus the obsolete ones some stacks still send).
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
    )
)

_MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_REFERRERS_PATH = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")
_DIGEST = re.compile(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def oci_error(code: str, message: str, detail: Any = None) -> bytes:
    """Body of an OCI distribution error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return json.dumps({"errors": [error]}).encode()


@dataclass
class _Fail:
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    method: str | None
    message: str = "injected fault (RegistryProxy)"


@dataclass
class _Drop:
    pattern: re.Pattern[str]
    times: int


@dataclass
class _Tamper:
    pattern: re.Pattern[str]
    method: str
    replace: bytes | Callable[[str], bytes] | None
    flip_byte: bool


@dataclass
class _Override:
    pattern: re.Pattern[str]
    header: str
    value: str | Callable[[str], str]
    method: str | None


@dataclass
class _Stream:
    pattern: re.Pattern[str]
    length: int | None


@dataclass
class _Referrer:
    seq: int
    descriptor: dict[str, Any]


@dataclass
class _Upstream:
    status: int
    reason: str | None
    headers: CIMultiDict[str]
    body: bytes
    head_length: str | None = None  # Content-Length of a HEAD answer (which has no body)


def _method_matches(wanted: str | None, method: str) -> bool:
    return wanted is None or wanted.upper() == method.upper()


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"referrer:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = raw.partition(":")
    if prefix != "referrer" or not number.isdigit():
        return None
    return int(number)


class RegistryProxy:
    """Reverse proxy for an ``http://`` registry on ``127.0.0.1:<free port>``; see the module docstring."""

    def __init__(self, upstream: str, *, referrers_api: bool = False, page_size: int = 100) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.netloc:
            raise ValueError(f"upstream must be an http:// base URL, got {upstream!r}")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.upstream = f"http://{parts.netloc}"
        self.referrers_api = referrers_api
        self.page_size = page_size
        self.host = ""
        self.url = ""
        #: (method, path_qs) of every request received, in order.
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._fails: list[_Fail] = []
        self._drops: list[_Drop] = []
        self._tampers: list[_Tamper] = []
        self._overrides: list[_Override] = []
        self._streams: list[_Stream] = []
        #: body bytes written by ``stream_body`` answers
        self.streamed_bytes = 0
        self._delay = 0.0
        # (repo, subject digest) -> referrer manifest digest -> entry
        self._referrers: dict[tuple[str, str], dict[str, _Referrer]] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RegistryProxy:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"

        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup(sock))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"RegistryProxy-{port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("registry proxy did not start within 10 s")
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("registry proxy failed to start") from failure[0]
        return self

    async def _startup(self, sock: socket.socket) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            # Forward exactly what the client sent: no default Accept / Accept-Encoding / User-Agent.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> RegistryProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls
    def reset(self) -> None:
        """Clear faults, tampering, header overrides, delay and the request log (not the referrers index)."""
        with self._lock:
            self._fails.clear()
            self._drops.clear()
            self._tampers.clear()
            self._overrides.clear()
            self._streams.clear()
            self._delay = 0.0
            self.requests.clear()

    def fail(
        self,
        path_re: str,
        status: int,
        times: int,
        *,
        retry_after: str | None = None,
        method: str | None = None,
        message: str = "injected fault (RegistryProxy)",
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path_re`` (``re.search``; and ``method``
        when given) with ``status`` and an OCI error body carrying ``message``, without contacting the
        upstream."""
        with self._lock:
            self._fails.append(_Fail(re.compile(path_re), status, times, retry_after, method, message))

    def tamper(
        self,
        path_re: str,
        *,
        method: str = "GET",
        replace: bytes | Callable[[str], bytes] | None = None,
        flip_byte: bool = True,
    ) -> None:
        """Alter the body of matching 2xx responses (``replace`` it, or flip its last byte) while keeping the
        upstream's headers (``Docker-Content-Digest``, ``Content-Type``…); Content-Length is fixed up.
        A callable ``replace`` is called with the request's path and query, for a body that changes."""
        with self._lock:
            self._tampers.append(_Tamper(re.compile(path_re), method.upper(), replace, flip_byte))

    def override_header(
        self, path_re: str, header: str, value: str | Callable[[str], str], *, method: str | None = None
    ) -> None:
        """Set ``header: value`` on responses to matching requests (e.g. lie in Docker-Content-Digest);
        a callable ``value`` is called with the request's path and query (a Link that changes every page)."""
        with self._lock:
            self._overrides.append(_Override(re.compile(path_re), header, value, method))

    def stream_body(self, path_re: str, length: int | None) -> None:
        """Answer matching GETs with 200 and ``length`` zero bytes (``None``: without end, until the client
        hangs up), written a chunk at a time so the proxy never holds them: a blob larger than a client
        should read, without a registry that stores it."""
        with self._lock:
            self._streams.append(_Stream(re.compile(path_re), length))

    def delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every request."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def drop_connection(self, path_re: str, times: int) -> None:
        """Close the connection without an answer for the next ``times`` matching requests."""
        with self._lock:
            self._drops.append(_Drop(re.compile(path_re), times))

    # ------------------------------------------------------------------ request handling
    def _take_drop(self, path: str) -> bool:
        with self._lock:
            for rule in self._drops:
                if rule.times > 0 and rule.pattern.search(path):
                    rule.times -= 1
                    return True
        return False

    def _take_fail(self, method: str, path: str) -> _Fail | None:
        with self._lock:
            for rule in self._fails:
                if rule.times > 0 and _method_matches(rule.method, method) and rule.pattern.search(path):
                    rule.times -= 1
                    return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        with self._lock:
            self.requests.append((method, request.path_qs))
            delay = self._delay
        if delay:
            await asyncio.sleep(delay)

        if self._take_drop(path):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never written: the transport is gone

        rule = self._take_fail(method, path)
        if rule is not None:
            code = "TOOMANYREQUESTS" if rule.status == 429 else "UNAVAILABLE"
            headers = CIMultiDict({"Content-Type": "application/json"})
            if rule.retry_after is not None:
                headers["Retry-After"] = rule.retry_after
            answer = _Upstream(rule.status, None, headers, oci_error(code, rule.message))
            return self._respond(request, answer)

        with self._lock:
            stream = next((s for s in self._streams if method == "GET" and s.pattern.search(path)), None)
        if stream is not None:
            return await self._stream(request, stream.length)

        if self.referrers_api and method in ("GET", "HEAD"):
            match = _REFERRERS_PATH.match(path)
            if match:
                answer = await self._referrers_list(request, match["name"], match["digest"])
                return self._respond(request, answer)

        body = await request.read()
        try:
            answer = await self._forward(request, body)
        except (aiohttp.ClientError, OSError) as exc:
            answer = _Upstream(
                502,
                None,
                CIMultiDict({"Content-Type": "text/plain; charset=utf-8"}),
                f"RegistryProxy: upstream {self.upstream} unreachable: {exc}\n".encode(),
            )
            return self._respond(request, answer)

        if self.referrers_api and 200 <= answer.status < 300:
            match = _MANIFEST_PATH.match(path)
            if match and method == "PUT":
                self._remember_referrer(request, match["name"], body, answer)
            elif match and method == "DELETE":
                self._forget(match["name"], match["ref"])

        if 200 <= answer.status < 300 and answer.body:
            with self._lock:
                tampers = [t for t in self._tampers if t.method == method and t.pattern.search(path)]
            for tamper in tampers:
                if callable(tamper.replace):
                    answer.body = tamper.replace(request.path_qs)
                elif tamper.replace is not None:
                    answer.body = tamper.replace
                elif tamper.flip_byte and answer.body:
                    answer.body = answer.body[:-1] + bytes([answer.body[-1] ^ 0xFF])
        return self._respond(request, answer)

    async def _forward(self, request: web.Request, body: bytes) -> _Upstream:
        assert self._session is not None
        headers: CIMultiDict[str] = CIMultiDict()
        connection_tokens = {
            token.strip().lower()
            for value in request.headers.getall("Connection", [])
            for token in value.split(",")
        }
        for name, value in request.headers.items():
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in connection_tokens or lname in ("host", "content-length"):
                continue
            headers.add(name, value)
        send_body = body if body or request.method in ("POST", "PUT", "PATCH") else None
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            headers=headers,
            data=send_body,
            allow_redirects=False,
        ) as resp:
            data = await resp.read()
            out: CIMultiDict[str] = CIMultiDict()
            connection_tokens = {
                token.strip().lower()
                for value in resp.headers.getall("Connection", [])
                for token in value.split(",")
            }
            for name, value in resp.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP or lname in connection_tokens or lname == "content-length":
                    continue
                if lname in ("location", "link") and self.upstream in value:
                    value = value.replace(self.upstream, self.url)
                out.add(name, value)
            head_length = resp.headers.get("Content-Length") if request.method == "HEAD" else None
            return _Upstream(resp.status, resp.reason, out, data, head_length)

    def _respond(self, request: web.Request, answer: _Upstream) -> web.Response:
        headers = answer.headers
        with self._lock:
            overrides = [
                o
                for o in self._overrides
                if _method_matches(o.method, request.method) and o.pattern.search(request.path)
            ]
        for override in overrides:
            value = override.value
            headers[override.header] = value(request.path_qs) if callable(value) else value
        if request.method == "HEAD":
            # No body goes out; keep the length the GET would have (clients read blob sizes from it).
            length = answer.head_length if answer.head_length is not None else str(len(answer.body))
            headers["Content-Length"] = length
            return web.Response(status=answer.status, reason=answer.reason, headers=headers)
        headers["Content-Length"] = str(len(answer.body))
        return web.Response(status=answer.status, reason=answer.reason, headers=headers, body=answer.body)

    async def _stream(self, request: web.Request, length: int | None) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        chunk = bytes(1 << 20)
        left = length
        try:
            while left is None or left > 0:
                piece = chunk if left is None or left >= len(chunk) else chunk[:left]
                await response.write(piece)
                with self._lock:
                    self.streamed_bytes += len(piece)
                if left is not None:
                    left -= len(piece)
        except (ConnectionError, OSError):
            pass  # the client stopped reading: what a client at its limit does
        return response

    # ------------------------------------------------------------------ referrers API emulation
    def _remember_referrer(self, request: web.Request, repo: str, body: bytes, answer: _Upstream) -> None:
        try:
            manifest = json.loads(body)
        except ValueError:
            return
        if not isinstance(manifest, dict):
            return
        subject = manifest.get("subject")
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
            return
        subject_digest: str = subject["digest"]
        media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type and isinstance(manifest.get("mediaType"), str):
            media_type = manifest["mediaType"]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
        artifact_type = manifest.get("artifactType")
        if not artifact_type:
            config = manifest.get("config")
            if isinstance(config, dict):
                artifact_type = config.get("mediaType")
        if isinstance(artifact_type, str) and artifact_type:
            descriptor["artifactType"] = artifact_type
        annotations = manifest.get("annotations")
        if isinstance(annotations, dict) and annotations:
            descriptor["annotations"] = annotations
        with self._lock:
            entries = self._referrers.setdefault((repo, subject_digest), {})
            if digest not in entries:
                self._seq += 1
                entries[digest] = _Referrer(self._seq, descriptor)
        answer.headers["OCI-Subject"] = subject_digest

    def _forget(self, repo: str, digest: str) -> None:
        with self._lock:
            for (name, _subject), entries in self._referrers.items():
                if name == repo:
                    entries.pop(digest, None)

    async def _referrers_list(self, request: web.Request, repo: str, digest: str) -> _Upstream:
        json_headers = CIMultiDict({"Content-Type": "application/json"})
        if not _DIGEST.match(digest):
            return _Upstream(400, None, json_headers, oci_error("DIGEST_INVALID", "invalid digest", digest))
        denied = await self._auth_probe(request, repo)
        if denied is not None:
            return denied
        query = request.query
        artifact_type = query.get("artifactType")
        limit = self.page_size
        if "n" in query:
            try:
                limit = int(query["n"])
            except ValueError:
                limit = -1
            if limit < 0:
                return _Upstream(
                    400, None, json_headers, oci_error("PAGINATION_NUMBER_INVALID", "invalid n", query["n"])
                )
            limit = min(limit, self.page_size)
        after = 0
        if "last" in query:
            cursor = _decode_cursor(query["last"])
            if cursor is None:
                return _Upstream(
                    400, None, json_headers, oci_error("UNSUPPORTED", "invalid pagination cursor")
                )
            after = cursor
        with self._lock:
            entries = sorted(self._referrers.get((repo, digest), {}).values(), key=lambda e: e.seq)
        if artifact_type:
            entries = [e for e in entries if e.descriptor.get("artifactType") == artifact_type]
        remaining = [e for e in entries if e.seq > after]
        page, more = remaining[:limit], len(remaining) > limit
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [e.descriptor for e in page],
        }
        headers = CIMultiDict({"Content-Type": OCI_INDEX})
        if artifact_type:
            headers["OCI-Filters-Applied"] = "artifactType"
        if more and page:
            params = {"n": str(limit), "last": _encode_cursor(page[-1].seq)}
            if artifact_type:
                params["artifactType"] = artifact_type
            headers["Link"] = f'</v2/{repo}/referrers/{digest}?{urlencode(params)}>; rel="next"'
        return _Upstream(200, None, headers, json.dumps(index).encode())

    async def _auth_probe(self, request: web.Request, repo: str) -> _Upstream | None:
        """Ask the upstream whether this client may pull ``repo``; its 401/403 answer (with the challenge for
        ``repository:<repo>:pull``) is returned as is, so the emulated API is as protected as the registry."""
        assert self._session is not None
        headers = (
            {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
        )
        try:
            async with self._session.get(
                f"{self.upstream}/v2/{repo}/tags/list", headers=headers, allow_redirects=False
            ) as resp:
                data = await resp.read()
                if resp.status not in (401, 403):
                    return None
                out: CIMultiDict[str] = CIMultiDict()
                for name in ("Content-Type", "WWW-Authenticate", "Docker-Distribution-Api-Version"):
                    for value in resp.headers.getall(name, []):
                        out.add(name, value)
                return _Upstream(resp.status, resp.reason, out, data)
        except (aiohttp.ClientError, OSError) as exc:
            return _Upstream(
                502,
                None,
                CIMultiDict({"Content-Type": "text/plain; charset=utf-8"}),
                f"RegistryProxy: upstream {self.upstream} unreachable: {exc}\n".encode(),
            )
