"""`webhook serve --policy-from-crd NAME` against the real kube-apiserver (conftest `kube`): the policy is a
SigscopePolicy object (the CRD `webhook manifests` renders), watched through the API server. Its trust files
stay files, relative to --trust-dir. Decisions here come from static rules, so no registry is involved: what
is tested is where the policy comes from, and that every update, a broken one, and a deletion are handled as
the policy file's are (the last good policy stays in force)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from testbed.admission import start_webhook_process, stop_webhook_process
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.kube import KubeCluster, wait_until
from testbed.registry import make_tls_files

from sigscope.keys import generate, write_key_pair

ApiException = kubernetes.client.ApiException
NAMESPACE, NAME = "admit-crd", "admit-prod"
IMAGE = "example.test/app/web:1.0"


def document(gate: str, **extra: Any) -> dict[str, Any]:
    """A policy whose `gate` rule decides IMAGE without a registry; the `release` rule names a key below
    the trust directory (loaded, never used here)."""
    return {
        "apiVersion": "sigscope/v1",
        "kind": "Policy",
        "unmatched": "deny",
        "rules": [
            {"name": "gate", "images": ["example.test/app/**"], "static": gate, **extra},
            {
                "name": "release",
                "images": ["example.test/signed/**"],
                "authorities": [{"name": "release-key", "key": {"path": "keys/release.pub"}}],
            },
        ],
    }


@dataclass
class Bed:
    kube: KubeCluster
    core: Any
    objects: Any  # kubernetes.client.CustomObjectsApi
    url: str
    ca: Path
    log: Path
    kubeconfig: Path
    trust: Path
    tls: tuple[Path, Path]

    def admitted(self, name: str) -> bool | str:
        pod = {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": IMAGE}]}}
        try:
            self.core.create_namespaced_pod(NAMESPACE, pod, dry_run="All")
        except ApiException as exc:
            message: str = json.loads(exc.body)["message"]
            return message
        return True

    def replace_spec(self, spec: dict[str, Any]) -> None:
        current = self.objects.get_cluster_custom_object("sigscope.dev", "v1", "sigscopepolicies", NAME)
        current["spec"] = spec
        self.objects.replace_cluster_custom_object("sigscope.dev", "v1", "sigscopepolicies", NAME, current)

    def get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(f"{self.url}{path}", context=context, timeout=10) as answer:
            text: str = answer.read().decode()
            return text


def _kubeconfig(kube: KubeCluster, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "clusters": [
            {"name": "test", "cluster": {"server": kube.url, "certificate-authority": str(kube.ca_path)}}
        ],
        "users": [{"name": "admin", "user": {"token": kube.token}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def bed(kube: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    work = tmp_path_factory.mktemp("admission-crd")
    ca, cert, key = make_tls_files(work / "tls")
    rendered = run_sigscope(
        "webhook", "manifests", "--image", "example.test/sigscope:0", "--ca-bundle", str(ca),
        "--timeout-seconds", "5",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    crd = objects[0]
    try:
        kube.create(crd)
    except ApiException as exc:
        assert exc.status == 409, exc.body  # another module made it
    established = kube.resource(crd)

    def ready() -> bool:
        status = established.get(name=crd["metadata"]["name"]).to_dict().get("status") or {}
        conditions = status.get("conditions") or []  # none yet, just after the create
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(ready, timeout=15, what="the CRD to be established")
    custom = kubernetes.client.CustomObjectsApi(kube.client())
    policy = {"apiVersion": "sigscope.dev/v1", "kind": "SigscopePolicy", "metadata": {"name": NAME}}

    def created() -> bool:
        try:
            custom.create_cluster_custom_object(
                "sigscope.dev", "v1", "sigscopepolicies", {**policy, "spec": document("deny")}
            )
        except ApiException as exc:
            return exc.status == 409
        return True

    wait_until(created, timeout=15, what="SigscopePolicy to be served")
    trust = work / "trust"
    (trust / "keys").mkdir(parents=True)
    write_key_pair(trust / "keys" / "release", generate("ecdsa-p256"), "crd-pw")
    (trust / "keys" / "release.key").unlink()  # the webhook needs the public key only
    kubeconfig = _kubeconfig(kube, work / "kubeconfig")
    log = work / "webhook.log"
    args = [
        "--policy-from-crd", NAME, "--kubeconfig", str(kubeconfig), "--trust-dir", str(trust),
        "--tls-cert", str(cert), "--tls-key", str(key), "--port", "0", "--reload-interval", "0.2",
        "--audit-log", str(work / "audit.log"),
    ]  # fmt: skip
    process, url = start_webhook_process(args, log)
    kube.ensure_namespace(NAMESPACE)
    core = kubernetes.client.CoreV1Api(kube.client())
    bed = Bed(kube, core, custom, url, ca, log, kubeconfig, trust, (cert, key))
    try:
        with kube.webhooks(objects, url=url, ca_pem=ca.read_bytes(), namespaces=[NAMESPACE]):
            wait_until(
                lambda: "validate.sigscope.dev" in str(bed.admitted("probe")),
                timeout=30,
                what="webhook in force",
            )
            yield bed
    finally:
        stop_webhook_process(process)
        kube.delete({**policy})


def test_the_policy_comes_from_the_object_and_follows_its_updates(bed: Bed) -> None:
    denied = bed.admitted("web")
    assert isinstance(denied, str) and f"{IMAGE} (rule gate)" in denied
    version = bed.get("/readyz").split()[1]
    # A new spec takes effect without a restart, under a new version.
    bed.replace_spec(document("allow"))
    wait_until(lambda: bed.admitted("web") is True, timeout=20, what="the updated policy in force")
    assert bed.get("/readyz").split()[1] != version


def test_a_broken_update_is_refused_and_the_last_good_policy_stays(bed: Bed) -> None:
    bed.replace_spec(document("allow"))
    wait_until(lambda: bed.admitted("web") is True, timeout=20, what="the allowing policy in force")
    # The CRD keeps any spec (x-kubernetes-preserve-unknown-fields): the webhook is what refuses it.
    bed.replace_spec(document("deny", mode="loud"))
    refused = 'sigscope_admission_policy_reloads_total{result="failed"}'
    wait_until(lambda: refused in bed.get("/metrics"), timeout=20, what="the refused reload counted")
    assert "refused" in bed.log.read_text() and "rules[0].mode" in bed.log.read_text()
    assert bed.admitted("web") is True  # still the last good policy (allow), not the broken one's deny


def test_a_deleted_object_leaves_the_last_policy_in_force(bed: Bed) -> None:
    bed.replace_spec(document("deny"))
    wait_until(lambda: bed.admitted("web") is not True, timeout=20, what="the denying policy in force")
    bed.objects.delete_cluster_custom_object("sigscope.dev", "v1", "sigscopepolicies", NAME)
    wait_until(
        lambda: f"SigscopePolicy {NAME} deleted" in bed.log.read_text(), timeout=20, what="deletion seen"
    )
    # denied by the webhook as before (not by failurePolicy): never "no policy"
    assert f"{IMAGE} (rule gate)" in str(bed.admitted("web"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy-from-crd", "no-such-policy"], "SigscopePolicy no-such-policy not found"),
        (["--policy-from-crd", NAME, "--policy", "p.yaml"], "give one of --policy FILE or --policy-from-crd"),
        (
            ["--policy-from-crd", NAME, "--kubeconfig", "/nonexistent"],
            "--kubeconfig /nonexistent: not a kubeconfig",
        ),
    ],
)
def test_a_policy_object_that_cannot_be_read_stops_the_start(bed: Bed, args: list[str], message: str) -> None:
    cert, key = bed.tls
    if "--kubeconfig" not in args:
        args = [*args, "--kubeconfig", str(bed.kubeconfig)]
    result = run_sigscope(
        "webhook", "serve", *args, "--tls-cert", str(cert), "--tls-key", str(key), "--port", "0", timeout=60
    )
    assert_clean_failure(result, message)
