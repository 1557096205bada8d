"""Notary Project verification: a parsed envelope + trust policy statement + trust store + clock → checks.

Pure (FORMATS §2.9, notation-go's verifier semantics). Each signature is judged by the statement that
applies to its repository; every verification type becomes named checks, and the statement's level decides
which failures count (enforce) and which are only reported (log):

  integrity            the format checks (`formats/notation.py`: envelope, payload, critical headers and
                       plugins, algorithm, signature, chain links, signed digest, thumbprints, subject) plus
                       `certificate-requirements` (trust/notary_certs.py). Always enforced (except `skip`).
  authenticity         `trust-store`: some certificate of the envelope chain is byte-equal to a certificate
                       of the statement's `ca:` stores (scheme notary.x509) or `signingAuthority:` stores
                       (notary.x509.signingAuthority) — a store holding just the root is enough;
                       `trusted-identity`: the leaf subject matches an `x509.subject:` identity (or `*`).
  expiry               `expiry`: the clock is before `io.cncf.notary.expiry`.
  authenticTimestamp   `authentic-timestamp`: signingAuthority — the authentic signing time lies within every
                       chain certificate's validity; x509 — when the statement has a `tsa:` store and
                       (verifyTimestamp is `always` or a chain certificate has expired) the RFC 3161
                       countersignature must verify against the tsa store (trust/timestamp.py) and its time
                       range lie within every chain certificate's validity; otherwise every chain certificate
                       must be valid at the clock.
  revocation           `revocation`: OCSP, then CRL, for each certificate under the root (trust/revocation),
                       judged on pre-fetched `RevocationEvidence` (sources/revocation.py fetches what
                       `revocation_targets` names). A chain naming no CRL or OCSP location is non-revocable:
                       reported skipped, never passed. revoked FAILS under every level that checks revocation
                       (even where notation would only log it; `override: {"revocation": "skip"}` is the one
                       way to accept it); unknown (unreachable, unauthorised or stale answers) fails under
                       strict and is logged under permissive/audit. Without evidence (nothing was fetched) a
                       revocable chain is "not checked": failed when enforced, logged otherwise. An entry's
                       invalidityDate after the authentic signing time (signingAuthority) or the verified
                       timestamp counts as not revoked for this signature. The TSA chain of a verified
                       timestamp is checked the same way (purpose timestamping) inside authentic-timestamp:
                       revoked or unknown fails that check, as in notation-go.

A logged failure is reported as a skipped check whose detail says it failed and was not enforced. The
`trust-policy` check summarises the outcome for reports and makes a scanned signature `verified` only when
authenticity actually held and nothing enforced failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sigscope.formats import notation
from sigscope.formats.notation import DEFAULT_MAX_SIGNATURES
from sigscope.model import Check, Outcome, Signature, SignatureFormat, Status
from sigscope.trust import certs, notary_certs
from sigscope.trust import revocation as rev
from sigscope.trust.notation_policy import (
    Action,
    NotationTrust,
    TrustPolicyError,
    TrustPolicyStatement,
    ValidationType,
    certificate_dn,
    is_subset_dn,
)
from sigscope.trust.truststore import TrustStore

NOTATION_FORMATS = frozenset({SignatureFormat.NOTATION_JWS, SignatureFormat.NOTATION_COSE})

CHECK_TRUST_STORE = "trust-store"
CHECK_IDENTITY = "trusted-identity"
CHECK_EXPIRY = "expiry"
CHECK_TIMESTAMP = "authentic-timestamp"
CHECK_REVOCATION = "revocation"
CHECK_POLICY = "trust-policy"
REVOCATION_NOT_CHECKED = "revocation status not checked (no revocation evidence was fetched)"

# Integrity is every check the parser and discovery made, except its clock-bound expiry (re-judged here
# under the statement's level) and trust checks another trust source may have appended.
_NOT_INTEGRITY = frozenset({CHECK_EXPIRY, CHECK_POLICY, CHECK_IDENTITY, "trusted-key"})
_REQUIRED_INTEGRITY = ("signature", "payload-digest")
# RFC 3628 baseline time-stamp policy: notation assumes one second of accuracy when the token states none.
_BASELINE_POLICY = "0.4.0.2023.1.1"


@dataclass
class NotationResult:
    """One signature judged by one statement."""

    signature: Signature
    statement: TrustPolicyStatement | None
    checks: list[Check]
    satisfied: bool  # notation's verdict: nothing enforced failed
    trusted: bool  # authenticity actually held (not merely logged)
    reason: str = ""
    warnings: list[str] = field(default_factory=list)  # logged (not enforced) failures
    integrity_ok: bool = True

    @property
    def status(self) -> Status:
        """verified only when authenticity held and nothing enforced failed; invalid when integrity failed."""
        if not self.integrity_ok:
            return Status.INVALID
        if self.satisfied and self.trusted:
            return Status.VERIFIED
        return Status.UNTRUSTED

    def to_json(self) -> dict[str, Any]:
        sig = self.signature
        out: dict[str, Any] = {
            "format": str(sig.format),
            "status": str(self.status),
            "location": sig.location,
            "signer": sig.signer.to_json() if sig.signer is not None else None,
            "satisfied": self.satisfied,
            "trusted": self.trusted,
            "policy": self.statement.name if self.statement is not None else None,
            "level": self.statement.level.name if self.statement is not None else None,
            "checks": [c.to_json() for c in self.checks],
        }
        if sig.signing_time:
            out["signingTime"] = sig.signing_time.isoformat()
        if sig.expiry:
            out["expiry"] = sig.expiry.isoformat()
        if self.warnings:
            out["warnings"] = self.warnings
        if not self.satisfied:
            out["reason"] = self.reason
        return out


def chain_of(sig: Signature) -> list[x509.Certificate]:
    out = []
    for der in notation.evidence_chain(sig):
        try:
            out.append(certs.load_der(der))
        except certs.CertificateError:
            return []
    return out


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _scheme(sig: Signature) -> str | None:
    scheme = sig.claims.get("signingScheme")
    return scheme if isinstance(scheme, str) else None


# ---------------------------------------------------------------- the individual checks


def trust_store_check(
    chain: Sequence[x509.Certificate], scheme: str | None, statement: TrustPolicyStatement, store: TrustStore
) -> Check:
    store_type = "signingAuthority" if scheme == notation.SCHEME_SIGNING_AUTHORITY else "ca"
    refs = statement.stores_of(store_type)
    if not refs:
        return Check.failed(
            CHECK_TRUST_STORE,
            f"signing scheme {scheme} needs a {store_type}: trust store; statement {statement.name!r} names "
            "none",
        )
    trusted = {_der(c): ref for ref in refs for c in store.stores.get(ref, ())}
    if not trusted:
        return Check.failed(CHECK_TRUST_STORE, "no trusted certificates are found to verify authenticity")
    for cert in chain:
        ref = trusted.get(_der(cert))
        if ref is not None:
            return Check.passed(CHECK_TRUST_STORE, f"{cert.subject.rfc4514_string()} is in trust store {ref}")
    names = ", ".join(str(r) for r in refs)
    return Check.failed(
        CHECK_TRUST_STORE,
        f"signature is not produced by a trusted signer: no certificate of the chain is in {names}",
    )


def identity_check(leaf: x509.Certificate, statement: TrustPolicyStatement) -> Check:
    identities = statement.identities
    if identities.wildcard:
        return Check.passed(CHECK_IDENTITY, "any identity ('*')")
    if not identities.subjects:
        return Check.failed(
            CHECK_IDENTITY,
            f"no x509 trusted identities are configured in the trust policy {statement.name!r}",
        )
    try:
        subject = certificate_dn(leaf)
    except TrustPolicyError as exc:
        return Check.failed(CHECK_IDENTITY, f"error while parsing the certificate subject: {exc}")
    for written, dn in identities.subjects:
        if is_subset_dn(dn, subject):
            return Check.passed(CHECK_IDENTITY, f"{leaf.subject.rfc4514_string()} matches {written}")
    return Check.failed(
        CHECK_IDENTITY,
        f"signing certificate {leaf.subject.rfc4514_string()} does not match the X.509 trusted identities of "
        f"the trust policy {statement.name!r}",
    )


def expiry_check(sig: Signature, at: datetime) -> Check:
    if sig.expiry is None:
        return Check.skipped(CHECK_EXPIRY, "the signature sets no expiry")
    if sig.signing_time is not None and sig.expiry <= sig.signing_time:
        return Check.failed(CHECK_EXPIRY, f"expiry {sig.expiry.isoformat()} is not after the signing time")
    if at >= sig.expiry:
        return Check.failed(CHECK_EXPIRY, f"digital signature has expired on {sig.expiry.isoformat()}")
    return Check.passed(CHECK_EXPIRY, f"valid until {sig.expiry.isoformat()}")


def _validity_problem(
    chain: Sequence[x509.Certificate], start: datetime, end: datetime, what: str
) -> str | None:
    for cert in chain:
        if start < cert.not_valid_before_utc:
            return (
                f"certificate {cert.subject.rfc4514_string()} is not valid yet at {what}, it is valid from "
                f"{cert.not_valid_before_utc.isoformat()}"
            )
        if end > cert.not_valid_after_utc:
            return (
                f"certificate {cert.subject.rfc4514_string()} is not valid at {what}, it expired at "
                f"{cert.not_valid_after_utc.isoformat()}"
            )
    return None


@dataclass(frozen=True)
class _Stamp:
    check: Check
    tsa_chain: tuple[x509.Certificate, ...] = ()  # the verified TSA chain (leaf first), when one was verified
    latest: datetime | None = None  # genTime + accuracy of a verified timestamp: the signature existed then
    revoked: bool = False  # a TSA certificate is revoked


def timestamp_check(
    sig: Signature,
    chain: Sequence[x509.Certificate],
    statement: TrustPolicyStatement,
    store: TrustStore,
    at: datetime,
    revocation: rev.RevocationEvidence | None = None,
) -> Check:
    return _timestamp(sig, chain, statement, store, at, revocation).check


def _timestamp(
    sig: Signature,
    chain: Sequence[x509.Certificate],
    statement: TrustPolicyStatement,
    store: TrustStore,
    at: datetime,
    revocation: rev.RevocationEvidence | None = None,
) -> _Stamp:
    stamp = _timestamp_check(sig, chain, statement, store, at, revocation)
    return stamp if isinstance(stamp, _Stamp) else _Stamp(stamp)


def _timestamp_check(
    sig: Signature,
    chain: Sequence[x509.Certificate],
    statement: TrustPolicyStatement,
    store: TrustStore,
    at: datetime,
    revocation: rev.RevocationEvidence | None,
) -> Check | _Stamp:
    scheme = _scheme(sig)
    if scheme == notation.SCHEME_SIGNING_AUTHORITY:
        when = sig.signing_time
        if when is None:
            return Check.failed(CHECK_TIMESTAMP, "no authentic signing time")
        problem = _validity_problem(chain, when, when, f"the authentic signing time {when.isoformat()}")
        if problem:
            return Check.failed(CHECK_TIMESTAMP, problem)
        return Check.passed(
            CHECK_TIMESTAMP, f"every certificate was valid at the authentic signing time {when.isoformat()}"
        )

    tsa_refs = statement.stores_of("tsa")
    expired_now = any(at > c.not_valid_after_utc for c in chain)
    wants_tsa = bool(tsa_refs) and (statement.verify_timestamp == "always" or expired_now)
    if not wants_tsa:
        problem = _validity_problem(chain, at, at, f"verification time {at.isoformat()}")
        if problem:
            return Check.failed(CHECK_TIMESTAMP, problem + " (no trusted timestamp applies)")
        why = "no tsa: trust store in the policy" if not tsa_refs else "verifyTimestamp afterCertExpiry"
        return Check.passed(CHECK_TIMESTAMP, f"every certificate is valid at {at.isoformat()} ({why})")

    token_der = sig.evidence.get("timestamp-token")
    if not token_der:
        return Check.failed(CHECK_TIMESTAMP, "no timestamp countersignature was found")
    message = sig.evidence.get("signature-value")
    if message is None:
        return Check.failed(CHECK_TIMESTAMP, "the envelope's signature value is unavailable")
    try:
        from sigscope.trust import timestamp as rfc3161
    except ImportError:  # pragma: no cover - the module is part of sigscope; kept for partial installs
        return Check.skipped(CHECK_TIMESTAMP, "RFC 3161 timestamp verification is not available")
    try:
        token = rfc3161.parse_token(token_der)
    except rfc3161.TimestampError as exc:
        return Check.failed(CHECK_TIMESTAMP, f"failed to parse timestamp countersignature: {exc.message}")
    roots = store.certificates(tsa_refs, "tsa")
    result = rfc3161.verify_timestamp(token, message, roots)
    if not result.ok:
        return Check.failed(CHECK_TIMESTAMP, f"timestamp countersignature does not verify: {result.detail}")
    tsa_chain = list(result.chain)
    try:
        notary_certs.validate_timestamping_chain(tsa_chain)
    except notary_certs.CertRequirementError as exc:
        return Check.failed(CHECK_TIMESTAMP, f"timestamp certificate chain: {exc}")
    accuracy = token.accuracy
    if accuracy is None:
        accuracy = timedelta(seconds=1) if token.policy == _BASELINE_POLICY else timedelta(0)
    start, end = token.gen_time - accuracy, token.gen_time + accuracy
    problem = _validity_problem(chain, start, end, f"the timestamp [{start.isoformat()}, {end.isoformat()}]")
    if problem:
        return Check.failed(
            CHECK_TIMESTAMP, f"timestamp range is outside the signing certificates' validity: {problem}"
        )
    revocation_note = ""
    if revocation is not None:
        # notation-go checks the TSA chain's revocation as part of the timestamp, with no signing time.
        tsa_status = rev.chain_status(tsa_chain, revocation, at, None, rev.Purpose.TIMESTAMPING)
        if tsa_status.status is not rev.Status.OK:
            return _Stamp(
                Check.failed(CHECK_TIMESTAMP, tsa_status.detail),
                tuple(tsa_chain),
                end,
                revoked=tsa_status.status is rev.Status.REVOKED,
            )
        if rev.chain_revocable(tsa_chain):
            revocation_note = "; TSA chain " + tsa_status.detail
    elif rev.chain_revocable(tsa_chain):
        revocation_note = "; TSA chain revocation not checked (no revocation evidence was fetched)"
    passed = Check.passed(
        CHECK_TIMESTAMP,
        f"time-stamped {token.gen_time.isoformat()} by {result.tsa_name}, within every certificate's "
        "validity" + revocation_note,
    )
    return _Stamp(passed, tuple(tsa_chain), end)


def revocation_check(
    chain: Sequence[x509.Certificate],
    action: Action,
    revocation: rev.RevocationEvidence | None = None,
    at: datetime | None = None,
    signing_time: datetime | None = None,
) -> Check:
    """The signing chain's revocation status on `revocation` (None: nothing was fetched) at `at`."""
    return _revocation(chain, action, revocation, at, signing_time)[0]


def _revocation(
    chain: Sequence[x509.Certificate],
    action: Action,
    revocation: rev.RevocationEvidence | None,
    at: datetime | None,
    signing_time: datetime | None,
) -> tuple[Check, bool]:
    """(the check, whether a certificate is revoked)."""
    if not rev.chain_revocable(chain):
        return Check.skipped(
            CHECK_REVOCATION, "no certificate of the chain names a CRL or OCSP location (non-revocable)"
        ), False
    if revocation is None or at is None:
        names = next(c.subject.rfc4514_string() for c in chain[:-1] if rev.revocable(c))
        if action is Action.ENFORCE:
            return Check.failed(
                CHECK_REVOCATION,
                f"{REVOCATION_NOT_CHECKED}, and the policy enforces revocation while {names} names a CRL or "
                'OCSP location (override "revocation" to "log" or "skip" to accept that)',
            ), False
        return Check.skipped(
            CHECK_REVOCATION, f"{REVOCATION_NOT_CHECKED} ({names} names a CRL or OCSP location)"
        ), False
    status = rev.chain_status(chain, revocation, at, signing_time)
    if status.status is rev.Status.OK:
        return Check.passed(CHECK_REVOCATION, status.detail), False
    return Check.failed(CHECK_REVOCATION, status.detail), status.status is rev.Status.REVOKED


def revocation_signing_time(sig: Signature, stamp_latest: datetime | None) -> datetime | None:
    """The time an invalidityDate is compared with: authentic ones only, never the claimed signingTime."""
    if _scheme(sig) == notation.SCHEME_SIGNING_AUTHORITY:
        return sig.signing_time
    return stamp_latest


def revocation_targets(
    sig: Signature, statement: TrustPolicyStatement, store: TrustStore, at: datetime
) -> list[rev.Target]:
    """The chains whose revocation evidence `evaluate` will want for `sig` (what a fetcher should gather).

    Only chains that hold together and reach the statement's trust store (and TSA chains verified against its
    tsa store): URLs in certificates nobody vouches for are never requested.
    """
    level = statement.level
    if level.skips_all or sig.format not in NOTATION_FORMATS or sig.error:
        return []
    chain = chain_of(sig)
    if not chain or notary_certs.code_signing_check(chain).outcome is not Outcome.PASSED:
        return []
    if not any(c.name == "signature" and c.outcome is Outcome.PASSED for c in sig.checks):
        return []
    if trust_store_check(chain, _scheme(sig), statement, store).outcome is not Outcome.PASSED:
        return []
    out: list[rev.Target] = []
    stamp = _timestamp(sig, chain, statement, store, at)
    if stamp.tsa_chain and level.action(ValidationType.AUTHENTIC_TIMESTAMP) is not Action.SKIP:
        out.append(rev.Target(stamp.tsa_chain, None, rev.Purpose.TIMESTAMPING))
    if level.action(ValidationType.REVOCATION) is not Action.SKIP:
        when = revocation_signing_time(sig, stamp.latest if stamp.check.outcome is Outcome.PASSED else None)
        out.append(rev.Target(tuple(chain), when))
    return out


# ---------------------------------------------------------------- one signature


def _apply_action(check: Check, action: Action, level: str, warnings: list[str]) -> Check:
    if action is Action.SKIP:
        return Check.skipped(check.name, f"skipped by the policy ({level})")
    if action is Action.LOG and check.outcome is Outcome.FAILED:
        warnings.append(f"{check.name}: {check.detail}")
        return Check.skipped(check.name, f"failed, logged but not enforced ({level}): {check.detail}")
    return check


def evaluate(
    sig: Signature,
    statement: TrustPolicyStatement,
    store: TrustStore,
    at: datetime,
    revocation: rev.RevocationEvidence | None = None,
) -> NotationResult:
    """Judge one Notary Project signature (as parsed by formats/notation.py) under `statement` at `at`.

    `revocation` is what was fetched for `revocation_targets(sig, …)`; None means nothing was."""
    level = statement.level
    if level.skips_all:
        skip = Check.skipped(
            CHECK_POLICY, f"trust policy statement {statement.name!r} skips signature verification"
        )
        return NotationResult(sig, statement, [skip], satisfied=True, trusted=False)

    integrity = [c for c in sig.checks if c.name not in _NOT_INTEGRITY]
    chain = chain_of(sig)
    if chain:
        # Validity is not integrity: authentic-timestamp judges it, under its own enforcement level.
        integrity.append(notary_certs.code_signing_check(chain))
    else:
        integrity.append(
            Check.failed(notary_certs.CHECK_NAME, "the envelope carries no usable certificate chain")
        )
    # Never infer integrity from the absence of failures: the signature and signed digest must have passed.
    for required in _REQUIRED_INTEGRITY:
        if not any(c.name == required and c.outcome is Outcome.PASSED for c in integrity):
            integrity.append(Check.failed(required, f"the {required} check did not pass"))
    failed = [c for c in integrity if c.outcome is Outcome.FAILED]
    if sig.error or failed:
        reason = failed[0].detail if failed else str(sig.error)
        name = failed[0].name if failed else "envelope"
        rest = [
            Check.skipped(n, "not evaluated: integrity failed")
            for n in (CHECK_TRUST_STORE, CHECK_IDENTITY, CHECK_EXPIRY, CHECK_TIMESTAMP, CHECK_REVOCATION)
        ]
        policy = Check.failed(CHECK_POLICY, f"integrity: {name}: {reason}")
        return NotationResult(
            sig, statement, [*integrity, *rest, policy], False, False, f"{name}: {reason}", integrity_ok=False
        )

    warnings: list[str] = []
    leaf = chain[0]
    authenticity = [
        trust_store_check(chain, _scheme(sig), statement, store),
        identity_check(leaf, statement),
    ]
    trusted = all(c.outcome is Outcome.PASSED for c in authenticity)
    judged = [
        _apply_action(c, level.action(ValidationType.AUTHENTICITY), level.name, warnings)
        for c in authenticity
    ]
    judged.append(
        _apply_action(expiry_check(sig, at), level.action(ValidationType.EXPIRY), level.name, warnings)
    )
    stamp = _timestamp(sig, chain, statement, store, at, revocation)
    timestamp_action = level.action(ValidationType.AUTHENTIC_TIMESTAMP)
    if stamp.revoked and timestamp_action is Action.LOG:
        timestamp_action = Action.ENFORCE  # a revoked TSA certificate is never only logged
    judged.append(_apply_action(stamp.check, timestamp_action, level.name, warnings))
    revocation_action = level.action(ValidationType.REVOCATION)
    if revocation_action is Action.SKIP:
        revocation_result = Check.skipped(CHECK_REVOCATION, "")
    else:
        latest = stamp.latest if stamp.check.outcome is Outcome.PASSED else None
        revocation_result, revoked = _revocation(
            chain, revocation_action, revocation, at, revocation_signing_time(sig, latest)
        )
        if revoked:
            revocation_action = Action.ENFORCE  # revoked fails at every level that checks revocation
    judged.append(_apply_action(revocation_result, revocation_action, level.name, warnings))

    enforced_failures = [c for c in judged if c.outcome is Outcome.FAILED]
    satisfied = not enforced_failures
    where = f"trust policy statement {statement.name!r} ({level.name})"
    if not satisfied:
        first = enforced_failures[0]
        reason = f"{first.name}: {first.detail}"
        policy = Check.failed(CHECK_POLICY, f"{where}: {reason}")
    elif not trusted:
        reason = ""
        policy = Check.failed(CHECK_POLICY, f"{where} passes it without authenticity: " + "; ".join(warnings))
    else:
        reason = ""
        store_detail = authenticity[0].detail
        policy = Check.passed(CHECK_POLICY, f"{where}: {store_detail}")
    return NotationResult(sig, statement, [*integrity, *judged, policy], satisfied, trusted, reason, warnings)


def apply_notation(sig: Signature, trust: NotationTrust | None, scope: str | None, at: datetime) -> Signature:
    """Scan face: fold the policy's verdict into a discovered Notary signature (others pass through).

    The signature keeps its integrity checks; expiry and authentic-timestamp are replaced by the
    policy's (level-aware) versions, `trusted-identity` is added, and `trust-policy` carries the outcome,
    so the status reads verified / untrusted / invalid. No applicable statement leaves it as found.
    """
    if trust is None or sig.format not in NOTATION_FORMATS:
        return sig
    try:
        statement = trust.policy.select(scope)
    except TrustPolicyError as exc:
        sig.checks.append(Check.skipped(CHECK_POLICY, str(exc)))
        return sig.settle()
    result = evaluate(sig, statement, trust.store, at)
    keep = {c.name for c in sig.checks if c.name not in _NOT_INTEGRITY}
    by_name = {c.name: c for c in result.checks}
    checks = [c for c in sig.checks if c.name in keep]
    if notary_certs.CHECK_NAME in by_name:
        checks.append(by_name[notary_certs.CHECK_NAME])
    for name in (CHECK_EXPIRY, CHECK_TIMESTAMP, CHECK_IDENTITY):
        if name in by_name:
            check = by_name[name]
            if name == CHECK_TIMESTAMP and check.outcome is Outcome.FAILED:
                # A chain outside its validity is an untrusted signer, not a malformed signature.
                check = Check.skipped(name, f"failed: {check.detail}")
            checks.append(check)
    checks.append(by_name[CHECK_POLICY])
    sig.checks = checks
    sig.settle()
    if sig.status is Status.VERIFIED and not result.trusted:
        sig.status = Status.UNTRUSTED
    return sig


# ---------------------------------------------------------------- one image


@dataclass
class NotationVerdict:
    """`sigscope verify IMAGE --notation-config`: passes when one signature satisfies the statement."""

    image: str
    digest: str
    statement: TrustPolicyStatement
    results: list[NotationResult]
    not_evaluated: int = 0  # over --max-signatures
    max_signatures: int = DEFAULT_MAX_SIGNATURES

    @property
    def skipped(self) -> bool:
        return self.statement.level.skips_all

    @property
    def verified(self) -> bool:
        return self.skipped or any(r.satisfied for r in self.results)

    @property
    def reason(self) -> str:
        if self.verified:
            return ""
        if not self.results:
            return "no Notary Project signatures found"
        if self.not_evaluated:
            return (
                f"no signature satisfies trust policy statement {self.statement.name!r} among the first "
                f"{self.max_signatures} (--max-signatures); {self.not_evaluated} not evaluated"
            )
        return f"no signature satisfies trust policy statement {self.statement.name!r}"

    @property
    def summary(self) -> str:
        """The one line that is the result (the CLI prints nothing else about it)."""
        if self.skipped:
            name = self.statement.name
            return f"trust policy statement {name!r} skips signature verification for {self.image}"
        if not self.verified:
            return f"Notary Project: not verified: {self.reason}"
        satisfied = sum(1 for r in self.results if r.satisfied)
        return (
            f"Notary Project: {satisfied} of {len(self.results)} signature(s) satisfy trust policy statement "
            f"{self.statement.name!r} ({self.statement.level.name})"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "digest": self.digest,
            "verified": self.verified,
            "policy": self.statement.name,
            "level": self.statement.level.name,
            "signatures": [r.to_json() for r in self.results],
        }
        if self.skipped:
            out["skipped"] = True
        if self.not_evaluated:
            out["notEvaluated"] = self.not_evaluated
        if not self.verified:
            out["reason"] = self.reason
        return out


def verify_image(
    image: str,
    digest: str,
    scope: str | None,
    signatures: Sequence[Signature],
    trust: NotationTrust,
    at: datetime,
    *,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
    revocation: rev.RevocationEvidence | None = None,
) -> NotationVerdict:
    """Judge IMAGE's Notary signatures; TrustPolicyError when no statement applies to `scope`."""
    statement = trust.policy.select(scope)
    candidates = [s for s in signatures if s.format in NOTATION_FORMATS]
    verdict = NotationVerdict(image, digest, statement, [], max_signatures=max_signatures)
    if statement.level.skips_all:
        return verdict
    for sig in candidates[:max_signatures]:
        result = evaluate(sig, statement, trust.store, at, revocation)
        verdict.results.append(result)
    verdict.not_evaluated = max(0, len(candidates) - max_signatures)
    return verdict
