"""Reads for the history reports (report diff/expiring/signers, report serve): the inventory's state at a
time, counts per run for the charts, and one image's evidence.

The state is kept per repository, not per scan: `scan registry HOST` covers every repository of HOST, a
`listen` re-scan (or `scan registry HOST/REPO`) covers one, and for each repository the newest complete scan
that covered it says what is there. An image it no longer lists (deleted, or its tag moved) is gone, even if
an older, broader scan still lists it.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sigscope.errors import SigscopeError
from sigscope.oci.reference import parse_registry_target
from sigscope.store.inventory import Inventory, _complete_runs
from sigscope.store.records import ImageRecord, RunRecord, SignatureRecord
from sigscope.store.schema import images, scan_runs

# Run groups a chart draws at most (the newest): a page's size must not grow with the inventory's age.
MAX_SERIES_GROUPS = 500


def covers(run: RunRecord, source: str, repository: str) -> bool:
    """Whether `run` looked at `repository` of `source` (so what it did not list there is not there)."""
    if run.source != source:
        return False
    if run.kind != "registry" or run.target.startswith("oci:"):
        return True
    try:
        namespace = parse_registry_target(run.target)[1].rstrip("/")
    except SigscopeError:
        return False
    if namespace and repository != namespace and not repository.startswith(namespace + "/"):
        return False
    patterns = [str(p) for p in run.flags.get("repo_patterns") or ()]
    return not patterns or any(fnmatch.fnmatchcase(repository, p) for p in patterns)


def _newest_first(groups: list[list[RunRecord]]) -> list[list[RunRecord]]:
    return sorted(groups, key=lambda g: max(r.id for r in g), reverse=True)


def state(inventory: Inventory, before: datetime | int | None = None) -> list[ImageRecord]:
    """What the inventory knew at `before` (a time, or a run id: that run and older; None: now): per
    repository, the images of the newest complete scan that covered it."""
    groups = _newest_first(inventory.latest_groups(before=before))
    rows = {id(g): inventory.images_of(r.id for r in g) for g in groups}
    owner: dict[tuple[str, str], int] = {}
    for group in groups:
        for image in rows[id(group)]:
            key = (image.source, image.repository)
            if key not in owner:
                owner[key] = next(id(g) for g in groups if covers(g[0], *key))
    out = [
        image
        for group in groups
        for image in rows[id(group)]
        if owner[(image.source, image.repository)] == id(group)
    ]
    return sorted(out, key=lambda i: (i.source, i.repository, i.path, i.parent_digest, i.digest))


def previous_point(inventory: Inventory) -> int | None:
    """The run id just before the newest complete scan: `report diff`'s default `--since`."""
    groups = _newest_first(inventory.latest_groups())
    if not groups:
        return None
    return min(r.id for r in groups[0]) - 1


@dataclass(frozen=True)
class GroupCounts:
    """One complete scan (run group) with, per repository it listed, its images and how many are signed."""

    runs: tuple[RunRecord, ...]
    counts: dict[tuple[str, str], tuple[int, int]]  # (source, repository) -> (signed, images)

    @property
    def at(self) -> datetime:
        return max((r.finished_at or r.started_at) for r in self.runs)


def group_counts(inventory: Inventory, limit: int = MAX_SERIES_GROUPS) -> list[GroupCounts]:
    """The newest `limit` complete scans, oldest first, each with its signed/total counts per repository
    (readable images only: a row that could not be read is neither)."""
    by_group: dict[str, list[RunRecord]] = defaultdict(list)
    for run in inventory.runs(limit=limit * 64):
        by_group[run.run_group].append(run)
    complete = [
        sorted(runs, key=lambda r: r.id)
        for runs in (_complete_runs(g) for g in by_group.values())
        if runs is not None
    ]
    chosen = sorted(complete, key=lambda g: max(r.id for r in g))[-limit:]
    run_ids = [r.id for g in chosen for r in g]
    counts: dict[int, dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    if run_ids:
        query = (
            sa.select(
                images.c.run_id,
                images.c.source,
                images.c.repository,
                sa.func.count(),
                sa.func.sum(sa.case((images.c.signed, 1), else_=0)),
            )
            .where(images.c.run_id.in_(run_ids), images.c.error.is_(None))
            .group_by(images.c.run_id, images.c.source, images.c.repository)
        )
        with inventory.engine.connect() as conn:
            for run_id, source, repository, total, signed in conn.execute(query):
                counts[run_id][(source, repository)] = (int(signed or 0), int(total))
    out = []
    for group in chosen:
        merged: dict[tuple[str, str], tuple[int, int]] = {}
        for run in group:
            for key, (signed, total) in counts[run.id].items():
                had = merged.get(key, (0, 0))
                merged[key] = (had[0] + signed, had[1] + total)
        out.append(GroupCounts(tuple(group), merged))
    return out


@dataclass(frozen=True)
class Evidence:
    image: ImageRecord
    run: RunRecord
    signatures: list[SignatureRecord]


def evidence(inventory: Inventory, image_id: int) -> Evidence | None:
    """One image row with the run that saw it and its signatures (those it reused included)."""
    found = inventory.evidence([image_id]).get(image_id)
    if found is None:
        return None
    image = found[0]
    run = inventory.run(image.run_id)
    if run is None:
        return None
    return Evidence(image, run, inventory.signatures_of([image])[image_id])


def revision(inventory: Inventory) -> tuple[int, int]:
    """Changes whenever a run starts or completes: what a cache of derived pages is keyed on."""
    with inventory.engine.connect() as conn:
        newest, complete = conn.execute(
            sa.select(sa.func.max(scan_runs.c.id), sa.func.count().filter(scan_runs.c.complete))
        ).one()
    return int(newest or 0), int(complete or 0)


def run_times(inventory: Inventory, run_ids: set[int]) -> dict[int, datetime]:
    """When each run finished (or started, while it runs)."""
    out: dict[int, datetime] = {}
    ids = sorted(run_ids)
    with inventory.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            query = sa.select(scan_runs.c.id, scan_runs.c.started_at, scan_runs.c.finished_at).where(
                scan_runs.c.id.in_(ids[start : start + 500])
            )
            for run_id, started, finished in conn.execute(query):
                out[int(run_id)] = finished or started
    return out
