"""`scan registry --policy`: what admission would decide for each image of a registry.

An image is decided by its references (`host/repo:tag` for each tag naming it, `host/repo@digest` when none
does). Its signatures are discovered once, without trust material, and only when one of its references
matches a rule with authorities: exempt, static and unmatched images are decided by name alone and cost no
signature request. The decision is the policy engine's (sigscope.policy.decide.decide_discovered), one per
distinct rule its tags match; the image shows the most severe (deny, then warn, then allow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sigscope.policy import Decision, LoadedPolicy, PolicyError
from sigscope.policy.decide import decide_discovered
from sigscope.policy.engine import matched_decision

if TYPE_CHECKING:
    from sigscope.policy.document import Rule
    from sigscope.scan.discover import DiscoverContext
    from sigscope.scan.registry import ImageResult

SEVERITY = {"allow": 0, "warn": 1, "deny": 2}


def image_references(ctx: DiscoverContext, result: ImageResult) -> list[str]:
    """The references admission could see this image by."""
    base = f"{ctx.registry}/{ctx.repo_name}" if ctx.registry else result.source
    if result.tags:
        return [f"{base}:{tag}" for tag in result.tags]
    return [f"{base}@{result.digest}"]


def worst(decisions: list[Decision]) -> Decision:
    return max(decisions, key=lambda d: SEVERITY.get(d.decision, 2))


def unfinished(policy: LoadedPolicy, rule: Rule, image: str, digest: str, error: str) -> Decision:
    """An image whose signatures could not be read: decided as admission would, by the rule's onError."""
    return Decision(
        image=image,
        digest=digest or None,
        decision=rule.on_error,
        rule=rule.name,
        reason=f"rule {rule.name}: not verified ({error}); onError: {rule.on_error}",
        authorities=[],
        policy_version=policy.version,
        on_error=rule.on_error,
    )


async def decide_image(
    policy: LoadedPolicy,
    ctx: DiscoverContext,
    result: ImageResult,
    discover: Callable[[DiscoverContext], Awaitable[ImageResult]],
    recorded: Callable[[list[Rule], str], Decision | None] | None = None,
) -> ImageResult:
    """`result` with its decision; `discover` is called (once) only when a rule needs the signatures.

    `recorded` (an incremental re-scan) may answer for the matched rules and the first reference instead of
    discovering; never for a rule that reads GPG signatures from a lookaside, which no tag list tracks."""
    try:
        matches = [(ref, policy.match(ref)) for ref in image_references(ctx, result)]
    except PolicyError as exc:
        result.error = exc.message
        result.discovered = False
        return result
    first: dict[tuple[str, str | None], str] = {}  # one reference per distinct outcome of matching
    for ref, match in matches:
        first.setdefault((match.kind, match.rule.name if match.rule else None), ref)
    rules = [m.rule for _, m in matches if m.kind == "rule" and m.rule is not None]
    if not rules:
        result.discovered = False
        result.decision = worst([matched_decision(policy, ref, m, result.digest) for ref, m in matches])
        return result
    registries = next((r.registries_d for r in rules if r.registries_d is not None), None)
    if registries is None and recorded is not None:
        decision = recorded(rules, next(iter(first.values())))
        if decision is not None:
            result.decision = decision
            return result
    if registries is not None and ctx.registry:
        # GPG lookaside signatures live where the matched rule's registries.d says
        ctx = dataclasses.replace(ctx, lookaside_base=registries.lookaside_for(ctx.registry, ctx.repo_name))
    result = await discover(ctx)
    decisions: list[Decision] = []
    for ref in first.values():
        if result.error:
            match = policy.match(ref)
            if match.rule is not None and match.kind == "rule":
                decisions.append(unfinished(policy, match.rule, ref, result.digest, result.error))
                continue
        decisions.append(await decide_discovered(policy, ref, result.digest, result.signatures, now=ctx.now))
    result.decision = worst(decisions)
    return result
