"""`sigscope inventory listen`: the real registry (Debian's docker-registry, distribution 2.8) configured to
notify it, images and signatures pushed and deleted, the inventory polled until it shows them; and the
endpoint's limits (auth, body size, media type, a full queue) and the queue's coalescing, in process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed.cli import SCRUBBED, run_sigscope
from testbed.forge import push_image
from testbed.registry import RegistryHandle, free_port, registry_binary, start_registry

from sigscope.listen.app import ListenApp, authorization_values
from sigscope.listen.events import ENVELOPE_TYPE, parse
from sigscope.listen.queue import ScanQueue
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.store import Inventory, queries

TOKEN = "notify-token-for-tests"
DEADLINE = 10.0  # seconds; listen answers within about one, the machine running the tests may be busy


def envelope(*events: dict[str, object]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def push_event(
    repo: str, tag: str = "1", media_type: str = "application/vnd.oci.image.manifest.v1+json"
) -> dict:
    return {
        "id": "x",
        "action": "push",
        "target": {"mediaType": media_type, "repository": repo, "digest": "sha256:" + "a" * 64, "tag": tag},
        "request": {"host": "127.0.0.1:5000", "method": "PUT"},
    }


# ------------------------------------------------------------------------------------ in process


def test_parse_keeps_manifest_pushes_and_deletes_only() -> None:
    events, total = parse(
        envelope(
            push_event("app/web"),
            push_event("app/web", tag="", media_type="application/octet-stream"),  # a blob upload
            {"action": "pull", "target": {"repository": "app/web", "tag": "1"}},
            {"action": "delete", "target": {"repository": "app/db", "digest": "sha256:" + "b" * 64}},
            push_event("../etc"),  # not a repository name: never becomes a request
            {"action": "push", "target": "nonsense"},
        )
    )
    assert total == 6
    assert [(e.action, e.repository) for e in events] == [("push", "app/web"), ("delete", "app/db")]


def test_endpoint_limits() -> None:
    scanned: list[str] = []

    async def scan(repo: str) -> None:
        scanned.append(repo)

    async def go() -> None:
        queue = ScanQueue(scan, max_pending=1, settle=0)
        app = ListenApp(queue, accepted=authorization_values(TOKEN, None), max_body=4096)
        auth = {"authorization": f"Bearer {TOKEN}", "content-type": ENVELOPE_TYPE}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.post("/events", content=envelope(push_event("a")))).status_code == 401
            wrong = {**auth, "authorization": "Bearer nope"}
            assert (
                await c.post("/events", content=envelope(push_event("a")), headers=wrong)
            ).status_code == 401
            text = {**auth, "content-type": "text/plain"}
            assert (
                await c.post("/events", content=envelope(push_event("a")), headers=text)
            ).status_code == 415
            assert (await c.post("/events", content=b"x" * 5000, headers=auth)).status_code == 413
            assert (await c.post("/events", content=b"{not json", headers=auth)).status_code == 400
            assert (await c.get("/events", headers=auth)).status_code == 405
            ok = await c.post("/events", content=envelope(push_event("a"), push_event("a")), headers=auth)
            assert ok.status_code == 200
            # the queue holds one repository: a second is refused so that the registry delivers it again
            full = await c.post("/events", content=envelope(push_event("b")), headers=auth)
            assert full.status_code == 503 and full.headers["retry-after"]
            health = (await c.get("/healthz")).json()
            assert health["events"] == 3 and health["pending"] == 1

    asyncio.run(go())
    assert scanned == []  # nothing scans until the queue runs


def test_queue_coalesces_bursts_and_rescans_after_a_running_scan() -> None:
    scanned: list[str] = []
    release = asyncio.Event

    async def go() -> None:
        gate = release()

        async def scan(repo: str) -> None:
            scanned.append(repo)
            if len(scanned) == 1:
                await gate.wait()

        queue = ScanQueue(scan, settle=0.01)
        runner = asyncio.create_task(queue.run())
        for _ in range(5):
            assert queue.offer("app/web")
        await asyncio.sleep(0.1)
        assert scanned == ["app/web"]  # five events, one scan (still running)
        for _ in range(3):
            queue.offer("app/web")  # while it runs: one more scan after it, not three
        gate.set()
        await asyncio.sleep(0.2)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(go())
    assert scanned == ["app/web", "app/web"]


# ------------------------------------------------------------------------ the real registry


@dataclass
class Bed:
    registry: RegistryHandle
    db: str
    key: Path
    pub: Path
    listen_port: int


def _wait_http(url: str, deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed")
    work = tmp_path_factory.mktemp("listen")
    key = ec.generate_private_key(ec.SECP256R1())
    (work / "signer.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (work / "signer.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (work / "token").write_text(TOKEN + "\n")
    port = free_port()
    registry = start_registry(
        work / "registry",
        extra_config={
            "notifications": {
                "endpoints": [
                    {
                        "name": "sigscope",
                        "url": f"http://127.0.0.1:{port}/events",
                        "headers": {"Authorization": [f"Bearer {TOKEN}"]},
                        "timeout": "2s",
                        "threshold": 3,
                        "backoff": "500ms",
                    }
                ]
            }
        },
    )
    db = str(work / "inventory.db")
    env = {k: v for k, v in __import__("os").environ.items() if k not in SCRUBBED}
    env["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    log = (work / "listen.log").open("wb")
    listen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sigscope",
            "inventory",
            "listen",
            "--registry",
            registry.host,
            "--insecure",
            "--db",
            db,
            "--port",
            str(port),
            "--token-file",
            str(work / "token"),
            "--key",
            str(work / "signer.pub"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", 30)
        yield Bed(registry, db, work / "signer.pem", work / "signer.pub", port)
    finally:
        listen.terminate()
        listen.wait(timeout=10)
        registry.stop()
        log.close()
        print((work / "listen.log").read_text(errors="replace"))


def wait_for(db: str, predicate: object, what: str) -> list[object]:
    """Poll the inventory's state until `predicate(state)` holds (listen itself never polls)."""
    end = time.monotonic() + DEADLINE
    while True:
        with Inventory.open(db) as inv:
            state = queries.state(inv)
        if predicate(state):  # type: ignore[operator]
            return state  # type: ignore[return-value]
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not in the inventory after {DEADLINE}s: {[i.path for i in state]}")
        time.sleep(0.05)


async def _push(host: str, repo: str, tag: str) -> str:
    async with RegistryClient(host, RegistryOptions(insecure=True, use_auth_files=False)) as client:
        return (await push_image(client, repo, tag, f"{repo}:{tag}")).digest


def test_push_sign_and_delete_reach_the_inventory(bed: Bed) -> None:
    host = bed.registry.host
    digest = asyncio.run(_push(host, "team/web", "1.0"))
    started = time.monotonic()
    state = wait_for(bed.db, lambda s: any(i.digest == digest for i in s), "the pushed image")
    pushed_after = time.monotonic() - started
    image = next(i for i in state if i.digest == digest)  # type: ignore[attr-defined]
    assert image.path == "team/web:1.0" and image.status == "unsigned"

    signed = run_sigscope("sign", f"{host}/team/web:1.0", "--key", str(bed.key), "--insecure")
    assert signed.returncode == 0, signed.stderr
    wait_for(
        bed.db,
        lambda s: any(i.digest == digest and i.status == "verified" for i in s),
        "the signature, verified with listen's --key",
    )
    # A second repository does not disturb the first.
    other = asyncio.run(_push(host, "team/db", "2"))
    wait_for(bed.db, lambda s: any(i.digest == other for i in s), "the second repository's image")

    deleted = requests.delete(f"{bed.registry.url}/v2/team/web/manifests/{digest}", timeout=5)
    assert deleted.status_code == 202, deleted.text
    wait_for(
        bed.db,
        lambda s: not any(i.digest == digest for i in s) and any(i.digest == other for i in s),
        "the deletion",
    )
    diff = run_sigscope("report", "diff", "--db", bed.db, "--since", "1", "-o", "json")
    changes = {(c["change"], c["name"]) for c in json.loads(diff.stdout)["changes"]}
    assert ("removed", "team/web:1.0") in changes
    print(f"push seen in the inventory after {pushed_after:.2f}s")


def test_listen_refuses_unauthenticated_deliveries(bed: Bed) -> None:
    url = f"http://127.0.0.1:{bed.listen_port}/events"
    headers = {"content-type": ENVELOPE_TYPE}
    assert (
        requests.post(url, data=envelope(push_event("team/x")), headers=headers, timeout=5).status_code == 401
    )
