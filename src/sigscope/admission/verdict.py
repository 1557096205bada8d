"""One image's admission verdict: what the review, the audit line and the caches carry (pure).

A policy Decision says what the engine found; a Verdict adds how the webhook came by it (verified now,
from a cache, served stale while the registry was unreachable, or the rule's onError when verification
could not finish) and is small and JSON-serialisable, so a shared cache can hold it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sigscope.admission.engine import DecisionLike

# Where a verdict came from (the audit line's `source`).
VERIFIED = "verified"  # the engine judged it during this request
CACHED = "cache"  # a fresh verdict from the in-process cache
SHARED = "shared-cache"  # a fresh verdict from the Redis cache
STALE = "stale"  # the last good verdict, served because the registry could not be reached in time
ON_ERROR = "on-error"  # verification could not finish: the rule's onError decided
POLICY = "policy"  # static, exempt or unmatched: decided without a registry
NAMESPACE = "exempt-namespace"  # the namespace is exempt: nothing was looked at
REFUSED = "refused"  # the registry's answer itself is grounds to deny (missing image, integrity)

MAX_REASON = 512
MAX_CHECKS = 8


def _short(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())  # one line, whatever a registry or a signature put into it
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Verdict:
    image: str
    digest: str | None
    decision: str  # allow | deny | warn
    rule: str | None
    reason: str
    policy_version: str
    source: str
    failed: tuple[str, ...] = field(default=())  # "authority: why" for each unsatisfied authority
    age: float = 0.0  # seconds since the verdict was reached (stale and cached ones)

    @property
    def allowed(self) -> bool:
        return self.decision in ("allow", "warn")

    @property
    def cache_hit(self) -> bool:
        return self.source in (CACHED, SHARED, STALE)

    def served(self, source: str, age: float, image: str | None = None) -> Verdict:
        # Built directly: dataclasses.replace costs more than the rest of a cached answer.
        return Verdict(
            image if image is not None else self.image,
            self.digest,
            self.decision,
            self.rule,
            self.reason,
            self.policy_version,
            source,
            self.failed,
            age,
        )

    def to_bytes(self) -> bytes:
        data = {
            "image": self.image,
            "digest": self.digest,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "failed": list(self.failed),
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, source: str) -> Verdict:
        """A cached verdict; ValueError when it is not one (a shared cache is outside this process)."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("cached verdict is not an object")
        decision = data.get("decision")
        if decision not in ("allow", "deny", "warn"):
            raise ValueError("cached verdict has no decision")
        failed = data.get("failed") or []
        strings = (data.get("image"), data.get("reason"), data.get("policy_version"))
        if not all(isinstance(s, str) for s in strings) or not isinstance(failed, list):
            raise ValueError("cached verdict is malformed")
        return cls(
            image=str(data["image"]),
            digest=data.get("digest") if isinstance(data.get("digest"), str) else None,
            decision=str(decision),
            rule=data.get("rule") if isinstance(data.get("rule"), str) else None,
            reason=str(data["reason"]),
            policy_version=str(data["policy_version"]),
            source=source,
            failed=tuple(str(f) for f in failed[:MAX_CHECKS]),
        )

    def to_audit(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "source": self.source,
            "cache_hit": self.cache_hit,
            **({"age": round(self.age, 3)} if self.source == STALE else {}),
        }


def from_decision(decision: DecisionLike, source: str = VERIFIED) -> Verdict:
    failed = tuple(_short(f"{a.name}: {a.reason}", 256) for a in decision.authorities if not a.satisfied)[
        :MAX_CHECKS
    ]
    return Verdict(
        image=decision.image,
        digest=decision.digest,
        decision=decision.decision,
        rule=decision.rule,
        reason=_short(decision.reason),
        policy_version=decision.policy_version,
        source=POLICY if (decision.exempt or decision.static) and source == VERIFIED else source,
        failed=failed,
    )


def without_engine(
    image: str, decision: str, reason: str, policy_version: str, source: str, *, digest: str | None = None
) -> Verdict:
    """A verdict the webhook reached itself: exempt namespace, onError, a refused registry answer."""
    return Verdict(
        image=image,
        digest=digest,
        decision=decision,
        rule=None,
        reason=_short(reason),
        policy_version=policy_version,
        source=source,
    )
