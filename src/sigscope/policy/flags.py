"""verify's trust flags as a one-rule policy, so `verify` and `policy test` run one engine.

The flags' keys, keyring and certificate policy form one authority (verify counts distinct signers across
them against --threshold, as cosign does); a notation trust policy is a second authority, and with both
kinds of trust material both must hold (the rule's threshold is the number of authorities).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigscope.formats.notation import DEFAULT_MAX_SIGNATURES
from sigscope.policy.document import Authority, Rule
from sigscope.trust.apply import TrustSet
from sigscope.verify import Policy as SignaturePolicy

if TYPE_CHECKING:
    from sigscope.sources.lookaside import RegistriesD
    from sigscope.trust.notation_policy import NotationTrust

SIGNATURES = "signatures"
NOTATION = "notation"


def flags_rule(
    trust: TrustSet,
    signature_policy: SignaturePolicy,
    *,
    registries_d: RegistriesD | None = None,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> Rule:
    """The rule verify's flags make: a `signatures` authority (keys, keyring, certificates, timestamps)
    when any is given, a `notation` authority when a trust policy is; both required."""
    authorities: list[Authority] = []
    signature_material = TrustSet(
        keys=trust.keys,
        gpg_keyring=trust.gpg_keyring,
        certificates=trust.certificates,
        timestamps=trust.timestamps,
    )
    if trust.keys or trust.gpg_keyring is not None or trust.certificates is not None:
        authorities.append(
            Authority(
                name=SIGNATURES,
                kind=SIGNATURES,
                where="flags",
                describe="the supplied trust material",
                trusts=(signature_material,),
                signature_policy=signature_policy,
                registries_d=registries_d,
            )
        )
    if trust.notation is not None:
        authorities.append(
            _notation(trust.notation, registries_d, max_signatures),
        )
    return Rule(
        name="verify",
        where="flags",
        patterns=(),
        threshold=max(1, len(authorities)),
        authorities=tuple(authorities),
    )


def _notation(notation: NotationTrust, registries_d: RegistriesD | None, max_signatures: int) -> Authority:
    return Authority(
        name=NOTATION,
        kind=NOTATION,
        where="flags",
        describe="the notation trust policy",
        notation=notation,
        registries_d=registries_d,
        max_signatures=max_signatures,
    )
