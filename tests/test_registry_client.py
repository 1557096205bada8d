"""The registry client against a real distribution registry: reads, writes, auth, TLS, referrers."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from testbed import ALICE_PASSWORD, ALICE_REFRESH_TOKEN, ALICE_USER, RegistryHandle, TokenServer
from testbed.forge import push_image

from sigscope.errors import AuthError, NotFoundError, TLSError, TooLargeError
from sigscope.model import Descriptor
from sigscope.oci import digest as digests
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import referrers_tag


def plain(**kw: object) -> RegistryOptions:
    return RegistryOptions(insecure=True, use_auth_files=False, **kw)  # type: ignore[arg-type]


def _signature_manifest(subject: Descriptor, note: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.notary.signature",
            "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": mediatypes.EMPTY_DIGEST, "size": 2},
            "layers": [],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
            "annotations": {"note": note},
        }
    ).encode()


async def test_read_paths(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        info = await client.ping()
        assert info["api_version"] == "registry/2.0"
        repos = await client.catalog()
        assert {"demo/alpine", "demo/multi"} <= set(repos)
        assert await client.catalog("demo/alp") == []  # a prefix matches whole path components only
        assert await client.list_tags("demo/alpine") == ["1.0"]

        head = await client.head_manifest("demo/alpine", "1.0")
        assert head.digest == registry.images["demo/alpine:1.0"]
        assert head.media_type == mediatypes.OCI_MANIFEST
        by_tag = await client.get_manifest("demo/alpine", "1.0")
        by_digest = await client.get_manifest("demo/alpine", head.digest)
        assert by_tag.raw == by_digest.raw and by_tag.digest == head.digest
        assert head.size == len(by_tag.raw)

        config = by_tag.config()
        assert config is not None
        blob = await client.get_blob("demo/alpine", config.digest)
        assert json.loads(blob)["architecture"] == "amd64"
        sink = io.BytesIO()
        layer = by_tag.layers()[0]
        assert await client.stream_blob("demo/alpine", layer.digest, sink, size=layer.size) == layer.size
        assert digests.of(sink.getvalue()) == layer.digest

        index = await client.get_manifest("demo/multi", "latest")
        assert index.is_index and index.digest == registry.images["demo/multi:latest"]
        platforms = sorted(str(c.platform) for c in index.children())
        assert platforms == ["linux/amd64", "linux/arm64"]


async def test_not_found_is_not_retried(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        before = client.request_count
        with pytest.raises(NotFoundError, match=r"MANIFEST_UNKNOWN"):
            await client.get_manifest("demo/alpine", "nope")
        assert client.request_count - before == 1
        with pytest.raises(NotFoundError):
            await client.list_tags("no/such/repo")


async def test_catalog_pagination(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        for n in range(3):
            await push_image(client, f"paged/r{n}", "v1", f"paged-{n}")
        pages = [page async for page in client.catalog_pages(page_size=2)]
        assert len(pages) >= 3 and all(len(p) <= 2 for p in pages)
        flat = [r for p in pages for r in p]
        # No repository twice, in distribution's order: it walks directories, so it sorts by path
        # component ("verify/x" before "verify-certs/x"), not by the whole string.
        assert len(flat) == len(set(flat))
        assert flat == sorted(flat, key=lambda repo: repo.split("/"))
        assert {"paged/r0", "paged/r1", "paged/r2"} <= set(flat)
        assert await client.catalog("paged") == ["paged/r0", "paged/r1", "paged/r2"]


async def test_write_paths_and_delete(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        pushed = await push_image(client, "write/test", "v1", "hello")
        assert (await client.head_manifest("write/test", "v1")).digest == pushed.digest
        # Pushing the same blob again is skipped, not re-uploaded.
        before = client.request_count
        await client.put_blob("write/test", b"hello")
        assert client.request_count - before == 1
        await client.delete_manifest("write/test", pushed.digest)
        with pytest.raises(NotFoundError):
            await client.get_manifest("write/test", pushed.digest)


async def test_manifest_size_limit(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain(max_manifest_size=100)) as client:
        with pytest.raises(TooLargeError, match="100-byte limit"):
            await client.get_manifest("demo/alpine", "1.0")


async def test_referrers_fallback_write_and_read(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        subject = await push_image(client, "refs/app", "v1", "subject")
        assert await client.referrers("refs/app", subject.digest) == []
        first = await client.push_referrer(
            "refs/app", _signature_manifest(subject, "a"), mediatypes.OCI_MANIFEST
        )
        second = await client.push_referrer(
            "refs/app", _signature_manifest(subject, "b"), mediatypes.OCI_MANIFEST
        )
        # The registry has no referrers API, so the client kept the tag schema index.
        assert referrers_tag(subject.digest) in await client.list_tags("refs/app")
        found = await client.referrers("refs/app", subject.digest)
        assert [d.digest for d in found] == [first.digest, second.digest]
        assert found[1].annotations == {"note": "b"}
        assert found[0].artifact_type == "application/vnd.cncf.notary.signature"
        assert await client.referrers("refs/app", subject.digest, "application/spdx+json") == []
        # Existing entries written by another tool survive; the same referrer is not added twice.
        await client.push_referrer("refs/app", _signature_manifest(subject, "a"), mediatypes.OCI_MANIFEST)
        assert len(await client.referrers("refs/app", subject.digest)) == 2


async def test_referrers_tag_that_is_not_an_index_is_left_alone(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, plain()) as client:
        subject = await push_image(client, "refs/clash", "v1", "clash")
        image = await client.get_manifest("refs/clash", "v1")
        await client.put_manifest("refs/clash", image.raw, image.media_type, referrers_tag(subject.digest))
        assert await client.referrers("refs/clash", subject.digest) == []
        with pytest.raises(Exception, match="not an OCI index"):
            await client.push_referrer(
                "refs/clash", _signature_manifest(subject, "x"), mediatypes.OCI_MANIFEST
            )


# ------------------------------------------------------------------- auth


async def test_basic_auth(basic_registry: RegistryHandle) -> None:
    good = plain(username=ALICE_USER, password=ALICE_PASSWORD)
    async with RegistryClient(basic_registry.host, good) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
        # After the first challenge, credentials go up front: one request per call.
        before = client.request_count
        await client.head_manifest("demo/alpine", "1.0")
        assert client.request_count - before == 1
    async with RegistryClient(basic_registry.host, plain(username=ALICE_USER, password="wrong")) as client:
        with pytest.raises(AuthError) as info:
            await client.list_tags("demo/alpine")
        assert "wrong" not in str(info.value) and "alice" in str(info.value)
    async with RegistryClient(basic_registry.host, plain()) as client:
        with pytest.raises(AuthError, match="requires credentials"):
            await client.list_tags("demo/alpine")


async def test_bearer_token_flow_and_cache(token_registry: RegistryHandle, token_server: TokenServer) -> None:
    options = plain(username=ALICE_USER, password=ALICE_PASSWORD)
    async with RegistryClient(token_registry.host, options) as client:
        for _ in range(3):
            assert (await client.head_manifest("demo/alpine", "1.0")).digest == token_registry.images[
                "demo/alpine:1.0"
            ]
        await client.get_manifest("demo/alpine", "1.0")
        pulls = [r for r in token_server.token_requests if r["scopes"] == ["repository:demo/alpine:pull"]]
        assert len(pulls) == 1, token_server.token_requests
        assert pulls[0]["user"] == ALICE_USER
        # A push needs a wider scope, hence one more token; the catalog needs its own.
        await push_image(client, "demo/pushed", "v1", "via-token")
        assert "demo/pushed" in await client.catalog()
        scopes = [tuple(r["scopes"]) for r in token_server.token_requests]
        assert ("repository:demo/pushed:pull,push",) in scopes
        assert ("registry:catalog:*",) in scopes


async def test_bearer_wrong_password_and_anonymous(
    token_registry: RegistryHandle, token_server: TokenServer
) -> None:
    async with RegistryClient(token_registry.host, plain(username=ALICE_USER, password="nope")) as client:
        with pytest.raises(AuthError, match="refused user 'alice'"):
            await client.list_tags("demo/alpine")
    async with RegistryClient(token_registry.host, plain()) as client:
        with pytest.raises(AuthError, match="anonymously"):
            await client.list_tags("demo/alpine")


async def test_credentials_from_docker_config(
    token_registry: RegistryHandle, token_server: TokenServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    config = tmp_path / "config.json"
    auth = base64.b64encode(f"{ALICE_USER}:{ALICE_PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{token_registry.host}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    async with RegistryClient(token_registry.host, RegistryOptions(insecure=True)) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    assert token_server.token_requests[-1]["user"] == ALICE_USER

    # identitytoken: an OAuth2 refresh token exchanged with POST, as docker does.
    config.write_text(
        json.dumps({"auths": {token_registry.host: {"auth": "", "identitytoken": ALICE_REFRESH_TOKEN}}})
    )
    token_server.reset_requests()
    async with RegistryClient(token_registry.host, RegistryOptions(insecure=True)) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    [request] = [r for r in token_server.token_requests if r["scopes"]]
    assert request["method"] == "POST" and request["grant_type"] == "refresh_token" and request["ok"]


async def test_credential_helper_against_registry(
    basic_registry: RegistryHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = tmp_path / "bin" / "docker-credential-sigtest"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'printf \'{{"ServerURL":"%s","Username":"{ALICE_USER}","Secret":"{ALICE_PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "sigtest"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    async with RegistryClient(basic_registry.host, RegistryOptions(insecure=True)) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]


# -------------------------------------------------------------------- TLS


async def test_tls_verification(
    tls_registry: RegistryHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_registry.ca_file is not None
    other = tmp_path / "other-ca"
    other.mkdir()
    from testbed import make_tls_files

    wrong_ca, _, _ = make_tls_files(other)
    ok = RegistryOptions(ca_file=str(tls_registry.ca_file), use_auth_files=False)
    async with RegistryClient(tls_registry.host, ok) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    async with RegistryClient(tls_registry.host, RegistryOptions(use_auth_files=False)) as client:
        with pytest.raises(TLSError, match="--ca-file"):
            await client.list_tags("demo/alpine")
    # The environment cannot widen trust past an explicit --ca-file.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_registry.ca_file))
    bad = RegistryOptions(ca_file=str(wrong_ca), use_auth_files=False)
    async with RegistryClient(tls_registry.host, bad) as client:
        with pytest.raises(TLSError, match="verification failed"):
            await client.list_tags("demo/alpine")
    # ... nor narrow it past an explicit one, nor re-enable checks that were switched off.
    monkeypatch.setenv("SSL_CERT_FILE", str(wrong_ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(wrong_ca))
    async with RegistryClient(tls_registry.host, ok) as client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    async with RegistryClient(
        tls_registry.host, RegistryOptions(skip_tls_verify=True, use_auth_files=False)
    ) as c:
        assert await c.list_tags("demo/alpine") == ["1.0"]


async def test_https_against_plain_registry_hints_insecure(registry: RegistryHandle) -> None:
    async with RegistryClient(registry.host, RegistryOptions(use_auth_files=False)) as client:
        with pytest.raises(TLSError, match="--insecure"):
            await client.ping()


def test_testbed_has_skopeo() -> None:
    # The registry fixtures push with skopeo; make a missing install loud rather than a silent skip in CI.
    if os.environ.get("CI"):
        assert shutil.which("skopeo") and shutil.which("docker-registry")


async def test_bearer_token_refreshed_on_401(
    token_registry: RegistryHandle, token_server: TokenServer
) -> None:
    options = plain(username=ALICE_USER, password=ALICE_PASSWORD)
    async with RegistryClient(token_registry.host, options) as client:
        await client.list_tags("demo/alpine")
        # Swap the cached token for one the registry rejects (wrong audience): as if it had expired.
        [key] = [k for k in client._tokens._tokens if k[2] == ("repository:demo/alpine:pull",)]
        rejected = token_server.make_token(ALICE_USER, [], audience="someone-else")
        client._tokens.put(*key, rejected, expires_in=300)
        token_server.reset_requests()
        assert await client.list_tags("demo/alpine") == ["1.0"]
        assert [r["scopes"] for r in token_server.token_requests] == [["repository:demo/alpine:pull"]]
