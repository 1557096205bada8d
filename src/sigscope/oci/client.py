"""OCI distribution client (aiohttp).

Why aiohttp and not httpx: on these 2-core machines httpx.AsyncClient is
client-bound and degrades as concurrency rises (~265 HEAD/s at 32 in flight),
while aiohttp holds ~1,200/s; `bench/registry_client.py` measures ours against a
raw-socket baseline.

Rules this module keeps:
- every manifest and blob is checked against its digest before it is returned;
- 429/502/503/504 and dropped connections are retried with backoff, honouring
  `Retry-After`; other 4xx are final;
- `timeout` is a deadline for each request as a whole (connect, headers, the whole
  body; the token request has its own), never per read: a server that trickles a
  byte at a time cannot keep a request alive. A request that ran out of time is not
  retried: the server that was silent for `timeout` seconds is most likely silent for
  the next attempt too, and retries turned `--timeout 3` into 19 s;
- TLS settings are explicit and never taken from the environment.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlencode, urljoin, urlsplit

from sigscope import __version__
from sigscope.errors import (
    AuthError,
    DeadlineError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    TLSError,
    TooLargeError,
    UnreachableError,
    registry_error,
)
from sigscope.formats import gojson
from sigscope.model import Descriptor, Manifest
from sigscope.oci import digest as digests
from sigscope.oci import mediatypes, referrers
from sigscope.oci.auth import Challenge, Credentials, TokenCache, find_credentials, parse_challenges
from sigscope.oci.paging import DEFAULT_MAX_PAGES, Pager
from sigscope.oci.realm import credentials_withheld
from sigscope.oci.reference import name_problem, referrers_tag
from sigscope.sources.body import read_limited
from sigscope.sources.budget import DEFAULT_IN_FLIGHT, ByteBudget
from sigscope.sources.deadline import deadline_left, request_deadline

if TYPE_CHECKING:
    import ssl

    # aiohttp is imported where a request is made: importing it costs ~0.4 s, which `--help`, `oci:` layouts
    # and every command that only needs RegistryOptions would otherwise pay at start-up.
    import aiohttp
    from multidict import CIMultiDictProxy

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_MAX_MANIFEST = 4 * 1024 * 1024
# Blobs read into memory are signature payloads, envelopes, bundles and configs: kilobytes in practice. A
# registry that claims 128 MiB for each of 16 layers made a scan take 4 GB; larger ones are refused unread
# unless --max-blob-size says otherwise (an SBOM attestation may need it).
DEFAULT_MAX_BLOB_IN_MEMORY = 4 * 1024 * 1024
# One page of a catalog or a tag list: a million short names.
MAX_LISTING_PAGE = 16 * 1024 * 1024
# A bearer token is a JWT of a few KiB; a token service that sends more is broken or hostile.
MAX_TOKEN_RESPONSE = 1024 * 1024
# Error bodies are read for their first line only; this bounds those with no other limit (HEAD, streams).
MAX_ERROR_BODY = 64 * 1024


@dataclass
class RegistryOptions:
    """How to talk to one registry. Defaults are safe: TLS verified, config.json credentials."""

    insecure: bool = False
    skip_tls_verify: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_auth_files: bool = True
    auth_files: list[Path] | None = None
    timeout: float = 30.0  # deadline of each request, connect to last byte (see the module docstring)
    connect_timeout: float = 10.0  # of the TCP connect, within that deadline
    # 32 in flight: at 20 ms RTT the scan crawl is limit-bound at 16 (bench/scan_registry.py).
    max_concurrency: int = 32
    max_retries: int = 4
    backoff_base: float = 0.2
    max_retry_after: float = 30.0
    max_manifest_size: int = DEFAULT_MAX_MANIFEST
    max_blob_size: int = DEFAULT_MAX_BLOB_IN_MEMORY
    # bytes of blobs being read into memory at once, whatever their number (sources/budget.py)
    max_blob_in_flight: int = DEFAULT_IN_FLIGHT
    # pages of one catalog, tag list or referrers listing (oci/paging.py)
    max_pages: int = DEFAULT_MAX_PAGES
    user_agent: str = f"sigscope/{__version__}"
    # Per registry (HOST or HOST:PORT, as the reference names it), for a process that talks to many (the
    # webhook): plain HTTP for these, and a CA bundle of its own for those. RegistryClient applies them.
    insecure_registries: frozenset[str] = frozenset()
    registry_ca_files: Mapping[str, str] = field(default_factory=dict)

    def for_registry(self, registry: str) -> RegistryOptions:
        """These options as they apply to `registry` (self when no per-registry setting names it)."""
        if registry in self.insecure_registries:
            return replace(self, insecure=True, skip_tls_verify=False, ca_file=None)
        ca_file = self.registry_ca_files.get(registry)
        if ca_file is not None:
            return replace(self, ca_file=ca_file, skip_tls_verify=False)
        return self


def build_ssl_context(options: RegistryOptions) -> ssl.SSLContext:
    """An explicit TLS context, so SSL_CERT_FILE/REQUESTS_CA_BUNDLE cannot widen or narrow trust."""
    import ssl  # here: an oci: layout never needs TLS (~13 ms of every start)

    if options.skip_tls_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if options.ca_file:
        try:
            return ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"cannot load CA file {options.ca_file}: {exc}") from None
    context = ssl.create_default_context()
    return context


def _registry_errors(body: bytes) -> tuple[str | None, str]:
    """The first `{"errors":[{"code","message"}]}` entry, or the start of a plain-text body."""
    try:
        data = gojson.read(body, "error body")
        first = data["errors"][0]
        code = str(first.get("code") or "") or None
        message = str(first.get("message") or "")
        detail = first.get("detail")
        if isinstance(detail, str) and detail:
            message = f"{message} ({detail})"
        return code, message
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body[:200].decode(errors="replace").strip()
        return None, text.splitlines()[0] if text else ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _next_link(headers: Mapping[str, str], base: str) -> str | None:
    link = headers.get("Link")
    if not link:
        return None
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return urljoin(base, part[start + 1 : end])
    return None


@dataclass
class _Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str


class RegistryClient:
    """A client for one registry host. Use as `async with RegistryClient(host, options) as c`."""

    def __init__(self, registry: str, options: RegistryOptions | None = None) -> None:
        self.registry = registry
        self.options = (options or RegistryOptions()).for_registry(registry)
        # docker.io is an alias: the API lives elsewhere.
        api_host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.base_url = f"{'http' if self.options.insecure else 'https'}://{api_host}"
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(self.options.max_concurrency)
        self._tokens = TokenCache()
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        # Learned from the first challenge, so later requests authenticate up front
        # instead of paying a 401 round trip each.
        self._challenge: Challenge | None = None
        self._token_lock = asyncio.Lock()
        self._referrers_api: bool | None = None
        self._probe_lock = asyncio.Lock()
        self._blob_budget: ByteBudget | None = None  # made in the loop that uses it
        self._withheld: str | None = None  # why credentials did not go to the token service (oci/realm.py)
        self.request_count = 0
        # Replaceable so tests can observe back-off decisions without waiting for them.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def __aenter__(self) -> RegistryClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        import aiohttp

        if self._session is not None:
            return
        ssl_arg: ssl.SSLContext | bool = False if self.options.insecure else build_ssl_context(self.options)
        connector = aiohttp.TCPConnector(
            ssl=ssl_arg,
            limit=self.options.max_concurrency,
            limit_per_host=self.options.max_concurrency,
            ttl_dns_cache=300,
        )
        # Only the connect limit is aiohttp's: the deadline of each request is ours (request_deadline),
        # because aiohttp's sock_read restarts with every byte a trickling server sends.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(self.options.connect_timeout, self.options.timeout)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            trust_env=False,
            headers={"User-Agent": self.options.user_agent},
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def repository(self, name: str) -> RegistryRepository:
        return RegistryRepository(self, name)

    # ----------------------------------------------------------------- auth

    def _creds(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials_loaded = True
            if self.options.username is not None:
                self._credentials = Credentials(
                    username=self.options.username,
                    password=self.options.password or "",
                    source="command line",
                )
            elif self.options.use_auth_files:
                self._credentials = find_credentials(self.registry, self.options.auth_files)
        return self._credentials

    async def _auth_header(self, scopes: tuple[str, ...], force_refresh: bool = False) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        creds = self._creds()
        if challenge.scheme == "basic":
            if creds is None or not creds.has_basic:
                raise AuthError(f"{self.registry} requires credentials (use --username or docker login)")
            return creds.basic_header()
        if challenge.scheme != "bearer":
            raise AuthError(
                f"{self.registry} asks for unsupported authentication scheme {challenge.scheme!r}"
            )
        realm = challenge.realm
        if not realm:
            raise AuthError(f"{self.registry} sent a Bearer challenge without a realm")
        service = challenge.params.get("service", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise AuthError(f"{self.registry} names a token service that is not http(s): {realm!r}")
        async with self._token_lock:
            if force_refresh:
                self._tokens.drop(realm, service, scopes)
            token = self._tokens.get(realm, service, scopes)
            if token is None:
                token, expires_in = await self._fetch_token(realm, service, scopes, creds)
                self._tokens.put(realm, service, scopes, token, expires_in)
        return f"Bearer {token}"

    async def _fetch_token(
        self, realm: str, service: str, scopes: tuple[str, ...], creds: Credentials | None
    ) -> tuple[str, float]:
        import aiohttp  # loaded by open() already; see the note at the top

        assert self._session is not None
        headers: dict[str, str] = {}
        form: dict[str, str] | None = None
        if creds is not None and (reason := credentials_withheld(self.base_url, realm)):
            # oci/realm.py: the registry chose this realm; the password is not ours to send there.
            self._withheld = f"credentials not sent to token service {urlsplit(realm).netloc}: {reason}"
            creds = None
        if creds is not None and creds.identity_token:
            # docker's identitytoken is an OAuth2 refresh token.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": service,
                "client_id": "sigscope",
                "scope": " ".join(scopes),
            }
            method, url = "POST", realm
        else:
            query: list[tuple[str, str]] = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            if creds is not None and creds.has_basic:
                headers["Authorization"] = creds.basic_header()
            method, url = "GET", f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        service_host = f"token service {urlsplit(realm).netloc or realm}"
        try:
            self.request_count += 1
            async with (
                request_deadline(self.options.timeout, service_host, f"{method} {_path(realm)}") as clock,
                self._session.request(method, url, data=form, headers=headers) as resp,
            ):
                clock.answered = True
                status = resp.status
                body = await read_limited(resp, MAX_TOKEN_RESPONSE, f"{service_host}: the token response")
        except aiohttp.ConnectionTimeoutError:
            raise UnreachableError(
                f"{service_host}: no connection within {self._connect_limit():g}s "
                f"(the token for {self.registry})"
            ) from None
        except aiohttp.ClientError as exc:
            raise UnreachableError(f"cannot reach token service {realm}: {exc}") from None
        if status in (401, 403):
            who = f"user {creds.username!r}" if creds and creds.username else "anonymous access"
            raise AuthError(
                f"token service for {self.registry} refused {who} (HTTP {status}){self._why_anonymous()}",
                status=status,
            )
        if status != 200:
            _, message = _registry_errors(body)
            raise AuthError(
                f"token service for {self.registry} answered HTTP {status}: {message}", status=status
            )
        try:
            data = gojson.read(body, "token response")
            token = data.get("token") or data.get("access_token")
            expires_in = float(data.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise AuthError(f"token service for {self.registry} returned malformed JSON") from None
        if not token:
            raise AuthError(f"token service for {self.registry} returned no token")
        return str(token), expires_in

    # ------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        max_body: int | None = None,
        sink: IO[bytes] | None = None,
        hasher: Any = None,
        allow_redirects: bool = True,
    ) -> _Response:
        """One logical request: auth, retries and error mapping; the body is read within limits."""
        import aiohttp  # loaded by open() already; see the note at the top

        if self._session is None:
            await self.open()
        assert self._session is not None
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        attempt = 0
        auth_attempts = 0
        refresh_token = False
        while True:
            attempt += 1
            send_headers = dict(headers or {})
            auth = await self._auth_header(scopes, force_refresh=refresh_token)
            refresh_token = False
            if auth:
                send_headers["Authorization"] = auth
            try:
                async with self._semaphore:
                    self.request_count += 1
                    # The clock starts once a slot is ours: waiting behind our own requests is not the
                    # server's slowness.
                    async with (
                        request_deadline(
                            self.options.timeout, self.registry, f"{method} {_path(url)}"
                        ) as clock,
                        self._session.request(
                            method, url, headers=send_headers, data=data, allow_redirects=allow_redirects
                        ) as resp,
                    ):
                        clock.answered = True
                        status = resp.status
                        if method == "HEAD":
                            body = b""
                        elif status == 401 or status in RETRY_STATUSES or status >= 300 or sink is None:
                            limit = max_body if max_body is not None or status < 300 else MAX_ERROR_BODY
                            body = await self._read_limited(resp, limit, url)
                        else:
                            body = b""
                            await self._stream(resp, sink, hasher, max_body, url)
                        response = _Response(status, resp.headers, body, str(resp.url))
            except aiohttp.ClientConnectorCertificateError as exc:
                raise TLSError(
                    f"TLS verification failed for {self.registry}: {exc.certificate_error} "
                    "(use --ca-file CA.pem, or --skip-tls-verify)"
                ) from None
            except aiohttp.ClientSSLError as exc:
                hint = " (is it plain HTTP? use --insecure)" if "WRONG_VERSION_NUMBER" in str(exc) else ""
                raise TLSError(f"TLS handshake with {self.registry} failed{hint}: {exc}") from None
            except aiohttp.ClientConnectorError as exc:
                # A refused or unresolvable host is not transient; retrying only delays the error.
                reason = exc.os_error.strerror or str(exc.os_error)
                raise UnreachableError(f"cannot connect to {self.registry}: {reason}") from None
            except aiohttp.ConnectionTimeoutError:
                # Like a refused connection, and for the same reason not retried.
                raise UnreachableError(
                    f"{self.registry}: no connection within {self._connect_limit():g}s "
                    f"({method} {_path(url)})"
                ) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                if attempt <= self.options.max_retries and sink is None:
                    await self._backoff(attempt, None)
                    continue
                raise UnreachableError(
                    f"{self.registry} dropped the connection ({exc}) on {method} {url}"
                ) from None
            except aiohttp.ClientError as exc:
                raise UnreachableError(f"request to {self.registry} failed: {exc}") from None

            if status == 401:
                challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
                known = [c for c in challenges if c.scheme in ("bearer", "basic")]
                challenge = known[0] if known else (challenges[0] if challenges else None)
                if challenge is None:
                    raise AuthError(f"{self.registry} answered 401 without a usable challenge", status=401)
                if challenge.scheme == "bearer" and challenge.params.get("scope"):
                    extra = tuple(s for s in challenge.params["scope"].split(" ") if s and s not in scopes)
                    scopes = scopes + extra
                scheme_changed = self._challenge is None or self._challenge.scheme != challenge.scheme
                self._challenge = challenge
                # Retry once to answer a new challenge, and once more with a fresh token
                # (it may have expired or lack a scope); wrong Basic credentials are final.
                if auth_attempts < 2 and (auth is None or scheme_changed or challenge.scheme == "bearer"):
                    refresh_token = auth is not None and challenge.scheme == "bearer"
                    auth_attempts += 1
                    continue
                code, message = _registry_errors(response.body)
                creds = None if self._withheld else self._creds()
                who = f"as {creds.username!r}" if creds and creds.username else "anonymously"
                repos = [s.split(":")[1] for s in scopes if s.startswith("repository:") and s.count(":") >= 2]
                subject = self._ref(repos[0]) if repos else self.registry
                refused = registry_error(f"{subject} {who}", 401, code, message)
                # Why no credentials went along (a token service we would not trust with them) is the hint.
                refused.hint = self._withheld or refused.hint
                raise refused
            if status in RETRY_STATUSES and attempt <= self.options.max_retries:
                await self._backoff(attempt, _retry_after(response.headers.get("Retry-After")))
                continue
            return response

    def _why_anonymous(self) -> str:
        return f" ({self._withheld})" if self._withheld else ""

    def _blobs_in_flight(self) -> ByteBudget:
        if self._blob_budget is None:
            self._blob_budget = ByteBudget(self.options.max_blob_in_flight)
        return self._blob_budget

    def _connect_limit(self) -> float:
        return min(self.options.connect_timeout, self.options.timeout)

    async def _backoff(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.options.max_retry_after)
        else:
            delay = self.options.backoff_base * (2 ** (attempt - 1))
            delay *= 0.5 + random.random()
        if (left := deadline_left()) is not None and delay >= left:
            # The caller's deadline (the webhook's) ends before the retry could be sent: say so now,
            # instead of sleeping into the deadline and failing there.
            raise DeadlineError(
                f"{self.registry}: asked to retry after {delay:.3g}s, past the deadline ({left:.3g}s left)"
            )
        await self.sleep(delay)

    async def _read_limited(self, resp: aiohttp.ClientResponse, limit: int | None, url: str) -> bytes:
        return await read_limited(resp, limit, _path(url))

    async def _stream(
        self, resp: aiohttp.ClientResponse, sink: IO[bytes], hasher: Any, limit: int | None, url: str
    ) -> None:
        total = 0
        async for chunk in resp.content.iter_chunked(1 << 20):
            total += len(chunk)
            if limit is not None and total > limit:
                raise TooLargeError(f"{_path(url)} exceeds its declared size of {limit} bytes")
            hasher.update(chunk)
            sink.write(chunk)

    def _raise_for(self, response: _Response, subject: str) -> NoReturn:
        """`subject` as the user would name it (`host/repo:tag`, `blob host/repo@sha256:…`); the wording
        is errors.registry_error's, the same for every verb."""
        code, message = _registry_errors(response.body)
        raise registry_error(subject, response.status, code, message)

    def _ref(self, repo: str, reference: str = "") -> str:
        """`host/repo`, `host/repo:tag` or `host/repo@digest`: how a registry error names what it is about."""
        if not reference:
            return f"{self.registry}/{repo}"
        return f"{self.registry}/{repo}{'@' if ':' in reference else ':'}{reference}"

    # ------------------------------------------------------------ endpoints

    async def ping(self) -> dict[str, Any]:
        """`GET /v2/`: reachable, speaks the API, and (after auth) lets us in."""
        response = await self._request("GET", "/v2/", max_body=65536)
        if response.status != 200:
            self._raise_for(response, self.registry)
        return {
            "registry": self.registry,
            "api_version": response.headers.get("Docker-Distribution-API-Version"),
            "url": self.base_url,
        }

    async def catalog_pages(self, page_size: int = 1000) -> AsyncIterator[list[str]]:
        """The catalog a page at a time, each name once; PaginationError (after the pages read) when
        its links loop or do not end within `max_pages`."""
        pager = Pager(f"the catalog of {self.registry}", self.options.max_pages, self.base_url)
        url: str | None = f"/v2/_catalog?n={page_size}"
        while url:
            response = await self._request(
                "GET", url, scopes=("registry:catalog:*",), max_body=MAX_LISTING_PAGE
            )
            if response.status != 200:
                self._raise_for(response, f"the catalog of {self.registry}")
            try:
                repos = gojson.read(response.body, "catalog").get("repositories") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.registry} returned a malformed catalog") from None
            yield pager.add(response.url, [str(r) for r in repos])
            url = pager.follow(_next_link(response.headers, response.url))

    async def catalog(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        async for page in self.catalog_pages():
            found.extend(
                r for r in page if not prefix or r == prefix or r.startswith(prefix.rstrip("/") + "/")
            )
        return found

    async def list_tags(self, repo: str) -> list[str]:
        """Every tag once, as the registry names them (unchecked: callers check each before use)."""
        pager = Pager(f"the tag list of {repo}", self.options.max_pages, self.base_url)
        url: str | None = f"/v2/{_repo(repo)}/tags/list"
        tags: list[str] = []
        while url:
            response = await self._request(
                "GET", url, scopes=(f"repository:{repo}:pull",), max_body=MAX_LISTING_PAGE
            )
            if response.status != 200:
                self._raise_for(response, f"tags of {self._ref(repo)}")
            try:
                page = [str(t) for t in gojson.read(response.body, "tag list").get("tags") or []]
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.registry} returned a malformed tag list for {repo}") from None
            tags.extend(pager.add(response.url, page))
            url = pager.follow(_next_link(response.headers, response.url))
        return tags

    async def head_manifest(self, repo: str, reference: str) -> Descriptor:
        """Resolve a tag or digest to a descriptor with one HEAD (GET if the registry hides the digest)."""
        response: _Response | None
        try:
            response = await self._request(
                "HEAD",
                f"/v2/{_repo(repo)}/manifests/{_reference(reference)}",
                scopes=(f"repository:{repo}:pull",),
                headers={"Accept": mediatypes.MANIFEST_ACCEPT},
            )
        except AuthError:
            response = None
        if response is None or response.status != 200:
            # A HEAD answer has no body, so no error code: the GET says what the registry has to say
            # (and serves registries that refuse HEAD).
            return (await self.get_manifest(repo, reference)).descriptor
        header_digest = response.headers.get("Docker-Content-Digest")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        length = response.headers.get("Content-Length")
        if not header_digest or not length or not media_type:
            return (await self.get_manifest(repo, reference)).descriptor
        if reference.startswith("sha") and ":" in reference and header_digest != reference:
            raise IntegrityError(
                f"digest mismatch for {repo}@{reference}: asked for {reference}, "
                f"registry answered {header_digest}"
            )
        digests.parse(header_digest)
        return Descriptor(media_type=media_type, digest=header_digest, size=int(length))

    async def get_manifest(self, repo: str, reference: str, accept: str | None = None) -> Manifest:
        response = await self._request(
            "GET",
            f"/v2/{_repo(repo)}/manifests/{_reference(reference)}",
            scopes=(f"repository:{repo}:pull",),
            headers={"Accept": accept or mediatypes.MANIFEST_ACCEPT},
            max_body=self.options.max_manifest_size,
        )
        what = f"{repo}@{reference}" if ":" in reference else f"{repo}:{reference}"
        if response.status != 200:
            self._raise_for(response, self._ref(repo, reference))
        body = response.body
        if ":" in reference:
            digests.check(body, reference, f"manifest {what}")
            digest = reference
        else:
            header_digest = response.headers.get("Docker-Content-Digest")
            if header_digest:
                digests.check(body, header_digest, f"manifest {what} (Docker-Content-Digest)")
                digest = header_digest
            else:
                digest = digests.of(body)
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            declared = gojson.read(body, f"manifest {what}").get("mediaType")
        except (ValueError, AttributeError):
            raise IntegrityError(f"manifest {what} is not a JSON object") from None
        if declared:
            media_type = str(declared)
        return Manifest(Descriptor(media_type=media_type, digest=digest, size=len(body)), body)

    async def get_blob(
        self, repo: str, digest: str, *, max_size: int | None = None, size: int | None = None
    ) -> bytes:
        """A blob read into memory, at most `--max-blob-size` (`size`: what its descriptor claims, refused
        unread when over the limit, and never read past), within the client's budget of bytes in flight."""
        cap = self.options.max_blob_size
        if size is not None and size > cap:
            raise TooLargeError(
                f"blob {repo}@{digest} is {size} bytes, over the {_size(cap)} limit for blobs read "
                "into memory (--max-blob-size)"
            )
        limit = min(cap, max_size if max_size is not None else cap, size if size is not None else cap)
        async with self._blobs_in_flight().hold(limit):
            response = await self._request(
                "GET",
                f"/v2/{_repo(repo)}/blobs/{_reference(digest)}",
                scopes=(f"repository:{repo}:pull",),
                max_body=limit,
            )
        if response.status != 200:
            self._raise_for(response, f"blob {self._ref(repo, digest)}")
        digests.check(response.body, digest, f"blob {repo}@{digest}")
        return response.body

    async def stream_blob(self, repo: str, digest: str, sink: IO[bytes], *, size: int | None = None) -> int:
        """Stream a blob into `sink`, hashing on the way; raises after the fact on a mismatch.

        Callers write to a temporary file and keep it only when this returns.
        """
        hasher = digests.hasher(digest)
        response = await self._request(
            "GET",
            f"/v2/{_repo(repo)}/blobs/{_reference(digest)}",
            scopes=(f"repository:{repo}:pull",),
            sink=sink,
            hasher=hasher,
            max_body=size,
        )
        if response.status != 200:
            self._raise_for(response, f"blob {self._ref(repo, digest)}")
        actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if actual != digest:
            raise IntegrityError(
                f"digest mismatch for blob {repo}@{digest}: asked for {digest}, content hashes to {actual}"
            )
        return sink.tell()

    async def blob_exists(self, repo: str, digest: str) -> bool:
        response = await self._request(
            "HEAD", f"/v2/{_repo(repo)}/blobs/{_reference(digest)}", scopes=(f"repository:{repo}:pull",)
        )
        if response.status == 404:
            return False
        if response.status != 200:
            self._raise_for(response, f"blob {self._ref(repo, digest)}")
        return True

    async def put_blob(
        self, repo: str, data: bytes, media_type: str = "application/octet-stream"
    ) -> Descriptor:
        """Monolithic upload: POST for a session, PUT with the digest. Skips blobs already there."""
        digest = digests.of(data)
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(data))
        scopes = (f"repository:{repo}:pull,push",)
        if await self.blob_exists(repo, digest):
            return descriptor
        response = await self._request(
            "POST", f"/v2/{_repo(repo)}/blobs/uploads/", scopes=scopes, max_body=65536
        )
        if response.status not in (201, 202):
            self._raise_for(response, f"blob upload to {self._ref(repo)}")
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.registry} started an upload without a Location header")
        url = urljoin(response.url, location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        response = await self._request(
            "PUT",
            url,
            scopes=scopes,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            max_body=65536,
        )
        if response.status != 201:
            self._raise_for(response, f"blob upload to {self._ref(repo)}")
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise IntegrityError(f"registry stored blob under {returned}, expected {digest}")
        return descriptor

    async def put_manifest(
        self, repo: str, data: bytes, media_type: str, reference: str | None = None
    ) -> tuple[Descriptor, str | None]:
        """PUT a manifest under a tag or its digest; returns its descriptor and any `OCI-Subject` header."""
        digest = digests.of(data)
        response = await self._request(
            "PUT",
            f"/v2/{_repo(repo)}/manifests/{_reference(reference or digest)}",
            scopes=(f"repository:{repo}:pull,push",),
            data=data,
            headers={"Content-Type": media_type},
            max_body=65536,
        )
        if response.status not in (200, 201):
            self._raise_for(response, f"manifest upload to {self._ref(repo)}")
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise IntegrityError(f"registry stored manifest under {returned}, expected {digest}")
        return Descriptor(media_type=media_type, digest=digest, size=len(data)), response.headers.get(
            "OCI-Subject"
        )

    async def delete_manifest(self, repo: str, digest: str) -> None:
        digests.parse(digest)
        response = await self._request(
            "DELETE",
            f"/v2/{_repo(repo)}/manifests/{_reference(digest)}",
            scopes=(f"repository:{repo}:pull,push,delete",),
            max_body=65536,
        )
        if response.status not in (200, 202):
            self._raise_for(response, self._ref(repo, digest))

    # ------------------------------------------------------------ referrers

    async def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Referrers of `digest`: the API where the registry has it, else the tag schema fallback."""
        digests.parse(digest)
        if self._referrers_api is not False:
            found = await self._referrers_via_api(repo, digest, artifact_type)
            if found is not None:
                self._referrers_api = True
                return found
            self._referrers_api = False
        return referrers.filter_artifact_type(await self._referrers_via_tag(repo, digest), artifact_type)

    @property
    def referrers_api(self) -> bool | None:
        """Whether the registry serves the referrers API; None until discover_referrers probed it."""
        return self._referrers_api

    async def discover_referrers(
        self, repo: str, digest: str, *, fallback_tag_listed: bool
    ) -> list[Descriptor]:
        """Referrers for a crawler that already holds the tag list.

        Once the registry is known to lack the API, an absent `sha256-<hex>` tag in the list
        means no referrers, so an unsigned image costs no request at all. The API is probed
        once per client, not once per image.
        """
        digests.parse(digest)
        if self._referrers_api is None:
            async with self._probe_lock:
                if self._referrers_api is None:
                    found = await self._referrers_via_api(repo, digest, None)
                    self._referrers_api = found is not None
                    if found is not None:
                        return found
        if self._referrers_api:
            return await self._referrers_via_api(repo, digest, None) or []
        if not fallback_tag_listed:
            return []
        return await self._referrers_via_tag(repo, digest)

    async def _referrers_via_api(
        self, repo: str, digest: str, artifact_type: str | None
    ) -> list[Descriptor] | None:
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        url: str | None = f"/v2/{_repo(repo)}/referrers/{_reference(digest)}{query}"
        found: list[Descriptor] = []
        pager = Pager(f"the referrers of {repo}@{digest}", self.options.max_pages, self.base_url)
        while url:
            response = await self._request(
                "GET",
                url,
                scopes=(f"repository:{repo}:pull",),
                headers={"Accept": mediatypes.OCI_INDEX},
                max_body=self.options.max_manifest_size,
            )
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            # A registry without the API answers 404 (distribution: plain text), 400, 405 or 406;
            # a real answer is an OCI index.
            if response.status in (400, 404, 405, 406) or (
                response.status == 200 and content_type != mediatypes.OCI_INDEX
            ):
                return None if not found else found
            if response.status != 200:
                self._raise_for(response, f"referrers of {self._ref(repo, digest)}")
            page = referrers.parse_index(response.body, f"{repo}@{digest}")
            fresh = set(pager.add(response.url, [d.digest for d in page]))
            for descriptor in page:
                if descriptor.digest in fresh:  # each referrer once, however often it is listed
                    fresh.discard(descriptor.digest)
                    found.append(descriptor)
            url = pager.follow(_next_link(response.headers, response.url))
        return referrers.filter_artifact_type(found, artifact_type)

    async def _referrers_via_tag(self, repo: str, digest: str) -> list[Descriptor]:
        tag = referrers_tag(digest)
        try:
            # The full Accept list: with only the index type, distribution hides whatever else holds
            # the tag, and we would mistake a clash for "no referrers" and overwrite it.
            index = await self.get_manifest(repo, tag)
        except NotFoundError:
            return []
        if index.media_type != mediatypes.OCI_INDEX:
            return []
        return referrers.parse_index(index.raw, f"{repo}:{tag}")

    async def push_referrer(self, repo: str, data: bytes, media_type: str) -> Descriptor:
        """Push a manifest with a `subject`; maintain the fallback index if the registry did not."""
        manifest = Manifest(Descriptor(media_type, digests.of(data), len(data)), data)
        subject = manifest.subject()
        if subject is None:
            raise RegistryError("a referrer manifest needs a subject")
        descriptor, oci_subject = await self.put_manifest(repo, data, media_type)
        if oci_subject:
            self._referrers_api = True
            return descriptor
        await self.add_referrer_to_fallback(repo, subject.digest, referrers.descriptor_for(manifest))
        return descriptor

    async def add_referrer_to_fallback(self, repo: str, subject_digest: str, descriptor: Descriptor) -> None:
        tag = referrers_tag(subject_digest)
        existing: dict[str, Any] | None = None
        try:
            current = await self.get_manifest(repo, tag)
        except NotFoundError:
            current = None
        if current is not None:
            if current.media_type != mediatypes.OCI_INDEX:
                raise RegistryError(
                    f"tag {repo}:{tag} exists but is not an OCI index ({current.media_type}); "
                    "refusing to overwrite it with a referrers index"
                )
            existing = current.json()
        body, changed = referrers.add_to_index(existing, descriptor)
        if changed:
            await self.put_manifest(repo, body, mediatypes.OCI_INDEX, tag)


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _checked(kind: str, value: str, safe: str) -> str:
    # Every name that becomes a URL path is checked against the grammar the user's references obey, so
    # a name from a registry ("../../x", "a?b", ESC) is never requested; quoting is the second fence.
    if problem := name_problem(kind, value):
        raise RegistryError(f"refusing to request {kind} {value!r}: {problem}")
    return quote(value, safe=safe)


def _repo(name: str) -> str:
    return _checked("repository", name, "/")


def _reference(value: str) -> str:
    return _checked("reference", value, ":")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


class RegistryRepository:
    """One repository of a registry, behind the same interface as an OCI layout."""

    def __init__(self, client: RegistryClient, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def display(self) -> str:
        return f"{self.client.registry}/{self.name}"

    async def list_tags(self) -> list[str]:
        return await self.client.list_tags(self.name)

    async def resolve(self, reference: str) -> Descriptor:
        return await self.client.head_manifest(self.name, reference)

    async def get_manifest(self, reference: str) -> Manifest:
        return await self.client.get_manifest(self.name, reference)

    async def get_blob(self, digest: str, *, max_size: int | None = None) -> bytes:
        # `max_size` is what the caller expects at most (a descriptor's claim): over the client's limit,
        # the blob is refused before a request.
        return await self.client.get_blob(self.name, digest, size=max_size)

    async def put_blob(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        return await self.client.put_blob(self.name, data, media_type)

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        descriptor, _ = await self.client.put_manifest(self.name, data, media_type, tag)
        return descriptor

    async def delete_manifest(self, digest: str) -> None:
        await self.client.delete_manifest(self.name, digest)

    async def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        return await self.client.referrers(self.name, digest, artifact_type)

    async def push_referrer(self, data: bytes, media_type: str) -> Descriptor:
        return await self.client.push_referrer(self.name, data, media_type)

    async def discover_referrers(self, digest: str, *, fallback_tag_listed: bool) -> list[Descriptor]:
        return await self.client.discover_referrers(
            self.name, digest, fallback_tag_listed=fallback_tag_listed
        )
