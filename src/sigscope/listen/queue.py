"""Which repositories wait for a re-scan: a burst of events for one repository is one scan, the number
waiting is bounded (past it the sender is told to come back: distribution retries a refused delivery), a
few scans run at once, and a repository notified while its scan runs is scanned once more after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sigscope.report.escape import printable

log = logging.getLogger("sigscope.listen")

DEFAULT_MAX_PENDING = 1024
# A push is several notifications (the image's manifest, then its signature's): they arrive within a few
# milliseconds, and one scan after the last of them sees them all.
DEFAULT_SETTLE = 0.1
RETRIES = 3
RETRY_DELAY = 1.0


class ScanQueue:
    def __init__(
        self,
        scan: Callable[[str], Awaitable[object]],
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        settle: float = DEFAULT_SETTLE,
        concurrency: int = 4,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._scan = scan
        self.max_pending = max_pending
        self.settle = settle
        self.retry_delay = retry_delay
        self._pending: dict[str, int] = {}  # repository -> attempts so far
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.scans = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, repository: str, attempt: int = 0) -> bool:
        """Queue a re-scan of `repository`; False when the queue is full (nothing was queued)."""
        if repository in self._running:
            self._again.add(repository)
            return True
        if repository in self._pending:
            return True
        if len(self._pending) >= self.max_pending:
            return False
        self._pending[repository] = attempt
        self._wake.set()
        return True

    async def run(self) -> None:
        """Serve the queue until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(self.settle)
                while self._pending:
                    repository, attempt = next(iter(self._pending.items()))
                    del self._pending[repository]
                    self._running.add(repository)  # from here an event for it asks for one more scan
                    await self._slots.acquire()
                    task = asyncio.create_task(self._one(repository, attempt))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _one(self, repository: str, attempt: int) -> None:
        failed = False
        try:
            await self._scan(repository)
            self.scans += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failed = True
            self.failures += 1
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.warning("re-scan of %s failed: %s", printable(repository), printable(str(message)))
        finally:
            self._running.discard(repository)
            self._slots.release()
        if repository in self._again:
            self._again.discard(repository)
            self.offer(repository)
        elif failed and attempt + 1 < RETRIES:
            asyncio.get_running_loop().call_later(
                self.retry_delay * (attempt + 1), self.offer, repository, attempt + 1
            )
