"""`--db` on the scans: what a run records, and the options that go with it (--full, --shard, --run-group).

Nothing here runs without `--db` (or SIGSCOPE_DB): a scan without it stores nothing and imports no
database code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sigscope.errors import UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from sigscope.files.base import FileResult
    from sigscope.scan.registry import ImageResult
    from sigscope.store import Inventory
    from sigscope.store.recorder import Recorder
    from sigscope.store.records import ImageRow

F = TypeVar("F", bound=Callable[..., Any])

# Options that change how a scan reaches its sources or shows its results, never what a signature's
# verdict is. Every other option of a scan goes into the trust fingerprint (file contents included), so
# an option added later counts as trust material until it is listed here: reuse is lost, never wrongly kept.
NOT_TRUST = frozenset(
    {
        "target",
        "paths",
        "output",
        "fail_on",
        "repo_patterns",
        "platforms",
        "insecure",
        "skip_tls_verify",
        "ca_file",
        "username",
        "password",
        "password_stdin",
        "authfile",
        "timeout",
        "max_concurrency",
        "max_pages",
        "max_blob_size",
        "jobs",
        "cache_file",
        "include",
        "exclude",
        "db",
        "full",
        "shard",
        "run_group",
    }
)
MAX_MATERIAL_BYTES = 256 * 1024 * 1024
MAX_MATERIAL_FILES = 10_000


def db_option(func: F) -> F:
    return click.option(
        "--db",
        metavar="URL",
        envvar="SIGSCOPE_DB",
        help="Remember this scan in an inventory: a SQLite file (PATH, sqlite:///PATH, or 'default' for "
        "~/.local/share/sigscope/inventory.db) or postgresql://… [env: SIGSCOPE_DB]. docs/inventory.md.",
    )(func)


def incremental_options(func: F) -> F:
    """--full, --shard and --run-group for `scan registry`."""

    @click.option(
        "--full",
        is_flag=True,
        help="With --db: fetch and verify every image again, even those whose signature set is unchanged.",
    )
    @click.option(
        "--shard",
        metavar="I/N",
        help="Scan only the repositories in shard I of N (I from 0; by a stable hash of the repository "
        "name), so N workers split one registry.",
    )
    @click.option(
        "--run-group",
        metavar="NAME",
        envvar="SIGSCOPE_RUN_GROUP",
        help="With --db: the name the N shards of one scan share (e.g. the Kubernetes Job's name) "
        "[env: SIGSCOPE_RUN_GROUP].",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _material(value: Any, out: list[bytes], budget: list[int]) -> None:
    """`value` into the fingerprint: a file's bytes, a directory's files (sorted), else its text."""
    if isinstance(value, tuple | list):
        for item in value:
            _material(item, out, budget)
        return
    out.append(repr(value).encode())
    if not isinstance(value, str) or not value:
        return
    path = Path(value)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files[:MAX_MATERIAL_FILES]:
        if not item.is_file():
            continue
        size = item.stat().st_size
        if size > budget[0]:
            raise UsageError(f"{value}: trust material over {MAX_MATERIAL_BYTES >> 20} MiB in all")
        budget[0] -= size
        out.append(str(item).encode() + b"\0" + hashlib.sha256(item.read_bytes()).digest())


def trust_fingerprint(params: dict[str, Any], policy_version: str | None = None) -> str:
    """SHA-256 over sigscope's version, the policy version and every verdict-shaping option with the
    contents of the files it names: keys, roots, identities, notation trust policy, keyrings, TSA roots."""
    from sigscope import __version__

    parts: list[bytes] = [f"sigscope {__version__}".encode(), repr(policy_version).encode()]
    budget = [MAX_MATERIAL_BYTES]
    for name in sorted(params):
        if name in NOT_TRUST:
            continue
        parts.append(b"\x1e" + name.encode())
        _material(params[name], parts, budget)
    return hashlib.sha256(b"\x1f".join(parts)).hexdigest()


def run_flags(params: dict[str, Any]) -> dict[str, Any]:
    """What a run records about its options: no values that could be secrets, only what shapes results."""
    flags: dict[str, Any] = {}
    for name in ("repo_patterns", "platforms", "full", "shard", "verify", "include", "exclude"):
        if name in params and params[name] not in (None, (), False):
            value = params[name]
            flags[name] = list(value) if isinstance(value, tuple) else value
    flags["trust"] = sorted(
        n for n, v in params.items() if n not in NOT_TRUST and v not in (None, (), False, "")
    )
    return flags


class ScanRecording:
    """One run in the inventory: opened before the scan, every result added, finished or left incomplete."""

    def __init__(
        self, inventory: Inventory, run_id: int, recorder: Recorder, trust: str, now: Callable[[], datetime]
    ):
        self.inventory = inventory
        self.run_id = run_id
        self.trust_fingerprint = trust
        self.recorder = recorder
        self.now = now
        self.totals: dict[str, int] = dict.fromkeys(
            ("images", "signed", "unsigned", "errors", "signatures", "reused", "fetched"), 0
        )

    @classmethod
    def start(
        cls,
        db: str,
        *,
        kind: str,
        target: str,
        source: str,
        params: dict[str, Any],
        shard: tuple[int, int] | None = None,
        run_group: str | None = None,
        policy_version: str | None = None,
    ) -> ScanRecording:
        from sigscope.store import Inventory
        from sigscope.store.recorder import Recorder
        from sigscope.store.records import RunStart
        from sigscope.trust.certs import utcnow

        if shard is not None and shard[1] > 1 and not run_group:
            raise UsageError(
                "--shard with --db needs --run-group NAME (or SIGSCOPE_RUN_GROUP), the same for every "
                "shard of one scan, so that the inventory knows them for one"
            )
        scope_parts = [kind, target]
        patterns = sorted(params.get("repo_patterns") or ())
        if patterns:
            scope_parts.append("repo=" + ",".join(patterns))
        if params.get("platforms"):
            scope_parts.append("platforms")
        fingerprint = trust_fingerprint(params, policy_version)
        inventory = Inventory.open(db)
        try:
            run_id = inventory.start_run(
                RunStart(
                    kind=kind,
                    target=target,
                    source=source,
                    scope=" ".join(scope_parts),
                    started_at=utcnow(),
                    flags=run_flags(params),
                    trust_fingerprint=fingerprint,
                    policy_version=policy_version,
                    shard=f"{shard[0]}/{shard[1]}" if shard else None,
                    run_group=run_group or None,
                )
            )
        except BaseException:
            inventory.close()
            raise
        return cls(inventory, run_id, Recorder(inventory, run_id, utcnow), fingerprint, utcnow)

    def _count(self, row: ImageRow, reused: bool) -> None:
        self.totals["images"] += 1
        if row.error:
            self.totals["errors"] += 1
        elif any(not s.attachment_digest for s in row.signatures):
            self.totals["signed"] += 1
        else:
            self.totals["unsigned"] += 1
        self.totals["signatures"] += sum(1 for s in row.signatures if not s.attachment_digest)
        self.totals["reused" if reused else "fetched"] += 1
        self.recorder.add(row)

    def add_image(self, result: ImageResult) -> None:
        from sigscope.store.convert import image_row
        from sigscope.store.records import DecisionRow

        d = result.decision
        decision = DecisionRow(d.decision, d.rule, d.reason, d.policy_version) if d is not None else None
        row = image_row(result, sigset=result.sigset, evidence_id=result.evidence_id, decision=decision)
        self._count(row, bool(result.evidence_id))

    def add_file(self, result: FileResult, source: str) -> None:
        from sigscope.store.convert import file_row

        self._count(file_row(result, source), False)

    def finish(self) -> None:
        try:
            self.recorder.finish(dict(self.totals))
        finally:
            self.inventory.close()

    def abandon(self) -> None:
        try:
            self.recorder.abandon()
        finally:
            self.inventory.close()
