"""The webhook's verdict path: caches, coalescing, deadlines and onError, stale serving, 429, Redis.

The policy engine is a counting stand-in (testbed/admission.py): these tests are about the webhook's own
logic. Tag resolution, 429s and Redis are real (docker-registry, RegistryProxy for the 429, redis-server).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import RegistryHandle, refused_port
from testbed.admission import CountingDecide, RedisServer, StandinPolicy, start_redis
from testbed.proxy import RegistryProxy

from sigscope.admission.cache import InFlight, LruCache, Ttls, VerdictCache, verdict_key
from sigscope.admission.metrics import Metrics
from sigscope.admission.shared import SharedVerdicts, redact
from sigscope.admission.verdict import (
    CACHED,
    NAMESPACE,
    ON_ERROR,
    POLICY,
    REFUSED,
    SHARED,
    STALE,
    VERIFIED,
    Verdict,
)
from sigscope.admission.verifier import Settings, Verifier
from sigscope.oci.client import RegistryOptions

V1 = "sha256:" + "1" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _verdict(decision: str, digest: str = "sha256:" + "d" * 64) -> Verdict:
    return Verdict("a:1", digest, decision, "r", "why", V1, VERIFIED)


def _options(*insecure: str) -> RegistryOptions:
    return RegistryOptions(use_auth_files=False, insecure_registries=frozenset(insecure), timeout=5.0)


def _verifier(
    decide: CountingDecide,
    *insecure: str,
    clock: Clock | None = None,
    shared: SharedVerdicts | None = None,
    deadline: float = 8.0,
) -> Verifier:
    settings = Settings(ttls=Ttls(allow=300, deny=30, tag=30, stale=3600), deadline=deadline)
    return Verifier(decide, _options(*insecure), Metrics(), settings, shared=shared, clock=clock or time.time)


def _until(seconds: float = 8.0) -> float:
    return asyncio.get_running_loop().time() + seconds


# ------------------------------------------------------------------------------------------ caches


def test_lru_bound_by_bytes_and_time() -> None:
    clock = Clock()
    lru: LruCache[str] = LruCache(max_bytes=1000, clock=clock)
    for n in range(10):
        lru.put(n, "v", 100, keep_for=60)  # 300 bytes each with the overhead
    assert len(lru) == 3 and lru.bytes <= 1000
    assert lru.get(0) is None and lru.get(9) is not None
    lru.get(7)  # used: 8 becomes the least recently used
    lru.put("new", "v", 100, keep_for=60)
    assert lru.get(8) is None and lru.get(7) is not None
    clock.now += 61
    assert lru.get(7) is None and lru.bytes < 1000


def test_verdict_cache_ttls_and_staleness() -> None:
    clock = Clock()
    cache = VerdictCache(Ttls(allow=300, deny=30, tag=30, stale=600), 1 << 20, clock)
    allow, deny = verdict_key(V1, "a:1", "sha256:" + "a" * 64), verdict_key(V1, "b:1", "sha256:" + "b" * 64)
    cache.put(allow, _verdict("allow"))
    cache.put(deny, _verdict("deny"))
    clock.now += 31
    assert cache.fresh(allow) is not None and cache.fresh(deny) is None
    assert cache.stale(deny) is not None  # kept for serving while a registry is down
    clock.now += 300
    assert cache.fresh(allow) is None and cache.stale(allow) == (_verdict("allow"), 331.0)
    clock.now += 601
    assert cache.stale(allow) is None
    # name:tag and name:tag@digest share a key; another policy version does not
    assert verdict_key(V1, "a:1@sha256:" + "a" * 64, "sha256:" + "a" * 64) == allow
    assert verdict_key("sha256:" + "2" * 64, "a:1", "sha256:" + "a" * 64) != allow


async def test_in_flight_coalesces_and_survives_a_waiter_giving_up() -> None:
    flight: InFlight[int] = InFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.2)
        return 7

    impatient = asyncio.create_task(asyncio.wait_for(flight.run("k", work), 0.05))
    results = await asyncio.gather(*(flight.run("k", work) for _ in range(20)))
    with pytest.raises(TimeoutError):
        await impatient
    assert results == [7] * 20 and runs == 1 and flight.started == 1 and flight.joined == 20
    assert len(flight) == 0


# ----------------------------------------------------------------------------- verifier, registry


async def test_coalesced_cached_and_deduplicated(registry: RegistryHandle) -> None:
    image = f"{registry.host}/demo/alpine:1.0"
    digest = registry.images["demo/alpine:1.0"]
    decide = CountingDecide(signed={digest})
    verifier = _verifier(decide, registry.host)
    policy = StandinPolicy(rules={registry.host: "enforce"})
    try:
        answers = await asyncio.gather(
            *(verifier.judge(policy, "team", [image], _until()) for _ in range(25))
        )
        assert decide.total == 1 and verifier._resolving.started == 1  # one registry round for 25 reviews
        assert {a[0].decision for a in answers} == {"allow"} and answers[0][0].digest == digest
        again = await verifier.judge(policy, "team", [image, f"{image}@{digest}"], _until())
        assert [v.source for v in again] == [CACHED, CACHED] and decide.total == 1
        assert again[1].image == f"{image}@{digest}"
        text = verifier.metrics.render().decode()
        assert 'sigscope_admission_cache_total{cache="verdict",result="hit"} 2.0' in text
        assert "sigscope_admission_coalesced_total 48.0" in text  # 24 resolutions + 24 verifications joined
    finally:
        await verifier.close()


async def test_deny_ttl_shorter_than_allow(registry: RegistryHandle) -> None:
    clock = Clock()
    alpine, multi = (f"{registry.host}/demo/{n}" for n in ("alpine:1.0", "multi:latest"))
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]})
    verifier = _verifier(decide, registry.host, clock=clock)
    policy = StandinPolicy(rules={registry.host: "enforce"})
    try:
        first = await verifier.judge(policy, "team", [alpine, multi], _until())
        assert [v.decision for v in first] == ["allow", "deny"]
        assert first[1].failed == ("release-key: no signature verifies with keys/release.pub",)
        clock.now += 31  # past the deny TTL and the tag TTL, within the allow TTL
        second = await verifier.judge(policy, "team", [alpine, multi], _until())
        assert [v.source for v in second] == [CACHED, VERIFIED]
        assert decide.calls[(multi, registry.images["demo/multi:latest"])] == 2
    finally:
        await verifier.close()


async def test_exempt_namespace_and_static_images_never_reach_a_registry() -> None:
    decide = CountingDecide()
    dead = f"127.0.0.1:{refused_port()}"
    verifier = _verifier(decide, dead)
    policy = StandinPolicy(
        rules={dead: "enforce"}, static=("static.example/",), exempt_namespaces=("kube-system",)
    )
    try:
        exempt = await verifier.judge(policy, "kube-system", [f"{dead}/x:1", "other/y:1"], _until())
        assert [(v.decision, v.source) for v in exempt] == [("allow", NAMESPACE)] * 2 and decide.total == 0
        static = await verifier.judge(policy, "team", ["static.example/a:1", "unmatched/b:1"], _until())
        assert [(v.decision, v.source) for v in static] == [("allow", POLICY), ("deny", VERIFIED)]
        assert decide.registry_calls == 0 and verifier._resolving.started == 0
    finally:
        await verifier.close()


async def test_deadline_answers_per_on_error(registry: RegistryHandle) -> None:
    image = f"{registry.host}/demo/alpine:1.0"
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]}, delay=3.0)
    verifier = _verifier(decide, registry.host)
    try:
        for mode in ("deny", "allow"):
            policy = StandinPolicy(rules={registry.host: "enforce"}, on_error={registry.host: mode})
            started = time.monotonic()
            [verdict] = await verifier.judge(policy, "team", [image], _until(0.3))
            assert time.monotonic() - started < 2.0  # answered at the deadline, not when the engine was done
            assert (verdict.decision, verdict.source, verdict.rule) == (
                mode,
                ON_ERROR,
                f"rule-{registry.host}",
            )
            assert verdict.digest is None  # never pinned
            assert "deadline passed" in verdict.reason
        # The verification went on in the background and its verdict now serves the next review.
        await asyncio.sleep(3.2)
        [verdict] = await verifier.judge(policy, "team", [image], _until(0.3))
        assert (verdict.decision, verdict.source) == ("allow", CACHED) and decide.total == 1
    finally:
        await verifier.close()


async def _verified_then_down(
    registry: RegistryHandle,
) -> tuple[Clock, str, CountingDecide, Verifier, StandinPolicy]:
    """demo/alpine:1.0 verified and cached; from then on the engine finds the registry unreachable."""
    clock = Clock()
    image = f"{registry.host}/demo/alpine:1.0"
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]})
    verifier = _verifier(decide, registry.host, clock=clock)
    policy = StandinPolicy(rules={registry.host: "enforce"})
    assert (await verifier.judge(policy, "team", [image], _until()))[0].source == VERIFIED
    decide.fail = True
    return clock, image, decide, verifier, policy


async def test_stale_verdict_served_while_registry_down(registry: RegistryHandle) -> None:
    clock, image, decide, verifier, policy = await _verified_then_down(registry)
    try:
        clock.now += 400  # past the allow TTL: verification is tried, fails, the last verdict serves
        [stale] = await verifier.judge(policy, "team", [image], _until())
        assert (stale.decision, stale.source, stale.age) == ("allow", STALE, 400.0)
        clock.now += 3600  # past TTL + staleness: onError
        [late] = await verifier.judge(policy, "team", [image], _until())
        assert (late.decision, late.source) == ("deny", ON_ERROR) and "connection refused" in late.reason
        # Another policy version never meets the old verdicts.
        decide.fail, clock.now = True, clock.now - 3600
        other = StandinPolicy(version="sha256:" + "2" * 64, rules={registry.host: "enforce"})
        assert (await verifier.judge(other, "team", [image], _until()))[0].source == ON_ERROR
    finally:
        await verifier.close()


async def test_an_unreachable_registry_is_left_alone_for_a_moment(registry: RegistryHandle) -> None:
    clock, image, decide, verifier, policy = await _verified_then_down(registry)
    other = f"{registry.host}/demo/multi:latest"
    try:
        clock.now += 400
        [first] = await verifier.judge(policy, "team", [image], _until())
        assert first.source == STALE and decide.total == 2  # tried, refused: the registry is paused
        [again] = await verifier.judge(policy, "team", [image], _until())
        assert again.source == STALE and decide.total == 2  # not asked again
        # an image of the same registry never seen: onError at once, no tag resolution either
        [unknown] = await verifier.judge(policy, "team", [other], _until())
        assert unknown.source == ON_ERROR and "not retried for 1s" in unknown.reason
        assert decide.total == 2 and verifier.tags.stale(other) is None
        clock.now += 1.0  # the pause is over: asked again
        await verifier.judge(policy, "team", [image], _until())
        assert decide.total == 3
    finally:
        await verifier.close()


async def test_unreachable_registry_tag_resolution(registry: RegistryHandle) -> None:
    clock = Clock()
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]})
    with RegistryProxy(registry.url) as proxy:
        image = f"{proxy.host}/demo/alpine:1.0"
        verifier = _verifier(decide, proxy.host, clock=clock)
        policy = StandinPolicy(rules={proxy.host: "enforce"}, on_error={proxy.host: "allow"})
        try:
            assert (await verifier.judge(policy, "team", [image], _until()))[0].source == VERIFIED
            clock.now += 400
            proxy.fail(r"/manifests/", 503, 1000)
            decide.fail = True
            [stale] = await verifier.judge(policy, "team", [image], _until())
            assert (stale.decision, stale.source) == ("allow", STALE)  # stale tag, then stale verdict
            assert stale.digest == registry.images["demo/alpine:1.0"]
            text = verifier.metrics.render().decode()
            assert 'sigscope_admission_cache_total{cache="tag",result="stale"} 1.0' in text
            assert "sigscope_admission_registry_errors_total 1.0" in text
        finally:
            await verifier.close()


async def test_missing_image_denied_even_with_on_error_allow(registry: RegistryHandle) -> None:
    decide = CountingDecide()
    verifier = _verifier(decide, registry.host)
    policy = StandinPolicy(rules={registry.host: "enforce"}, on_error={registry.host: "allow"})
    try:
        [verdict] = await verifier.judge(policy, "team", [f"{registry.host}/demo/none:1"], _until())
        assert (verdict.decision, verdict.source) == (
            "deny",
            REFUSED,
        ) and "MANIFEST_UNKNOWN" in verdict.reason
        [bad] = await verifier.judge(policy, "team", [f"{registry.host}/UPPER/x:1"], _until())
        assert (bad.decision, bad.source) == ("deny", REFUSED)
    finally:
        await verifier.close()


async def test_retry_after_honoured_within_the_deadline(registry: RegistryHandle) -> None:
    digest = registry.images["demo/alpine:1.0"]
    decide = CountingDecide(signed={digest}, touch=True)
    with RegistryProxy(registry.url) as proxy:
        image = f"{proxy.host}/demo/alpine:1.0@{digest}"
        policy = StandinPolicy(rules={proxy.host: "enforce"})
        verifier = _verifier(decide, proxy.host, deadline=4.0)
        try:
            proxy.fail(r"/manifests/", 429, 1, retry_after="1")
            [verdict] = await verifier.judge(policy, "team", [image], _until(4.0))
            assert (verdict.decision, verdict.source) == ("allow", VERIFIED)
            assert sum(1 for r in proxy.requests if "/manifests/" in str(r)) >= 2  # asked again after 1 s
        finally:
            await verifier.close()
        verifier = _verifier(decide, proxy.host, deadline=2.0)
        try:
            proxy.fail(r"/manifests/", 429, 1, retry_after="30")
            started = time.monotonic()
            [verdict] = await verifier.judge(policy, "team", [image], _until(2.0))
            assert time.monotonic() - started < 1.5  # not slept into the deadline
            assert (verdict.decision, verdict.source) == ("deny", ON_ERROR)
            assert "retry after 30s, past the deadline" in verdict.reason
        finally:
            await verifier.close()


# ------------------------------------------------------------------------------------------- redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


async def test_shared_cache_between_two_replicas(registry: RegistryHandle, redis_server: RedisServer) -> None:
    image = f"{registry.host}/demo/alpine:1.0"
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]})
    ttls = Ttls()
    one = _verifier(decide, registry.host, shared=SharedVerdicts(redis_server.url, ttls))
    two = _verifier(decide, registry.host, shared=SharedVerdicts(redis_server.url, ttls))
    policy = StandinPolicy(version="sha256:" + "5" * 64, rules={registry.host: "enforce"})
    try:
        assert (await one.judge(policy, "team", [image], _until()))[0].source == VERIFIED
        [shared] = await two.judge(policy, "team", [image], _until())
        assert (shared.decision, shared.source) == ("allow", SHARED) and decide.total == 1
        assert (await two.judge(policy, "team", [image], _until()))[0].source == CACHED
        # A value in Redis that is not our verdict is ignored, not trusted.
        key = one.shared._name(("sha256:" + "6" * 64, image, registry.images["demo/alpine:1.0"]))  # type: ignore[union-attr]
        await one.shared._redis.set(key, b'{"stored": 0, "verdict": {"decision": "allow"}}')  # type: ignore[union-attr]
        hostile = StandinPolicy(version="sha256:" + "6" * 64, rules={registry.host: "enforce"})
        decide.signed.clear()
        assert (await one.judge(hostile, "team", [image], _until()))[0].decision == "deny"
        assert "sigscope_admission_shared_cache_errors_total 1.0" in one.metrics.render().decode()
    finally:
        await one.close()
        await two.close()


async def test_redis_down_is_a_miss(registry: RegistryHandle) -> None:
    image = f"{registry.host}/demo/alpine:1.0"
    decide = CountingDecide(signed={registry.images["demo/alpine:1.0"]})
    url = f"redis://user:secret@127.0.0.1:{refused_port()}/0"
    verifier = _verifier(decide, registry.host, shared=SharedVerdicts(url, Ttls()))
    try:
        [verdict] = await verifier.judge(
            StandinPolicy(rules={registry.host: "enforce"}), "team", [image], _until()
        )
        assert (verdict.decision, verdict.source) == ("allow", VERIFIED)
        assert "sigscope_admission_shared_cache_errors_total 2.0" in verifier.metrics.render().decode()
        assert redact(url) == f"redis://user:***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    finally:
        await verifier.close()


def test_redis_url_scheme_checked(tmp_path: Path) -> None:
    from sigscope.errors import UsageError

    with pytest.raises(UsageError, match="expected redis://"):
        SharedVerdicts("http://127.0.0.1:1", Ttls())
