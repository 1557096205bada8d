"""The policy from a `SigscopePolicy` object (`webhook serve --policy-from-crd NAME`), watched through the API
server, as Kyverno and policy-controller users keep theirs.

The object's `spec` is a policy document (apiVersion sigscope/v1, kind Policy). The trust files it names stay
files: a relative path is taken below `--trust-dir` (the mounted ConfigMap), where the Deployment puts them.
The source writes each version of the object to a file of its own (paths made absolute under the trust
directory, so the file can live anywhere), and the webhook's PolicyHolder loads that file exactly as it
loads `--policy`: validated whole first, a broken update refused with a log line and a metric, the last good
policy kept. A deleted object leaves the last policy in force (it is never "no policy": that would admit
nothing, or everything). A changed trust directory rewrites the file, so a rotated key is reloaded too.

The watch: one GET of the object (its resourceVersion), then `?watch=true` on the collection narrowed to its
name, from that version; a watch the server ends (every few minutes, or 410 Gone) starts again from a fresh
GET; an unreachable server is retried with back-off. Each event line is bounded; the bearer token is read
again for every request (in a pod it is a projected token the kubelet rotates).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from sigscope.admission.manifests import CRD_PLURAL, GROUP
from sigscope.admission.reload import Fingerprint, fingerprint
from sigscope.errors import SigscopeError, UsageError
from sigscope.report.escape import printable
from sigscope.sources.body import read_limited

log = logging.getLogger("sigscope.webhook")

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_OBJECT = 1536 * 1024  # etcd holds at most ~1.5 MiB per object
MAX_TOKEN = 64 * 1024
WATCH_SECONDS = 300
REQUEST_TIMEOUT = 10.0
MAX_BACKOFF = 30.0
_WHERE = re.compile(r"rules\[(\d+)\]\.authorities\[(\d+)\]\.(.+)")


@dataclass(frozen=True)
class ApiServer:
    """Where the API server is and how to authenticate: a bearer token (file), a CA file."""

    url: str
    token_file: Path | None
    ca_file: Path | None
    token: str | None = None  # a token written into the kubeconfig itself

    @classmethod
    def in_cluster(cls) -> ApiServer:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port or not (SERVICE_ACCOUNT / "token").is_file():
            raise UsageError(
                "--policy-from-crd: not in a pod (no KUBERNETES_SERVICE_HOST or service account token); "
                "give --kubeconfig"
            )
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", SERVICE_ACCOUNT / "token", SERVICE_ACCOUNT / "ca.crt")

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiServer:
        """The current context's cluster and user: `server`, `certificate-authority` (or its `-data`),
        and a `token` or `tokenFile`. Client certificates and exec plugins are not supported."""
        try:
            config = yaml.safe_load(path.read_bytes()[:MAX_OBJECT])
            current = config["current-context"]
            context = _named(config["contexts"], current)["context"]
            cluster = _named(config["clusters"], context["cluster"])["cluster"]
            user = _named(config.get("users") or [], context.get("user", ""))["user"]
            server = str(cluster["server"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"--kubeconfig {path}: not a kubeconfig with a current context ({exc})"
            ) from None
        if not server.startswith("https://"):
            raise UsageError(f"--kubeconfig {path}: the API server must be https://, got {server!r}")
        ca_file: Path | None = None
        if "certificate-authority" in cluster:
            ca_file = (path.parent / str(cluster["certificate-authority"])).resolve()
        elif "certificate-authority-data" in cluster:
            ca_file = _private_file(base64.b64decode(cluster["certificate-authority-data"]), "ca.crt")
        token_file = (path.parent / str(user["tokenFile"])).resolve() if "tokenFile" in user else None
        token = str(user["token"]) if "token" in user else None
        if token is None and token_file is None:
            raise UsageError(f"--kubeconfig {path}: the user needs a token or tokenFile")
        return cls(server.rstrip("/"), token_file, ca_file, token)

    def bearer(self) -> str:
        if self.token_file is not None:
            with self.token_file.open("rb") as handle:
                return handle.read(MAX_TOKEN).decode().strip()
        return self.token or ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for item in items:
        if item.get("name") == name:
            return item
    raise KeyError(name)


def _private_file(data: bytes, name: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="sigscope-kube-"))
    path = directory / name
    path.write_bytes(data)
    return path


class PolicyObjectError(SigscopeError):
    """The SigscopePolicy cannot be read (absent, forbidden, the API server unreachable)."""


def absolute_trust_paths(document: Any, trust_dir: Path) -> Any:
    """`document` with each relative trust file or directory it names made absolute below `trust_dir`.
    A document the policy schema would refuse is returned as it is: loading it reports why."""
    from sigscope.policy.document import references

    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return document
    try:
        found = references(document, Path("."))
    except (AttributeError, TypeError, KeyError):
        return document
    for reference in found:
        match = _WHERE.fullmatch(reference.where)
        if match is None:
            continue
        node: Any = document["rules"][int(match.group(1))]["authorities"][int(match.group(2))]
        *parents, leaf = _steps(match.group(3))
        for step in parents:
            node = node[step]
        value = node[leaf]
        if isinstance(value, str) and not os.path.isabs(value):
            node[leaf] = str(trust_dir / value)
    return document


def _steps(where: str) -> list[str | int]:
    """`key.path` → ["key", "path"]; `certificate.intermediates[1]` → ["certificate", "intermediates", 1]."""
    steps: list[str | int] = []
    for part in where.split("."):
        name, _, index = part.partition("[")
        steps.append(name)
        if index:
            steps.append(int(index.rstrip("]")))
    return steps


class CrdPolicySource:
    """Keeps `path` holding the document of SigscopePolicy `name`, for a PolicyHolder to load."""

    def __init__(self, api: ApiServer, name: str, trust_dir: Path, state_dir: Path | None = None) -> None:
        self.api = api
        self.name = name
        self.trust_dir = trust_dir.resolve()
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="sigscope-policy-"))
        self.path = self.state_dir / "policy.json"
        self._spec: Any = None
        self._trust_seen: Fingerprint = fingerprint(self.trust_dir / "policy.yaml")
        self._url = f"{api.url}/apis/{GROUP}/v1/{CRD_PLURAL}"

    # ------------------------------------------------------------------ the file

    def _write(self, spec: Any) -> None:
        self._spec = spec
        document = absolute_trust_paths(json.loads(json.dumps(spec)), self.trust_dir)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.path)  # whole, at once: the holder never reads half a document

    def check_trust_dir(self) -> None:
        """Rewrite the file when the trust directory changed, so the holder reloads (and re-reads) it."""
        seen = fingerprint(self.trust_dir / "policy.yaml")
        if seen != self._trust_seen and self._spec is not None:
            self._trust_seen = seen
            self._write(self._spec)

    # ------------------------------------------------------------------ the API server

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api.bearer()}", "Accept": "application/json"}

    async def _get(self, session: aiohttp.ClientSession) -> tuple[Any, str]:
        """The object's spec and resourceVersion."""
        async with session.get(f"{self._url}/{quote(self.name, safe='')}", headers=self._headers()) as answer:
            body = await read_limited(answer, MAX_OBJECT, f"SigscopePolicy {self.name}")
            if answer.status == 404:
                raise PolicyObjectError(f"SigscopePolicy {self.name} not found")
            if answer.status != 200:
                raise PolicyObjectError(
                    f"SigscopePolicy {self.name}: HTTP {answer.status} "
                    + printable(body[:200].decode(errors="replace"))
                )
        try:
            obj = json.loads(body)
            return obj.get("spec"), str(obj["metadata"]["resourceVersion"])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise PolicyObjectError(
                f"SigscopePolicy {self.name}: not an object the API server sends"
            ) from None

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.api.ssl_context(), limit=2)
        # read_bufsize bounds one watch event line (readline refuses more than twice it)
        return aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=MAX_OBJECT // 2)

    def fetch(self) -> None:
        """The first version, before the webhook serves (PolicyObjectError when it cannot be read)."""

        async def once() -> None:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            async with self._session() as session:
                try:
                    spec, _ = await asyncio.wait_for(self._get(session), timeout.total)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    raise PolicyObjectError(f"cannot read SigscopePolicy {self.name}: {exc}") from None
                except SigscopeError as exc:
                    raise PolicyObjectError(exc.message) from None
            self._write(spec)

        asyncio.run(once())

    async def run(self) -> None:
        """Watch the object until cancelled; every change rewrites the file."""
        backoff = 1.0
        async with self._session() as session:
            while True:
                try:
                    spec, version = await asyncio.wait_for(self._get(session), REQUEST_TIMEOUT)
                    if spec != self._spec:
                        self._write(spec)
                    await self._watch(session, version)
                    backoff = 1.0
                except asyncio.CancelledError:
                    raise
                except (SigscopeError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                    log.error(
                        "SigscopePolicy %s: %s; the last policy stays in force, retrying in %.0fs",
                        self.name,
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)

    async def _watch(self, session: aiohttp.ClientSession, version: str) -> None:
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={self.name}",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(total=WATCH_SECONDS + 30, sock_connect=REQUEST_TIMEOUT)
        async with session.get(self._url, params=params, headers=self._headers(), timeout=timeout) as answer:
            if answer.status != 200:
                raise PolicyObjectError(f"watch: HTTP {answer.status}")
            while True:
                line = await answer.content.readline()
                if not line:
                    return  # the server ended the watch: start again from a GET
                if len(line) > MAX_OBJECT:
                    raise PolicyObjectError("watch event over the object size limit")
                event = json.loads(line)
                if not isinstance(event, dict) or not isinstance(event.get("object") or {}, dict):
                    raise PolicyObjectError("watch: an event that is not an object")
                kind, obj = event.get("type"), event.get("object") or {}
                if kind in ("ADDED", "MODIFIED") and obj.get("spec") != self._spec:
                    self._write(obj.get("spec"))
                elif kind == "DELETED":
                    log.error("SigscopePolicy %s deleted; the last policy stays in force", self.name)
                elif kind == "ERROR":
                    return  # e.g. 410 Gone: the version is too old; a fresh GET starts over
