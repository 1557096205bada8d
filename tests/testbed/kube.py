"""A real Kubernetes API server for the admission tests: etcd and kube-apiserver on loopback, no kubelet,
no controllers (the envtest pattern: objects are stored, validated and sent through admission; no pod runs).

Both binaries are peers built from the Go module proxy (scripts/peers.txt: kube-apiserver from a wrapper
module pinning k8s.io/kubernetes's staging modules, etcd from go.etcd.io/etcd/server/v3). ``start_cluster``
starts them in a few seconds; conftest's session fixture ``kube`` shares one pair with the whole run::

    core = kubernetes.client.CoreV1Api(kube.client())
    kube.register_webhooks(objects, url="https://127.0.0.1:PORT", ca_pem=ca, namespaces=["team-a"])

The admin user authenticates with a static bearer token (group system:masters); RBAC is on, so RBAC objects
the tests create are judged for real (SubjectAccessReview). The serving certificate comes from a test CA.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes.dynamic import DynamicClient

from .peers import peer
from .registry import free_port, make_tls_files, stop_process

WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
# kube-apiserver is usually ready in 3-6 s here; a loaded 2-core machine can take several times that.
READY_TIMEOUT = 90.0


class KubeStartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message carries the tail of its log."""


@dataclass
class KubeCluster:
    url: str
    token: str
    ca_path: Path
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _client: kubernetes.client.ApiClient | None = None
    _dynamic: DynamicClient | None = None

    def configuration(self) -> kubernetes.client.Configuration:
        config = kubernetes.client.Configuration()
        config.host = self.url
        config.api_key = {"authorization": self.token}
        config.api_key_prefix = {"authorization": "Bearer"}
        config.ssl_ca_cert = str(self.ca_path)
        return config

    def client(self) -> kubernetes.client.ApiClient:
        """One ApiClient for the session (a connection pool), admin rights."""
        if self._client is None:
            self._client = kubernetes.client.ApiClient(self.configuration())
        return self._client

    def dynamic(self) -> DynamicClient:
        """A client for any kind, found by apiVersion and kind (discovery, done once)."""
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.client())
        return self._dynamic

    # ------------------------------------------------------------------ objects

    def resource(self, obj: dict[str, Any]) -> Any:
        return self.dynamic().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> Any:
        """Create ``obj`` (a plain dict); with ``dry_run`` the API server validates and admits it (webhooks
        included) without storing it."""
        namespace = obj.get("metadata", {}).get("namespace")
        kwargs: dict[str, Any] = {"body": obj}
        if namespace:
            kwargs["namespace"] = namespace
        if dry_run:
            kwargs["query_params"] = [("dryRun", "All")]
        return self.resource(obj).create(**kwargs)

    def create_or_replace(self, obj: dict[str, Any]) -> Any:
        """Create ``obj``, or replace the stored one of that name: cluster-scoped objects (the CRD, cluster
        roles) outlive the test that made them in the session's one cluster."""
        try:
            return self.create(obj)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        metadata = obj.get("metadata", {})
        resource = self.resource(obj)
        stored = resource.get(name=metadata["name"], namespace=metadata.get("namespace"))
        body = {**obj, "metadata": {**metadata, "resourceVersion": stored.metadata.resourceVersion}}
        return resource.replace(body=body, namespace=metadata.get("namespace"))

    def delete(self, obj: dict[str, Any]) -> None:
        """Delete ``obj`` if it exists."""
        metadata = obj.get("metadata", {})
        with contextlib.suppress(kubernetes.client.ApiException):
            self.resource(obj).delete(name=metadata["name"], namespace=metadata.get("namespace"))

    def ensure_namespace(self, name: str) -> None:
        core = kubernetes.client.CoreV1Api(self.client())
        try:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise

    # ------------------------------------------------------------------ webhooks

    @contextlib.contextmanager
    def webhooks(
        self,
        objects: Sequence[dict[str, Any]],
        *,
        url: str,
        ca_pem: bytes,
        namespaces: Sequence[str] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Register the webhook configurations among ``objects`` (as `webhook manifests` renders them) with a
        ``url`` client config: ``url`` + each webhook's service path, and ``ca_pem`` as the CA bundle. With
        ``namespaces``, each webhook is also narrowed to those namespaces, so other tests sharing the API
        server are not sent through it. Deleted again on exit."""
        registered = [
            as_url_webhook(obj, url=url, ca_pem=ca_pem, namespaces=namespaces)
            for obj in objects
            if obj["kind"] in WEBHOOK_KINDS
        ]
        if not registered:
            raise ValueError("no webhook configuration among the objects")
        try:
            for obj in registered:
                self.delete(obj)
                self.create(obj)
            yield registered
        finally:
            for obj in registered:
                self.delete(obj)


def as_url_webhook(
    obj: dict[str, Any], *, url: str, ca_pem: bytes, namespaces: Sequence[str] = ()
) -> dict[str, Any]:
    """A copy of a webhook configuration whose webhooks call ``url`` + their service path instead."""
    result = copy.deepcopy(obj)
    result["metadata"].pop("annotations", None)
    for hook in result["webhooks"]:
        path = hook["clientConfig"].get("service", {}).get("path", "")
        hook["clientConfig"] = {"url": url.rstrip("/") + path, "caBundle": base64.b64encode(ca_pem).decode()}
        if namespaces:
            selector = hook.setdefault("namespaceSelector", {})
            selector.setdefault("matchExpressions", []).append(
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}
            )
    return result


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or raise AssertionError naming
    ``what``. The API server applies webhook configuration changes through an informer: not at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last!r})")


# ---------------------------------------------------------------------- starting


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(
    process: subprocess.Popen[bytes], log: Path, check: Any, what: str, timeout: float = READY_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KubeStartError(f"{what} exited ({process.returncode}):\n{_log_tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        time.sleep(0.1)
    raise KubeStartError(f"{what} not ready within {timeout} s:\n{_log_tail(log)}")


def _clean_env() -> dict[str, str]:
    # The API server calls webhooks on loopback: no proxy may sit in between.
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _start_etcd(binary: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    client_port, peer_port = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    log = workdir / "etcd.log"
    args = [
        str(binary),
        "--name=testbed",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=testbed={peer_url}",
        "--unsafe-no-fsync",  # a throwaway store: durability buys nothing and costs seconds
        "--log-level=warn",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_clean_env())
    _wait_ready(
        process,
        log,
        lambda: requests.get(f"{client_url}/health", timeout=2).json().get("health") == "true",
        "etcd",
    )
    return process, client_url


def _write_service_account_key(workdir: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = workdir / "sa.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _start_apiserver(
    binary: Path, workdir: Path, etcd_url: str, token: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    ca, cert, key = make_tls_files(workdir / "tls")
    sa_key = _write_service_account_key(workdir)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    tokens.chmod(0o600)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log = workdir / "kube-apiserver.log"
    args = [
        str(binary),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        f"--cert-dir={workdir / 'certs'}",
        f"--token-auth-file={tokens}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={sa_key}",
        f"--service-account-signing-key-file={sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/24",
        # The `kubernetes` Service's endpoint reconciler refuses a loopback advertise address.
        "--endpoint-reconciler-type=none",
        # No controller manager makes the `default` ServiceAccount of a namespace: a pod would wait for it.
        "--disable-admission-plugins=ServiceAccount",
        "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_clean_env())

    def ready() -> bool:
        answer = requests.get(
            f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}, verify=str(ca), timeout=5
        )
        return answer.status_code == 200

    _wait_ready(process, log, ready, "kube-apiserver")
    return process, url, ca


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        stop_process(process)


@contextlib.contextmanager
def start_cluster(workdir: Path) -> Iterator[KubeCluster]:
    """etcd then kube-apiserver, both on loopback, in ``workdir``; stopped (and the store removed) on exit.
    Skips (fails under CI=true) when either binary is not built."""
    apiserver, etcd = peer("kube-apiserver"), peer("etcd")
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        etcd_process, etcd_url = _start_etcd(etcd, workdir)
        processes.append(etcd_process)
        token = secrets.token_urlsafe(32)
        api_process, url, ca = _start_apiserver(apiserver, workdir, etcd_url, token)
        processes.append(api_process)
        cluster = KubeCluster(url=url, token=token, ca_path=ca, workdir=workdir, processes=processes)
        yield cluster
    finally:
        stop(processes)
        shutil.rmtree(workdir / "etcd", ignore_errors=True)


# ---------------------------------------------------------------------- inputs of `webhook manifests`

POLICY = """\
apiVersion: sigscope/v1
kind: Policy
unmatched: deny
exemptions:
  images: ["registry.k8s.io/pause:*"]
rules:
  - name: prod
    images: ["registry.example.com/prod/**"]
    mode: enforce
    authorities:
      - name: release-key
        key: {path: keys/release.pub}
      - name: rpm-team
        gpg: {keyring: team.gpg}
"""


# The same policy without the keyring: what the Helm chart can carry (its trustFiles are text).
KEY_ONLY_POLICY = POLICY.split("      - name: rpm-team")[0]


def manifest_inputs(directory: Path) -> tuple[list[str], Path]:
    """A policy with a PEM key (keys/release.pub) and a binary keyring (team.gpg, a test vector) beside it,
    and the CA of a webhook certificate: the `webhook manifests` arguments that render them, and the CA's
    path. `webhook manifests` loads the policy with the real engine, so both must be real."""
    from .vectors import ROOT, require

    keyring = require(ROOT / "containers-image" / "signature" / "fixtures" / "public-key-1.gpg")
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(POLICY)
    (directory / "key-only-policy.yaml").write_text(KEY_ONLY_POLICY)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    (directory / "keys" / "release.pub").write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (directory / "team.gpg").write_bytes(keyring.read_bytes())  # binary OpenPGP packets: binaryData
    ca, _, _ = make_tls_files(directory / "tls")
    args = [
        "--policy",
        str(directory / "policy.yaml"),
        "--trust-file",
        "keys/release.pub",
        "--trust-file",
        "team.gpg",
        "--ca-bundle",
        str(ca),
    ]
    return args, ca
