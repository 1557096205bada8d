"""Trust material applied to discovered signature records: the one place the order of the checks is decided.

A scan with flags (scan/registry.py) and each authority of a policy (sigscope.policy) call this, so both judge
a record the same way. Pure: records, trust material and a clock in, the same records (settled) out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.model import Signature
from sigscope.trust.identity import CertificateTrust, apply_certificates
from sigscope.trust.keys import apply_keys

if TYPE_CHECKING:  # their modules load only when the material is given
    from sigscope.trust.notation_policy import NotationTrust
    from sigscope.trust.pgp import Keyring
    from sigscope.trust.timestamp import TimestampTrust


@dataclass(frozen=True)
class TrustSet:
    """Everything that can vouch for a signature; any part may be absent."""

    keys: Sequence[PublicKeyTypes] = ()
    gpg_keyring: Keyring | None = None
    certificates: CertificateTrust | None = None
    notation: NotationTrust | None = None
    timestamps: TimestampTrust | None = None


def apply_trust(signature: Signature, trust: TrustSet, scope: str | None, now: datetime) -> Signature:
    """Judge one record under `trust`; `scope` is the repository (host/path) notation statements select by,
    None for a layout."""
    # Each applies only to the formats its trust material can vouch for and leaves the others untouched.
    # The timestamp goes first: only a verified one gives the certificate checks a signing time.
    # The TSA, notation and OpenPGP machinery is imported only when its trust material was given
    # (each apply_* leaves a signature as it is without it): most runs need none of it.
    if trust.timestamps is not None:
        from sigscope.trust.timestamp import apply_timestamp_trust

        signature = apply_timestamp_trust(signature, trust.timestamps, now)
    signature = apply_certificates(signature, trust.certificates, now)
    if trust.notation is not None:
        from sigscope.trust.notation_verify import apply_notation

        signature = apply_notation(signature, trust.notation, scope, now)
    signature = apply_keys(signature, trust.keys)
    if trust.gpg_keyring is not None:
        from sigscope.trust.pgp import apply_keyring

        signature = apply_keyring(signature, trust.gpg_keyring, now)
    return signature


def fresh_copy(signature: Signature) -> Signature:
    """A record another judge can change without touching this one: the apply_* functions append checks,
    set claims and the signer in place."""
    return dataclasses.replace(
        signature,
        checks=list(signature.checks),
        claims=dict(signature.claims),
        evidence=dict(signature.evidence),
    )
