"""A scan's writer: rows go to the inventory from a thread of their own, so the crawl never waits on a
commit. Each image is whole in the transaction that carries it (a few images share one when the writer
falls behind); the run is marked complete only by `finish`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sigscope.errors import SigscopeError
from sigscope.store.inventory import Inventory
from sigscope.store.records import ImageRow

BATCH = 64
_STOP = None


class Recorder:
    def __init__(self, inventory: Inventory, run_id: int, clock: Callable[[], datetime]) -> None:
        self.inventory = inventory
        self.run_id = run_id
        self.clock = clock
        self.written = 0
        self._queue: queue.Queue[ImageRow | None] = queue.Queue(maxsize=4 * BATCH)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="sigscope-inventory", daemon=True)
        self._thread.start()

    def add(self, row: ImageRow) -> None:
        self._raise_failure()
        self._queue.put(row)

    def finish(self, totals: dict[str, Any]) -> None:
        """Everything written, then the run marked complete."""
        self._drain()
        self.inventory.finish_run(self.run_id, self.clock(), totals)

    def abandon(self) -> None:
        """The scan failed or was interrupted: what was written stays, the run stays incomplete."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _drain(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            from sigscope.store.inventory import first_line

            raise SigscopeError(
                f"inventory {self.inventory.display}: writing failed: {first_line(self._failure)}"
            )

    def _work(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
            rows = [r for r in batch if r is not None]
            if not rows or self._failure is not None:
                continue  # after a failure only drained, so that add() never blocks forever
            try:
                self.inventory.write_images(self.run_id, rows, self.clock())
                self.written += len(rows)
            except Exception as exc:  # handed to the scan, which ends with one line
                self._failure = exc
