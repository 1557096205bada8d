"""Fetch revocation evidence: OCSP responses (RFC 6960 over HTTP, GET when short, else POST) and CRLs over
HTTP, with an on-disk CRL cache keyed by URL that expires at each CRL's nextUpdate.

What to fetch is decided by trust/revocation.py (`chain_status(...).missing`): this module only answers those
needs, round after round, until the judgement needs nothing more. It never decides what an answer means;
a failed fetch becomes a `Fetched(error=…)` that the judgement reads as "unknown". Only plain-http URLs reach
here (notation fetches nothing else; the pure side refuses other schemes before asking).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sigscope import __version__
from sigscope.errors import TooLargeError
from sigscope.sources.body import read_limited
from sigscope.trust import revocation as rev

if TYPE_CHECKING:
    # Imported where a fetch happens: aiohttp costs ~0.4 s at start-up, paid by every `sigscope verify`
    # (which imports this module) although only revocation checks with a network use it.
    import aiohttp

OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"
MAX_ROUNDS = 32  # each round answers at least one need; a chain cannot honestly need more


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigscope" / "crl"


class CRLCache:
    """CRLs on disk, one `<sha256(url)>.crl` + `.json` (url, nextUpdate) pair per URL.

    Only CRLs that validated against their issuer at fetch time are stored, so a forged or stale answer is
    never replayed from disk; a hit is still judged again by the caller, like a fresh download.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.directory / f"{key}.crl", self.directory / f"{key}.json"

    def get(self, url: str, at: datetime) -> bytes | None:
        data_path, meta_path = self._paths(url)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("url") != url:
                return None
            if at >= datetime.fromisoformat(meta["nextUpdate"]):
                return None
            data = data_path.read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None
        return data

    def put(self, url: str, data: bytes, next_update: datetime) -> None:
        data_path, meta_path = self._paths(url)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            meta = {
                "url": url,
                "nextUpdate": next_update.isoformat(),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for path, content in ((data_path, data), (meta_path, json.dumps(meta).encode())):
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs a download next time


@dataclass(frozen=True)
class FetchOptions:
    ocsp_timeout: float = rev.OCSP_TIMEOUT
    crl_timeout: float = rev.CRL_TIMEOUT
    max_ocsp: int = rev.MAX_OCSP_RESPONSE
    max_crl: int = rev.MAX_CRL_SIZE
    cache: CRLCache | None = None


def _describe(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return str(exc) or type(exc).__name__


async def fetch_ocsp(
    session: aiohttp.ClientSession, url: str, request: bytes, options: FetchOptions
) -> rev.Fetched:
    """One OCSP exchange as notation-core-go makes it: GET `url/<base64 request>` if short, else POST."""
    import aiohttp

    encoded = quote(base64.b64encode(request).decode(), safe="")
    timeout = aiohttp.ClientTimeout(total=options.ocsp_timeout)
    try:
        if len(encoded) < 255:
            call = session.get(url.rstrip("/") + "/" + encoded, timeout=timeout)
        else:
            call = session.post(
                url, data=request, headers={"Content-Type": OCSP_REQUEST_TYPE}, timeout=timeout
            )
        async with call as resp:
            if not 200 <= resp.status < 300:
                return rev.Fetched(error=f"OCSP responder answered HTTP {resp.status}")
            return rev.Fetched(data=await read_limited(resp, options.max_ocsp, "the response"))
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError, TooLargeError) as exc:
        return rev.Fetched(error=f"OCSP request to {url} failed: {_describe(exc)}")


async def fetch_crl(
    session: aiohttp.ClientSession, need: rev.Need, at: datetime, options: FetchOptions
) -> rev.Fetched:
    cache = options.cache
    if cache is not None:
        cached = cache.get(need.url, at)
        if cached is not None:
            return rev.Fetched(data=cached, from_cache=True)
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=options.crl_timeout)
    try:
        async with session.get(need.url, timeout=timeout) as resp:
            if not 200 <= resp.status < 300:
                return rev.Fetched(error=f"failed to download with status code: {resp.status}")
            data = await read_limited(resp, options.max_crl, "the response")
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError, TooLargeError) as exc:
        return rev.Fetched(error=f"CRL download from {need.url} failed: {_describe(exc)}")
    if cache is not None and need.issuer is not None:
        try:
            crl = rev.load_crl(data)
            rev.validate_crl(crl, need.issuer, at)
        except (rev.CRLProblem, ValueError):
            pass  # judged (and refused) by the caller; never kept
        else:
            if crl.next_update_utc is not None:
                cache.put(need.url, data, crl.next_update_utc)
    return rev.Fetched(data=data)


async def gather_evidence(
    targets: Iterable[rev.Target],
    at: datetime,
    options: FetchOptions | None = None,
    evidence: rev.RevocationEvidence | None = None,
) -> rev.RevocationEvidence:
    """Fetch what judging every target needs (concurrently per round) into `evidence`."""
    options = options or FetchOptions()
    evidence = evidence if evidence is not None else rev.RevocationEvidence()
    targets = list(targets)
    if not any(rev.chain_revocable(t.chain) for t in targets):
        return evidence
    import aiohttp

    async with aiohttp.ClientSession(
        trust_env=False,  # an HTTP_PROXY in the environment must not see (or answer) revocation queries
        headers={"User-Agent": f"sigscope/{__version__}"},
        connector=aiohttp.TCPConnector(limit_per_host=4),
    ) as session:
        for _ in range(MAX_ROUNDS):
            wanted: list[rev.Need] = []
            for target in targets:
                for need in rev.chain_status(target.chain, evidence, at, target.signing_time).missing:
                    if need not in wanted:
                        wanted.append(need)
            if not wanted:
                break

            async def answer(need: rev.Need) -> rev.Fetched:
                if need.kind == "ocsp":
                    return await fetch_ocsp(session, need.url, need.request, options)
                return await fetch_crl(session, need, at, options)

            for need, fetched in zip(wanted, await asyncio.gather(*(answer(n) for n in wanted)), strict=True):
                evidence.add(need, fetched)
    return evidence


def collect_evidence(
    targets: Iterable[rev.Target], at: datetime, options: FetchOptions | None = None
) -> rev.RevocationEvidence:
    """Synchronous face of `gather_evidence` for the CLI."""
    return asyncio.run(gather_evidence(targets, at, options))
