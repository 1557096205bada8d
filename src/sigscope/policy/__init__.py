"""One policy for every face: a document that says, per image, who must have signed it and what must be
attested, evaluated identically by `policy test`, `scan registry --policy`, `verify` and admission.

load (document.py, load.py) → match (match.py) → evaluate (engine.py, pure) → Decision; decide.py fetches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigscope.policy.document import Authority, LoadedPolicy, Match, PolicyError, Rule, parse_policy
from sigscope.policy.engine import AuthorityResult, Decision, evaluate
from sigscope.policy.load import load_policy

if TYPE_CHECKING:
    from sigscope.policy.decide import decide

__all__ = [
    "Authority",
    "AuthorityResult",
    "Decision",
    "LoadedPolicy",
    "Match",
    "PolicyError",
    "Rule",
    "decide",
    "evaluate",
    "load_policy",
    "parse_policy",
]


def __getattr__(name: str) -> Any:
    # decide() pulls in the registry client; the pure core does not need it
    if name == "decide":
        from sigscope.policy.decide import decide

        return decide
    raise AttributeError(name)
