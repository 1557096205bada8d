"""Certificate path validation against roots the user supplied.

Pure: (leaf, intermediates, roots, time, required EKU) -> ChainResult. Built on cryptography's RFC 5280
path builder (`cryptography.x509.verification`), with our own extension policies because its defaults
are the Web PKI's (serverAuth/clientAuth). Code signing and timestamping need their own EKU rules, and
private PKIs often lack the SANs the Web PKI demands. The algorithm rules stay cryptography's: SHA-1 and
RSA below 2048 bits are refused, which is what a modern verifier should do. Legacy Authenticode chains that
need them are the files scanner's business, not this module's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE


@dataclass(frozen=True)
class ChainResult:
    """Outcome of one path validation. `chain` runs leaf first, root last, when ok."""

    ok: bool
    chain: tuple[x509.Certificate, ...] = ()
    detail: str = ""

    @property
    def root(self) -> x509.Certificate | None:
        return self.chain[-1] if self.chain else None


def _ca_rules(
    _policy: verification.Policy, _cert: x509.Certificate, ext: x509.BasicConstraints | None
) -> None:
    if ext is None or not ext.ca:
        raise ValueError("issuer is not a CA (basicConstraints cA is not asserted)")


def _ca_key_usage(_policy: verification.Policy, _cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    # Absent keyUsage is tolerated as Go's x509 and cosign tolerate it; present, it must allow signing certs.
    if ext is not None and not ext.key_cert_sign:
        raise ValueError("issuer's keyUsage lacks keyCertSign")


def _leaf_constraints(
    _policy: verification.Policy, _cert: x509.Certificate, ext: x509.BasicConstraints | None
) -> None:
    if ext is not None and ext.ca:
        raise ValueError("signing certificate is a CA certificate")


def _eku_rule(
    required: Sequence[x509.ObjectIdentifier],
) -> Callable[[verification.Policy, x509.Certificate, x509.ExtendedKeyUsage], None]:
    names = ", ".join(oid._name for oid in required)

    def check(_policy: verification.Policy, _cert: x509.Certificate, ext: x509.ExtendedKeyUsage) -> None:
        if not any(oid in ext for oid in required):
            have = ", ".join(oid._name for oid in ext) or "none"
            raise ValueError(f"extendedKeyUsage lacks {names} (has {have})")

    return check


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    eku: Sequence[x509.ObjectIdentifier] | None = (CODE_SIGNING,),
    max_depth: int = 8,
) -> ChainResult:
    """Does `leaf` chain to one of `roots` through `intermediates`, every certificate valid at `at`?

    `eku`: the leaf must carry one of these extended key usages (None: no EKU requirement, for keyless
    or own-PKI cosign certificates that carry codeSigning anyway but are not required to).
    """
    return _verify_chain_cached(
        leaf, tuple(intermediates), tuple(roots), at, tuple(eku) if eku else None, max_depth
    )


@functools.lru_cache(maxsize=1024)
def _verify_chain_cached(
    leaf: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    roots: tuple[x509.Certificate, ...],
    at: datetime,
    eku: tuple[x509.ObjectIdentifier, ...] | None,
    max_depth: int,
) -> ChainResult:
    # Cached: the answer is a pure function of these arguments, and a scan asks it again for every file
    # signed by the same certificate (one clock per scan), which is most of them.
    if not roots:
        return ChainResult(False, detail="no trusted roots were supplied")
    ca_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _ca_rules)
        .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _ca_key_usage)
    )
    ee_policy = verification.ExtensionPolicy.permit_all().may_be_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, _leaf_constraints
    )
    if eku:
        ee_policy = ee_policy.require_present(
            x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _eku_rule(eku)
        )
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(roots)))
            .time(at)
            .max_chain_depth(max_depth)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        verified = verifier.verify(leaf, list(intermediates))
    except verification.VerificationError as exc:
        return ChainResult(False, detail=_explain(str(exc)))
    except ValueError as exc:  # e.g. an unsupported key type in the store
        return ChainResult(False, detail=str(exc))
    return ChainResult(True, chain=tuple(verified.chain))


_NOISE = re.compile(
    r"^(validation failed: )?(candidates exhausted: )?(Python extension validator failed: \w+: )?"
)
_WHERE = re.compile(r" \(encountered processing <Certificate\(subject=<Name\((.*?)\)>, \.\.\.\)>\)$")


def _explain(message: str) -> str:
    """cryptography's messages wrap the cause in prefixes and a repr; keep the cause and whose it is."""
    message = _NOISE.sub("", message)
    where = _WHERE.search(message)
    if where:
        # a Fulcio certificate's subject is empty: then there is no "whose" to add
        message = message[: where.start()] + (f" ({where.group(1)})" if where.group(1) else "")
    if "all candidates exhausted with no interior errors" in message:
        return "no path to a trusted root"
    return message.replace("cert is not valid at validation time", "certificate not valid at that time")
