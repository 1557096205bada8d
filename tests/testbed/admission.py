"""Helpers for the admission webhook's tests: AdmissionReview builders, a real `redis-server` on loopback,
and a stand-in policy engine that counts its calls.

The stand-in exists to test the webhook's own logic (caches, coalescing, deadlines, onError, stale
serving, patches); the webhook against the real engine, real signatures and a real registry is tested in
test_admission_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sigscope.errors import UnreachableError
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import parse_reference

from .absent import unavailable
from .registry import free_port, stop_process

# ------------------------------------------------------------------------------------------ reviews

# Where each kind keeps its pod spec, written out here rather than taken from sigscope: the tests' oracle.
POD_SPEC_POINTER = {
    "Pod": "/spec",
    "Deployment": "/spec/template/spec",
    "ReplicaSet": "/spec/template/spec",
    "StatefulSet": "/spec/template/spec",
    "DaemonSet": "/spec/template/spec",
    "Job": "/spec/template/spec",
    "ReplicationController": "/spec/template/spec",
    "CronJob": "/spec/jobTemplate/spec/template/spec",
}
GROUPS = {
    "Deployment": "apps",
    "ReplicaSet": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "Job": "batch",
    "CronJob": "batch",
}


def containers(images: list[str], prefix: str = "c") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{n}", "image": image} for n, image in enumerate(images)]


def workload(
    kind: str, images: list[str], *, init: list[str] = (), ephemeral: list[str] = ()
) -> dict[str, Any]:  # type: ignore[assignment]
    spec: dict[str, Any] = {"containers": containers(images)}
    if init:
        spec["initContainers"] = containers(list(init), "init")
    if ephemeral:
        spec["ephemeralContainers"] = containers(list(ephemeral), "debug")
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "namespace": "team"}}
    node = obj
    path = POD_SPEC_POINTER[kind].strip("/").split("/")
    for segment in path[:-1]:
        node = node.setdefault(segment, {})
    node[path[-1]] = spec
    return obj


def admission_review(
    kind: str,
    obj: dict[str, Any] | None,
    *,
    uid: str = "0b8c9a4e-1",
    namespace: str = "team",
    dry_run: bool = False,
    operation: str = "CREATE",
    sub_resource: str = "",
) -> dict[str, Any]:
    group = GROUPS.get(kind, "")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "namespace": namespace,
        "name": "w",
        "operation": operation,
        "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": None,
        "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def review_bytes(*args: Any, **kwargs: Any) -> bytes:
    return json.dumps(admission_review(*args, **kwargs)).encode()


# --------------------------------------------------------------------------------- stand-in engine


@dataclass(frozen=True)
class Match:
    kind: str
    rule: Any
    decision: str | None


@dataclass(frozen=True)
class Rule:
    name: str


@dataclass(frozen=True)
class Authority:
    name: str
    satisfied: bool
    reason: str


@dataclass(frozen=True)
class StandinDecision:
    image: str
    digest: str | None
    decision: str
    rule: str | None
    reason: str
    authorities: list[Authority]
    policy_version: str
    exempt: bool = False
    static: bool = False
    on_error: str = "deny"


@dataclass
class StandinPolicy:
    """Images starting with a prefix in `rules` are verified by that rule (mode "enforce" or "warn");
    `static` prefixes are allowed without a registry; anything else is unmatched (denied)."""

    version: str = "sha256:" + "1" * 64
    rules: dict[str, str] = field(default_factory=dict)  # prefix → mode
    on_error: dict[str, str] = field(default_factory=dict)  # prefix → allow|deny
    static: tuple[str, ...] = ()
    exempt_namespaces: tuple[str, ...] = ()

    def _rule(self, image: str) -> str | None:
        return next((p for p in self.rules if image.startswith(p)), None)

    def exempt_namespace(self, namespace: str) -> bool:
        return namespace in self.exempt_namespaces

    def match(self, image: str) -> Match:
        if any(image.startswith(p) for p in self.static):
            return Match("static", None, "allow")
        prefix = self._rule(image)
        return Match("rule", Rule(f"rule-{prefix}"), None) if prefix else Match("unmatched", None, "deny")

    def needs_registry(self, image: str) -> bool:
        return self._rule(image) is not None

    def rule_on_error(self, image: str) -> str:
        prefix = self._rule(image)
        return self.on_error.get(prefix or "", "deny")


@dataclass
class CountingDecide:
    """decide(): `signed` digests are allowed, others denied (warned under a "warn" rule). `touch` makes it
    HEAD the digest on the registry first (real requests through the options given); `fail` raises
    UnreachableError; `delay` sleeps first."""

    signed: set[str] = field(default_factory=set)
    touch: bool = False
    fail: bool = False
    delay: float = 0.0
    calls: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    registry_calls: int = 0

    async def __call__(
        self, policy: Any, image: str, options: RegistryOptions, *, now: datetime, digest: str | None = None
    ) -> StandinDecision:
        assert now.tzinfo is not None
        self.calls[(image, digest)] += 1
        match = policy.match(image)
        if match.kind != "rule":
            return StandinDecision(
                image,
                None,
                match.decision,
                None,
                f"{match.kind} image",
                [],
                policy.version,
                static=match.kind == "static",
            )
        self.registry_calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise UnreachableError("cannot connect to registry.invalid: connection refused")
        if self.touch:
            ref = parse_reference(image)
            async with RegistryClient(ref.registry, options) as client:
                await client.head_manifest(ref.repository, digest or ref.reference)
        if digest in self.signed:
            return StandinDecision(
                image,
                digest,
                "allow",
                match.rule.name,
                "signed by release-key",
                [Authority("release-key", True, "verified")],
                policy.version,
            )
        # A rule in warn mode admits what fails, with a warning (as the policy document's `mode: warn`).
        decision = "warn" if policy.rules[policy._rule(image)] == "warn" else "deny"
        return StandinDecision(
            image,
            digest,
            decision,
            match.rule.name,
            "no authority satisfied",
            [Authority("release-key", False, "no signature verifies with keys/release.pub")],
            policy.version,
        )

    @property
    def total(self) -> int:
        return sum(self.calls.values())


# ------------------------------------------------------------------------------------------- redis


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(directory: Path, timeout: float = 10.0) -> RedisServer:
    """Debian's redis-server on a free loopback port, persisting nothing, in `directory`."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable(
            "redis-server not installed (apt-get install -y redis-server; scripts/setup.sh does this)"
        )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(directory / 'redis.log').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not answer")


def write_standin_policy(path: Path, **fields: Any) -> None:
    """A stand-in policy file (JSON of StandinPolicy's fields), written as a whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(fields))
    tmp.replace(path)


def load_standin_policy(path: str | Path) -> StandinPolicy:
    """The stand-in's load_policy: a JSON object of StandinPolicy's fields, else PolicyError-like refusal."""
    from sigscope.errors import SigscopeError

    try:
        data = json.loads(Path(path).read_text())
        return StandinPolicy(
            version=data["version"],
            rules=dict(data.get("rules", {})),
            on_error=dict(data.get("on_error", {})),
            static=tuple(data.get("static", ())),
            exempt_namespaces=tuple(data.get("exempt_namespaces", ())),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SigscopeError(f"{path}: not a policy: {exc}") from None


# ------------------------------------------------------------------------------- a served webhook


@dataclass
class Served:
    url: str
    ca: Path
    cert: Path
    key: Path
    app: Any
    server: Any
    audit: Path

    def client(self, ca: Path | None = None) -> Any:
        import ssl

        import httpx

        context = ssl.create_default_context(cafile=str(ca or self.ca))
        return httpx.Client(base_url=self.url, verify=context, trust_env=False, timeout=15)

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@contextlib.contextmanager
def serving(
    directory: Path, decide: Any, *, options: RegistryOptions | None = None, **kwargs: Any
) -> Iterator[Served]:
    """`sigscope webhook serve` as the CLI builds it (build_server), in a thread, over HTTPS on a free
    loopback port, with `directory/policy.json` as its policy; `decide` None: the real engine
    (sigscope.policy), else the stand-in engine with that decide."""
    from sigscope.admission.cache import Ttls
    from sigscope.admission.verifier import Settings
    from sigscope.cli.webhook_serve import build_server

    from .registry import make_tls_files

    ca, cert, key = make_tls_files(Path(tempfile.mkdtemp(prefix="tls-", dir=directory)))
    audit = directory / kwargs.pop("audit_name", "audit.log")
    server, sock, app = build_server(
        policy_file=kwargs.pop("policy_file", directory / "policy.json"),
        tls_cert=cert,
        tls_key=key,
        address="127.0.0.1",
        port=0,
        options=options or RegistryOptions(use_auth_files=False, timeout=5.0),
        cache_url=kwargs.pop("cache_url", None),
        settings=kwargs.pop("settings", Settings(ttls=Ttls(), deadline=8.0)),
        max_body=kwargs.pop("max_body", 4 << 20),
        max_containers=kwargs.pop("max_containers", 256),
        audit_log=str(audit),
        reload_interval=kwargs.pop("reload_interval", 0.1),
        engine=None if decide is None else (load_standin_policy, decide),
    )
    assert not kwargs, kwargs
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("webhook did not start")
        time.sleep(0.02)
    try:
        yield Served(f"https://127.0.0.1:{port}", ca, cert, key, app, server, audit)
    finally:
        server.should_exit = True
        thread.join(15)


# ------------------------------------------------------------------------ `webhook serve` as a process


def start_webhook_process(
    args: list[str], log: Path, timeout: float = 30.0, poll: float = 0.05
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m sigscope webhook serve ARGS` (`--port 0` among them) in a process of its own, output to
    `log`; returns the process and its https://127.0.0.1:PORT once it serves. RuntimeError (with the log)
    when it exits or does not start."""
    import os
    import sys

    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent-sigscope-test"}
    with log.open("wb") as sink:  # a file: a pipe nobody reads would stall the server
        process = subprocess.Popen(
            [sys.executable, "-m", "sigscope", "webhook", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while "serving on https://" not in (text := log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_webhook_process(process)
            raise RuntimeError(f"webhook serve did not start:\n{text[-2000:]}")
        time.sleep(poll)
    return process, text.split("serving on ")[1].split()[0]


def stop_webhook_process(process: subprocess.Popen[bytes]) -> None:
    """Stop it, even when a test left it stopped (SIGSTOP)."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
    stop_process(process)
