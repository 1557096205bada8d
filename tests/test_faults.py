"""What the real registry will not do on request: lie about bytes, throttle, fail, offer the referrers API.

A protocol-speaking proxy (tests/testbed/proxy.py) sits in front of the real registry for these paths only.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
from testbed import RegistryHandle
from testbed.proxy import RegistryProxy

from sigscope.errors import IntegrityError, RegistryError, UnreachableError
from sigscope.model import Descriptor
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import referrers_tag


@pytest.fixture
def proxy(registry: RegistryHandle) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry.url) as p:
        yield p


@pytest.fixture
def referrers_proxy(registry: RegistryHandle) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry.url, referrers_api=True, page_size=2) as p:
        yield p


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def client_for(proxy: RegistryProxy, **kw: object) -> tuple[RegistryClient, Sleeps]:
    client = RegistryClient(proxy.host, RegistryOptions(insecure=True, use_auth_files=False, **kw))  # type: ignore[arg-type]
    sleeps = Sleeps()
    client.sleep = sleeps
    return client, sleeps


def _count(proxy: RegistryProxy, fragment: str) -> int:
    return sum(1 for _, path in proxy.requests if fragment in path)


async def test_tampered_manifest_by_digest(proxy: RegistryProxy, registry: RegistryHandle) -> None:
    digest = registry.images["demo/alpine:1.0"]
    proxy.tamper(r"/manifests/")
    client, _ = client_for(proxy)
    async with client:
        with pytest.raises(IntegrityError) as info:
            await client.get_manifest("demo/alpine", digest)
        # The error names both digests: the one asked for and the one the bytes have.
        named = set(re.findall(r"sha256:[0-9a-f]{64}", str(info.value)))
        assert digest in named and len(named) == 2
        # By tag, the Docker-Content-Digest header is what the bytes are held to.
        with pytest.raises(IntegrityError, match="Docker-Content-Digest"):
            await client.get_manifest("demo/alpine", "1.0")


async def test_tampered_blob(proxy: RegistryProxy, registry: RegistryHandle) -> None:
    client, _ = client_for(proxy)
    async with client:
        manifest = await client.get_manifest("demo/alpine", "1.0")
        config = manifest.config()
        layer = manifest.layers()[0]
        assert config is not None
        proxy.tamper(r"/blobs/")
        with pytest.raises(IntegrityError, match="digest mismatch for blob"):
            await client.get_blob("demo/alpine", config.digest)
        with pytest.raises(IntegrityError, match="digest mismatch for blob"):
            await client.stream_blob("demo/alpine", layer.digest, io.BytesIO())


async def test_lying_digest_header(proxy: RegistryProxy, registry: RegistryHandle) -> None:
    other = registry.images["demo/multi:latest"]
    proxy.override_header(r"/manifests/", "Docker-Content-Digest", other)
    client, _ = client_for(proxy)
    async with client:
        with pytest.raises(IntegrityError, match="digest mismatch"):
            await client.get_manifest("demo/alpine", "1.0")
        with pytest.raises(IntegrityError, match="registry answered"):
            await client.head_manifest("demo/alpine", registry.images["demo/alpine:1.0"])


async def test_429_honours_retry_after(proxy: RegistryProxy, registry: RegistryHandle) -> None:
    proxy.fail(r"/manifests/", 429, times=2, retry_after="3")
    client, sleeps = client_for(proxy)
    async with client:
        descriptor = await client.head_manifest("demo/alpine", "1.0")
    assert descriptor.digest == registry.images["demo/alpine:1.0"]
    assert sleeps.delays == [3.0, 3.0]
    assert _count(proxy, "/manifests/") == 3


async def test_retry_after_is_capped(proxy: RegistryProxy) -> None:
    proxy.fail(r"/tags/list", 429, times=1, retry_after="86400")
    client, sleeps = client_for(proxy, max_retry_after=5.0)
    async with client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    assert sleeps.delays == [5.0]


async def test_5xx_backs_off_then_gives_up(proxy: RegistryProxy) -> None:
    proxy.fail(r"/tags/list", 503, times=2)
    client, sleeps = client_for(proxy)
    async with client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
        assert len(sleeps.delays) == 2 and sleeps.delays[1] > sleeps.delays[0] * 0.5
        proxy.fail(r"/tags/list", 502, times=50)
        with pytest.raises(
            RegistryError, match=r"injected fault \(RegistryProxy\) \(UNAVAILABLE, HTTP 502\)"
        ):
            await client.list_tags("demo/alpine")
    # max_retries=4: five attempts in all, then the error.
    assert len(sleeps.delays) == 2 + 4


async def test_4xx_is_not_retried(proxy: RegistryProxy) -> None:
    proxy.fail(r"/tags/list", 400, times=5)
    client, sleeps = client_for(proxy)
    async with client:
        with pytest.raises(RegistryError, match="injected fault"):
            await client.list_tags("demo/alpine")
    assert sleeps.delays == [] and _count(proxy, "/tags/list") == 1


async def test_dropped_connection_is_retried(proxy: RegistryProxy) -> None:
    proxy.drop_connection(r"/tags/list", times=1)
    client, sleeps = client_for(proxy)
    async with client:
        assert await client.list_tags("demo/alpine") == ["1.0"]
    # Retried (by aiohttp on a fresh connection, or by our back-off), never surfaced.
    assert _count(proxy, "/tags/list") == 2 and len(sleeps.delays) <= 1
    proxy.drop_connection(r"/tags/list", times=10)
    client, _ = client_for(proxy, max_retries=1)
    async with client:
        with pytest.raises(UnreachableError, match="dropped the connection"):
            await client.list_tags("demo/alpine")


def _referrer(subject: Descriptor, artifact_type: str, n: int) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": mediatypes.EMPTY_DIGEST, "size": 2},
            "layers": [],
            "subject": subject.to_json(),
            "annotations": {"n": str(n)},
        }
    ).encode()


async def test_referrers_api_with_pagination_and_filter(
    referrers_proxy: RegistryProxy, registry: RegistryHandle
) -> None:
    client, _ = client_for(referrers_proxy)
    async with client:
        await client.put_blob("api/app", mediatypes.EMPTY_JSON)
        image = await client.get_manifest("demo/alpine", "1.0")
        for layer in [image.config(), *image.layers()]:
            assert layer is not None
            await client.put_blob("api/app", await client.get_blob("demo/alpine", layer.digest))
        subject, _ = await client.put_manifest("api/app", image.raw, image.media_type, "v1")
        pushed = []
        for n in range(5):
            kind = "application/vnd.cncf.notary.signature" if n % 2 == 0 else "application/spdx+json"
            pushed.append(
                (
                    await client.push_referrer(
                        "api/app", _referrer(subject, kind, n), mediatypes.OCI_MANIFEST
                    )
                ).digest
            )
        # The registry took the referrers: no fallback tag was written.
        assert referrers_tag(subject.digest) not in await client.list_tags("api/app")
        found = await client.referrers("api/app", subject.digest)
        assert sorted(d.digest for d in found) == sorted(pushed)  # five entries across three pages
        assert _count(referrers_proxy, "/referrers/") >= 3
        signatures = await client.referrers(
            "api/app", subject.digest, "application/vnd.cncf.notary.signature"
        )
        assert sorted(d.annotations["n"] for d in signatures) == ["0", "2", "4"]


async def test_referrers_api_absent_falls_back(proxy: RegistryProxy, registry: RegistryHandle) -> None:
    client, _ = client_for(proxy)
    async with client:
        digest = registry.images["demo/alpine:1.0"]
        assert await client.referrers("demo/alpine", digest) == []
        assert await client.referrers("demo/alpine", digest) == []
    # The API is probed once per client; afterwards the tag schema is read directly.
    assert _count(proxy, "/referrers/") == 1
    assert _count(proxy, f"/manifests/{referrers_tag(digest)}") == 2
