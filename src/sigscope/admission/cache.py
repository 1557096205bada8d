"""In-process caches and in-flight coalescing for the webhook.

- `LruCache`: entries with the time they were stored, kept for a given time and evicted least recently
  used first when their bytes pass a bound (a webhook runs for weeks: nothing here grows without limit).
- `VerdictCache`: verdicts keyed by (policy version, image, digest), fresh for the allow or the deny TTL,
  kept beyond that for the staleness window so the last good verdict can be served while a registry is
  unreachable. The policy version hashes the policy and its trust material, so a new key or rule never
  meets a verdict reached under the old one.
- `TagCache`: tag → digest with a short TTL (a tag moves; the pinning patch is what makes it stay).
- `InFlight`: one task per key, however many requests wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sigscope.admission.verdict import Verdict

V = TypeVar("V")
T = TypeVar("T")
Clock = Callable[[], float]
# Bookkeeping of one entry beyond its own bytes (the OrderedDict node, the tuple, the key object).
ENTRY_OVERHEAD = 200


@dataclass(frozen=True)
class Cached(Generic[V]):
    value: V
    stored: float  # clock time it was stored
    size: int
    expires: float  # clock time it is dropped


class LruCache(Generic[V]):
    """Bounded by bytes (each entry's `size`, which the caller measures) and by time."""

    def __init__(self, max_bytes: int, clock: Clock = time.time) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[Hashable, Cached[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Cached[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, value: V, size: int, keep_for: float, stored: float | None = None) -> None:
        size += ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # larger than the whole cache: not worth evicting everything for
        self._drop(key)
        now = self.clock()
        stored = now if stored is None else stored
        self._entries[key] = Cached(value, stored, size, stored + keep_for)
        self.bytes += size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size


VerdictKey = tuple[str, str, str]  # (policy version, image without its digest, digest)


def verdict_key(policy_version: str, image: str, digest: str) -> VerdictKey:
    # The image's name (and tag) is part of the key, not the digest alone: the rule an image matches and
    # the identity its signature must claim depend on the name it is pulled by.
    return (policy_version, image.partition("@")[0], digest)


@dataclass(frozen=True)
class Ttls:
    allow: float = 300.0  # an admitted digest: its signatures do not come undone by themselves
    deny: float = 30.0  # a denied one: short, so a signature pushed after the denial counts soon
    tag: float = 30.0  # tag → digest
    stale: float = 3600.0  # how long past its TTL a verdict may be served while the registry is down

    def verdict(self, verdict: Verdict) -> float:
        return self.allow if verdict.allowed else self.deny


class VerdictCache:
    def __init__(self, ttls: Ttls, max_bytes: int, clock: Clock = time.time) -> None:
        self.ttls = ttls
        self.clock = clock
        self._lru: LruCache[Verdict] = LruCache(max_bytes, clock)

    @property
    def bytes(self) -> int:
        return self._lru.bytes

    def __len__(self) -> int:
        return len(self._lru)

    def put(self, key: VerdictKey, verdict: Verdict, stored: float | None = None) -> None:
        ttl = self.ttls.verdict(verdict)
        size = len(verdict.to_bytes()) + sum(len(part) for part in key)
        self._lru.put(key, verdict, size, ttl + self.ttls.stale, stored)

    def fresh(self, key: VerdictKey) -> tuple[Verdict, float] | None:
        """The verdict and its age, while within its TTL."""
        entry = self._lru.get(key)
        if entry is None:
            return None
        age = self.clock() - entry.stored
        return (entry.value, age) if age < self.ttls.verdict(entry.value) else None

    def stale(self, key: VerdictKey) -> tuple[Verdict, float] | None:
        """The last verdict and its age, within TTL + staleness: only for when the registry failed."""
        entry = self._lru.get(key)
        if entry is None:
            return None
        return entry.value, self.clock() - entry.stored


class TagCache:
    def __init__(self, ttls: Ttls, max_bytes: int, clock: Clock = time.time) -> None:
        self.ttls = ttls
        self.clock = clock
        self._lru: LruCache[str] = LruCache(max_bytes, clock)

    def put(self, image: str, digest: str) -> None:
        self._lru.put(image, digest, len(image) + len(digest), self.ttls.tag + self.ttls.stale)

    def fresh(self, image: str) -> str | None:
        entry = self._lru.get(image)
        if entry is None or self.clock() - entry.stored >= self.ttls.tag:
            return None
        return entry.value

    def stale(self, image: str) -> str | None:
        entry = self._lru.get(image)
        return None if entry is None else entry.value


class InFlight(Generic[T]):
    """Identical work coalesced: the first caller starts a task, later ones with the same key wait on it.

    Waiting is shielded, so a caller that gives up (its deadline passed) does not cancel the work for the
    others; the work bounds its own time. `started` counts tasks, `joined` the callers that found one.
    """

    def __init__(self, on_join: Callable[[], None] | None = None) -> None:
        self._tasks: dict[Hashable, asyncio.Task[T]] = {}
        self._on_join = on_join
        self.started = 0
        self.joined = 0

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            self.started += 1
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        else:
            self.joined += 1
            if self._on_join is not None:
                self._on_join()
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody waited for any more is not "never retrieved"

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
