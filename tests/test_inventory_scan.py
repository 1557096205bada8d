"""`scan registry --db` against a real registry: incremental re-scans counted request by request through a
proxy, trust changes and --full, sharded scans by worker processes into a real PostgreSQL, and scans that
store nothing without --db.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.forge import PKI, make_pki, pem, push_cosign_signature, push_image
from testbed.postgres import PostgresServer, postgres  # noqa: F401
from testbed.proxy import RegistryProxy
from testbed.registry import RegistryHandle, registry_binary, start_registry

from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.scan.shard import shard_of
from sigscope.store import Inventory

REPOS = ("inv/alpha", "inv/bravo", "inv/charlie", "inv/delta")


@dataclass
class Bed:
    registry: RegistryHandle
    pki: PKI
    key: Path
    other_key: Path

    async def push(self, repo: str, tag: str, *, signed: bool) -> str:
        async with RegistryClient(
            self.registry.host, RegistryOptions(insecure=True, use_auth_files=False)
        ) as c:
            image = await push_image(c, repo, tag, f"{repo}:{tag}")
            if signed:
                await self.sign(c, repo, image.digest)
            return image.digest

    async def sign(self, client: RegistryClient, repo: str, digest: str) -> None:
        await push_cosign_signature(
            client, repo, digest, digest, self.pki.leaf_key, cert=pem(self.pki.leaf), chain=pem(self.pki.ca)
        )

    async def sign_existing(self, repo: str, digest: str) -> None:
        async with RegistryClient(
            self.registry.host, RegistryOptions(insecure=True, use_auth_files=False)
        ) as c:
            await self.sign(c, repo, digest)


def _public(key: object, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed")
    work = tmp_path_factory.mktemp("inventory-scan")
    handle = start_registry(work / "registry")
    pki = make_pki()
    bed = Bed(
        handle, pki, _public(pki.leaf_key, work / "key.pub"), _public(make_pki().leaf_key, work / "o.pub")
    )
    for repo in REPOS:  # tag 1 signed, tag 2 not
        asyncio.run(bed.push(repo, "1", signed=True))
        asyncio.run(bed.push(repo, "2", signed=False))
    try:
        yield bed
    finally:
        handle.stop()


def scan(host: str, db: str, *extra: str) -> dict[str, str]:
    result = run_sigscope(
        "scan", "registry", host, "--insecure", "--db", db, "-o", "json", *extra, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return {i["path"]: _status(i) for i in json.loads(result.stdout)["images"]}


def _status(image: dict[str, object]) -> str:
    return "signed" if image["signed"] else "unsigned"


def fetched(proxy: RegistryProxy) -> list[str]:
    """What a scan read beyond the catalog, tag lists, HEADs and the referrers probe: signature manifests
    and blobs."""
    return sorted(
        path
        for method, path in proxy.requests
        if method == "GET" and ("/manifests/" in path or "/blobs/" in path)
    )


def latest_totals(db: str) -> dict[str, int]:
    with Inventory.open(db) as inv:
        totals = inv.runs(limit=1)[0].totals
    assert totals is not None
    return totals


def test_incremental_rescan(bed: Bed, tmp_path: Path) -> None:
    db = str(tmp_path / "inventory.db")
    with RegistryProxy(bed.registry.url) as proxy:
        first = scan(proxy.host, db, "--key", str(bed.key))
        first_requests = len(proxy.requests)
        assert len(fetched(proxy)) == 2 * len(REPOS)  # each .sig manifest and its blob
        assert latest_totals(db)["fetched"] == 8

        # Unchanged: the catalog, one tag list per repository, one HEAD per tag, the referrers probe.
        proxy.reset()
        again = scan(proxy.host, db, "--key", str(bed.key))
        assert again == first
        assert fetched(proxy) == []
        assert len(proxy.requests) == 1 + len(REPOS) + 2 * len(REPOS) + 1 < first_requests
        assert latest_totals(db) == {**latest_totals(db), "reused": 8, "fetched": 0, "signed": 4}
        with Inventory.open(db) as inv:
            state = inv.latest_state()
            assert all(i.reused for i in state)
            # reused rows still answer with their signatures and verdicts
            sigs = inv.signatures_of(state)
            assert {s.row.status for i in state for s in sigs[i.id]} == {"verified"}

        # A new signature on an unsigned image and a new signed image: only those are fetched.
        digest = asyncio.run(_digest_of(bed, "inv/delta", "2"))
        asyncio.run(bed.sign_existing("inv/delta", digest))
        new = asyncio.run(bed.push("inv/alpha", "3", signed=True))
        proxy.reset()
        changed = scan(proxy.host, db, "--key", str(bed.key))
        assert changed["inv/delta:2"] == "signed" and changed["inv/alpha:3"] == "signed"
        hexes = {digest.split(":")[1], new.split(":")[1]}
        sig_reads = [p for p in fetched(proxy) if "/manifests/" in p]
        assert len(sig_reads) == 2 and all(any(h in p for h in hexes) for p in sig_reads)
        assert latest_totals(db)["fetched"] == 2 and latest_totals(db)["reused"] == 7

        # Other trust material: everything signed is fetched and judged again.
        proxy.reset()
        scan(proxy.host, db, "--key", str(bed.other_key))
        assert len([p for p in fetched(proxy) if "/manifests/" in p]) == 6
        with Inventory.open(db) as inv:
            state = inv.latest_state()
            sigs = inv.signatures_of(state)
            assert {s.row.status for i in state for s in sigs[i.id]} == {"untrusted"}

        # --full: everything fetched although nothing changed since
        proxy.reset()
        scan(proxy.host, db, "--key", str(bed.other_key), "--full")
        assert len([p for p in fetched(proxy) if "/manifests/" in p]) == 6
        assert latest_totals(db)["reused"] == 0


async def _digest_of(bed: Bed, repo: str, tag: str) -> str:
    async with RegistryClient(bed.registry.host, RegistryOptions(insecure=True, use_auth_files=False)) as c:
        return (await c.head_manifest(repo, tag)).digest


def test_no_db_stores_nothing_and_sigscope_db_is_read(bed: Bed, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    plain = run_sigscope("scan", "registry", bed.registry.host, "--insecure", "-o", "json", env=env)
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "data").exists()
    stored = run_sigscope(
        "scan",
        "registry",
        bed.registry.host,
        "--insecure",
        "-o",
        "json",
        env={**env, "SIGSCOPE_DB": "default"},
    )
    assert stored.returncode == 0, stored.stderr
    with Inventory.open(str(tmp_path / "data" / "sigscope" / "inventory.db")) as inv:
        [run] = inv.runs()
        assert run.complete and run.totals is not None and run.totals["images"] >= 8


def test_shard_usage_errors(bed: Bed, tmp_path: Path) -> None:
    host = bed.registry.host
    for bad in ("2/2", "1/0", "x/2", "-1/2"):
        assert_clean_failure(run_sigscope("scan", "registry", host, "--insecure", "--shard", bad), "--shard")
    db = str(tmp_path / "i.db")
    result = run_sigscope("scan", "registry", host, "--insecure", "--shard", "0/2", "--db", db)
    assert_clean_failure(result, "--run-group")
    assert_clean_failure(
        run_sigscope("scan", "registry", host, "--insecure", "--db", "mysql://h/db"), "unsupported database"
    )


def test_manifests_shards_union_equals_one_scan(bed: Bed, postgres: PostgresServer) -> None:  # noqa: F811
    """The Indexed Job's pods, as `scan manifests` renders them, run here as two concurrent processes into
    one PostgreSQL: together they make the inventory one unsharded scan makes."""
    assert {shard_of(r, 2) for r in REPOS} == {0, 1}, "the test repositories must fall in both shards"
    sharded, single = postgres.create_database(), postgres.create_database()
    extra = ["--insecure", "--repo", "inv/*", "--key", str(bed.key)]
    rendered = run_sigscope("scan", "manifests", bed.registry.host, "--shards", "2", "--", *extra)
    assert rendered.returncode == 0, rendered.stderr
    job, cronjob = yaml.safe_load_all(rendered.stdout)
    assert (job["kind"], cronjob["kind"]) == ("Job", "CronJob")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert cronjob["spec"]["jobTemplate"]["spec"] == spec and cronjob["spec"]["schedule"] == "0 2 * * *"
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SIGSCOPE_DB"]["valueFrom"]["secretKeyRef"] == {"name": "sigscope-db", "key": "url"}
    assert "job-completion-index" in env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]

    def pod(index: int) -> subprocess.Popen[str]:
        # What the kubelet does: $(VAR) in args from the container's env, the env from the pod.
        values = {"SHARD_INDEX": str(index)}
        args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in container["args"]]
        environment = {**os.environ, "SIGSCOPE_DB": sharded, "SIGSCOPE_RUN_GROUP": job["metadata"]["name"]}
        return subprocess.Popen(
            [sys.executable, "-m", "sigscope", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )

    workers = [pod(n) for n in range(2)]
    seen: list[set[str]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        seen.append(
            {json.loads(line).get("repository", "") for line in out.splitlines() if line.strip()} - {""}
        )
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    whole = run_sigscope(
        "scan", "registry", bed.registry.host, *extra, "--db", single, "-o", "json", timeout=180
    )
    assert whole.returncode == 0, whole.stderr

    def inventory(url: str) -> set[tuple[str, str, str, int]]:
        with Inventory.open(url) as inv:
            return {(i.path, i.digest, i.status, i.signature_count) for i in inv.latest_state()}

    assert inventory(sharded) == inventory(single)
    assert len(inventory(single)) >= 2 * len(REPOS)
    with Inventory.open(sharded) as inv:
        groups = inv.latest_groups()
        assert [sorted(r.shard or "" for r in g) for g in groups] == [["0/2", "1/2"]]
        assert {r.run_group for r in groups[0]} == {"sigscope-scan"}


def test_manifests_usage_errors() -> None:
    for args, pattern in (
        (["--shards", "0"], "--shards"),
        (["--name", "Bad_Name"], "--name"),
        (["--schedule", "nightly"], "--schedule"),
    ):
        assert_clean_failure(run_sigscope("scan", "manifests", "reg:5000", *args), pattern)


def test_scan_fs_records_files_signatures_and_certificates(tmp_path: Path) -> None:
    tree = Path(__file__).parent / "fixtures" / "files" / "jar"
    db = str(tmp_path / "fs.db")
    result = run_sigscope("scan", "fs", str(tree), "-o", "json", "--db", db)
    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout)["filesystem"]["signatures"]
    with Inventory.open(db) as inv:
        [run] = inv.runs()
        assert run.kind == "fs" and run.complete
        state = inv.latest_state()
        sigs = inv.signatures_of(state)
        stored = sorted((i.path, s.row.status, s.row.cert_serial or "") for i in state for s in sigs[i.id])
        assert stored == sorted((r["path"], r["status"], r.get("serial") or "") for r in reported)
        assert all(i.kind == "file" and i.digest in ("", *{r["digest"] for r in reported}) for i in state)
        assert {i.digest for i in state} >= {r["digest"] for r in reported if r.get("digest")}
        # every signing certificate is there with its validity, for expiry reports
        signing = [
            c for c in inv.expiring(datetime(9999, 1, 1, tzinfo=UTC)) if c.certificate.role == "signing"
        ]
        assert len(signing) == sum(1 for r in reported if r.get("serial"))


def test_policy_decisions_are_recorded_and_ride_the_rescan(bed: Bed, tmp_path: Path) -> None:
    """scan --policy --db: every image's decision lands in the inventory; an unchanged re-scan fetches no
    signature and decides the recalled records again (the same decisions); another policy re-fetches."""

    def write_policy(key: Path) -> Path:
        path = tmp_path / f"policy-{key.stem}.yaml"
        rule = {
            "name": "pol",
            "images": ["**/pol/**"],
            "authorities": [{"name": "k", "key": {"path": str(key)}}],
        }
        document = {"apiVersion": "sigscope/v1", "kind": "Policy", "unmatched": "allow", "rules": [rule]}
        path.write_text(yaml.safe_dump(document))
        return path

    def decided(host: str, db: str, policy: Path) -> dict[str, str]:
        result = run_sigscope(
            "scan",
            "registry",
            host,
            "--insecure",
            "--db",
            db,
            "--policy",
            str(policy),
            "-o",
            "json",
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return {i["path"]: i["decision"]["decision"] for i in json.loads(result.stdout)["images"]}

    async def push_through(host: str) -> None:
        # signed through the proxy: the payload names the host the scan sees
        async with RegistryClient(host, RegistryOptions(insecure=True, use_auth_files=False)) as c:
            image = await push_image(c, "pol/app", "1", "pol/app:1")
            await bed.sign(c, "pol/app", image.digest)
            await push_image(c, "pol/app", "2", "pol/app:2")

    db = str(tmp_path / "inventory.db")
    ours, theirs = write_policy(bed.key), write_policy(bed.other_key)
    with RegistryProxy(bed.registry.url) as proxy:
        asyncio.run(push_through(proxy.host))
        proxy.reset()
        first = decided(proxy.host, db, ours)
        assert first["pol/app:1"] == "allow" and first["pol/app:2"] == "deny"
        assert first["inv/alpha:1"] == "allow"  # unmatched: allow, decided by name
        with Inventory.open(db) as inv:
            stored = {f"{i.repository}:{t}": i.decision for i in inv.latest_state() for t in i.tags}
        assert {k: d.decision if d else None for k, d in stored.items()} == first
        assert stored["pol/app:2"] is not None and stored["pol/app:2"].rule == "pol"
        assert all(d is not None and d.policy_version for d in stored.values())

        proxy.reset()
        assert decided(proxy.host, db, ours) == first
        assert fetched(proxy) == []
        assert latest_totals(db)["fetched"] == 0

        proxy.reset()
        other = decided(proxy.host, db, theirs)
        assert other["pol/app:1"] == "deny"
        assert [p for p in fetched(proxy) if "/manifests/" in p]
