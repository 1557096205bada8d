"""One review's images → one verdict each, fast and within the deadline.

For each distinct image, in parallel:

1. exempt namespace: allowed, nothing looked at; exempt, static and unmatched images: the engine decides
   without a registry;
2. the digest: the reference's own, else the tag cache, else one HEAD (identical resolutions coalesced);
3. the verdict: in-process cache, else the shared cache, else the engine (identical verifications
   coalesced), cached for the allow or the deny TTL;
4. when the registry cannot be reached or the deadline passes: the last good verdict for that digest
   (within the staleness window), else the rule's `onError`.

Only an operational failure (unreachable, deadline, 5xx, 429 past the deadline, credentials refused)
takes the onError path. Anything else the registry says that prevents a judgement (the image does not
exist, a digest does not match, a manifest is too large) and anything unexpected is a denial: a wrong
"allowed" is the one answer the webhook must never give.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from sigscope.admission.cache import Clock, InFlight, TagCache, Ttls, VerdictCache, VerdictKey, verdict_key
from sigscope.admission.engine import Decide, PolicyLike
from sigscope.admission.metrics import Metrics
from sigscope.admission.resolver import Registries
from sigscope.admission.shared import SharedCacheError, SharedVerdicts
from sigscope.admission.verdict import (
    CACHED,
    NAMESPACE,
    ON_ERROR,
    REFUSED,
    SHARED,
    STALE,
    Verdict,
    from_decision,
    without_engine,
)
from sigscope.errors import DeadlineError, NotFoundError, RegistryError, SigscopeError, UnreachableError
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import parse_reference
from sigscope.sources.deadline import overall_deadline

log = logging.getLogger("sigscope.webhook")
T = TypeVar("T")

DEFAULT_DEADLINE = 8.0
MAX_REMEMBERED = 65536  # images whose policy match is remembered
# A registry that could not be connected to (refused, no route, TLS) is left alone this long: the reviews in
# between answer from stale verdicts or onError at once, instead of each trying (and paying for) a
# connection that fails. A slow registry (a request deadline) is not paused: it may still answer.
UNREACHABLE_PAUSE = 1.0
MAX_PAUSED = 1024


@dataclass(frozen=True)
class Settings:
    ttls: Ttls = field(default_factory=Ttls)
    cache_bytes: int = 64 * 1024 * 1024
    tag_cache_bytes: int = 8 * 1024 * 1024
    # A verification's own bound, whoever waits for it; a review's deadline is min(this, its timeout's).
    deadline: float = DEFAULT_DEADLINE


class _Operational(Exception):
    """Verification could not finish; `why` is one line."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Refused(Exception):
    """The registry's answer is itself grounds to deny."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _classify(exc: BaseException) -> Exception:
    if isinstance(exc, TimeoutError):
        return _Operational("deadline passed")
    if isinstance(exc, NotFoundError):
        return _Refused(str(exc))
    if isinstance(exc, UnreachableError | RegistryError):
        return _Operational(str(exc))
    if isinstance(exc, SigscopeError):
        return _Refused(str(exc))
    log.error("internal error verifying an image: %s: %s", type(exc).__name__, exc)
    return _Refused(f"internal error: {type(exc).__name__}")


class Verifier:
    def __init__(
        self,
        decide: Decide,
        options: RegistryOptions,
        metrics: Metrics,
        settings: Settings | None = None,
        *,
        shared: SharedVerdicts | None = None,
        registries: Registries | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.decide = decide
        self.options = options
        self.metrics = metrics
        self.settings = settings or Settings()
        self.shared = shared
        self.registries = registries or Registries(options)
        self.verdicts = VerdictCache(self.settings.ttls, self.settings.cache_bytes, clock)
        self.tags = TagCache(self.settings.ttls, self.settings.tag_cache_bytes, clock)
        self._verifying: InFlight[Verdict] = InFlight(self.metrics.coalesced.inc)
        self._resolving: InFlight[str] = InFlight(self.metrics.coalesced.inc)
        self._needs: dict[str, bool] = {}
        self._tag_hits = metrics.cache.labels("tag", "hit")
        self._verdict_hits = metrics.cache.labels("verdict", "hit")
        self._needs_for = ""
        self._clock = clock
        self._paused: dict[str, tuple[float, str]] = {}  # registry → (until, why)

    async def close(self) -> None:
        self._verifying.cancel_all()
        self._resolving.cancel_all()
        await self.registries.close()
        if self.shared is not None:
            await self.shared.close()

    async def judge(
        self, policy: PolicyLike, namespace: str, images: list[str], until: float
    ) -> list[Verdict]:
        """A verdict for each of `images` (distinct), answered by loop time `until`."""
        if namespace and policy.exempt_namespace(namespace):
            return [
                without_engine(image, "allow", f"namespace {namespace} is exempt", policy.version, NAMESPACE)
                for image in images
            ]
        # Cached verdicts are answered here, without a task each: the warm path is most reviews.
        answers: list[Verdict | None] = [self._cached(policy, image) for image in images]
        missing = [n for n, answer in enumerate(answers) if answer is None]
        if missing:
            found = await asyncio.gather(*(self._one(policy, images[n], until) for n in missing))
            for n, verdict in zip(missing, found, strict=True):
                answers[n] = verdict
        return [a for a in answers if a is not None]

    def _cached(self, policy: PolicyLike, image: str) -> Verdict | None:
        """A fresh in-process verdict for `image`, or None. Entries exist only under keys of verified
        references, so the digest is read off the image without parsing it: a malformed one finds nothing."""
        _, at, digest = image.rpartition("@")
        if not at:
            found = self.tags.fresh(image)
            if found is None:
                return None
            digest = found
        if not self._needs_registry(policy, image):
            return None
        cached = self.verdicts.fresh(verdict_key(policy.version, image, digest))
        if cached is None:
            return None
        if not at:
            self._tag_hits.inc()
        self._verdict_hits.inc()
        return _for(cached[0], image, CACHED, cached[1])

    def _needs_registry(self, policy: PolicyLike, image: str) -> bool:
        # Matching an image against every rule's patterns is the engine's one cost on the warm path:
        # remembered per policy version (bounded: a new version, or too many images, starts afresh).
        if self._needs_for != policy.version or len(self._needs) >= MAX_REMEMBERED:
            self._needs, self._needs_for = {}, policy.version
        needs = self._needs.get(image)
        if needs is None:
            needs = self._needs[image] = policy.needs_registry(image)
        return needs

    async def _one(self, policy: PolicyLike, image: str, until: float) -> Verdict:
        try:
            if not self._needs_registry(policy, image):
                # Exempt, static or unmatched: the engine answers from the policy alone.
                decision = await self._within(until, self.decide(policy, image, self.options, now=_now()))
                return from_decision(decision)
            return await self._registry_verdict(policy, image, until)
        except _Refused as exc:
            return without_engine(image, "deny", exc.why, policy.version, REFUSED)
        except _Operational as exc:  # only the static path gets here: it has no digest to be stale for
            return self._on_error(policy, image, exc.why)

    async def _registry_verdict(self, policy: PolicyLike, image: str, until: float) -> Verdict:
        try:
            ref = parse_reference(image)
        except SigscopeError as exc:
            raise _Refused(str(exc)) from None
        failure: str | None = None
        paused = self._paused_why(ref.registry)
        digest = ref.digest
        if digest is None:
            digest = self.tags.fresh(image)
            self.metrics.cache.labels("tag", "miss" if digest is None else "hit").inc()
        if digest is None:
            try:
                if paused is not None:
                    raise _Operational(paused)
                digest = await self._within(until, self._resolving.run(image, lambda: self._resolve(image)))
            except _Operational as exc:
                failure = exc.why
                digest = self.tags.stale(image)
                if digest is None:
                    return self._on_error(policy, image, failure)
                self.metrics.cache.labels("tag", "stale").inc()
        key = verdict_key(policy.version, image, digest)
        cached = self.verdicts.fresh(key)
        if cached is not None:
            self.metrics.cache.labels("verdict", "hit").inc()
            return _for(cached[0], image, CACHED, cached[1])
        self.metrics.cache.labels("verdict", "miss").inc()
        shared_stale: tuple[Verdict, float] | None = None
        if failure is None:
            shared = await self._shared_get(key)
            if shared is not None:
                verdict, age = shared
                if age < self.settings.ttls.verdict(verdict):
                    self.verdicts.put(key, verdict, stored=self.verdicts.clock() - age)
                    return _for(verdict, image, SHARED, age)
                shared_stale = shared
            try:
                if paused is not None:
                    raise _Operational(paused)
                found = self._verifying.run(key, lambda: self._verify(policy, image, digest, key))
                return _for(await self._within(until, found), image, None, 0.0)
            except _Operational as exc:
                failure = exc.why
        stale = self.verdicts.stale(key) or shared_stale
        if stale is not None:
            self.metrics.cache.labels("verdict", "stale").inc()
            log.warning("serving a stale verdict (%.0fs old) for %s: %s", stale[1], image, failure)
            return _for(stale[0], image, STALE, stale[1])
        return self._on_error(policy, image, failure or "verification did not finish")

    async def _within(self, until: float, work: Awaitable[T]) -> T:
        left = until - asyncio.get_running_loop().time()
        try:
            if left <= 0:
                raise TimeoutError
            return await asyncio.wait_for(work, left)
        except (_Operational, _Refused):
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                # Nothing failed on the registry's side yet: the review just cannot wait any longer.
                raise _Operational("deadline passed before verification finished") from None
            raise _classify(exc) from None

    async def _resolve(self, image: str) -> str:
        ref = parse_reference(image)
        try:
            with overall_deadline(self.settings.deadline):
                async with asyncio.timeout(self.settings.deadline):
                    digest = await self.registries.resolve(ref)
        except Exception as exc:
            raise self._failed(ref.registry, exc) from None
        self.tags.put(image, digest)
        return digest

    async def _verify(self, policy: PolicyLike, image: str, digest: str, key: VerdictKey) -> Verdict:
        started = time.perf_counter()
        try:
            with overall_deadline(self.settings.deadline):
                async with asyncio.timeout(self.settings.deadline):
                    decision = await self.decide(policy, image, self.options, now=_now(), digest=digest)
        except Exception as exc:
            raise self._failed(parse_reference(image).registry, exc) from None
        self.metrics.verification_seconds.observe(time.perf_counter() - started)
        verdict = from_decision(decision)
        if verdict.digest != digest:
            verdict = replace(verdict, digest=digest)
        self.metrics.verifications.labels(verdict.decision).inc()
        self.verdicts.put(key, verdict)
        self.metrics.cache_bytes.set(self.verdicts.bytes)
        if self.shared is not None:
            try:
                await self.shared.put(key, verdict)
            except SharedCacheError as exc:
                self.metrics.shared_errors.inc()
                log.warning("%s", exc)
        return verdict

    def _failed(self, registry: str, exc: BaseException) -> Exception:
        """`exc` classified; a registry that could not be connected to is paused (UNREACHABLE_PAUSE)."""
        failure = _classify(exc)
        if isinstance(failure, _Operational):
            self.metrics.registry_errors.inc()
        if isinstance(exc, UnreachableError) and not isinstance(exc, DeadlineError):
            if len(self._paused) >= MAX_PAUSED:
                self._paused.clear()
            self._paused[registry] = (self._clock() + UNREACHABLE_PAUSE, f"{exc} (not retried for 1s)")
        return failure

    def _paused_why(self, registry: str) -> str | None:
        paused = self._paused.get(registry)
        if paused is None:
            return None
        if self._clock() >= paused[0]:
            del self._paused[registry]
            return None
        return paused[1]

    async def _shared_get(self, key: VerdictKey) -> tuple[Verdict, float] | None:
        if self.shared is None:
            return None
        try:
            found = await self.shared.get(key)
        except SharedCacheError as exc:
            self.metrics.shared_errors.inc()
            log.warning("%s", exc)
            return None
        self.metrics.cache.labels("shared", "miss" if found is None else "hit").inc()
        return found

    def _on_error(self, policy: PolicyLike, image: str, why: str) -> Verdict:
        mode = policy.rule_on_error(image)
        decision = "allow" if mode == "allow" else "deny"
        self.metrics.on_error.labels(decision).inc()
        log.warning("%s: verification did not finish (%s); onError %s", image, why, decision)
        rule = getattr(getattr(policy.match(image), "rule", None), "name", None)
        verdict = without_engine(
            image,
            decision,
            f"verification did not finish ({why}); the rule's onError is {decision}",
            policy.version,
            ON_ERROR,  # no digest: an image allowed without a verdict is never pinned
        )
        return replace(verdict, rule=rule if isinstance(rule, str) else None)


def _for(verdict: Verdict, image: str, source: str | None, age: float) -> Verdict:
    """A verdict reached for one spelling of an image, as answered for `image` (the key drops a digest
    the image may carry, so `name:tag` and `name:tag@digest` share it)."""
    if source is not None:
        return verdict.served(source, age, image)
    return verdict if verdict.image == image else replace(verdict, image=image)


def _now() -> datetime:
    return datetime.now(UTC)
