"""`sigscope webhook serve` behind a real kube-apiserver (conftest `kube`, the envtest pattern): the real
command in a process of its own, TLS from a test CA, a sigscope/v1 policy over images in a real registry
signed by `sigscope sign --key`, the webhook configurations `webhook manifests` renders registered with a
url client config. Pods and Deployments are created with the kubernetes client and the API server's answers
observed: denied with the message, admitted and pinned to the digest, warnings, dryRun, onError inside the
deadline when the registry is slow, failurePolicy Fail when the webhook is slower than timeoutSeconds or
down. One webhook process and one cluster for the module; the last two tests stop the process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from testbed import RegistryHandle, build_layout, layout_digest, push_layout
from testbed.admission import start_webhook_process, stop_webhook_process
from testbed.cli import run_sigscope
from testbed.kube import KubeCluster, wait_until
from testbed.proxy import RegistryProxy
from testbed.registry import make_tls_files

from sigscope.keys import generate, write_key_pair

ApiException = kubernetes.client.ApiException
PASSWORD = "admission-kube-pw"
NAMESPACE, EXEMPT = "admit", "admit-exempt"
# timeoutSeconds of the registered webhooks: the webhook's deadline is 80 % of it (3.2 s).
TIMEOUT_SECONDS = 4
# Longer than that deadline: every request through the slow proxy.
SLOW_REGISTRY_DELAY = 5.0


@dataclass
class Admission:
    kube: KubeCluster
    core: Any  # kubernetes.client.CoreV1Api
    apps: Any  # kubernetes.client.AppsV1Api
    process: subprocess.Popen[bytes]
    audit: Path
    host: str
    slow: RegistryProxy
    digests: dict[str, str]  # repo → digest

    def image(self, repo: str, host: str | None = None) -> str:
        return f"{host or self.host}/admit/{repo}:1.0"

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod(name, image)["spec"]},
        },
    }


def denial(call: Any) -> str:
    """The API server's message for a request the webhook denied (403)."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def _push(registry: RegistryHandle, work: Path, repo: str) -> str:
    layout = work / f"layout-{repo}"
    build_layout(layout, "v1", seed=f"sigscope/admission-kube/{repo}")
    push_layout(layout, "v1", registry.host, f"admit/{repo}", "1.0")
    return layout_digest(layout, "v1")


def _write_policy(work: Path, host: str, slow_host: str) -> Path:
    path = work / "policy.yaml"
    path.write_text(
        f"""apiVersion: sigscope/v1
kind: Policy
unmatched: deny
exemptions:
  namespaces: [{EXEMPT}]
rules:
  - name: release
    images: ["{host}/admit/signed", "{host}/admit/unsigned", "{slow_host}/admit/*"]
    authorities:
      - name: release-key
        key: {{path: keys/release.pub}}
  - name: audit-only
    images: ["{host}/admit/warned"]
    mode: warn
    authorities:
      - name: release-key
        key: {{path: keys/release.pub}}
"""
    )
    return path


@pytest.fixture(scope="module")
def admission(
    kube: KubeCluster, registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Admission]:
    work = tmp_path_factory.mktemp("admission-kube")
    digests = {repo: _push(registry, work, repo) for repo in ("signed", "unsigned", "warned")}
    (work / "keys").mkdir()
    write_key_pair(work / "keys" / "release", generate("ecdsa-p256"), PASSWORD)
    signed = run_sigscope(
        "sign", f"{registry.host}/admit/signed:1.0", "--key", str(work / "keys" / "release.key"),
        "--insecure", password=PASSWORD,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    slow = RegistryProxy(registry.url).start()
    slow.delay(SLOW_REGISTRY_DELAY)
    policy = _write_policy(work, registry.host, slow.host)
    ca, cert, key = make_tls_files(work / "tls")
    rendered = run_sigscope(
        "webhook", "manifests", "--namespace", "sigscope-admit", "--image", "example.test/sigscope:0",
        "--policy", str(policy), "--trust-file", "keys/release.pub", "--ca-bundle", str(ca),
        "--timeout-seconds", str(TIMEOUT_SECONDS),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    for namespace in (NAMESPACE, EXEMPT):
        kube.ensure_namespace(namespace)
    args = [
        "--policy", str(policy), "--tls-cert", str(cert), "--tls-key", str(key), "--port", "0",
        "--audit-log", str(work / "audit.log"), "--timeout", "3",
        "--insecure-registry", registry.host, "--insecure-registry", slow.host,
    ]  # fmt: skip
    process, url = start_webhook_process(args, work / "webhook.log")
    core = kubernetes.client.CoreV1Api(kube.client())
    bed = Admission(
        kube, core, kubernetes.client.AppsV1Api(kube.client()), process, work / "audit.log",
        registry.host, slow, digests,
    )  # fmt: skip
    try:
        with kube.webhooks(objects, url=url, ca_pem=ca.read_bytes(), namespaces=[NAMESPACE, EXEMPT]):
            # The API server takes the configurations up a moment after they are stored.
            probe = iter(range(10_000))

            def in_force() -> bool:
                try:
                    core.create_namespaced_pod(
                        NAMESPACE, pod(f"probe-{next(probe)}", bed.image("unsigned")), dry_run="All"
                    )
                except ApiException as exc:
                    return "validate.sigscope.dev" in exc.body
                return False

            wait_until(in_force, timeout=30, what="the sigscope webhook in force")
            yield bed
    finally:
        stop_webhook_process(process)
        slow.stop()


def test_an_unsigned_image_is_denied_naming_image_rule_and_checks(admission: Admission) -> None:
    unsigned = admission.image("unsigned")
    create = admission.core.create_namespaced_pod
    message = denial(lambda: create(NAMESPACE, pod("nope", unsigned)))
    assert message.startswith('admission webhook "validate.sigscope.dev" denied the request: ')
    assert f"sigscope denied 1 image of Pod {NAMESPACE}/nope: {unsigned} (rule release): " in message
    # the failed check, once (the engine's reason already names it: not repeated in a [failed: …] list)
    assert message.count("release-key: ") == 1 and "no authority satisfied" in message
    # dryRun=All: the same answer, and nothing stored either way
    assert denial(lambda: create(NAMESPACE, pod("nope", unsigned), dry_run="All")) == message
    with pytest.raises(ApiException) as missing:
        admission.core.read_namespaced_pod("nope", NAMESPACE)
    assert missing.value.status == 404


def test_a_signed_image_is_admitted_and_pinned_to_its_digest(admission: Admission) -> None:
    signed = admission.image("signed")
    pinned = f"{signed}@{admission.digests['signed']}"
    core = admission.core
    dry = core.create_namespaced_pod(NAMESPACE, pod("web", signed), dry_run="All")
    assert dry.spec.containers[0].image == pinned  # dryRun: mutated the same way
    created = core.create_namespaced_pod(NAMESPACE, pod("web", signed))
    assert created.spec.containers[0].image == pinned
    # The object comes back through /mutate on an update: already pinned, it is left alone (no patch).
    updated = core.patch_namespaced_pod("web", NAMESPACE, {"metadata": {"labels": {"touched": "yes"}}})
    assert updated.spec.containers[0].image == pinned
    mutations = [
        line
        for line in admission.audit_lines()
        if line["endpoint"] == "mutate" and line["name"] == "web" and line["dry_run"] is False
    ]
    assert [(m["operation"], m["pinned"]) for m in mutations] == [("CREATE", 1), ("UPDATE", 0)]
    # a pinned reference given at create: admitted as it is
    again = core.create_namespaced_pod(NAMESPACE, pod("web-2", pinned), dry_run="All")
    assert again.spec.containers[0].image == pinned


def test_a_warn_rule_admits_with_a_warning(admission: Admission) -> None:
    warned = admission.image("warned")
    raw = admission.core.create_namespaced_pod(
        NAMESPACE, pod("audited", warned), dry_run="All", _preload_content=False
    )
    assert raw.status == 201
    warning = raw.headers.get("Warning", "")
    assert warned in warning and "audit-only" in warning, raw.headers
    # admitted, so pinned like any admitted image: the kubelet pulls what was judged
    pinned = f"{warned}@{admission.digests['warned']}"
    assert json.loads(raw.data)["spec"]["containers"][0]["image"] == pinned


def test_a_deployment_with_an_unsigned_image_is_denied_at_create(admission: Admission) -> None:
    apps = admission.apps
    unsigned, signed = admission.image("unsigned"), admission.image("signed")
    message = denial(lambda: apps.create_namespaced_deployment(NAMESPACE, deployment("api", unsigned)))
    assert f"sigscope denied 1 image of Deployment {NAMESPACE}/api: {unsigned} (rule release)" in message
    created = apps.create_namespaced_deployment(NAMESPACE, deployment("api", signed), dry_run="All")
    assert created.spec.template.spec.containers[0].image == f"{signed}@{admission.digests['signed']}"


def test_an_exempt_namespace_is_admitted_without_the_registry(admission: Admission) -> None:
    # An image the release rule would send to the (slow) registry: in the exempt namespace, nothing is asked.
    image = admission.image("unsigned", admission.slow.host)
    before = len(admission.slow.requests)
    started = time.monotonic()
    created = admission.core.create_namespaced_pod(EXEMPT, pod("legacy", image), dry_run="All")
    assert created.spec.containers[0].image == image
    assert time.monotonic() - started < SLOW_REGISTRY_DELAY
    assert len(admission.slow.requests) == before
    (line,) = [a for a in admission.audit_lines() if a["endpoint"] == "validate" and a["name"] == "legacy"]
    assert line["decision"] == "allow" and line["images"][0]["source"] == "exempt-namespace"


def test_a_slow_registry_is_answered_inside_the_deadline(admission: Admission) -> None:
    # The webhook answers within 80 % of timeoutSeconds with the rule's onError (deny), so the API server
    # sees a webhook's denial, not a timeout.
    image = admission.image("signed", admission.slow.host)
    message = denial(
        lambda: admission.core.create_namespaced_pod(NAMESPACE, pod("slow", image), dry_run="All")
    )
    assert message.startswith('admission webhook "validate.sigscope.dev" denied the request: ')
    assert image in message and "verification did not finish" in message
    (line,) = [a for a in admission.audit_lines() if a["endpoint"] == "validate" and a["name"] == "slow"]
    assert line["images"][0]["source"] == "on-error"
    assert line["latency_ms"] < TIMEOUT_SECONDS * 1000


def test_failure_policy_fail_when_the_webhook_is_slower_than_its_timeout(admission: Admission) -> None:
    signed = admission.image("signed")
    admission.process.send_signal(signal.SIGSTOP)  # connections are accepted; nothing answers
    try:
        started = time.monotonic()
        with pytest.raises(ApiException) as refused:
            admission.core.create_namespaced_pod(NAMESPACE, pod("stuck", signed), dry_run="All")
        assert time.monotonic() - started >= TIMEOUT_SECONDS - 0.5
        body = refused.value.body
        assert "failed calling webhook" in body and "sigscope.dev" in body
        assert "deadline exceeded" in body or "timeout" in body.lower()
    finally:
        admission.process.send_signal(signal.SIGCONT)

    def answering() -> bool:
        try:
            admission.core.create_namespaced_pod(NAMESPACE, pod("back", signed), dry_run="All")
        except ApiException:
            return False
        return True

    wait_until(answering, timeout=30, what="the webhook answering again")


def test_failure_policy_fail_when_the_webhook_is_down(admission: Admission) -> None:
    stop_webhook_process(admission.process)
    with pytest.raises(ApiException) as refused:
        admission.core.create_namespaced_pod(NAMESPACE, pod("down", admission.image("signed")), dry_run="All")
    assert "failed calling webhook" in refused.value.body and "connection refused" in refused.value.body
    with pytest.raises(ApiException, match="failed calling webhook"):
        admission.apps.create_namespaced_deployment(
            NAMESPACE, deployment("down", admission.image("signed")), dry_run="All"
        )
