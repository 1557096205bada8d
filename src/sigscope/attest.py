"""cosign attestations: in-toto statements in DSSE envelopes, written and verified.

Writing (FORMATS §1.9, §1.11): the statement names the image's repository and manifest digest, the envelope
is signed over its PAE by a :class:`~sigscope.keys.Signer`, and it goes either into a layer of the
``sha256-<hex>.att`` manifest (legacy: appended, never dropping a layer; ``replace`` drops only layers of the
same predicate type, as cosign does) or into a Sigstore bundle v0.3 pushed as an OCI 1.1 referrer.

Verifying is pure: signatures already discovered on one image (``.att`` layers, bundle referrers) and the
keys the user supplied become named checks per attestation; the image passes when one attestation holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import SigscopeError, UsageError
from sigscope.formats import bundle, dsse, gojson
from sigscope.formats.cosign import (
    ATTESTATION_TAG_SUFFIX,
    DSSE_MEDIA_TYPE,
    PREDICATE_TYPE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    attachment_tag,
)
from sigscope.keys import Signer
from sigscope.model import TRUST_CHECKS, Check, Outcome, Signature, SignatureFormat, Status
from sigscope.oci import digest as digests
from sigscope.oci.store import Repository
from sigscope.sign import (
    MAX_LAYERS,
    OCI_CONFIG,
    REFERRERS_LEGACY,
    REFERRERS_MODES,
    REFERRERS_OCI_1_1,
    _existing_layers,
    _get_optional,
    assemble_manifest,
    push_bundle_referrer,
)
from sigscope.trust import certs
from sigscope.trust.apply import TrustSet

CUSTOM_PREDICATE = "https://cosign.sigstore.dev/attestation/v1"
# cosign's --type names (options/predicate.go); anything else must be a predicate type URI.
PREDICATE_TYPES: dict[str, str] = {
    "custom": CUSTOM_PREDICATE,
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}
MAX_PREDICATE = 128 * 1024 * 1024  # cosign's attachment limit


class PredicateError(UsageError):
    """A predicate file or --type that cannot make a statement."""


def predicate_type_for(name: str) -> str:
    """The predicateType URI for a `--type` value: a cosign alias or a URI with a scheme."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    parts = urlsplit(name)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in name):
        raise PredicateError(
            f"--type {name!r} is neither one of {', '.join(PREDICATE_TYPES)} nor a predicate type URI"
        )
    return name


def _go_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_predicate(type_name: str, data: bytes, now: datetime, *, source: str = "predicate") -> Any:
    """The predicate cosign builds from a `--predicate` file for `--type type_name`.

    `custom` wraps the text as `{"Data", "Timestamp"}`; `spdx` (tag-value) is carried as a string; every
    other type must be a JSON object.
    """
    if len(data) > MAX_PREDICATE:
        raise PredicateError(f"{source} is larger than {MAX_PREDICATE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PredicateError(f"{source} is not UTF-8 text") from None
    predicate_type = predicate_type_for(type_name)
    if predicate_type == CUSTOM_PREDICATE:
        return {"Data": text, "Timestamp": _go_time(now)}
    if type_name == "spdx":
        return text
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PredicateError(f"{source} is not valid JSON ({exc}); --type {type_name} needs JSON") from None
    if not isinstance(document, dict):
        raise PredicateError(f"{source} must hold a JSON object for --type {type_name}")
    return document


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class AttestOptions:
    predicate_type: str
    predicate: Any
    now: datetime
    replace: bool = False
    referrers_mode: str = REFERRERS_LEGACY


@dataclass(frozen=True)
class AttestResult:
    digest: str
    mode: str
    location: str  # the .att tag, or the referrer manifest digest
    manifest_digest: str
    layers: int  # layers of the .att manifest afterwards (1 for a referrer)
    replaced: int  # layers dropped by --replace
    statement: bytes
    envelope: bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "mode": self.mode,
            "manifest": self.manifest_digest,
            "statement": json.loads(self.statement),
        }
        if self.mode == REFERRERS_LEGACY:
            out.update({"attestationTag": self.location, "layers": self.layers, "replaced": self.replaced})
        return out


async def _predicate_of(repository: Repository, layer: dict[str, Any]) -> str | None:
    """The signed predicate type of an existing `.att` layer, read from its statement as cosign's replace
    does (the unsigned annotation may disagree); None if unreadable: such a layer is kept, never dropped on
    a guess."""
    digest = layer.get("digest")
    size = layer.get("size")
    if not isinstance(digest, str) or not isinstance(size, int):
        return None
    try:
        blob = await repository.get_blob(digest, max_size=min(max(size, 0), MAX_PREDICATE))
        statement = dsse.parse_statement(dsse.parse_envelope(blob).payload)
    except (SigscopeError, dsse.DSSEError):
        return None
    return dsse.predicate_type(statement)


async def _attest_legacy(
    repository: Repository, digest: str, envelope: bytes, options: AttestOptions
) -> tuple[str, str, int, int]:
    tag = attachment_tag(digest, ATTESTATION_TAG_SUFFIX)
    current = await _get_optional(repository, tag)
    existing, layers = _existing_layers(current)
    replaced = 0
    if options.replace:
        kept = []
        for layer in layers:
            if await _predicate_of(repository, layer) == options.predicate_type:
                replaced += 1
            else:
                kept.append(layer)
        layers = kept
    if len(layers) >= MAX_LAYERS:
        raise UsageError(f"{tag} already holds {len(layers)} attestations (cosign's limit is {MAX_LAYERS})")
    layers.append(
        {
            "mediaType": DSSE_MEDIA_TYPE,
            "size": len(envelope),
            "digest": digests.of(envelope),
            "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: options.predicate_type},
        }
    )
    manifest, config, media_type = assemble_manifest(existing, layers)
    await repository.put_blob(envelope, DSSE_MEDIA_TYPE)
    await repository.put_blob(config, OCI_CONFIG)
    descriptor = await repository.put_manifest(manifest, media_type, tag)
    return tag, descriptor.digest, len(layers), replaced


async def attest_image(
    repository: Repository, reference: str, subject_name: str, signer: Signer, options: AttestOptions
) -> AttestResult:
    """Resolve `reference`, sign a statement about its digest and attach it in `options.referrers_mode`."""
    if options.referrers_mode not in REFERRERS_MODES:
        raise UsageError(f"unknown referrers mode {options.referrers_mode!r}")
    if options.replace and options.referrers_mode != REFERRERS_LEGACY:
        raise UsageError("--replace applies to the legacy .att tag only, not to oci-1-1 referrers")
    descriptor = await repository.resolve(reference)
    algorithm, _, encoded = descriptor.digest.partition(":")
    statement = dsse.build_statement(
        [(subject_name, {algorithm: encoded})], options.predicate_type, options.predicate
    )
    envelope = dsse.build_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement, signer.sign)
    if options.referrers_mode == REFERRERS_OCI_1_1:
        blob = bundle.build_dsse_bundle(envelope, signer.public_key())
        annotations = bundle.referrer_annotations(
            bundle.CONTENT_DSSE_ENVELOPE, options.now, options.predicate_type
        )
        referrer = await push_bundle_referrer(repository, descriptor.digest, blob, annotations)
        return AttestResult(
            descriptor.digest, options.referrers_mode, referrer, referrer, 1, 0, statement, blob
        )
    envelope_bytes = envelope.go_json()
    tag, manifest_digest, layers, replaced = await _attest_legacy(
        repository, descriptor.digest, envelope_bytes, options
    )
    return AttestResult(
        descriptor.digest, REFERRERS_LEGACY, tag, manifest_digest, layers, replaced, statement, envelope_bytes
    )


# ---------------------------------------------------------------- verifying

VERIFY_CHECKS = ("dsse-signature", "payload-type", "statement", "subject-digest")
# Discovery checks this module recomputes under its own names.
_RECOMPUTED = frozenset({"payload", "dsse-subject", "trusted-key", "payload-digest"})


def is_attestation(sig: Signature, wanted_type: str | None) -> bool:
    """`.att` layers and DSSE bundles; a cosign v3 *signature* bundle counts only when asked for by type."""
    if sig.format is SignatureFormat.COSIGN_ATTESTATION:
        return True
    if sig.format is not SignatureFormat.SIGSTORE_BUNDLE or sig.claims.get("content") == "message-signature":
        return False
    return sig.claims.get("predicateType") != bundle.COSIGN_SIGN_PREDICATE or wanted_type == (
        bundle.COSIGN_SIGN_PREDICATE
    )


def envelope_of(sig: Signature) -> dsse.Envelope:
    """The DSSE envelope an attestation carries; raises DSSEError."""
    if sig.format is SignatureFormat.COSIGN_ATTESTATION:
        raw = sig.evidence.get("envelope")
        if raw is None:
            raise dsse.DSSEError("no DSSE envelope was read")
        return dsse.parse_envelope(raw)
    raw = sig.evidence.get("bundle")
    if raw is None:
        raise dsse.DSSEError("no bundle was read")
    try:
        document = gojson.read(raw, "the bundle")
    except ValueError as exc:
        raise dsse.DSSEError(str(exc)) from None
    holder = document.get("dsseEnvelope") if isinstance(document, dict) else None
    if not isinstance(holder, dict):
        raise dsse.DSSEError("the bundle carries no dsseEnvelope")
    return dsse.parse_envelope(holder)


@dataclass
class JudgedAttestation:
    signature: Signature
    checks: list[Check]
    satisfied: bool
    reason: str
    statement: dict[str, Any] | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": str(self.signature.format),
            "location": self.signature.location,
            "satisfied": self.satisfied,
            "checks": [c.to_json() for c in self.checks],
            "statement": self.statement,
        }
        if self.key:
            out["key"] = self.key
        if not self.satisfied:
            out["reason"] = self.reason
        return out


def _signature_check(envelope: dsse.Envelope, sig: Signature, keys: Sequence[PublicKeyTypes]) -> Check:
    if not envelope.signatures:
        return Check.failed("dsse-signature", "the envelope carries no signature")
    if sig.format is SignatureFormat.SIGSTORE_BUNDLE and len(envelope.signatures) != 1:
        return Check.failed(
            "dsse-signature",
            f"a bundle's envelope must carry one signature, found {len(envelope.signatures)}",
        )
    pae = envelope.pae()
    for key in keys:
        if any(certs.verify_with_key(key, raw, pae) for _, raw in envelope.signatures):
            info = certs.public_key_info(key)
            return Check.passed(
                "dsse-signature", f"PAE signed by supplied {info.key_type} key sha256:{info.sha256}"
            )
    return Check.failed(
        "dsse-signature",
        f"the PAE signature does not verify under any of the {len(keys)} supplied key(s) "
        "(wrong key or tampered envelope)",
    )


def judge_attestation(
    sig: Signature, digest: str, keys: Sequence[PublicKeyTypes], predicate_type: str | None
) -> JudgedAttestation:
    checks: list[Check] = []
    statement: dict[str, Any] | None = None
    try:
        envelope: dsse.Envelope | None = envelope_of(sig)
    except dsse.DSSEError as exc:
        envelope = None
        checks.append(Check.failed("envelope", str(exc)))
    if envelope is not None:
        checks.append(_signature_check(envelope, sig, keys))
        if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
            checks.append(
                Check.failed(
                    "payload-type",
                    f"payloadType {envelope.payload_type!r} is not {dsse.IN_TOTO_PAYLOAD_TYPE}",
                )
            )
        else:
            checks.append(Check.passed("payload-type", dsse.IN_TOTO_PAYLOAD_TYPE))
            try:
                statement = dsse.parse_statement(envelope.payload)
            except dsse.DSSEError as exc:
                checks.append(Check.failed("statement", str(exc)))
    if statement is not None:
        found_type = dsse.predicate_type(statement)
        checks.append(
            Check.passed("statement", f"{dsse.statement_type(statement)}, predicateType {found_type}")
        )
        subjects = dsse.statement_subjects(statement)
        match = dsse.matching_subject(subjects, digest)
        if match is not None:
            checks.append(Check.passed("subject-digest", f"statement names {match}"))
        else:
            checks.append(
                Check.failed(
                    "subject-digest",
                    f"attestation subject mismatch: no subject names {digest}; "
                    f"subjects: {dsse.describe_subjects(subjects)}",
                )
            )
        if predicate_type is None:
            checks.append(Check.skipped("predicate-type", f"{found_type} (no --type required)"))
        elif found_type == predicate_type:
            checks.append(Check.passed("predicate-type", found_type or ""))
        else:
            checks.append(
                Check.failed("predicate-type", f"predicateType {found_type}, required {predicate_type}")
            )
    else:
        for name in ("statement", "subject-digest", "predicate-type"):
            if not any(c.name == name for c in checks):
                checks.append(Check.skipped(name, "no in-toto statement to read"))
    # What discovery found wrong beyond these (a referrer for another subject, a layer annotation that
    # contradicts the signed predicate type, a certificate whose key did not sign) still counts against it.
    for check in sig.checks:
        if check.outcome is not Outcome.FAILED or check.name in _RECOMPUTED:
            continue
        renamed = {"predicate-type": "predicate-annotation", "signature": "certificate-signature"}
        checks.append(Check.failed(renamed.get(check.name, check.name), check.detail))
    if sig.error:
        checks.append(Check.failed("format", sig.error))

    failed = [c for c in checks if c.outcome is Outcome.FAILED]
    required = [c for c in checks if c.name in VERIFY_CHECKS]
    satisfied = (
        not failed
        and len(required) == len(VERIFY_CHECKS)
        and all(c.outcome is Outcome.PASSED for c in required)
    )
    key = None
    if satisfied:
        key = next(c.detail.rsplit(" ", 1)[-1] for c in checks if c.name == "dsse-signature")
    reason = "" if satisfied else (f"{failed[0].name}: {failed[0].detail}" if failed else "not satisfied")
    return JudgedAttestation(sig, checks, satisfied, reason, statement, key)


def judge_attestation_by(
    sig: Signature,
    digest: str,
    trust: TrustSet,
    scope: str | None,
    now: datetime,
    predicate_type: str | None,
) -> JudgedAttestation:
    """`sig` judged as signed by `trust`: its keys verify the PAE, or (certificate trust) the certificate that
    signed the envelope passes the certificate checks a signature gets (trust/apply.py), and its key is then
    the one the PAE must verify under."""
    if trust.certificates is None:
        return judge_attestation(sig, digest, trust.keys, predicate_type)
    from sigscope.trust.apply import apply_trust, fresh_copy
    from sigscope.trust.identity import leaf_certificate

    judged = apply_trust(fresh_copy(sig), TrustSet(certificates=trust.certificates), scope, now)
    leaf = leaf_certificate(judged)
    vouched = leaf is not None and judged.status is Status.VERIFIED
    result = judge_attestation(
        judged, digest, [leaf.public_key()] if vouched and leaf else [], predicate_type
    )
    if not vouched:
        # What the certificate failed says why, not the PAE check that had no key to verify with
        failed = [c for c in judged.checks if c.outcome is Outcome.FAILED]
        # an envelope already invalid (a statement about another image) got no trust checks: say why
        refused = [c for c in failed if c.name in TRUST_CHECKS] or failed
        first = refused[0] if refused else Check.failed("certificate", "no certificate the trust vouches for")
        if leaf is None:
            first = Check.failed("certificate", "the attestation carries no certificate for the trust")
        result.checks = [first if c.name == "dsse-signature" else c for c in result.checks if c is not first]
        result.satisfied, result.reason = False, f"{first.name}: {first.detail}"
    elif result.satisfied:
        result.key = judged.claims.get("verifiedIdentity") or result.key
    return result


@dataclass
class AttestationVerdict:
    image: str
    digest: str
    predicate_type: str | None
    attestations: list[JudgedAttestation] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return any(a.satisfied for a in self.attestations)

    @property
    def reason(self) -> str:
        if self.verified:
            return ""
        if not self.attestations:
            return "no attestations found"
        return "no attestation satisfies the checks"

    @property
    def summary(self) -> str:
        """The one line that is the result: `Verified 1 of 2 attestations`, or `Not verified: <reason>`."""
        if not self.verified:
            total = len(self.attestations)
            return f"Not verified: {self.reason}" + (f" (0 of {total} attestations)" if total else "")
        good = sum(a.satisfied for a in self.attestations)
        return f"Verified {good} of {len(self.attestations)} attestations"

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "verified": self.verified,
            "predicateType": self.predicate_type,
            "statements": [a.statement for a in self.attestations if a.satisfied],
            "attestations": [a.to_json() for a in self.attestations],
        } | ({} if self.verified else {"reason": self.reason})


def verify_attestations(
    image: str,
    digest: str,
    signatures: Sequence[Signature],
    keys: Sequence[PublicKeyTypes],
    predicate_type: str | None = None,
) -> AttestationVerdict:
    """Judge every attestation found for `digest` against the supplied keys (and `--type`)."""
    if not keys:
        raise UsageError("verifying attestations needs at least one --key")
    judged = [
        judge_attestation(s, digest, keys, predicate_type)
        for s in signatures
        if is_attestation(s, predicate_type)
    ]
    return AttestationVerdict(image, digest, predicate_type, judged)
