"""The webhook served over HTTPS as `sigscope webhook serve` builds it (uvicorn, the ASGI app, TLS and
policy reload, audit lines, metrics), with the stand-in policy engine and the real registry for tags."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from testbed import RegistryHandle, make_tls_files
from testbed.admission import CountingDecide, review_bytes, serving, workload, write_standin_policy

from sigscope.oci.client import RegistryOptions

V1 = "sha256:" + "1" * 64
V2 = "sha256:" + "2" * 64
JSON = {"content-type": "application/json"}


def _options(registry: RegistryHandle) -> RegistryOptions:
    return RegistryOptions(use_auth_files=False, timeout=5.0, insecure_registries=frozenset({registry.host}))


def _policy(directory: Path, registry: RegistryHandle, version: str = V1, **extra: object) -> None:
    write_standin_policy(
        directory / "policy.json",
        version=version,
        rules={f"{registry.host}/demo/alpine": "enforce", f"{registry.host}/demo/multi": "warn"},
        exempt_namespaces=["kube-system"],
        **extra,
    )


def _wait(predicate: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_validate_mutate_and_operations(registry: RegistryHandle, tmp_path: Path) -> None:
    alpine = f"{registry.host}/demo/alpine:1.0"
    multi = f"{registry.host}/demo/multi:latest"
    alpine_digest = registry.images["demo/alpine:1.0"]
    decide = CountingDecide(signed={alpine_digest})
    _policy(tmp_path, registry)
    with serving(tmp_path, decide, options=_options(registry)) as served, served.client() as client:
        assert client.get("/healthz").text == "ok\n"
        assert client.get("/readyz").text == f"ok {V1}\n"

        # allowed, and the same Deployment with an unsigned image denied with the message
        body = review_bytes("Deployment", workload("Deployment", [alpine], init=[alpine]), uid="u-1")
        answer = client.post("/validate?timeout=10s", content=body, headers=JSON).json()
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == "u-1" and answer["response"]["allowed"] is True
        unsigned = f"{registry.host}/demo/alpine:nope"
        body = review_bytes("Pod", workload("Pod", [alpine, "docker.io/library/busybox:1"]), uid="u-2")
        response = client.post("/validate", content=body, headers=JSON).json()["response"]
        assert response["allowed"] is False and response["status"]["code"] == 403
        assert "docker.io/library/busybox:1: unmatched image" in response["status"]["message"]
        assert response["auditAnnotations"]["policy-version"] == V1

        # warn rule: allowed with a warning; dryRun answered the same
        answers = []
        for dry in (False, True):
            body = review_bytes("Pod", workload("Pod", [multi]), dry_run=dry, uid="u-3")
            answers.append(client.post("/validate", content=body, headers=JSON).json()["response"])
        assert answers[0] == answers[1]
        assert answers[0]["allowed"] is True and answers[0]["auditAnnotations"]["decision"] == "warn"
        assert answers[0]["warnings"] == [
            f"sigscope: {multi} (rule rule-{registry.host}/demo/multi): no authority satisfied"
        ]

        # mutate pins the allowed image (every place it appears), not the denied one; reinvocation: no patch
        body = review_bytes("CronJob", workload("CronJob", [alpine, unsigned], init=[alpine]))
        response = client.post("/mutate", content=body, headers=JSON).json()["response"]
        assert response["allowed"] is True and response["patchType"] == "JSONPatch"
        patch = json.loads(base64.b64decode(response["patch"]))
        replaced = [op for op in patch if op["op"] == "replace"]
        assert [op["path"] for op in replaced] == [
            "/spec/jobTemplate/spec/template/spec/initContainers/0/image",
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
        ]
        assert {op["value"] for op in replaced} == {f"{alpine}@{alpine_digest}"}
        pinned = review_bytes("CronJob", workload("CronJob", [f"{alpine}@{alpine_digest}"]))
        assert "patch" not in client.post("/mutate", content=pinned, headers=JSON).json()["response"]
        # ... and the validation of the pinned image is a cache hit
        assert client.post("/validate", content=pinned, headers=JSON).json()["response"]["allowed"] is True

        # exempt namespace: nothing verified
        before = decide.total
        body = review_bytes("Pod", workload("Pod", ["anything/at:all"]), namespace="kube-system")
        assert client.post("/validate", content=body, headers=JSON).json()["response"]["allowed"] is True
        assert decide.total == before

        # hostile and malformed requests: one line, never a traceback
        for path, content, headers, status, line in [
            ("/validate", b"{nope", JSON, 400, "AdmissionReview is not valid JSON"),
            ("/validate", b"{}", {"content-type": "text/plain"}, 415, "application/json"),
            ("/validate", b" " * (5 << 20), JSON, 413, "request body over"),
            (
                "/mutate",
                review_bytes("Pod", workload("Pod", ["a:1"] * 300)),
                JSON,
                400,
                "more than 256 containers",
            ),
            ("/nope", b"", JSON, 404, "no such endpoint"),
        ]:
            answer = client.post(path, content=content, headers=headers)
            assert answer.status_code == status and line in answer.text, (path, answer.text)
            assert answer.text.count("\n") == 1 and "Traceback" not in answer.text
        assert client.get("/validate").status_code == 405

        metrics = client.get("/metrics").text
        for line in (
            'sigscope_admission_reviews_total{decision="allow",endpoint="validate"}',
            'sigscope_admission_reviews_total{decision="error",endpoint="validate"} 1.0',
            "sigscope_admission_review_seconds_bucket",
            "sigscope_admission_verifications_total",
            f'sigscope_admission_policy_info{{version="{V1}"}} 1.0',
        ):
            assert line in metrics, line

    lines = served.audit_lines()
    first = lines[0]
    assert {k: first[k] for k in ("endpoint", "uid", "namespace", "kind", "name", "user", "decision")} == {
        "endpoint": "validate",
        "uid": "u-1",
        "namespace": "team",
        "kind": "Deployment",
        "name": "w",
        "user": "alice@example.com",
        "decision": "allow",
    }
    assert first["digests"] == {alpine: alpine_digest} and first["policy_version"] == V1
    assert first["images"][0]["source"] == "verified" and first["cache_hit"] is False
    assert isinstance(first["latency_ms"], float)
    denied = lines[1]
    assert denied["decision"] == "deny" and denied["reasons"] == [
        "docker.io/library/busybox:1: unmatched image"
    ]
    assert any(line["endpoint"] == "mutate" and line["pinned"] == 2 for line in lines)


def test_request_timeout_bounds_the_answer(registry: RegistryHandle, tmp_path: Path) -> None:
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]}, delay=5.0)
    _policy(tmp_path, registry, on_error={f"{registry.host}/demo/alpine": "allow"})
    body = review_bytes("Pod", workload("Pod", [f"{registry.host}/demo/alpine:1.0"]))
    with serving(tmp_path, decide, options=_options(registry)) as served, served.client() as client:
        started = time.monotonic()
        response = client.post("/validate?timeout=1s", content=body, headers=JSON).json()["response"]
        assert time.monotonic() - started < 3.0  # 80 % of the API server's 1 s, not the engine's 5 s
        assert response["allowed"] is True  # the rule's onError: allow
        assert 'sigscope_admission_on_error_total{decision="allow"} 1.0' in client.get("/metrics").text


def _configmap(
    directory: Path, name: str, version: str, registry: RegistryHandle, *, broken: bool = False
) -> None:
    """Kubernetes' ConfigMap layout: policy.json → ..data/policy.json, ..data → ..NAME, swapped atomically."""
    target = directory / f"..{name}"
    target.mkdir()
    if broken:
        (target / "policy.json").write_text("{ this is not a policy")
    else:
        _policy(target, registry, version)
    link = directory / "..data_tmp"
    link.symlink_to(target.name)
    link.replace(directory / "..data")
    if not (directory / "policy.json").is_symlink():
        (directory / "policy.json").symlink_to("..data/policy.json")


def test_policy_reload_from_a_configmap(registry: RegistryHandle, tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    _configmap(mount, "v1", V1, registry)
    decide = CountingDecide()
    body = review_bytes("Pod", workload("Pod", ["static.example/a:1"]))
    with (
        serving(tmp_path, decide, options=_options(registry), policy_file=mount / "policy.json") as served,
        served.client() as client,
    ):
        assert client.get("/readyz").text == f"ok {V1}\n"
        _configmap(mount, "v2", V2, registry)
        _wait(lambda: client.get("/readyz").text == f"ok {V2}\n")
        response = client.post("/validate", content=body, headers=JSON).json()["response"]
        assert response["auditAnnotations"]["policy-version"] == V2
        _configmap(mount, "v3", "", registry, broken=True)
        _wait(
            lambda: (
                'sigscope_admission_policy_reloads_total{result="failed"} 1.0' in client.get("/metrics").text
            )
        )
        assert client.get("/readyz").text == f"ok {V2}\n"  # the last good policy stays in force
        response = client.post("/validate", content=body, headers=JSON).json()["response"]
        assert response["auditAnnotations"]["policy-version"] == V2
    assert served.audit_lines()[-1]["policy_version"] == V2


def _presented(url: str) -> bytes:
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw) as tls:
        cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        return cert


def test_tls_reload_keeps_connections(registry: RegistryHandle, tmp_path: Path) -> None:
    _policy(tmp_path, registry)
    with serving(tmp_path, CountingDecide(), options=_options(registry)) as served, served.client() as old:
        assert old.get("/healthz").status_code == 200  # a keep-alive connection under the first certificate
        first = _presented(served.url)
        new_ca, new_cert, new_key = make_tls_files(tmp_path / "rotated")
        # a rotation that writes the certificate before its key: refused until the key matches
        shutil.copy(new_cert, served.cert.with_suffix(".tmp"))
        served.cert.with_suffix(".tmp").replace(served.cert)
        _wait(lambda: 'sigscope_admission_tls_reloads_total{result="failed"}' in old.get("/metrics").text)
        assert _presented(served.url) == first
        shutil.copy(new_key, served.key.with_suffix(".tmp"))
        served.key.with_suffix(".tmp").replace(served.key)
        _wait(lambda: _presented(served.url) != first)
        assert old.get("/healthz").status_code == 200  # the old connection was not dropped
        with served.client(new_ca) as new:
            assert new.get("/healthz").status_code == 200
        with served.client() as stale, pytest.raises(httpx.ConnectError):
            stale.get("/healthz")  # a new handshake presents the new certificate
