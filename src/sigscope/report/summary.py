"""Counts over a scan, accumulated as results stream past (so NDJSON needs no list of results)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sigscope.model import Signature, Status
from sigscope.report.scaffold import HasStatus, signature_findings
from sigscope.scan.registry import ImageResult

# Worst first: the status an image row shows is the worst of its signatures.
STATUS_ORDER = [
    Status.INVALID,
    Status.REJECTED,
    Status.UNTRUSTED,
    Status.UNVERIFIED,
    Status.INTEGRITY_OK,
    Status.VERIFIED,
]

FAIL_ON_CHOICES = ("unsigned", "invalid", "untrusted", "self-signed", "expired", "error")
# scan registry only: an image the --policy would deny
REGISTRY_FAIL_ON = (*FAIL_ON_CHOICES, "denied")
UNMATCHED = "(unmatched)"  # what a per-rule count calls images no rule matched


def counted(n: int, noun: str) -> str:
    """`1 signature`, `2 signatures`: summary lines are read by people."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def worst_status(signatures: Iterable[HasStatus]) -> Status | None:
    present = {s.status for s in signatures}
    return next((s for s in STATUS_ORDER if s in present), None)


def self_signed(signature: Signature) -> bool:
    cert = signature.signer.certificate if signature.signer else None
    return bool(cert and cert.self_signed)


def expired(signature: Signature) -> bool:
    cert = signature.signer.certificate if signature.signer else None
    return bool(cert and cert.expired and not signature.timestamped)


def findings(result: ImageResult) -> set[str]:
    """Which `--fail-on` conditions this image meets."""
    found: set[str] = set()
    if result.error:
        found.add("error")
        return found
    if result.problems:
        found.add("error")
    if result.decision is not None and result.decision.decision == "deny":
        found.add("denied")
    if not result.signatures and result.discovered:
        found.add("unsigned")
    return found | signature_findings(result.signatures, self_signed, expired)


@dataclass
class RepoCounts:
    signed: int = 0
    unsigned: int = 0
    errors: int = 0


@dataclass
class Summary:
    source: str
    images: int = 0
    signed_images: int = 0
    signatures: int = 0
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    repositories: dict[str, RepoCounts] = field(default_factory=dict)
    attachments: int = 0
    policy: bool = False  # --policy: decisions are counted
    decisions: Counter[str] = field(default_factory=Counter)  # allow | deny | warn
    denied_by_rule: Counter[str] = field(default_factory=Counter)
    warned_by_rule: Counter[str] = field(default_factory=Counter)
    undiscovered: int = 0  # decided by the policy without looking for signatures

    def add(self, result: ImageResult) -> None:
        repo = self.repositories.setdefault(result.repository or result.source, RepoCounts())
        for finding in findings(result):
            self.findings[finding] += 1
        decision = result.decision
        if decision is not None:
            self.decisions[decision.decision] += 1
            by_rule = {"deny": self.denied_by_rule, "warn": self.warned_by_rule}.get(decision.decision)
            if by_rule is not None:
                by_rule[decision.rule or UNMATCHED] += 1
        if not result.discovered and not result.error:
            self.undiscovered += 1
        if result.error:
            self.errors += 1
            repo.errors += 1
            return
        self.images += 1
        self.attachments += len(result.attachments)
        if result.signatures:
            self.signed_images += 1
            repo.signed += 1
        elif result.discovered:
            repo.unsigned += 1
        for signature in result.signatures:
            self.signatures += 1
            self.statuses[str(signature.status)] += 1
            self.formats[str(signature.format)] += 1

    @property
    def line(self) -> str:
        text = (
            f"Found {counted(self.signatures, 'signature')} on {self.signed_images} of {self.images} images"
        )
        if self.errors:
            text += f" ({self.errors} could not be read)"
        if self.policy:
            text += "; " + self.policy_line
        return text

    @property
    def policy_line(self) -> str:
        """`policy would deny 2 images (prod: 1, (unmatched): 1), warn 1 (beta: 1), allow 3`."""

        def per_rule(counts: Counter[str]) -> str:
            return (
                " (" + ", ".join(f"{rule}: {n}" for rule, n in sorted(counts.items())) + ")" if counts else ""
            )

        denied, warned = self.decisions["deny"], self.decisions["warn"]
        text = f"policy would deny {counted(denied, 'image')}{per_rule(self.denied_by_rule)}"
        if warned:
            text += f", warn {warned}{per_rule(self.warned_by_rule)}"
        text += f", allow {self.decisions['allow']}"
        if self.undiscovered:
            text += f" ({self.undiscovered} decided without a signature request)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "signedImages": self.signed_images,
            "unsignedImages": self.images - self.signed_images,
            "signatures": self.signatures,
            "errors": self.errors,
            "attachments": self.attachments,
            "byStatus": dict(self.statuses),
            "byFormat": dict(self.formats),
            "findings": dict(self.findings),
            "text": self.line,
        } | ({"policy": self._policy_json()} if self.policy else {})

    def _policy_json(self) -> dict[str, Any]:
        return {
            "allowed": self.decisions["allow"],
            "denied": self.decisions["deny"],
            "warned": self.decisions["warn"],
            "deniedByRule": dict(self.denied_by_rule),
            "warnedByRule": dict(self.warned_by_rule),
            "undiscovered": self.undiscovered,
        }
