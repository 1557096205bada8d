"""The test-bed proxy (tests/testbed/proxy.py) speaks the OCI distribution protocol in front of a real
registry.

Self-contained: its own ``docker-registry`` upstream and pushes through plain ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from testbed.proxy import RegistryProxy

REGISTRY_BIN = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
SIG_CONFIG_TYPE = "application/vnd.example.signature.config.v1+json"
REPO = "proxy/test"

pytestmark = pytest.mark.skipif(
    shutil.which(REGISTRY_BIN) is None,
    reason=f"{REGISTRY_BIN} not installed (apt-get install -y docker-registry; .ci/run does this)",
)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def push_blob(session: requests.Session, base: str, repo: str, data: bytes) -> requests.Response:
    """Monolithic upload (POST then PUT ?digest=); returns the PUT response."""
    start = session.post(f"{base}/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = urljoin(base + "/", start.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = session.put(
        f"{location}{sep}digest={_digest(data)}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return done


def push_manifest(
    session: requests.Session, base: str, repo: str, ref: str, manifest: dict[str, Any]
) -> tuple[str, bytes, requests.Response]:
    body = _json(manifest)
    resp = session.put(f"{base}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 201, resp.text
    return _digest(body), body, resp


@dataclass
class Upstream:
    url: str
    image_digest: str
    image_manifest: bytes


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    workdir: Path = tmp_path_factory.mktemp("proxy-upstream")
    port = _free_port()
    config = {  # JSON is YAML
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "sigscope-proxy-test"},
        "log": {"level": "warn", "accesslog": {"disabled": True}},
    }
    config_file = workdir / "config.yml"
    config_file.write_text(json.dumps(config))
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    session = _session()
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(workdir / 'registry.log').read_text()}")
            try:
                if session.get(f"{url}/v2/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("docker-registry did not become ready in 10 s")
            time.sleep(0.02)

        config_blob = _json(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        )
        layer = b"sigscope proxy test layer\n"
        push_blob(session, url, REPO, config_blob)
        push_blob(session, url, REPO, layer)
        push_blob(session, url, REPO, b"{}")  # the OCI empty descriptor, for artifacts
        digest, body, _ = push_manifest(
            session,
            url,
            REPO,
            "v1",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _digest(config_blob),
                    "size": len(config_blob),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _digest(layer),
                        "size": len(layer),
                    }
                ],
            },
        )
        yield Upstream(url, digest, body)
    finally:
        session.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[RegistryProxy]:
    with RegistryProxy(upstream.url) as p:
        yield p


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with _session() as s:
        yield s


def _artifact(subject_digest: str, subject_size: int, **fields: Any) -> dict[str, Any]:
    empty = {"mediaType": OCI_EMPTY, "digest": _digest(b"{}"), "size": 2}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": empty,
        "layers": [empty],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
    }
    manifest.update(fields)
    return manifest


# ---------------------------------------------------------------------------- plain forwarding


def test_pass_through_manifest(proxy: RegistryProxy, upstream: Upstream, http: requests.Session) -> None:
    url = f"{proxy.url}/v2/{REPO}/manifests/v1"
    resp = http.get(url, headers={"Accept": OCI_MANIFEST})
    assert resp.status_code == 200
    assert resp.content == upstream.image_manifest
    assert resp.headers["Docker-Content-Digest"] == upstream.image_digest
    assert resp.headers["Content-Type"] == OCI_MANIFEST
    assert resp.headers["Content-Length"] == str(len(upstream.image_manifest))

    head = http.head(url, headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(upstream.image_manifest))
    assert head.headers["Docker-Content-Digest"] == upstream.image_digest

    # The Accept header is forwarded verbatim: without the OCI type distribution 404s an OCI manifest.
    missing = http.get(url, headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    assert proxy.requests == [
        ("GET", f"/v2/{REPO}/manifests/v1"),
        ("HEAD", f"/v2/{REPO}/manifests/v1"),
        ("GET", f"/v2/{REPO}/manifests/v1"),
    ]


def test_blob_upload_locations_point_at_proxy(
    proxy: RegistryProxy, upstream: Upstream, http: requests.Session
) -> None:
    data = b"uploaded through the proxy\n"
    start = http.post(f"{proxy.url}/v2/{REPO}/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    assert upstream.url not in location
    assert location.startswith((proxy.url, "/"))
    done = http.put(
        urljoin(proxy.url + "/", location) + f"&digest={_digest(data)}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == _digest(data)
    assert upstream.url not in done.headers["Location"]
    blob = http.get(f"{proxy.url}/v2/{REPO}/blobs/{_digest(data)}")
    assert blob.status_code == 200 and blob.content == data
    # and it really landed upstream
    assert http.get(f"{upstream.url}/v2/{REPO}/blobs/{_digest(data)}").content == data
    assert [m for m, _ in proxy.requests] == ["POST", "PUT", "GET"]


# ---------------------------------------------------------------------------- faults


def test_fail_429_with_retry_after_then_success(
    proxy: RegistryProxy, upstream: Upstream, http: requests.Session
) -> None:
    proxy.fail(r"/manifests/", 429, 2, retry_after="1")
    url = f"{proxy.url}/v2/{REPO}/manifests/v1"
    for _ in range(2):
        resp = http.get(url, headers={"Accept": OCI_MANIFEST})
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    # non-matching paths are untouched while the rule is armed
    assert http.get(f"{proxy.url}/v2/").status_code == 200
    ok = http.get(url, headers={"Accept": OCI_MANIFEST})
    assert ok.status_code == 200 and ok.content == upstream.image_manifest


def test_fail_503_by_method_and_reset(proxy: RegistryProxy, http: requests.Session) -> None:
    url = f"{proxy.url}/v2/{REPO}/manifests/v1"
    proxy.fail(r"/manifests/v1$", 503, 5, method="HEAD")
    assert http.get(url, headers={"Accept": OCI_MANIFEST}).status_code == 200
    head = http.head(url, headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 503 and "Retry-After" not in head.headers
    proxy.reset()
    assert proxy.requests == []
    assert http.head(url, headers={"Accept": OCI_MANIFEST}).status_code == 200
    assert proxy.requests == [("HEAD", f"/v2/{REPO}/manifests/v1")]


def test_unavailable_body(proxy: RegistryProxy, http: requests.Session) -> None:
    proxy.fail(r"^/v2/$", 502, 1)
    resp = http.get(f"{proxy.url}/v2/")
    assert resp.status_code == 502
    assert resp.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_tamper_flips_bytes_but_keeps_digest_header(
    proxy: RegistryProxy, upstream: Upstream, http: requests.Session
) -> None:
    proxy.tamper(r"/manifests/v1$")
    resp = http.get(f"{proxy.url}/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == upstream.image_digest
    assert len(resp.content) == len(upstream.image_manifest)
    assert resp.content[:-1] == upstream.image_manifest[:-1]
    assert resp.content[-1] != upstream.image_manifest[-1]
    assert _digest(resp.content) != resp.headers["Docker-Content-Digest"]


def test_tamper_replace_fixes_content_length(
    proxy: RegistryProxy, upstream: Upstream, http: requests.Session
) -> None:
    proxy.tamper(r"/manifests/", replace=b'{"evil": true}')
    resp = http.get(f"{proxy.url}/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert resp.content == b'{"evil": true}'
    assert resp.headers["Content-Length"] == str(len(b'{"evil": true}'))
    assert resp.headers["Docker-Content-Digest"] == upstream.image_digest
    assert resp.headers["Content-Type"] == OCI_MANIFEST


def test_override_header(proxy: RegistryProxy, upstream: Upstream, http: requests.Session) -> None:
    liar = "sha256:" + "0" * 64
    proxy.override_header(r"/manifests/", "Docker-Content-Digest", liar, method="HEAD")
    url = f"{proxy.url}/v2/{REPO}/manifests/v1"
    assert http.head(url, headers={"Accept": OCI_MANIFEST}).headers["Docker-Content-Digest"] == liar
    got = http.get(url, headers={"Accept": OCI_MANIFEST})
    assert got.headers["Docker-Content-Digest"] == upstream.image_digest


def test_drop_connection_then_success(proxy: RegistryProxy, http: requests.Session) -> None:
    proxy.drop_connection(r"^/v2/$", 1)
    with pytest.raises(requests.ConnectionError):
        http.get(f"{proxy.url}/v2/")
    assert http.get(f"{proxy.url}/v2/").status_code == 200


def test_delay(proxy: RegistryProxy, http: requests.Session) -> None:
    proxy.delay(0.2)
    started = time.monotonic()
    assert http.get(f"{proxy.url}/v2/").status_code == 200
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------------- referrers API


def test_referrers_without_api_is_upstream_404(
    proxy: RegistryProxy, upstream: Upstream, http: requests.Session
) -> None:
    resp = http.get(f"{proxy.url}/v2/{REPO}/referrers/{upstream.image_digest}")
    assert resp.status_code == 404
    assert resp.text.strip() == "404 page not found"  # distribution's plain-text mux 404, not OCI JSON
    assert "OCI-Subject" not in resp.headers


def test_referrers_api(upstream: Upstream, http: requests.Session) -> None:
    subject, size = upstream.image_digest, len(upstream.image_manifest)
    with RegistryProxy(upstream.url, referrers_api=True, page_size=2) as proxy:
        base = f"{proxy.url}/v2/{REPO}/referrers/{subject}"
        empty = http.get(base)
        assert empty.status_code == 200
        assert empty.headers["Content-Type"] == OCI_INDEX
        assert empty.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}

        variants: list[dict[str, Any]] = [
            {"artifactType": SBOM_TYPE, "annotations": {"org.example.n": "0"}},
            # no artifactType: the descriptor's artifactType is config.mediaType
            {"config": {"mediaType": SIG_CONFIG_TYPE, "digest": _digest(b"{}"), "size": 2}},
            {"artifactType": SBOM_TYPE},
        ]
        pushed: list[dict[str, Any]] = []
        for i, fields in enumerate(variants):
            digest, body, resp = push_manifest(
                http, proxy.url, REPO, f"ref-{i}", _artifact(subject, size, **fields)
            )
            assert resp.headers["OCI-Subject"] == subject
            assert resp.headers["Docker-Content-Digest"] == digest
            expected: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
            expected["artifactType"] = fields.get("artifactType", SIG_CONFIG_TYPE)
            if "annotations" in fields:
                expected["annotations"] = fields["annotations"]
            pushed.append(expected)

        # an ordinary manifest PUT gets no OCI-Subject
        _, _, plain = push_manifest(http, proxy.url, REPO, "v1-again", json.loads(upstream.image_manifest))
        assert "OCI-Subject" not in plain.headers

        # pagination: page_size=2 → two pages linked by an opaque cursor
        first = http.get(base)
        assert first.status_code == 200
        assert first.headers["Content-Type"] == OCI_INDEX
        assert "OCI-Filters-Applied" not in first.headers
        assert first.json()["manifests"] == pushed[:2]
        assert first.links["next"]["url"].startswith(f"/v2/{REPO}/referrers/{subject}?")
        second = http.get(urljoin(proxy.url, first.links["next"]["url"]))
        assert second.status_code == 200
        assert second.json()["manifests"] == pushed[2:]
        assert "next" not in second.links

        # artifactType filter (with the header saying it was applied)
        sboms = http.get(base, params={"artifactType": SBOM_TYPE})
        assert sboms.headers["OCI-Filters-Applied"] == "artifactType"
        assert sboms.json()["manifests"] == [pushed[0], pushed[2]]
        assert "next" not in sboms.links
        sigs = http.get(base, params={"artifactType": SIG_CONFIG_TYPE})
        assert sigs.json()["manifests"] == [pushed[1]]
        one = http.get(base, params={"artifactType": SBOM_TYPE, "n": "1"})
        assert one.json()["manifests"] == [pushed[0]]
        rest = http.get(urljoin(proxy.url, one.links["next"]["url"]))
        assert rest.headers["OCI-Filters-Applied"] == "artifactType"
        assert rest.json()["manifests"] == [pushed[2]]

        # the referrers are real manifests upstream
        fetched = http.get(
            f"{upstream.url}/v2/{REPO}/manifests/{pushed[1]['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        assert fetched.status_code == 200 and json.loads(fetched.content)["subject"]["digest"] == subject

        # DELETE forwards and forgets
        deleted = http.delete(f"{proxy.url}/v2/{REPO}/manifests/{pushed[0]['digest']}")
        assert deleted.status_code == 202
        after = http.get(base, params={"n": "10"}).json()["manifests"]
        assert after == pushed[1:]

        # other subjects / repositories are independent; a bad digest is a 400 with OCI error JSON
        other = http.get(f"{proxy.url}/v2/{REPO}/referrers/sha256:{'1' * 64}")
        assert other.status_code == 200 and other.json()["manifests"] == []
        bad = http.get(f"{proxy.url}/v2/{REPO}/referrers/sha256:nothex")
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert ("GET", f"/v2/{REPO}/referrers/{subject}") in proxy.requests
