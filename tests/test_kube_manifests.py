"""`sigscope webhook manifests` and the Helm chart charts/sigscope: what they render, the same objects both
ways (the real `helm template`, `helm lint`), and clean refusals. Whether the API server accepts the objects
and calls the webhooks is tests/test_kube_apiserver.py."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.kube import manifest_inputs
from testbed.peers import REPO_ROOT, peer

from sigscope.admission.manifests import ManifestOptions, failure_policy_for, render

IMAGE = "registry.example.com/sigscope:0.1.0"
CHART = REPO_ROOT / "charts" / "sigscope"
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def manifests(*args: str) -> list[dict[str, Any]]:
    result = run_sigscope("webhook", "manifests", "--image", IMAGE, *args)
    assert result.returncode == 0, result.stderr
    return [o for o in yaml.safe_load_all(result.stdout) if o]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in found, obj["kind"]
        found[obj["kind"]] = obj
    return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, Path]:
    directory = tmp_path_factory.mktemp("manifest-inputs")
    args, ca = manifest_inputs(directory)
    return args, ca, directory


def test_renders_every_object_with_its_key_fields(inputs: tuple[list[str], Path, Path]) -> None:
    args, ca, directory = inputs
    objects = by_kind(manifests("--namespace", "sig-sys", "--timeout-seconds", "7", *args))
    assert list(objects) == [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ]
    assert objects["Namespace"]["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "restricted"}
    crd = objects["CustomResourceDefinition"]["spec"]
    assert crd["group"] == "sigscope.dev" and crd["scope"] == "Cluster"
    assert crd["names"]["kind"] == "SigscopePolicy"
    spec_schema = crd["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec_schema["x-kubernetes-preserve-unknown-fields"] is True
    assert objects["ClusterRole"]["rules"] == [
        {"apiGroups": ["sigscope.dev"], "resources": ["sigscopepolicies"], "verbs": ["get", "list", "watch"]}
    ]

    config = objects["ConfigMap"]
    key_path = "f-" + hashlib.sha256(b"keys/release.pub").hexdigest()[:16]
    gpg_path = "f-" + hashlib.sha256(b"team.gpg").hexdigest()[:16]
    assert config["data"]["policy.yaml"] == (directory / "policy.yaml").read_text()
    assert config["data"][key_path] == (directory / "keys" / "release.pub").read_text()
    assert base64.b64decode(config["binaryData"][gpg_path]) == (directory / "team.gpg").read_bytes()

    deployment = objects["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["replicas"] == 2 and container["image"] == IMAGE
    assert container["args"][:2] == ["webhook", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["affinity"]["podAntiAffinity"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "sigscope-webhook-tls"
    assert volumes["policy"]["configMap"]["items"] == [
        {"key": "policy.yaml", "path": "policy.yaml"},
        {"key": key_path, "path": "keys/release.pub"},
        {"key": gpg_path, "path": "team.gpg"},
    ]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1

    for kind, path in (
        ("ValidatingWebhookConfiguration", "/validate"),
        ("MutatingWebhookConfiguration", "/mutate"),
    ):
        (hook,) = objects[kind]["webhooks"]
        assert hook["clientConfig"]["service"] == {
            "name": "sigscope-webhook",
            "namespace": "sig-sys",
            "path": path,
            "port": 443,
        }
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca.read_bytes()
        assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 7
        assert hook["sideEffects"] == "None" and hook["matchPolicy"] == "Equivalent"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "sig-sys"]}
        ]
        resources = {(g, r) for rule in hook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert resources == {
            ("", "pods"),
            ("", "pods/ephemeralcontainers"),
            ("", "replicationcontrollers"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
        }
        assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])
        assert hook.get("reinvocationPolicy") == ("IfNeeded" if path == "/mutate" else None)
        assert "annotations" not in objects[kind]["metadata"]


def test_without_a_ca_bundle_cert_manager_injects_it() -> None:
    objects = by_kind(manifests("--namespace", "ops", "--replicas", "1", "--exempt-namespace", "legacy"))
    assert "ConfigMap" not in objects  # the policy ConfigMap is the user's to create then
    assert objects["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": objects["Deployment"]["spec"]["selector"],
    }
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert objects[kind]["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "ops/sigscope-webhook"
        }
        (hook,) = objects[kind]["webhooks"]
        assert "caBundle" not in hook["clientConfig"]
        assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "legacy", "ops"]


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (["enforce", "warn"], "Fail"),
        (["warn", "warn"], "Ignore"),
        ([None], "Fail"),  # enforce is the default mode
    ],
)
def test_failure_policy_follows_the_policy_mode(modes: list[str | None], expected: str) -> None:
    rules = [{"name": f"r{i}", "images": ["x/**"], **({"mode": m} if m else {})} for i, m in enumerate(modes)]
    document = yaml.safe_dump({"apiVersion": "sigscope/v1", "kind": "Policy", "rules": rules}).encode()
    assert failure_policy_for(document) == expected
    objects = render(
        ManifestOptions(namespace="ns", image=IMAGE, failure_policy=failure_policy_for(document))
    )
    assert {o["webhooks"][0]["failurePolicy"] for o in objects if "webhooks" in o} == {expected}


def test_failure_policy_stays_fail_for_what_cannot_be_read() -> None:
    assert failure_policy_for(None) == "Fail"
    assert failure_policy_for(b"rules: [unclosed") == "Fail"
    assert failure_policy_for(b"rules: []") == "Fail"
    # a static rule decides without a registry: enforcing even with mode warn beside it
    assert failure_policy_for(b"rules: [{mode: warn, static: deny}]") == "Fail"


def test_the_flag_overrides_the_policy(inputs: tuple[list[str], Path, Path], tmp_path: Path) -> None:
    _, _, directory = inputs
    (tmp_path / "release.pub").write_bytes((directory / "keys" / "release.pub").read_bytes())
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: sigscope/v1\nkind: Policy\nrules: [{name: a, images: ['**'], mode: warn, "
        "authorities: [{name: k, key: {path: release.pub}}]}]\n"
    )
    args = ["--policy", str(policy), "--trust-file", "release.pub"]
    assert (
        by_kind(manifests(*args))["ValidatingWebhookConfiguration"]["webhooks"][0]["failurePolicy"]
        == "Ignore"
    )
    hooks = by_kind(manifests(*args, "--failure-policy", "Fail", "-o", "json"))
    assert hooks["List"]["items"][-1]["webhooks"][0]["failurePolicy"] == "Fail"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namespace", "Not_A_Label"], "is not a DNS label"),
        (["--exempt-namespace", "a b"], "is not a namespace name"),
        (["--policy", "/nonexistent/policy.yaml"], "cannot read policy /nonexistent/policy.yaml"),
        (["--trust-file", "k.pub"], "--trust-file goes with --policy"),
        (["--policy", "{policy}", "--trust-file", "../escape.pub"], "must be a relative path below"),
        (["--policy", "{policy}", "--trust-file", "missing.pub"], "cannot read trust file"),
        (["--policy", "{policy}", "--trust-file", "policy.yaml"], "must be a relative path below"),
        (["--ca-bundle", "{policy}"], "no PEM certificate found"),
        (["--policy", "{big}"], "over the 921600-byte limit"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "policy.yaml").write_text("rules: []\n")
    (tmp_path / "big.yaml").write_bytes(b"#" * (900 * 1024 + 1))
    (tmp_path.parent / "escape.pub").write_text("outside")
    filled = [a.format(policy=tmp_path / "policy.yaml", big=tmp_path / "big.yaml") for a in args]
    assert_clean_failure(run_sigscope("webhook", "manifests", "--image", IMAGE, *filled), message)


def test_a_broken_policy_is_refused_with_every_problem(tmp_path: Path) -> None:
    # Three problems at once: an unknown `unmatched`, an unknown mode, an authority of no kind.
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: sigscope/v1\nkind: Policy\nunmatched: maybe\nrules:\n"
        "  - {name: a, images: ['x/**'], mode: loud, authorities: [{name: k, key: {path: nope.pub}}]}\n"
        "  - {name: b, images: ['y/**'], authorities: [{name: j}]}\n"
    )
    result = run_sigscope("webhook", "manifests", "--image", IMAGE, "--policy", str(tmp_path / "policy.yaml"))
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 3, lines
    assert all(line.startswith(f"sigscope: error: {tmp_path / 'policy.yaml'}: ") for line in lines)
    assert any("unmatched" in line for line in lines), lines
    assert any("rules[0].mode" in line for line in lines), lines
    assert any("rules[1].authorities[0]" in line for line in lines), lines


def test_a_trust_file_the_policy_names_must_be_mounted(inputs: tuple[list[str], Path, Path]) -> None:
    _, _, directory = inputs
    # Valid here, but the pod would not find team.gpg: the webhook would never start there.
    result = run_sigscope(
        "webhook", "manifests", "--image", IMAGE, "--policy", str(directory / "policy.yaml"),
        "--trust-file", "keys/release.pub",
    )  # fmt: skip
    assert_clean_failure(result, "rules[0].authorities[1].gpg.keyring: team.gpg is not mounted")
    assert "add --trust-file team.gpg" in result.stderr


def test_the_pod_listens_on_its_address_and_reads_tls_from_files(
    inputs: tuple[list[str], Path, Path],
) -> None:
    args, _, _ = inputs
    pod = by_kind(manifests(*args))["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # `webhook serve` listens on 127.0.0.1 by default: the Service could not reach it.
    assert container["args"][container["args"].index("--address") + 1] == "0.0.0.0"
    # The Secret mounted as a directory of files (no subPath): the kubelet's updates reach the files the
    # server reloads its certificate from.
    (tls,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert tls == {"name": "tls", "mountPath": "/etc/sigscope/tls", "readOnly": True}
    assert container["args"][container["args"].index("--tls-cert") + 1] == "/etc/sigscope/tls/tls.crt"


# ---------------------------------------------------------------- the Helm chart


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(peer("helm")), *args], capture_output=True, text=True, timeout=120, env={"HOME": "/nonexistent"}
    )


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    for label in HELM_ONLY_LABELS:
        obj.get("metadata", {}).get("labels", {}).pop(label, None)
    return obj


@pytest.mark.parametrize("with_ca", [True, False])
def test_helm_template_renders_the_same_objects(
    inputs: tuple[list[str], Path, Path], tmp_path: Path, with_ca: bool
) -> None:
    _, ca, directory = inputs
    values = {
        "image": IMAGE,
        "replicas": 3,
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        "createNamespace": True,
        "exemptNamespaces": ["legacy"],
        "policy": (directory / "key-only-policy.yaml").read_text(),
        "trustFiles": {"keys/release.pub": (directory / "keys" / "release.pub").read_text()},
        "caBundle": ca.read_text() if with_ca else "",
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    rendered = helm("template", "sigscope", str(CHART), "-n", "sig-sys", "-f", str(tmp_path / "values.yaml"))
    assert rendered.returncode == 0, rendered.stderr
    from_helm = {
        (o["kind"], o["metadata"]["name"]): without_helm_labels(o)
        for o in yaml.safe_load_all(rendered.stdout)
        if o
    }
    cli_args = [
        "--namespace", "sig-sys", "--replicas", "3", "--failure-policy", "Ignore", "--timeout-seconds", "5",
        "--exempt-namespace", "legacy", "--policy", str(directory / "key-only-policy.yaml"),
        "--trust-file", "keys/release.pub",
    ]  # fmt: skip
    if with_ca:
        cli_args += ["--ca-bundle", str(ca)]
    from_cli = {(o["kind"], o["metadata"]["name"]): o for o in manifests(*cli_args)}
    assert sorted(from_helm) == sorted(from_cli)
    for key, obj in from_cli.items():
        assert from_helm[key] == obj, key


def test_helm_lint_passes() -> None:
    result = helm("lint", "--strict", str(CHART), "--set", f"image={IMAGE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    # without an image the chart refuses to render, naming what is missing
    result = helm("template", "sigscope", str(CHART))
    assert result.returncode != 0 and "set image" in result.stderr
