"""One repository re-scanned into the inventory with the scan machinery of `scan registry` (incremental:
an unchanged digest costs its HEAD), recorded as a run whose scope is that repository, so that from then
on it says what the repository holds: a deleted image, absent from it, is gone from the inventory's state
(store/queries.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from sigscope.cli.record import ScanRecording
from sigscope.oci.client import RegistryClient
from sigscope.report.escape import printable
from sigscope.scan.registry import ImageResult, Progress, ScanOptions, scan_repository
from sigscope.store.reuse import StoreReuse
from sigscope.trust.certs import utcnow

log = logging.getLogger("sigscope.listen")


class RepositoryRescan:
    def __init__(self, db: str, client: RegistryClient, options: ScanOptions, params: dict[str, Any]) -> None:
        self.db = db
        self.client = client
        self.options = options
        self.params = params  # the trust options, as `scan registry` fingerprints them

    def _start(self, repository: str) -> ScanRecording:
        return ScanRecording.start(
            self.db,
            kind="registry",
            target=f"{self.client.registry}/{repository}",
            source=self.client.registry,
            params={**self.params, "repo_patterns": (repository,)},
        )

    @staticmethod
    def _record(recording: ScanRecording, results: list[ImageResult]) -> None:
        for result in results:
            recording.add_image(result)
        recording.finish()

    async def __call__(self, repository: str) -> None:
        started = time.monotonic()
        recording = await asyncio.to_thread(self._start, repository)
        try:
            now = utcnow()
            options = dataclasses.replace(
                self.options,
                now=now,
                repo_patterns=[repository],
                fingerprint=True,
                reuse=StoreReuse(recording.inventory, recording.trust_fingerprint, None, now),
            )
            results = [
                result
                async for result in scan_repository(
                    self.client.repository(repository),
                    source=self.client.registry,
                    repo_name=repository,
                    registry=self.client.registry,
                    options=options,
                    progress=Progress(),
                )
            ]
            await asyncio.to_thread(self._record, recording, results)
        except BaseException:
            await asyncio.to_thread(recording.abandon)
            raise
        log.info(
            "re-scanned %s: %d images, %d signed, run %d, %.2f s",
            printable(repository),
            recording.totals["images"],
            recording.totals["signed"],
            recording.run_id,
            time.monotonic() - started,
        )
