"""The webhook end to end with the real policy engine: images in a real registry, signed by `sigscope sign`
and by cosign, judged by a sigscope/v1 policy; then the registry goes down and the stale verdict serves;
then two webhook instances share their verdicts through a real redis-server."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testbed import RegistryHandle, build_layout, layout_digest, push_layout, start_registry
from testbed.admission import RedisServer, review_bytes, serving, start_redis, workload
from testbed.cli import run_sigscope
from testbed.peers import peer

from sigscope.admission.cache import Ttls
from sigscope.admission.verifier import Settings
from sigscope.keys import generate, write_key_pair
from sigscope.oci.client import RegistryOptions

PASSWORD = "webhook-e2e-pw"
JSON = {"content-type": "application/json"}


@dataclass
class Bed:
    registry: RegistryHandle
    digests: dict[str, str]  # repo → digest
    directory: Path

    def image(self, repo: str) -> str:
        return f"{self.registry.host}/{repo}:1.0"


def _push(registry: RegistryHandle, workdir: Path, repo: str) -> str:
    layout = workdir / f"layout-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"sigscope/webhook/{repo}")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    return layout_digest(layout, "v1")


def _write_policy(directory: Path, host: str, release_key: str = "keys/sigscope.pub") -> None:
    (directory / "policy.yaml").write_text(
        f"""apiVersion: sigscope/v1
kind: Policy
unmatched: deny
exemptions:
  namespaces: [kube-system]
rules:
  - name: release
    images: ["{host}/e2e/signed", "{host}/e2e/unsigned"]
    authorities:
      - name: release-key
        key: {{path: {release_key}}}
  - name: vendor
    images: ["{host}/e2e/cosigned"]
    authorities:
      - name: vendor-key
        key: {{path: keys/cosign.pub}}
  - name: audit-only
    images: ["{host}/e2e/warned"]
    mode: warn
    authorities:
      - name: release-key
        key: {{path: keys/sigscope.pub}}
"""
    )


@pytest.fixture(scope="module")
def bed(registry_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """A registry of its own (this module stops it), four images, signatures by sigscope and by cosign."""
    work = tmp_path_factory.mktemp("webhook-e2e")
    registry = start_registry(work / "registry")
    try:
        digests = {
            repo: _push(registry, work, repo)
            for repo in ("e2e/signed", "e2e/unsigned", "e2e/cosigned", "e2e/warned")
        }
        keys = work / "keys"
        keys.mkdir()
        write_key_pair(keys / "sigscope", generate("ecdsa-p256"), PASSWORD)
        write_key_pair(keys / "stranger", generate("ecdsa-p256"), PASSWORD)
        signed = run_sigscope(
            "sign",
            f"{registry.host}/e2e/signed:1.0",
            "--key",
            str(keys / "sigscope.key"),
            "--insecure",
            password=PASSWORD,
        )
        assert signed.returncode == 0, signed.stderr
        cosign = peer("cosign")
        env = {
            "COSIGN_PASSWORD": PASSWORD,
            "COSIGN_YES": "true",
            "HOME": str(work),
            "DOCKER_CONFIG": str(work / "docker"),
        }
        import subprocess

        made = subprocess.run(
            [str(cosign), "generate-key-pair", "--output-key-prefix", str(keys / "cosign")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=work,
        )
        assert made.returncode == 0, made.stderr
        sign = subprocess.run(
            [
                str(cosign),
                "sign",
                "--key",
                str(keys / "cosign.key"),
                "--use-signing-config=false",
                "--tlog-upload=false",
                "--allow-http-registry",
                "--allow-insecure-registry",
                "--new-bundle-format=false",
                f"{registry.host}/e2e/cosigned@{digests['e2e/cosigned']}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
        )
        assert sign.returncode == 0, sign.stderr
        _write_policy(work, registry.host)
        yield Bed(registry, digests, work)
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis-e2e"))
    yield server
    server.stop()


def _options(bed: Bed) -> RegistryOptions:
    return RegistryOptions(
        use_auth_files=False, timeout=3.0, insecure_registries=frozenset({bed.registry.host})
    )


def _validate(client: object, kind: str, images: list[str], **kw: object) -> dict[str, object]:
    answer = client.post(
        "/validate?timeout=10s", content=review_bytes(kind, workload(kind, images), **kw), headers=JSON
    )  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    response: dict[str, object] = answer.json()["response"]
    return response


def test_admission_with_real_signatures(bed: Bed, redis_server: RedisServer) -> None:
    signed, unsigned, cosigned, warned = (
        bed.image(f"e2e/{n}") for n in ("signed", "unsigned", "cosigned", "warned")
    )
    settings = Settings(ttls=Ttls(allow=1.0, deny=1.0, tag=1.0, stale=600.0), deadline=3.0)
    common = {
        "options": _options(bed),
        "policy_file": bed.directory / "policy.yaml",
        "settings": settings,
        "cache_url": redis_server.url,
    }
    with serving(bed.directory, None, **common) as one, one.client() as client:  # type: ignore[arg-type]
        version = client.get("/readyz").text.split()[1]
        assert version.startswith("sha256:")

        # allow: signed by sigscope, and signed by cosign
        assert _validate(client, "Deployment", [signed, cosigned])["allowed"] is True
        # deny: unsigned, with the rule and the failed check named; dryRun answered the same
        denied = [_validate(client, "Pod", [signed, unsigned], dry_run=dry, uid="d") for dry in (False, True)]
        assert denied[0] == denied[1]
        assert denied[0]["allowed"] is False and denied[0]["status"]["code"] == 403  # type: ignore[index]
        message = denied[0]["status"]["message"]  # type: ignore[index]
        assert (
            f"{unsigned} (rule release): " in message and "release-key" in message and signed not in message
        )
        assert denied[0]["auditAnnotations"]["policy-version"] == version  # type: ignore[index]
        # warn: allowed, with a warning
        warn = _validate(client, "Pod", [warned])
        assert warn["allowed"] is True and warn["auditAnnotations"]["decision"] == "warn"  # type: ignore[index]
        assert warn["warnings"] and "audit-only" in warn["warnings"][0]  # type: ignore[index]
        # unmatched: denied by the document's `unmatched: deny`; exempt namespace: allowed
        assert _validate(client, "Pod", ["docker.io/library/busybox:1"])["allowed"] is False
        assert (
            _validate(client, "Pod", ["docker.io/library/busybox:1"], namespace="kube-system")["allowed"]
            is True
        )

        # mutate: the signed image pinned to its digest, the unsigned one left alone
        body = review_bytes("Pod", workload("Pod", [signed, unsigned]))
        response = client.post("/mutate?timeout=10s", content=body, headers=JSON).json()["response"]
        patch = json.loads(base64.b64decode(response["patch"]))
        assert [op for op in patch if op["op"] == "replace"] == [
            {
                "op": "replace",
                "path": "/spec/containers/0/image",
                "value": f"{signed}@{bed.digests['e2e/signed']}",
            }
        ]

        # another key in the policy: the same image is now denied, under a new version
        _write_policy(bed.directory, bed.registry.host, release_key="keys/stranger.pub")
        deadline = time.monotonic() + 10
        while client.get("/readyz").text.split()[1] == version:
            assert time.monotonic() < deadline, "policy not reloaded"
            time.sleep(0.1)
        assert _validate(client, "Pod", [signed])["allowed"] is False
        _write_policy(bed.directory, bed.registry.host)
        while client.get("/readyz").text.split()[1] != version:
            assert time.monotonic() < deadline, "policy not reloaded"
            time.sleep(0.1)

        # a second replica: the verdicts come from Redis, not from the registry
        with serving(bed.directory, None, audit_name="audit-2.log", **common) as two, two.client() as other:  # type: ignore[arg-type]
            assert _validate(other, "Pod", [f"{signed}@{bed.digests['e2e/signed']}"])["allowed"] is True
            assert two.audit_lines()[-1]["images"][0]["source"] == "shared-cache"

        # the registry goes down: the last good verdict serves (with a warning), an unknown image gets onError
        assert _validate(client, "Pod", [signed])["allowed"] is True
        bed.registry.stop()
        time.sleep(1.1)  # past every TTL
        started = time.monotonic()
        stale = _validate(client, "Pod", [signed])
        assert time.monotonic() - started < 3.0
        assert stale["allowed"] is True and "last verdict" in stale["warnings"][0]  # type: ignore[index]
        assert one.audit_lines()[-1]["images"][0]["source"] == "stale"
        never = _validate(client, "Pod", [f"{bed.registry.host}/e2e/signed:never-seen"])
        assert never["allowed"] is False and "verification did not finish" in never["status"]["message"]  # type: ignore[index]
        still_denied = _validate(client, "Pod", [unsigned])
        assert still_denied["allowed"] is False  # a stale deny stays a deny
