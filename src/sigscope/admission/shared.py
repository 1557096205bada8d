"""The verdict cache shared by replicas: Redis (`--cache redis://…`), through redis-py's asyncio client.

Each replica keeps its own in-process cache in front; Redis is asked on a local miss and told every new
verdict, so one replica's verification serves the others. Entries carry the wall-clock time they were
reached (replicas share no monotonic clock) and expire in Redis after TTL + staleness. Redis is an
optimisation, never a dependency of a decision: an error or a slow answer counts as a miss, and a value
that is not a verdict we wrote is ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from typing import TYPE_CHECKING, Any

from sigscope.admission.cache import Clock, Ttls, VerdictKey
from sigscope.admission.verdict import SHARED, Verdict
from sigscope.errors import UsageError

if TYPE_CHECKING:
    import redis.asyncio

PREFIX = "sigscope:verdict:"
MAX_VALUE = 64 * 1024
DEFAULT_TIMEOUT = 0.25  # a Redis that takes longer is slower than verifying from a warm registry


class SharedCacheError(Exception):
    """Redis did not answer, or not with a verdict."""


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{host}"


class SharedVerdicts:
    def __init__(
        self, url: str, ttls: Ttls, *, timeout: float = DEFAULT_TIMEOUT, clock: Clock = time.time
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(f"--cache {redact(url)}: expected redis://, rediss:// or unix://")
        import redis.asyncio

        self.url = url
        self.ttls = ttls
        self.timeout = timeout
        self.clock = clock
        try:
            self._redis: redis.asyncio.Redis = redis.asyncio.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
            )
        except ValueError as exc:
            raise UsageError(f"--cache {redact(url)}: {exc}") from None

    @staticmethod
    def _name(key: VerdictKey) -> str:
        # Hashed: a name from outside never becomes a Redis key as it is, and the length is fixed.
        return PREFIX + hashlib.sha256("\0".join(key).encode()).hexdigest()

    async def get(self, key: VerdictKey) -> tuple[Verdict, float] | None:
        """The verdict and its age, or None (absent, or past TTL + staleness); SharedCacheError on failure."""
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self._redis.get(self._name(key))
        except Exception as exc:  # redis.RedisError, OSError, TimeoutError: all mean "no answer"
            raise SharedCacheError(f"redis: {type(exc).__name__}: {exc}") from None
        if raw is None:
            return None
        try:
            if len(raw) > MAX_VALUE:
                raise ValueError("too large")
            data: Any = json.loads(raw)
            stored = float(data["stored"])
            verdict = Verdict.from_bytes(json.dumps(data["verdict"]).encode(), SHARED)
        except (ValueError, KeyError, TypeError) as exc:
            raise SharedCacheError(f"redis: not a verdict under {self._name(key)}: {exc}") from None
        if verdict.policy_version != key[0] or verdict.digest != key[2]:
            raise SharedCacheError(f"redis: verdict under {self._name(key)} is for another key")
        age = max(0.0, self.clock() - stored)
        if age >= self.ttls.verdict(verdict) + self.ttls.stale:
            return None
        return verdict, age

    async def put(self, key: VerdictKey, verdict: Verdict) -> None:
        value = json.dumps(
            {"stored": self.clock(), "verdict": json.loads(verdict.to_bytes())}, separators=(",", ":")
        ).encode()
        expiry = math.ceil(self.ttls.verdict(verdict) + self.ttls.stale)
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.set(self._name(key), value, ex=max(1, expiry))
        except Exception as exc:
            raise SharedCacheError(f"redis: {type(exc).__name__}: {exc}") from None

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(max(self.timeout, 2.0)):
                await self._redis.ping()
        except Exception as exc:
            raise SharedCacheError(f"redis {redact(self.url)}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        await self._redis.aclose()
