"""What the webhook needs of the policy engine, as a protocol.

`sigscope.policy` (its public face is agreed in POLICY_API) satisfies these structurally: `load_policy`
gives a LoadedPolicy, `decide` a Decision. The webhook is written against this much only, so the engine can
grow without the webhook changing, and the webhook's own logic (caches, deadlines, stale serving) can be
tested with a stand-in that counts its calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sigscope.oci.client import RegistryOptions


class AuthorityLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def satisfied(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class DecisionLike(Protocol):
    """sigscope.policy.Decision, as far as the webhook reads it."""

    @property
    def image(self) -> str: ...
    @property
    def digest(self) -> str | None: ...
    @property
    def decision(self) -> str: ...  # "allow" | "deny" | "warn"
    @property
    def rule(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def authorities(self) -> Sequence[AuthorityLike]: ...
    @property
    def policy_version(self) -> str: ...
    @property
    def exempt(self) -> bool: ...
    @property
    def static(self) -> bool: ...


class PolicyLike(Protocol):
    """sigscope.policy.LoadedPolicy, as far as the webhook uses it."""

    @property
    def version(self) -> str: ...
    def exempt_namespace(self, namespace: str) -> bool: ...
    def match(self, image: str) -> Any: ...
    def needs_registry(self, image: str) -> bool: ...
    def rule_on_error(self, image: str) -> str: ...


class Decide(Protocol):
    """sigscope.policy.decide: resolve (unless `digest` is given), discover, judge. Registry and other
    operational failures raise SigscopeError; the webhook answers those per onError or a stale verdict."""

    async def __call__(
        self,
        policy: Any,
        image: str,
        options: RegistryOptions,
        *,
        now: datetime,
        digest: str | None = None,
    ) -> DecisionLike: ...


class LoadPolicy(Protocol):
    """sigscope.policy.load_policy: the file and its trust material, or PolicyError listing every problem."""

    def __call__(self, path: str | Path) -> PolicyLike: ...


def policy_engine() -> tuple[LoadPolicy, Decide]:
    """The real engine. Imported here, at serve time, so the webhook's modules load without it."""
    from sigscope import policy
    from sigscope.policy.decide import decide as engine_decide

    loader: LoadPolicy = policy.load_policy
    decide: Decide = engine_decide
    return loader, decide
