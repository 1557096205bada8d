"""How each report format shows a `--policy` decision: the words, the CSV columns, the SARIF result.

Only a scan given --policy has decisions; without one every format is as it was (the CSV header unchanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigscope.report.escape import printable

if TYPE_CHECKING:
    from sigscope.scan.registry import ImageResult

DECISION_STYLE = {"allow": "green", "warn": "yellow", "deny": "bold red"}
# Appended to the CSV header when a policy decides.
POLICY_COLUMNS = ["decision", "rule", "decision_reason", "policy_version"]
SARIF_DENIED = "SIG007"
SARIF_WARNED = "SIG008"


def decision_word(result: ImageResult) -> str:
    """`deny prod`, `allow (exempt)`, `deny (unmatched)`; "" without a decision."""
    decision = result.decision
    if decision is None:
        return ""
    if decision.exempt:
        return f"{decision.decision} (exempt)"
    return f"{decision.decision} {printable(decision.rule) if decision.rule else '(unmatched)'}"


def policy_columns(result: ImageResult) -> dict[str, str]:
    decision = result.decision
    if decision is None:
        return dict.fromkeys(POLICY_COLUMNS, "")
    return {
        "decision": decision.decision,
        "rule": decision.rule or "",
        "decision_reason": decision.reason,
        "policy_version": decision.policy_version,
    }


def policy_note(result: ImageResult) -> tuple[str, str] | None:
    """What the pretty output tells beneath the table for a denied or warned image: (kind, reason)."""
    decision = result.decision
    if decision is None or decision.decision == "allow":
        return None
    return ("denied" if decision.decision == "deny" else "warning", decision.reason)


def sarif_policy_problem(result: ImageResult) -> tuple[str, str, str] | None:
    """(rule id, level, message): a denied image is an error, a warned one a warning."""
    decision = result.decision
    if decision is None or decision.decision == "allow":
        return None
    if decision.decision == "deny":
        return SARIF_DENIED, "error", f"{result.path}: the policy denies it: {decision.reason}"
    return SARIF_WARNED, "warning", f"{result.path}: the policy warns: {decision.reason}"
