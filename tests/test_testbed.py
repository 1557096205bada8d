"""The test bed is real: a distribution registry, TLS, Basic auth, bearer tokens, pushed OCI images."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from testbed import (
    ALICE_PASSWORD,
    ALICE_REFRESH_TOKEN,
    ALICE_USER,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryHandle,
    TokenServer,
    build_layout,
    get_manifest,
    push_many,
    read_blob,
    sha256_digest,
    start_registry,
)


@pytest.fixture
def http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE etc. are set on these machines
    return s


def _bearer_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer"
    out: dict[str, str] = {}
    for part in params.split('",'):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def test_build_layout_is_deterministic(tmp_path: Path) -> None:
    a = build_layout(tmp_path / "a", "x", seed="s1")
    b = build_layout(tmp_path / "b", "x", seed="s1")
    c = build_layout(tmp_path / "c", "x", seed="s2")
    assert a == b != c
    assert sha256_digest(read_blob(tmp_path / "a", a)) == a
    multi = build_layout(tmp_path / "a", "m", seed="s1", architectures=["amd64", "arm64"])
    index = json.loads(read_blob(tmp_path / "a", multi))
    assert index["mediaType"] == OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    top = json.loads((tmp_path / "a" / "index.json").read_text())
    assert len(top["manifests"]) == 2  # "x" kept, "m" added


def test_plain_registry_serves_pushed_digests(registry: RegistryHandle, http: requests.Session) -> None:
    assert registry.url.startswith("http://")
    assert http.get(f"{registry.url}/v2/", timeout=5).status_code == 200
    for ref, media_type in (("demo/alpine:1.0", OCI_MANIFEST), ("demo/multi:latest", OCI_INDEX)):
        repo, _, tag = ref.rpartition(":")
        r = http.get(
            f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=5
        )
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Docker-Content-Digest"] == registry.images[ref]
        assert sha256_digest(r.content) == registry.images[ref]
    # quirk: without the OCI media type in Accept, distribution 404s an OCI manifest
    r = http.get(f"{registry.url}/v2/demo/alpine/manifests/1.0", timeout=5)
    assert r.status_code == 404


def test_tls_registry_needs_its_ca(tls_registry: RegistryHandle, http: requests.Session) -> None:
    assert tls_registry.url.startswith("https://") and tls_registry.ca_file is not None
    with pytest.raises(requests.exceptions.SSLError):
        http.get(f"{tls_registry.url}/v2/", timeout=5, verify=True)  # default (certifi/system) bundle
    assert http.get(f"{tls_registry.url}/v2/", timeout=5, verify=str(tls_registry.ca_file)).status_code == 200
    r = get_manifest(tls_registry.url, "demo/alpine", "1.0", verify=str(tls_registry.ca_file))
    assert r.headers["Docker-Content-Digest"] == tls_registry.images["demo/alpine:1.0"]


def test_basic_registry(basic_registry: RegistryHandle, http: requests.Session) -> None:
    url = f"{basic_registry.url}/v2/demo/alpine/tags/list"
    r = http.get(url, timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert http.get(url, timeout=5, auth=(ALICE_USER, "wrong")).status_code == 401
    r = http.get(url, timeout=5, auth=(ALICE_USER, ALICE_PASSWORD))
    assert r.status_code == 200
    assert r.json() == {"name": "demo/alpine", "tags": ["1.0"]}


def test_token_registry_flow(
    token_registry: RegistryHandle, token_server: TokenServer, http: requests.Session
) -> None:
    url = f"{token_registry.url}/v2/demo/alpine/tags/list"
    r = http.get(url, timeout=5)
    assert r.status_code == 401
    challenge = _bearer_challenge(r.headers["WWW-Authenticate"])
    assert challenge == {
        "realm": token_server.url,
        "service": token_server.service,
        "scope": "repository:demo/alpine:pull",
    }
    params = {"service": challenge["service"], "scope": challenge["scope"]}

    # wrong password: refused by the token server itself
    r = http.get(challenge["realm"], params=params, auth=(ALICE_USER, "wrong"), timeout=5)
    assert r.status_code == 401

    # anonymous: a token with no access; the registry says 401 insufficient_scope
    anon = http.get(challenge["realm"], params=params, timeout=5).json()["token"]
    r = http.get(url, headers={"Authorization": f"Bearer {anon}"}, timeout=5)
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]

    body = http.get(challenge["realm"], params=params, auth=(ALICE_USER, ALICE_PASSWORD), timeout=5).json()
    assert body["token"] == body["access_token"] and body["expires_in"] == token_server.expires_in
    header = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[0] + "=="))
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1
    r = http.get(url, headers={"Authorization": f"Bearer {body['token']}"}, timeout=5)
    assert r.status_code == 200
    assert r.json()["tags"] == ["1.0"]

    assert [(q["method"], q["user"], q["ok"]) for q in token_server.token_requests] == [
        ("GET", ALICE_USER, False),
        ("GET", None, True),
        ("GET", ALICE_USER, True),
    ]


def test_token_registry_refresh_token(
    token_registry: RegistryHandle, token_server: TokenServer, http: requests.Session
) -> None:
    url = f"{token_registry.url}/v2/demo/alpine/tags/list"
    form = {
        "grant_type": "refresh_token",
        "service": token_server.service,
        "scope": "repository:demo/alpine:pull",
        "client_id": "sigscope-tests",
    }
    r = http.post(token_server.url, data={**form, "refresh_token": "bogus"}, timeout=5)
    assert r.status_code == 401
    r = http.post(token_server.url, data={**form, "refresh_token": ALICE_REFRESH_TOKEN}, timeout=5)
    assert r.status_code == 200
    token = r.json()["access_token"]
    assert http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200

    # offline_token=true issues a refresh token usable with the POST flow
    r = http.get(
        token_server.url,
        params={"service": token_server.service, "offline_token": "true", "scope": form["scope"]},
        auth=(ALICE_USER, ALICE_PASSWORD),
        timeout=5,
    )
    issued = r.json()["refresh_token"]
    r = http.post(token_server.url, data={**form, "refresh_token": issued}, timeout=5)
    assert r.status_code == 200
    assert [q["user"] for q in token_server.token_requests] == [None, ALICE_USER, ALICE_USER, ALICE_USER]


def test_push_many(registry_bin: str, tmp_path: Path, http: requests.Session) -> None:
    handle = start_registry(tmp_path / "reg")
    try:
        digests = push_many(handle.host, repos=3, tags_per_repo=4, workdir=tmp_path)
        assert len(set(digests.values())) == 3
        r = http.get(f"{handle.url}/v2/_catalog", timeout=5)
        assert sorted(r.json()["repositories"]) == sorted(digests)
        for repo, digest in digests.items():
            tags = http.get(f"{handle.url}/v2/{repo}/tags/list", timeout=5).json()["tags"]
            assert sorted(tags) == ["t0000", "t0001", "t0002", "t0003"]
            r = get_manifest(handle.url, repo, "t0003")
            assert r.headers["Docker-Content-Digest"] == digest
    finally:
        handle.stop()


async def test_session_fixtures_work_from_async_tests(registry: RegistryHandle) -> None:
    import aiohttp

    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(f"{registry.url}/v2/demo/multi/tags/list") as r:
            assert r.status == 200
            assert (await r.json())["tags"] == ["latest"]


def _run_vectors_test(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One cheap vectors-marked test, run with the vectors pointed at a directory that is not there."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | env_extra
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_formats_cosign.py::test_capture_digests_match_tag_names",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_absent_vectors_skip_locally_and_fail_under_ci(tmp_path: Path) -> None:
    absent = str(tmp_path / "no-vectors")
    local = _run_vectors_test({"SIGSCOPE_VECTORS": absent})
    assert local.returncode == 0, local.stdout + local.stderr
    assert " skipped" in local.stdout and "failed" not in local.stdout
    assert "shared test vectors not found at " + absent in local.stdout
    ci = _run_vectors_test({"SIGSCOPE_VECTORS": absent, "CI": "true"})
    assert ci.returncode == 1 and " error" in ci.stdout, ci.stdout  # failed in setup: an error
    assert "CI=true needs it" in ci.stdout
