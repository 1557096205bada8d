"""`decide()`: fetch what one image's decision needs, then evaluate (engine.py). Registry and other
operational errors raise SigscopeError: the caller decides what they mean (onError, a stale cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sigscope.cli.discover import discover
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import ImageReference, parse_image
from sigscope.policy.document import LoadedPolicy, Rule
from sigscope.policy.engine import Decision, context, judge_rule, matched_decision
from sigscope.scan.registry import ScanOptions

if TYPE_CHECKING:
    from sigscope.model import Signature
    from sigscope.sources.revocation import FetchOptions
    from sigscope.trust.revocation import RevocationEvidence


def at_digest(image: str, digest: str) -> str:
    """`image` pinned to `digest` (its tag dropped): what the webhook's tag→digest cache resolved."""
    parsed = parse_image(image)
    if isinstance(parsed, ImageReference):
        return f"{parsed.registry}/{parsed.repository}@{digest}"
    return f"oci:{parsed.path}@{digest}"


async def notation_evidence(
    rule: Rule,
    image: str,
    digest: str,
    signatures: list[Signature],
    now: datetime,
    options: FetchOptions | None = None,
) -> dict[str, RevocationEvidence]:
    """OCSP/CRL evidence for each notation authority's chains (only chains its trust store vouches for)."""
    evidence: dict[str, RevocationEvidence] = {}
    notation = [a for a in rule.authorities if a.notation is not None]
    if not notation:
        return evidence
    from sigscope.sources.revocation import gather_evidence
    from sigscope.trust.notation_policy import TrustPolicyError
    from sigscope.trust.notation_verify import NOTATION_FORMATS, revocation_targets

    scope = context(image, digest, signatures, now).scope
    candidates = [s for s in signatures if s.format in NOTATION_FORMATS]
    for authority in notation:
        assert authority.notation is not None
        try:
            statement = authority.notation.policy.select(scope)
        except TrustPolicyError:
            continue  # the authority reports it
        store = authority.notation.store
        chosen = candidates[: authority.max_signatures]
        targets = [t for s in chosen for t in revocation_targets(s, statement, store, now)]
        evidence[authority.name] = await gather_evidence(targets, now, options)
    return evidence


def scan_options(rule: Rule, options: RegistryOptions, now: datetime) -> ScanOptions:
    """Discovery without trust material: the authorities apply theirs to copies of the records."""
    return ScanOptions(now=now, registries_d=rule.registries_d, lookaside_timeout=options.timeout)


async def decide(
    policy: LoadedPolicy,
    image: str,
    options: RegistryOptions,
    *,
    now: datetime,
    digest: str | None = None,
    revocation: FetchOptions | None = None,
) -> Decision:
    """Resolve `image` (or take `digest`), discover its signatures once, and evaluate. Exempt, static and
    unmatched images are decided without a request."""
    match = policy.match(image)
    if match.kind != "rule":
        return matched_decision(policy, image, match, digest)
    rule = match.rule
    assert rule is not None
    target = image if digest is None else at_digest(image, digest)
    _, resolved, signatures = await discover(target, options, scan_options(rule, options, now))
    return await decide_discovered(policy, image, resolved, signatures, now=now, revocation=revocation)


async def decide_discovered(
    policy: LoadedPolicy,
    image: str,
    digest: str,
    signatures: list[Signature],
    *,
    now: datetime,
    revocation: FetchOptions | None = None,
) -> Decision:
    """The decision over records already discovered without trust material (a registry scan discovers each
    image once): notation revocation evidence is fetched, then the pure engine evaluates."""
    match = policy.match(image)
    if match.kind != "rule":
        return matched_decision(policy, image, match, digest)
    rule = match.rule
    assert rule is not None
    evidence: Mapping[str, RevocationEvidence] = await notation_evidence(
        rule, image, digest, signatures, now, revocation
    )
    return judge_rule(rule, context(image, digest, signatures, now, evidence), policy.version)


def decide_sync(
    policy: LoadedPolicy, image: str, options: RegistryOptions, *, now: datetime, digest: str | None = None
) -> Decision:
    return asyncio.run(decide(policy, image, options, now=now, digest=digest))
