"""Verification policy: signature records found on one image + what the user requires → a verdict.

Pure: no I/O. Discovery (`scan_image` with `--key` / `--gpg-keyring`) has already checked each signature's
bytes, its payload digest and its trust; this module adds the policy checks a compatible verifier makes
(FORMATS §1.13 step 5, §4.4 signedIdentity) and counts signatures from distinct keys against a threshold.

The reference check binds a payload to a repository. An image in an `oci:` layout is a copy (the air-gapped
workflow: image and signatures copied from a registry, verified offline), so a payload naming the registry
repository it was signed in is not a mismatch: on a layout the digest check always applies and the
repository is checked only against an identity the user names (`Policy.signed_identity`, the verify
command's --signed-identity), as cosign, which binds the digest and not the repository, accepts such a
copy. Naming the identity also works for a registry image served under another name (a mirror).

Only formats whose payload names the image are signatures here: cosign `.sig` layers, GPG simple
signatures, cosign v3 `sign` DSSE bundles (what `sign --registry-referrers-mode oci-1-1` writes too) and
Sigstore message-signature bundles (sigstore-go's; sigscope's oci-1-1 output before it wrote DSSE).
Attestations (see attest.py), SBOM attachments, other DSSE bundles and Notary signatures are ignored. Trust
is `trusted-key` or the certificate checks (model.TRUST_GROUPS): the settled status says whether either held.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigscope.errors import InvalidReferenceError
from sigscope.formats import gojson
from sigscope.model import TRUST_CHECKS, Check, Outcome, Signature, SignatureFormat, Status
from sigscope.oci.reference import ImageReference, LayoutReference, parse_layout, parse_reference

SIGNATURE_FORMATS = frozenset({SignatureFormat.COSIGN, SignatureFormat.SIMPLE_SIGNING})
POLICY_CHECKS = ("trusted-key", "payload-digest", "reference", "annotations")
# A bundle (cosign v3 `sign`, oci-1-1 mode, a message signature) names no repository, only a digest.
BUNDLE_POLICY_CHECKS = ("trusted-key", "payload-digest", "annotations")
# Trust is established by --key (trusted-key) or by the certificate policy (model.TRUST_GROUPS); the
# settled status says whether either holds, so these stand for "trusted" in the lists above.
_TRUST_REQUIREMENT = "trusted-key"
_CERTIFICATE_REASONS = (
    ("certificate-identity", "certificate identity mismatch"),
    ("certificate-issuer", "certificate OIDC issuer mismatch"),
    ("certificate-validity", "certificate not valid at the signing time"),
    ("certificate-chain", "certificate chain not trusted"),
    ("certificate-sct", "certificate SCT does not verify"),
    ("transparency-log", "transparency log entry does not verify"),
    ("sigstore", "Sigstore bundle does not verify"),
)
_KEY_FINGERPRINT = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Policy:
    """What the image must carry to pass."""

    threshold: int = 1
    exact_reference: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    # The repository (with a tag or digest for exact_reference) payloads must name, instead of the image's
    # own; None: the image's, except on a layout, whose copies are bound by their digest alone.
    signed_identity: str | None = None

    def __post_init__(self) -> None:
        if self.signed_identity is not None and _split(self.signed_identity) is None:
            raise InvalidReferenceError(f"invalid signed identity {self.signed_identity!r}: not a repository")


@dataclass
class Judged:
    """One signature with the policy's checks appended; the discovery record itself is left untouched."""

    signature: Signature
    checks: list[Check]
    satisfied: bool
    key: str | None  # identity of the trusted key that verified it (for the distinct-keys count)
    reason: str  # one short phrase when not satisfied

    @property
    def status(self) -> Status:
        """The signature's status under the policy: one its trust material verified but a policy check
        refused is `rejected`, so a row never reads `verified` beside a failing result."""
        if self.signature.status is _VERIFIED and not self.satisfied:
            return Status.REJECTED
        return self.signature.status

    def payload(self) -> Any:
        raw = self.signature.evidence.get("payload")
        if raw is None:
            return None
        try:
            return gojson.read(raw, "payload")
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        sig = self.signature
        out: dict[str, Any] = {
            "format": str(sig.format),
            "status": str(self.status),
            "signer": sig.signer.to_json() if sig.signer is not None else None,
            "satisfied": self.satisfied,
            "location": sig.location,
            "checks": [c.to_json() for c in self.checks],
            "payload": self.payload(),
        }
        if self.key:
            out["key"] = self.key
        if not self.satisfied:
            out["reason"] = self.reason
        return out


@dataclass
class Verdict:
    image: str
    digest: str
    threshold: int
    signatures: list[Judged]
    keys: list[str]  # distinct keys with at least one satisfying signature

    @property
    def verified(self) -> bool:
        return len(self.keys) >= self.threshold

    @property
    def satisfied(self) -> list[Judged]:
        return [j for j in self.signatures if j.satisfied]

    @property
    def summary(self) -> str:
        """The one line that is the result: `Verified 1 of 2 signatures (…)`, or `Not verified: <reason>`."""
        total = len(self.signatures)
        if not self.verified:
            counts = (
                f" ({len(self.satisfied)} of {total} signatures, threshold {self.threshold})" if total else ""
            )
            return f"Not verified: {self.reason}{counts}"
        line = f"Verified {len(self.satisfied)} of {total} signatures"
        plural = "s" if len(self.keys) != 1 else ""
        line += f" ({len(self.keys)} distinct key{plural}, threshold {self.threshold})"
        return line

    @property
    def reason(self) -> str:
        """Why the image failed (empty when it passed)."""
        if self.verified:
            return ""
        if not self.signatures:
            return "no signatures found"
        if len(self.keys) == 0:
            return "no signature satisfies the policy"
        return (
            f"signatures from {len(self.keys)} distinct key(s) satisfy the policy, {self.threshold} required"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "digest": self.digest,
            "verified": self.verified,
            "threshold": self.threshold,
            "signatures": [j.to_json() for j in self.signatures],
        }
        if not self.verified:
            out["reason"] = self.reason
        return out


# ---------------------------------------------------------------- references


def _split(reference: str) -> tuple[str, str | None, str | None] | None:
    """(repository identity, tag, digest) of a payload or image reference; None when unparseable.

    Registry references are normalised as docker does (Docker Hub, `library/`); layouts compare by path.
    """
    try:
        if reference.startswith("oci:"):
            layout = parse_layout(reference)
            return "oci:" + posixpath.normpath(layout.path), layout.tag, layout.digest
        # default_tag="" is refused by the parser, so detect the tag ourselves
        parsed = parse_reference(reference, default_tag="latest")
    except InvalidReferenceError:
        return None
    name = reference.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    tag = parsed.tag if ":" in last else None
    return f"{parsed.registry}/{parsed.repository}", tag, parsed.digest


def image_identity(parsed: ImageReference | LayoutReference) -> str:
    """The reference the user asked to verify, as the payload identity would spell it."""
    if isinstance(parsed, LayoutReference):
        text = f"oci:{parsed.path}"
    else:
        text = f"{parsed.registry}/{parsed.repository}"
    if parsed.tag:
        text += f":{parsed.tag}"
    if parsed.digest:
        text += f"@{parsed.digest}"
    return text


# Pure, and every signature of an image asks the same question: parse both references once.
@functools.lru_cache(maxsize=256)
def reference_check(claimed: str | None, image: str, *, exact: bool) -> Check:
    """Repository match by default (cosign identities are repository-only; skopeo's carry the tag);
    with `exact`, matchExact (§4.4): both name a tag or digest and they are the same."""
    if claimed is None:
        return Check.failed("reference", "the payload names no docker-reference")
    ours = _split(image)
    theirs = _split(claimed)
    if ours is None:
        return Check.failed("reference", f"cannot parse the image reference {image!r}")
    if theirs is None:
        return Check.failed("reference", f"the payload names an unparseable reference {claimed!r}")
    if ours[0] != theirs[0]:
        return Check.failed("reference", f"payload names repository {theirs[0]}, not {ours[0]}")
    if not exact:
        return Check.passed("reference", f"payload names repository {theirs[0]}")
    if theirs[1] is None and theirs[2] is None:
        return Check.failed(
            "reference", f"payload names {claimed} without a tag or digest (exact match required)"
        )
    if (theirs[1], theirs[2]) != (ours[1], ours[2]):
        return Check.failed("reference", f"payload names {claimed}, not {image} (exact match required)")
    return Check.passed("reference", f"payload names exactly {claimed}")


def annotations_check(claimed: Any, required: Mapping[str, str]) -> Check:
    if not required:
        return Check.passed("annotations", "none required")
    optional = claimed if isinstance(claimed, dict) else {}
    missing = [k for k in required if k not in optional]
    wrong = [k for k in required if k in optional and optional[k] != required[k]]
    if missing or wrong:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(sorted(missing)))
        if wrong:
            parts.append("; ".join(f"{k}={optional[k]!r}, required {required[k]!r}" for k in sorted(wrong)))
        return Check.failed("annotations", "; ".join(parts))
    return Check.passed("annotations", ", ".join(f"{k}={required[k]}" for k in sorted(required)))


# ---------------------------------------------------------------- signatures


def _key_identity(sig: Signature, trusted: Check | None) -> str | None:
    if trusted is None or trusted.outcome is not Outcome.PASSED:
        # Trusted through its certificate: signers are counted by verified identity, not by the
        # (per-signature, for Fulcio) certificate, so one identity signing twice counts once.
        identity = sig.claims.get("verifiedIdentity")
        return f"identity:{identity}" if isinstance(identity, str) and identity else None
    if sig.signer is not None and sig.signer.pgp is not None:
        pgp = sig.signer.pgp
        return f"pgp:{pgp.fingerprint or pgp.key_id}"
    fingerprint = _fingerprint(trusted.detail)
    if fingerprint is not None:
        return fingerprint
    if sig.signer is not None and sig.signer.public_key is not None:
        return f"sha256:{sig.signer.public_key.sha256}"
    return trusted.detail or None


@functools.lru_cache(maxsize=256)
def _fingerprint(detail: str) -> str | None:
    # Every signature a key verified carries the same detail text (trust/keys.py): search it once.
    match = _KEY_FINGERPRINT.search(detail)
    return f"sha256:{match.group(1)}" if match else None


def _optional(sig: Signature) -> Any:
    raw = sig.evidence.get("payload")
    if raw is not None:
        try:
            payload = gojson.read(raw, "payload")
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "_type" not in payload:
            return payload.get("optional")  # a simple-signing payload
    return sig.claims.get(
        "optional"
    )  # also an in-toto statement's (cosign v3 sign: the subject's annotations)


def _reason(sig: Signature, checks: Sequence[Check]) -> str:
    by_name = {c.name: c for c in checks}

    def failed(name: str) -> bool:
        check = by_name.get(name)
        return check is not None and check.outcome is Outcome.FAILED

    if failed("signature"):
        return "signature does not verify"
    if failed("payload-digest"):
        return "payload names another digest"
    for name, why in _CERTIFICATE_REASONS:
        if failed(name):
            return f"{why}: {by_name[name].detail}"
    if failed("trusted-key"):
        return "wrong key"
    if sig.error:
        return f"invalid signature ({sig.error})"
    if failed("reference"):
        return "reference mismatch"
    if failed("annotations"):
        return "annotation mismatch"
    other = [c for c in checks if c.outcome is Outcome.FAILED]
    if other:
        return f"{other[0].name} check failed"
    if not any(c.name in TRUST_CHECKS and c.outcome is Outcome.PASSED for c in checks):
        return "no trust material for this signature"
    if sig.status is not Status.VERIFIED:
        return f"signature is {sig.status}"
    return "not satisfied"


def is_image_signature(sig: Signature) -> bool:
    """`.sig` layers, GPG simple signatures, cosign v3 `sign` bundles (also `sign --registry-referrers-mode
    oci-1-1`), and Sigstore bundles whose message signature covers the image manifest; attestations are not
    signatures here."""
    if sig.format in SIGNATURE_FORMATS:
        return True
    if sig.format is SignatureFormat.SIGSTORE_BUNDLE and sig.claims.get("cosignImageSignature"):
        return True  # cosign v3 `sign`: a DSSE statement with predicate https://sigstore.dev/cosign/sign/v1
    return sig.format is SignatureFormat.SIGSTORE_BUNDLE and sig.claims.get("content") == "message-signature"


def _layout_copy(claimed: str | None, image: str, policy: Policy) -> Check | None:
    """The reference check for a payload found on a layout image that names somewhere else, with no
    identity named to check it against; None when the ordinary check applies."""
    if policy.signed_identity is not None or not image.startswith("oci:"):
        return None
    theirs = _split(claimed) if claimed is not None else None
    ours = _split(image)
    if theirs is not None and ours is not None and theirs[0] == ours[0]:
        return None  # signed in this very layout
    if policy.exact_reference:
        return Check.failed(
            "reference",
            f"payload names {claimed}; an exact match on a layout needs the expected identity named",
        )
    return Check.skipped(
        "reference",
        f"payload names {claimed}: a layout holds copies, the digest binds them (name the expected "
        "identity to check the repository too)",
    )


def bundle_reference_check(*, exact: bool) -> Check:
    if exact:
        return Check.failed(
            "reference", "a Sigstore bundle signature names no reference (exact match required)"
        )
    return Check.skipped("reference", "a Sigstore bundle signature names no repository; its digest binds it")


# Built once: judge() runs once per signature of the image (bench/verify.py), and these never vary.
_NO_TRUST = Check.skipped("trusted-key", "no supplied trust material applies to this signature")
_PAYLOAD_UNREAD = Check.skipped("payload-digest", "the payload could not be read")
_NO_ANNOTATIONS_REQUIRED = Check.passed("annotations", "none required")
_PASSED, _FAILED = Outcome.PASSED, Outcome.FAILED
_BUNDLE, _VERIFIED = SignatureFormat.SIGSTORE_BUNDLE, Status.VERIFIED


def judge(sig: Signature, image: str, policy: Policy) -> Judged:
    """The policy's checks on one signature found on `image` (the reference the user gave)."""
    checks = list(sig.checks)
    # Each name's first check, as a search of `checks` from the start would find it; kept up to date as
    # checks are appended below.
    first: dict[str, Check] = {}
    for c in reversed(checks):
        first[c.name] = c

    def add(check: Check) -> None:
        checks.append(check)
        first.setdefault(check.name, check)

    if TRUST_CHECKS.isdisjoint(first):
        add(_NO_TRUST)
    if "payload-digest" not in first:
        subject = first.get("dsse-subject")
        # A DSSE statement binds the image through its subjects.
        add(
            Check(name="payload-digest", outcome=subject.outcome, detail=subject.detail)
            if subject is not None
            else _PAYLOAD_UNREAD
        )
    claimed = sig.claims.get("docker-reference")
    bundle = sig.format is _BUNDLE
    if bundle:
        add(bundle_reference_check(exact=policy.exact_reference))
    else:
        claimed_text = claimed if isinstance(claimed, str) else None
        copy = _layout_copy(claimed_text, image, policy)
        add(
            copy
            if copy is not None
            else reference_check(claimed_text, policy.signed_identity or image, exact=policy.exact_reference)
        )
    # The payload's `optional` is read (a JSON parse) only when the policy requires annotations.
    add(
        annotations_check(_optional(sig), policy.annotations)
        if policy.annotations
        else _NO_ANNOTATIONS_REQUIRED
    )

    # A skipped reference check (a bundle, a layout copy) binds by digest: only the others are required.
    reference = first["reference"]
    required = BUNDLE_POLICY_CHECKS if bundle or reference.outcome is Outcome.SKIPPED else POLICY_CHECKS
    required_passed = all(
        (found := first.get(name)) is not None and found.outcome is _PASSED
        for name in required
        if name != _TRUST_REQUIREMENT
    )
    # A failed trust check of the alternative that did not apply (a --key that did not sign a
    # certificate-trusted signature) does not sink it; sig.status VERIFIED says one alternative held.
    satisfied = (
        sig.status is _VERIFIED
        and sig.error is None
        and required_passed
        and not any(c.outcome is _FAILED and c.name not in TRUST_CHECKS for c in checks)
    )
    key = _key_identity(sig, first.get("trusted-key"))
    return Judged(
        signature=sig,
        checks=checks,
        satisfied=satisfied,
        key=key if satisfied else None,
        reason="" if satisfied else _reason(sig, checks),
    )


def verify(image: str, digest: str, signatures: Sequence[Signature], policy: Policy) -> Verdict:
    """Judge every image signature found for `digest`; the image passes with `threshold` distinct keys."""
    if policy.threshold < 1:
        raise ValueError("threshold must be at least 1")
    judged = [judge(s, image, policy) for s in signatures if is_image_signature(s)]
    keys: list[str] = []
    for j in judged:
        if j.satisfied and j.key is not None and j.key not in keys:
            keys.append(j.key)
    return Verdict(image=image, digest=digest, threshold=policy.threshold, signatures=judged, keys=keys)
