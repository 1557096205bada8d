"""Prometheus metrics of one webhook (prometheus_client, on a registry of its own: two apps in one
process, as in the tests, count apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Reviews are answered in a millisecond warm and up to the deadline cold: buckets span both.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reviews = Counter(
            "sigscope_admission_reviews",
            "AdmissionReviews answered, by endpoint and decision (allow, warn, deny, error).",
            ["endpoint", "decision"],
            registry=r,
        )
        self.review_seconds = Histogram(
            "sigscope_admission_review_seconds",
            "Time to answer one AdmissionReview.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            "sigscope_admission_verifications",
            "Images judged by the policy engine against a registry, by decision (allow, warn, deny).",
            ["decision"],
            registry=r,
        )
        self.verification_seconds = Histogram(
            "sigscope_admission_verification_seconds",
            "Time of one verification (tag resolution excluded).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "sigscope_admission_cache",
            "Cache lookups by cache (verdict, shared, tag) and result (hit, miss, stale).",
            ["cache", "result"],
            registry=r,
        )
        self.coalesced = Counter(
            "sigscope_admission_coalesced",
            "Lookups that joined a verification or tag resolution already in flight.",
            registry=r,
        )
        self.registry_errors = Counter(
            "sigscope_admission_registry_errors",
            "Verifications or tag resolutions that failed for an operational reason (unreachable, "
            "deadline, 5xx, 429, auth).",
            registry=r,
        )
        self.on_error = Counter(
            "sigscope_admission_on_error",
            "Images decided by their rule's onError because verification could not finish.",
            ["decision"],
            registry=r,
        )
        self.shared_errors = Counter(
            "sigscope_admission_shared_cache_errors",
            "Shared (Redis) cache operations that failed and counted as a miss.",
            registry=r,
        )
        self.policy_reloads = Counter(
            "sigscope_admission_policy_reloads",
            "Policy reloads by result (ok, failed: the last good policy stays in force).",
            ["result"],
            registry=r,
        )
        self.tls_reloads = Counter(
            "sigscope_admission_tls_reloads",
            "TLS certificate reloads by result (ok, failed: the previous certificate stays).",
            ["result"],
            registry=r,
        )
        self.policy_info = Gauge(
            "sigscope_admission_policy_info",
            "1 for the policy version in force.",
            ["version"],
            registry=r,
        )
        self.cache_bytes = Gauge(
            "sigscope_admission_verdict_cache_bytes",
            "Bytes held by the in-process verdict cache.",
            registry=r,
        )

    def policy_loaded(self, version: str) -> None:
        self.policy_info.clear()
        self.policy_info.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
