"""The rendered manifests against a real kube-apiserver (conftest `kube`: etcd + kube-apiserver on loopback,
the envtest pattern): every object is accepted, the RBAC grants exactly what it says, the webhook
configurations are called with the AdmissionReviews that tests/fixtures/admission/ keeps (regenerate with
SIGSCOPE_REGENERATE_FIXTURES=1), and failurePolicy decides when the webhook is down, slow or untrusted."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from testbed.cli import run_sigscope
from testbed.kube import KubeCluster, manifest_inputs, wait_until
from testbed.peers import REPO_ROOT, read_peers
from testbed.registry import make_tls_files
from testbed.webhook_recorder import WebhookRecorder

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "admission"
IMAGE = "registry.example.com/sigscope:0.1.0"
ApiException = kubernetes.client.ApiException


def render(*args: str) -> list[dict[str, Any]]:
    result = run_sigscope("webhook", "manifests", "--image", IMAGE, *args)
    assert result.returncode == 0, result.stderr
    return [o for o in yaml.safe_load_all(result.stdout) if o]


def pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "containers": [{"name": "app", "image": "registry.example.com/prod/app:1.0"}],
            "initContainers": [{"name": "init", "image": "registry.example.com/prod/init:1.0"}],
        },
    }


def deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/prod/app:1.0"}]},
            },
        },
    }


@pytest.fixture(scope="module")
def webhook_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls_files(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def hooks() -> list[dict[str, Any]]:
    """The webhook configurations as rendered for namespace `sigscope`, with a 1 s timeout."""
    return [o for o in render("--timeout-seconds", "1") if "webhooks" in o]


@pytest.fixture
def recorder(webhook_tls: tuple[Path, Path, Path]) -> Iterator[WebhookRecorder]:
    _, cert, key = webhook_tls
    with WebhookRecorder(cert, key) as hook:
        yield hook


def with_failure_policy(objects: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    objects = copy.deepcopy(objects)
    for obj in objects:
        for hook in obj["webhooks"]:
            hook["failurePolicy"] = policy
    return objects


def create_pod_when(kube: KubeCluster, namespace: str, predicate: Any, what: str) -> Any:
    """Dry-run Pods until ``predicate(result_or_exception)`` holds: the API server picks up a new webhook
    configuration through an informer, a moment after it is stored."""
    attempt = iter(range(10_000))

    def once() -> Any:
        try:
            outcome: Any = kube.create(pod(f"probe-{next(attempt)}", namespace), dry_run=True)
        except ApiException as exc:
            outcome = exc
        return outcome if predicate(outcome) else None

    return wait_until(once, timeout=15, what=what)


def test_the_api_server_is_the_pinned_release(kube: KubeCluster) -> None:
    version = kubernetes.client.VersionApi(kube.client()).get_code()
    assert version.git_version == read_peers()["kube-apiserver"].version


def test_every_rendered_object_is_accepted(kube: KubeCluster, tmp_path: Path) -> None:
    args, _ = manifest_inputs(tmp_path)
    objects = render("--namespace", "accept-sys", *args)
    webhook_configs = [o for o in objects if "webhooks" in o]
    try:
        for obj in objects:
            if obj in webhook_configs:
                # Stored, they would send every pod of the cluster to a Service without pods: validated only.
                kube.create(obj, dry_run=True)
            else:
                kube.create_or_replace(obj)
        (rendered,) = [o for o in objects if o["kind"] == "Deployment"]
        stored = kube.resource(rendered).get(name="sigscope-webhook", namespace="accept-sys").to_dict()
        items = policy_items(rendered)
        assert len(items) == 3 and policy_items(stored) == items  # the trust files mapped back to their paths

        # The webhook's pod meets the restricted Pod Security Standard its namespace enforces (the API
        # server's PodSecurity admission judges Pods, not Deployments), and that namespace refuses less.
        template = copy.deepcopy(rendered["spec"]["template"])
        webhook_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "w", "namespace": "accept-sys"},
        }
        kube.create({**webhook_pod, "spec": template["spec"]}, dry_run=True)
        template["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        with pytest.raises(ApiException, match="violates PodSecurity"):
            kube.create({**webhook_pod, "spec": template["spec"]}, dry_run=True)

        # The CRD serves SigscopePolicy objects and keeps the policy document whole.
        crd = kube.resource(objects[0])  # the CRD comes first
        wait_until(
            lambda: any(
                c["type"] == "Established" and c["status"] == "True"
                # no conditions yet (None) just after the create
                for c in (crd.get(name="sigscopepolicies.sigscope.dev").to_dict().get("status") or {}).get(
                    "conditions"
                )
                or []
            ),
            timeout=15,
            what="the CRD to be established",
        )
        document = yaml.safe_load((tmp_path / "policy.yaml").read_text())
        policy = {
            "apiVersion": "sigscope.dev/v1",
            "kind": "SigscopePolicy",
            "metadata": {"name": "prod"},
            "spec": document,
        }
        wait_until(lambda: _created(kube, policy), timeout=15, what="SigscopePolicy to be served")
        assert kube.resource(policy).get(name="prod").to_dict()["spec"] == document

        # The service account may read policies, and nothing else.
        authz = kubernetes.client.AuthorizationV1Api(kube.client())
        user = "system:serviceaccount:accept-sys:sigscope-webhook"

        def allowed(verb: str, resource: str, group: str = "sigscope.dev") -> bool:
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "resourceAttributes": {"verb": verb, "group": group, "resource": resource},
                },
            }
            result: bool = authz.create_subject_access_review(review).status.allowed
            return result

        assert allowed("list", "sigscopepolicies") and allowed("watch", "sigscopepolicies")
        assert not allowed("delete", "sigscopepolicies")
        assert not allowed("get", "secrets", group="")
    finally:
        for obj in reversed(objects):
            if obj not in webhook_configs and obj["kind"] != "Namespace":
                kube.delete(obj)


def policy_items(deployment: dict[str, Any]) -> list[dict[str, str]]:
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "policy"]
    items: list[dict[str, str]] = volume["configMap"]["items"]
    return items


def _created(kube: KubeCluster, obj: dict[str, Any]) -> bool:
    try:
        kube.create(obj)
    except (ApiException, kubernetes.dynamic.exceptions.ResourceNotFoundError):
        # discovery caches what it saw: a kind served since is found on a fresh look
        kube.dynamic().resources.invalidate_cache()
        return False
    return True


def review_shape(value: Any) -> Any:
    """Keys all the way down, values left out: what a fixture must keep in common with a fresh review."""
    if isinstance(value, dict):
        return {k: review_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [review_shape(v) for v in value[:1]]
    return type(value).__name__


def test_the_api_server_sends_admission_reviews(
    kube: KubeCluster,
    hooks: list[dict[str, Any]],
    recorder: WebhookRecorder,
    webhook_tls: tuple[Path, Path, Path],
) -> None:
    ca, _, _ = webhook_tls
    kube.ensure_namespace("team-rec")
    with kube.webhooks(hooks, url=recorder.url, ca_pem=ca.read_bytes(), namespaces=["team-rec"]):
        create_pod_when(kube, "team-rec", lambda _: recorder.reviews, "the first review")
        kube.create(pod("web", "team-rec"))
        kube.create(deployment("web", "team-rec"))
        kube.create(pod("dry", "team-rec"), dry_run=True)

    for kind in ("Pod", "Deployment"):
        seen = {path: (query, review) for path, query, review in recorder.seen(kind, "web")}
        assert set(seen) == {"/validate", "/mutate"}, kind  # the mutating one first, then the validating one
        for path, (query, review) in seen.items():
            assert query == {"timeout": ["1s"]}, path
            assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
            request = review["request"]
            assert request["operation"] == "CREATE" and request["namespace"] == "team-rec"
            assert request["dryRun"] is False and request["userInfo"]["username"] == "admin"
            assert request["object"]["metadata"]["name"] == "web" and request["uid"]
        request = seen["/validate"][1]["request"]
        images = request["object"]["spec"] if kind == "Pod" else request["object"]["spec"]["template"]["spec"]
        assert images["containers"][0]["image"] == "registry.example.com/prod/app:1.0"
        fixture = FIXTURES / f"{kind.lower()}.json"
        if os.environ.get("SIGSCOPE_REGENERATE_FIXTURES"):
            FIXTURES.mkdir(parents=True, exist_ok=True)
            fixture.write_text(json.dumps(seen["/validate"][1], indent=2, sort_keys=True) + "\n")
        assert fixture.exists(), f"{fixture} missing: run with SIGSCOPE_REGENERATE_FIXTURES=1"
        assert review_shape(json.loads(fixture.read_text())) == review_shape(seen["/validate"][1]), fixture
    (dry,) = [r for p, _, r in recorder.seen("Pod", "dry") if p == "/validate"]
    assert dry["request"]["dryRun"] is True


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_failure_policy_when_the_webhook_is_down(
    kube: KubeCluster, hooks: list[dict[str, Any]], webhook_tls: tuple[Path, Path, Path], failure_policy: str
) -> None:
    ca, cert, key = webhook_tls
    for namespace in ("team-down", "sigscope"):
        kube.ensure_namespace(namespace)
    narrowed = ["team-down", "kube-system", "sigscope"]
    configs = with_failure_policy(hooks, failure_policy)
    with (
        WebhookRecorder(cert, key) as hook,
        kube.webhooks(configs, url=hook.url, ca_pem=ca.read_bytes(), namespaces=narrowed),
    ):
        # In force once a review arrives; then the webhook goes down (its port refuses connections).
        create_pod_when(kube, "team-down", lambda _: hook.reviews, "the first review")
        hook.stop()
        if failure_policy == "Fail":
            with pytest.raises(ApiException) as denied:
                kube.create(pod("down", "team-down"), dry_run=True)
            assert "failed calling webhook" in denied.value.body and "sigscope.dev" in denied.value.body
            with pytest.raises(ApiException, match="failed calling webhook"):
                kube.create(deployment("down", "team-down"), dry_run=True)
        else:
            kube.create(pod("down", "team-down"), dry_run=True)
            kube.create(deployment("down", "team-down"), dry_run=True)
        # kube-system and the webhook's own namespace never reach it: the rendered namespaceSelector
        kube.create(pod("exempt", "kube-system"), dry_run=True)
        kube.create(pod("exempt", "sigscope"), dry_run=True)
        assert not hook.seen("Pod", "exempt")


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_failure_policy_when_the_webhook_is_slower_than_its_timeout(
    kube: KubeCluster, hooks: list[dict[str, Any]], webhook_tls: tuple[Path, Path, Path], failure_policy: str
) -> None:
    ca, cert, key = webhook_tls
    kube.ensure_namespace("team-slow")
    with (
        WebhookRecorder(cert, key, delay=2.5) as slow,
        kube.webhooks(
            with_failure_policy(hooks, failure_policy),
            url=slow.url,
            ca_pem=ca.read_bytes(),
            namespaces=["team-slow"],
        ),
    ):
        create_pod_when(kube, "team-slow", lambda _: slow.reviews, "the first (slow) review")
        if failure_policy == "Fail":
            with pytest.raises(ApiException) as denied:
                kube.create(pod("slow", "team-slow"), dry_run=True)
            assert "failed calling webhook" in denied.value.body
            assert "deadline exceeded" in denied.value.body or "timeout" in denied.value.body.lower()
        else:
            kube.create(pod("slow", "team-slow"), dry_run=True)
        assert slow.seen("Pod", "slow")  # it was asked, and not waited for


def test_a_webhook_certificate_from_another_ca_is_refused(
    kube: KubeCluster, hooks: list[dict[str, Any]], recorder: WebhookRecorder, tmp_path: Path
) -> None:
    other_ca, _, _ = make_tls_files(tmp_path / "other")  # the bundle names a CA that did not sign the cert
    kube.ensure_namespace("team-tls")
    with kube.webhooks(hooks, url=recorder.url, ca_pem=other_ca.read_bytes(), namespaces=["team-tls"]):
        denied = create_pod_when(kube, "team-tls", lambda r: isinstance(r, ApiException), "a TLS refusal")
        assert "x509" in denied.body or "certificate" in denied.body
    assert recorder.reviews == []  # the handshake failed: no review reached it
