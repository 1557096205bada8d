"""Fetch an RFC 3161 timestamp from a TSA over HTTP (RFC 3161 §3.4: POST application/timestamp-query).

The reply is checked against the request before anyone sees it: status granted, the imprint is our data's,
the nonce is ours. Whether the TSA is *trusted* is not decided here (trust/timestamp.py does that, against
roots the user supplies); a signer only needs to know the token belongs to its request.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from sigscope import __version__
from sigscope.errors import (
    DeadlineError,
    IntegrityError,
    SigscopeError,
    TLSError,
    UnreachableError,
    UsageError,
)
from sigscope.sources.body import read_limited
from sigscope.sources.deadline import request_deadline
from sigscope.trust.timestamp import (
    TimestampRejected,
    TimestampToken,
    build_request,
    parse_response,
)

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY = 1024 * 1024  # a token with a long chain is a few KiB; anything near this is not a TSA
CONNECT_TIMEOUT = 10.0


class TSAError(SigscopeError):
    """The TSA answered, but not with a timestamp (HTTP error, wrong content type)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TSAUnreachable(UnreachableError):
    """The TSA could not be reached (refused, DNS, timeout, TLS)."""


class TSAMismatch(IntegrityError):
    """The TSA's token is not for our request (another imprint or nonce)."""


__all__ = [
    "TSAError",
    "TSAMismatch",
    "TSAUnreachable",
    "Timestamp",
    "TimestampRejected",
    "fetch_timestamp",
]


@dataclass(frozen=True)
class Timestamp:
    """A granted reply for our data: the DER TimeStampResp as received and its parsed token."""

    response: bytes
    token: TimestampToken


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))


def check_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; a usage error otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"timestamp URL {url!r} is not an http:// or https:// URL")
    return url


async def fetch_timestamp(
    url: str,
    data: bytes,
    *,
    hash_algorithm: str = "sha256",
    timeout: float = 30.0,
    max_size: int = MAX_REPLY,
    ca_file: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Timestamp:
    """A timestamp over `data` from the TSA at `url` (certReq set, random nonce), checked against the request.

    Raises TSAUnreachable, TSAError (HTTP status, content type), TooLargeError, TimestampRejected (a status
    other than granted), TimestampError (malformed reply) or TSAMismatch (imprint or nonce not ours).
    """
    check_url(url)
    request = build_request(data, hash_algorithm=hash_algorithm)
    if session is not None:
        body = await _post(session, url, request.der, max_size, timeout)
    else:
        # Explicit TLS: the system store or the given CA file, never what the environment says.
        context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        connector = aiohttp.TCPConnector(ssl=context)
        # The request's deadline is request_deadline's (in _post), so it holds for a caller's session too.
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, CONNECT_TIMEOUT))
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=client_timeout,
            trust_env=False,
            headers={"User-Agent": f"sigscope/{__version__}"},
        ) as own:
            body = await _post(own, url, request.der, max_size, timeout)
    token = parse_response(body)
    shown = _redact(url)
    if token.hash_algorithm != request.hash_algorithm or token.imprint != request.digest:
        raise TSAMismatch(f"TSA {shown} time-stamped other data than we sent (imprint mismatch)")
    if token.nonce != request.nonce:
        raise TSAMismatch(f"TSA {shown} answered with another request's nonce (replayed reply?)")
    return Timestamp(response=body, token=token)


async def _post(
    session: aiohttp.ClientSession, url: str, query: bytes, max_size: int, timeout: float
) -> bytes:
    shown = _redact(url)
    split = urlsplit(shown)
    try:
        async with (
            request_deadline(timeout, f"TSA {split.netloc}", f"POST {split.path or '/'}") as clock,
            session.post(
                url, data=query, headers={"Content-Type": QUERY_TYPE, "Accept-Encoding": "identity"}
            ) as resp,
        ):
            clock.answered = True
            if resp.status != 200:
                text = (await resp.content.read(200)).decode(errors="replace").strip()
                first = text.splitlines()[0] if text else resp.reason or ""
                raise TSAError(
                    f"TSA {shown} answered HTTP {resp.status}" + (f" ({first})" if first else ""),
                    status=resp.status,
                )
            content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != REPLY_TYPE:
                raise TSAError(f"TSA {shown} answered {content_type or 'no content type'}, not {REPLY_TYPE}")
            return await read_limited(resp, max_size, f"TSA {shown} reply")
    except aiohttp.ClientConnectorCertificateError as exc:
        raise TLSError(f"TLS verification failed for TSA {shown}: {exc.certificate_error}") from None
    except aiohttp.ClientSSLError as exc:
        raise TLSError(f"TLS handshake with TSA {shown} failed: {exc}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error)
        raise TSAUnreachable(f"cannot connect to TSA {shown}: {reason}") from None
    except DeadlineError as exc:
        raise TSAUnreachable(exc.message) from None
    except TimeoutError:  # aiohttp's connect limit
        raise TSAUnreachable(
            f"TSA {shown}: no connection within {min(timeout, CONNECT_TIMEOUT):g}s"
        ) from None
    except aiohttp.ClientError as exc:
        raise TSAUnreachable(f"request to TSA {shown} failed: {exc}") from None
