"""One JSON line per admission decision, for whoever has to answer "why was this pod let in?".

Lines go to stdout or to `--audit-log FILE` (appended, flushed per line so a crash loses nothing that was
answered). JSON escapes every control character, so a name from a pod spec cannot forge a line.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from sigscope.admission.review import ReviewRequest, denial_line, overall
from sigscope.admission.verdict import Verdict


def audit_record(
    endpoint: str,
    request: ReviewRequest,
    verdicts: list[Verdict],
    policy_version: str,
    latency: float,
    *,
    pinned: int | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "endpoint": endpoint,
        "uid": request.uid,
        "namespace": request.namespace,
        "kind": request.kind,
        "name": request.name,
        "operation": request.operation,
        "user": request.user,
        "dry_run": request.dry_run,
        "decision": overall(verdicts),
        "policy_version": policy_version,
        "images": [v.to_audit() for v in verdicts],
        "digests": {v.image: v.digest for v in verdicts if v.digest},
        "reasons": [denial_line(v) for v in verdicts if not v.allowed],
        "cache_hit": bool(verdicts) and all(v.cache_hit for v in verdicts),
        "latency_ms": round(latency * 1000, 3),
    }
    if pinned is not None:
        record["pinned"] = pinned
    return record


class AuditLog:
    def __init__(self, path: str | None = None) -> None:
        self._own = path is not None
        self._stream: IO[str] = open(path, "a", encoding="utf-8") if path else sys.stdout
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._own:
            self._stream.close()
