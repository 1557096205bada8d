"""The pure core: discovered records + policy + clock → a Decision per image.

Each authority judges its own copy of the records with the existing checks (trust/apply.py, verify.py,
trust/notation_verify.py, trust/containers_policy.py, attest.py): there is no second copy of any of them
here, only the counting (threshold over distinct authorities), the mode and the one-line reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sigscope.model import Signature
from sigscope.oci.reference import ImageReference, LayoutReference, parse_image
from sigscope.policy.document import AttestationSpec, Authority, LoadedPolicy, Match, Rule
from sigscope.report.escape import printable
from sigscope.scan.registry import verify_threads
from sigscope.trust.apply import TrustSet, apply_trust, fresh_copy
from sigscope.trust.keys import judge_ahead
from sigscope.verify import Verdict, image_identity, verify

if TYPE_CHECKING:
    from sigscope.trust.revocation import RevocationEvidence


@dataclass(frozen=True)
class AuthorityResult:
    name: str
    kind: str
    satisfied: bool
    reason: str  # one line: why it holds or why not
    checks: list[dict[str, Any]] = field(default_factory=list)  # per signature / attestation, JSON-ready
    # The verdict object of the check that judged it (verify.Verdict, NotationVerdict, PolicyVerdict, …), for
    # a face that prints it in its own shape; never serialised.
    detail: Any = field(default=None, compare=False, repr=False)
    # The authority could not be evaluated at all (its trust policy has no statement for this image).
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "satisfied": self.satisfied,
            "reason": self.reason,
            "checks": self.checks,
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Decision:
    image: str
    digest: str | None
    decision: str  # allow | deny | warn
    rule: str | None
    reason: str
    authorities: list[AuthorityResult]
    policy_version: str
    exempt: bool = False
    static: bool = False
    on_error: str = "deny"

    @property
    def allowed(self) -> bool:
        return self.decision in ("allow", "warn")

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "decision": self.decision,
            "allowed": self.allowed,
            "rule": self.rule,
            "reason": self.reason,
            "exempt": self.exempt,
            "static": self.static,
            "onError": self.on_error,
            "policyVersion": self.policy_version,
            "authorities": [a.to_json() for a in self.authorities],
        }


def matched_decision(policy: LoadedPolicy, image: str, match: Match, digest: str | None = None) -> Decision:
    """The decision of an exempt, static or unmatched image: made without the registry."""
    assert match.decision is not None
    rule = match.rule
    return Decision(
        image=image,
        digest=digest,
        decision=match.decision,
        rule=rule.name if rule is not None else None,
        reason=match.reason,
        authorities=[],
        policy_version=policy.version,
        exempt=match.kind == "exempt",
        static=match.kind == "static",
        on_error=rule.on_error if rule is not None else "deny",
    )


@dataclass(frozen=True)
class Context:
    """What every authority of one image judges against."""

    image: str  # the reference as given
    identity: str  # the reference payloads must name (verify.image_identity)
    digest: str
    scope: str | None  # host/repository for notation statements; None for a layout
    parsed: ImageReference | LayoutReference
    signatures: Sequence[Signature]
    now: datetime
    revocation: Mapping[str, RevocationEvidence]  # by authority name (notation)


def context(
    image: str,
    digest: str,
    signatures: Sequence[Signature],
    now: datetime,
    revocation: Mapping[str, RevocationEvidence] | None = None,
) -> Context:
    parsed = parse_image(image)
    scope = f"{parsed.registry}/{parsed.repository}" if isinstance(parsed, ImageReference) else None
    return Context(image, image_identity(parsed), digest, scope, parsed, signatures, now, revocation or {})


# ---------------------------------------------------------------- authorities


def judge_signatures(trust: TrustSet, ctx: Context, authority: Authority) -> Verdict:
    """The records judged under `trust` (a copy each), then by verify's policy checks."""
    copies = [fresh_copy(s) for s in ctx.signatures]

    def one(sig: Signature) -> Signature:
        return apply_trust(sig, trust, ctx.scope, ctx.now)

    judged = (
        judge_ahead(copies, list(trust.keys), verify_threads(), one)
        if trust.keys
        else [one(s) for s in copies]
    )
    return verify(ctx.identity, ctx.digest, judged, authority.signature_policy)


def _signature_reason(verdict: Verdict, authority: Authority) -> str:
    if verdict.verified:
        plural = "s" if len(verdict.satisfied) != 1 else ""
        return f"{len(verdict.satisfied)} signature{plural} verified with {authority.describe}"
    if not verdict.signatures:
        return "no signatures found"
    reasons: list[str] = []
    for judged in verdict.signatures:
        if judged.reason and judged.reason not in reasons:
            reasons.append(judged.reason)
    if verdict.keys:
        return verdict.reason
    head = f"no signature verifies with {authority.describe}"
    return f"{head} ({'; '.join(reasons[:2])})" if reasons else head


def _signature_authority(authority: Authority, ctx: Context) -> AuthorityResult:
    first: Verdict | None = None
    for trust in authority.trusts:
        verdict = judge_signatures(trust, ctx, authority)
        if verdict.verified or first is None:
            first = verdict
        if verdict.verified:
            break
    assert first is not None  # every signature authority has at least one trust alternative
    return AuthorityResult(
        authority.name,
        authority.kind,
        first.verified,
        _signature_reason(first, authority),
        [j.to_json() for j in first.signatures],
        first,
    )


def _notation_authority(authority: Authority, ctx: Context) -> AuthorityResult:
    from sigscope.trust.notation_policy import TrustPolicyError
    from sigscope.trust.notation_verify import verify_image

    assert authority.notation is not None
    try:
        verdict = verify_image(
            ctx.image,
            ctx.digest,
            ctx.scope,
            ctx.signatures,
            authority.notation,
            ctx.now,
            max_signatures=authority.max_signatures,
            revocation=ctx.revocation.get(authority.name),
        )
    except TrustPolicyError as exc:
        return AuthorityResult(authority.name, authority.kind, False, str(exc), error=str(exc))
    reason = verdict.summary.removeprefix("Notary Project: ") if verdict.verified else verdict.reason
    checks = [r.to_json() for r in verdict.results]
    return AuthorityResult(authority.name, authority.kind, verdict.verified, reason, checks, verdict)


def _containers_authority(authority: Authority, ctx: Context) -> AuthorityResult:
    from sigscope.sources.lookaside import RegistriesD
    from sigscope.trust import containers_policy as cp
    from sigscope.trust.containers_subject import subject_for

    assert authority.containers is not None
    config = authority.registries_d or RegistriesD()
    subject = subject_for(ctx.parsed, ctx.digest, config)
    selection = cp.select(authority.containers, subject)
    copies = [fresh_copy(s) for s in ctx.signatures]
    verdict = cp.evaluate(selection, subject, copies, authority.containers_files, ctx.now)
    checks = [r.to_json() for r in verdict.results]
    return AuthorityResult(authority.name, authority.kind, verdict.accepted, verdict.reason, checks, verdict)


def _attestation_signers(spec: AttestationSpec, rule: Rule) -> list[tuple[str, TrustSet]]:
    """(who, trust) for each signer `by` allows: a named authority's trust alternatives or an inline one's."""
    out: list[tuple[str, TrustSet]] = []
    for item in spec.by:
        signer = rule.authority(item) if isinstance(item, str) else item
        if signer is not None:
            out.extend((item if isinstance(item, str) else signer.describe, t) for t in signer.trusts)
    return out


def _attestation_authority(authority: Authority, rule: Rule, ctx: Context) -> AuthorityResult:
    from sigscope.attest import is_attestation, judge_attestation_by

    spec = authority.attestation
    assert spec is not None
    signers = _attestation_signers(spec, rule)
    candidates = [s for s in ctx.signatures if is_attestation(s, spec.predicate_type)]
    checks: list[dict[str, Any]] = []
    why: list[str] = []
    for sig in candidates:
        for who, trust in signers:
            judged = judge_attestation_by(sig, ctx.digest, trust, ctx.scope, ctx.now, spec.predicate_type)
            entry = judged.to_json()
            entry.pop(
                "statement", None
            )  # the predicate can be large (an SBOM); the conditions say what mattered
            entry["by"] = who
            checks.append(entry)
            if not judged.satisfied:
                why.append(judged.reason)
                continue
            predicate = (judged.statement or {}).get("predicate")
            results = [c.holds(predicate) for c in spec.conditions]
            entry["conditions"] = [{"passed": ok, "detail": detail} for ok, detail in results]
            failed = [detail for ok, detail in results if not ok]
            if not failed:
                held = f"; {len(results)} condition(s) hold" if results else ""
                reason = f"{spec.predicate_type} attested by {who}{held}"
                return AuthorityResult(authority.name, authority.kind, True, reason, checks)
            why.append("condition failed: " + failed[0])
    if not candidates:
        reason = f"no {spec.predicate_type} attestation found"
    else:
        reason = f"no {spec.predicate_type} attestation by {spec.signers_text} holds ({why[0]})"
    return AuthorityResult(authority.name, authority.kind, False, reason, checks)


def judge_authority(authority: Authority, rule: Rule, ctx: Context) -> AuthorityResult:
    if authority.kind == "notation":
        return _notation_authority(authority, ctx)
    if authority.kind == "containersPolicy":
        return _containers_authority(authority, ctx)
    if authority.kind == "attestation":
        return _attestation_authority(authority, rule, ctx)
    return _signature_authority(authority, ctx)


# ---------------------------------------------------------------- rules


def judge_rule(rule: Rule, ctx: Context, version: str) -> Decision:
    """Every authority of `rule` judged; threshold distinct authorities satisfied allow, else mode decides."""
    results = [judge_authority(a, rule, ctx) for a in rule.authorities]
    required = {a.name for a in rule.authorities if a.required}
    good = [r for r in results if r.satisfied and r.name not in required]
    missing = [r for r in results if r.name in required and not r.satisfied]
    passed = len(good) >= rule.threshold and not missing
    count = f"{len(good)} of {rule.threshold} required authorit{'y' if rule.threshold == 1 else 'ies'}"
    if passed:
        held = [r for r in results if r.satisfied and (r in good or r.name in required)]
        head = f"{count} satisfied" if rule.threshold else "every required authority satisfied"
        reason = f"{head}: " + ", ".join(f"{r.name}: {r.reason}" for r in held)
        decision = "allow"
    else:
        failing = "; ".join(f"{r.name}: {r.reason}" for r in results if not r.satisfied)
        if not any(r.satisfied for r in results):
            reason = f"no authority satisfied: {failing}"
        elif missing and len(good) >= rule.threshold:
            reason = f"required authority not satisfied: {failing}"
        else:
            reason = f"{count} satisfied; {failing}"
        decision = "warn" if rule.mode == "warn" else "deny"
    return Decision(
        image=ctx.image,
        digest=ctx.digest,
        decision=decision,
        rule=rule.name,
        reason=f"rule {rule.name}: " + _one_line(reason),
        authorities=results,
        policy_version=version,
        on_error=rule.on_error,
    )


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def evaluate(
    policy: LoadedPolicy,
    image: str,
    digest: str,
    signatures: list[Signature],
    now: datetime,
    *,
    revocation: Mapping[str, RevocationEvidence] | None = None,
) -> Decision:
    """The decision for `image` (resolved to `digest`, its discovered `signatures`) at `now`. Pure."""
    match = policy.match(image)
    if match.kind != "rule":
        return matched_decision(policy, image, match, digest)
    assert match.rule is not None
    return judge_rule(match.rule, context(image, digest, signatures, now, revocation), policy.version)
