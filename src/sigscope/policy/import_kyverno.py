"""Kyverno ClusterPolicy `verifyImages` (kyverno.io/v1, v2beta1) as sigscope rules, one per entry.

Kyverno's meaning, kept here: an attestor set with no `count` needs every entry (each key of a
`publicKeys` bundle is an entry of its own), `count: N` needs N; several attestor sets are all needed;
every attestation must be present, signed by its attestors and satisfy its conditions; the policy's
`validationFailureAction` is Audit unless it says Enforce; `failurePolicy: Ignore` admits when Kyverno
cannot answer (sigscope's `onError: allow`).

Each attestation becomes `required` attestation authorities (they hold besides the attestors' threshold)
whose signers are inline in `by`, so signing an attestation never counts as signing the image. What sigscope
cannot say is refused with the field's path.
"""

from __future__ import annotations

import re
from typing import Any

from sigscope.policy.import_common import Candidate, Fields, add_images, identity, pem_keys, predicate_type
from sigscope.policy.import_globs import kyverno_pattern

__all__ = ["API_VERSIONS", "KINDS", "translate_kyverno"]

API_VERSIONS = ("kyverno.io/v1", "kyverno.io/v2beta1")
KINDS = ("ClusterPolicy", "Policy")

_ACTIONS = {"enforce": "enforce", "audit": "warn"}
_ON_ERROR = {"Fail": "deny", "Ignore": "allow"}
# Fields that change how Kyverno runs, not which images it admits.
_SPEC_IGNORED = (
    "background",
    "webhookTimeoutSeconds",
    "admission",
    "emitWarning",
    "schemaValidation",
    "mutateExistingOnPolicyUpdate",
    "generateExisting",
    "generateExistingOnPolicyUpdate",
    "useServerSideApply",
)
_DEPRECATED = ("image", "key", "roots", "subject", "issuer", "annotations", "additionalExtensions")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]{1,4}\])*)\s*\}\}")
# Strings Kyverno's Equals compares as quantities or durations (1Gi equals 1024Mi), or as wildcards.
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
_DURATION = re.compile(r"([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+")
_PLAIN = (
    "only strings without wildcards, variables, quantities or durations, numbers and booleans "
    "compare as sigscope's equals does"
)


def translate_kyverno(doc: Fields, name: str, trusted_root: str | None) -> list[Candidate]:
    """One candidate rule per verifyImages entry of a Kyverno policy (`doc` is the whole object)."""
    base = doc.candidate
    if doc.data.get("kind") == "Policy":
        base.refuse(
            doc.at("kind"),
            "a namespaced Policy applies in its own namespace only; sigscope rules apply in every namespace",
        )
    spec = doc.sub("spec")
    if spec is None or not spec.ok:
        if spec is None:
            base.refuse(doc.at("spec"), "required")
        return [base]
    spec.refuse_present(
        "validationFailureActionOverrides", "per-namespace actions have no sigscope equivalent"
    )
    spec.refuse_present("webhookConfiguration", "webhook match conditions have no sigscope equivalent")
    spec.known("rules", "validationFailureAction", "failurePolicy", "applyRules", ignored=_SPEC_IGNORED)
    action = spec.text("validationFailureAction") or "Audit"
    if action.lower() not in _ACTIONS:
        base.refuse(spec.at("validationFailureAction"), f"{action!r} is neither Enforce nor Audit")
    failure = spec.text("failurePolicy")
    if failure is not None and failure not in _ON_ERROR:
        base.refuse(spec.at("failurePolicy"), f"{failure!r} is neither Fail nor Ignore")
    out: list[Candidate] = []
    for rule_path, value in spec.items("rules", required=True):
        out.extend(
            _rule(Fields(value, rule_path, Candidate(base.source, rule_path)), name, action, trusted_root)
        )
    if spec.text("applyRules") == "One" and len(out) > 1:
        base.refuse(spec.at("applyRules"), "One (the first matching rule only) has no sigscope equivalent")
    if not out:
        return [base]
    for candidate in out:
        candidate.problems[:0] = base.problems
        if failure is not None and candidate.rule:
            candidate.rule["onError"] = _ON_ERROR.get(failure, "deny")
    return out


def _rule(rule: Fields, policy: str, action: str, trusted_root: str | None) -> list[Candidate]:
    candidate = rule.candidate
    if not rule.ok:
        return [candidate]
    for key in ("validate", "mutate", "generate"):
        rule.refuse_present(key, f"a {key} rule has no sigscope equivalent (only verifyImages)")
    for key in ("preconditions", "celPreconditions", "context", "imageExtractors"):
        rule.refuse_present(key, "has no sigscope equivalent")
    rule.known("name", "match", "exclude", "verifyImages", ignored=("skipBackgroundRequests",))
    rule_name = rule.text("name", required=True) or "rule"
    _match(rule.sub("match"), candidate)
    namespaces = _exclude(rule.sub("exclude"), candidate)
    entries = list(rule.items("verifyImages"))
    if not entries:
        if not candidate.problems:
            candidate.refuse(
                rule.at("verifyImages"), "a rule without verifyImages has no sigscope equivalent"
            )
        return [candidate]
    out = []
    for index, (path, value) in enumerate(entries):
        one = Candidate(candidate.source, path, problems=list(candidate.problems))
        one.rule["name"] = f"{policy}.{rule_name}" + (f".{index}" if len(entries) > 1 else "")
        one.namespaces = namespaces
        one.namespaces_path = rule.at("exclude") if namespaces else None
        _verify_images(Fields(value, path, one), action, trusted_root)
        out.append(one)
    return out


def _filters(block: Fields | None) -> list[Fields]:
    """The resource filters of a match/exclude block: `any`, `all` or the legacy direct form."""
    if block is None or not block.ok:
        return []
    if "resources" in block.data:
        block.known("resources")
        return [block]
    block.known("any", "all")
    filters = [Fields(v, p, block.candidate) for p, v in block.items("any")]
    every = [Fields(v, p, block.candidate) for p, v in block.items("all")]
    if len(every) > 1:
        block.candidate.refuse(block.at("all"), "more than one filter under all has no sigscope equivalent")
    return [f for f in (*filters, *every) if f.ok]


def _match(block: Fields | None, candidate: Candidate) -> None:
    for one in _filters(block):
        one.known("resources")
        resources = one.sub("resources")
        if resources is None or not resources.ok:
            continue
        resources.known("kinds")
        kinds = [v for _, v in resources.items("kinds")]
        if not any(isinstance(k, str) and k.split("/")[-1] in ("Pod", "*") for k in kinds):
            candidate.refuse(
                resources.at("kinds"), "a rule that does not check Pods has no sigscope equivalent"
            )


def _exclude(block: Fields | None, candidate: Candidate) -> frozenset[str]:
    names: set[str] = set()
    for one in _filters(block):
        one.known("resources")
        resources = one.sub("resources")
        if resources is None or not resources.ok:
            continue
        resources.known("namespaces")
        for path, value in resources.items("namespaces", required=True):
            if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
                candidate.refuse(path, "only exact namespace names have a sigscope equivalent")
            else:
                names.add(value)
    return frozenset(names)


def _verify_images(entry: Fields, action: str, trusted_root: str | None) -> None:
    candidate = entry.candidate
    if not entry.ok:
        return
    for key in _DEPRECATED:
        entry.refuse_present(key, "a deprecated form; write it under attestors")
    entry.refuse_present("repository", "signatures in another repository have no sigscope equivalent")
    entry.refuse_present("validate", "validate checks on verified images have no sigscope equivalent")
    entry.known(
        "imageReferences",
        "skipImageReferences",
        "type",
        "attestors",
        "attestations",
        "required",
        "mutateDigest",
        "verifyDigest",
        "failureAction",
        ignored=("useCache", "imageRegistryCredentials", "cosignOCI11"),
    )
    kind = entry.text("type") or "Cosign"
    if kind != "Cosign":
        candidate.refuse(
            entry.at("type"), f"{kind} verification has no sigscope equivalent here (Cosign only)"
        )
    for path, value in entry.items("imageReferences", required=True):
        add_images(candidate, path, value, kyverno_pattern)
    for path, value in entry.items("skipImageReferences"):
        skip = Candidate(candidate.source, path)
        add_images(skip, path, value, kyverno_pattern)
        candidate.problems.extend(skip.problems)
        candidate.skips.extend((glob, path) for glob in skip.rule.get("images", []))
    if not entry.boolean("required", True):
        candidate.refuse(entry.at("required"), "false (unverified images pass) has no sigscope equivalent")
    mutate = entry.boolean("mutateDigest", True)
    if entry.boolean("verifyDigest", True) and not mutate:
        candidate.refuse(
            entry.at("verifyDigest"),
            "denying images named by tag (mutateDigest is false) has no sigscope equivalent",
        )
    chosen = entry.text("failureAction") or action
    if chosen.lower() not in _ACTIONS:
        candidate.refuse(entry.at("failureAction"), f"{chosen!r} is neither Enforce nor Audit")
    candidate.rule["mode"] = _ACTIONS.get(chosen.lower(), "enforce")
    _authorities(entry, trusted_root)


class _Names:
    """Authority names unique within a rule: key-0, keyless-1, attestation-2, ..."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.count - 1}"


def _authorities(entry: Fields, trusted_root: str | None) -> None:
    candidate = entry.candidate
    names = _Names()
    signers: list[dict[str, Any]] = []
    threshold = 0
    sets = [_attestor_set(Fields(v, p, candidate), names, trusted_root) for p, v in entry.items("attestors")]
    for index, (found, needed) in enumerate(sets):
        signers.extend(found)
        threshold += needed
        if len(sets) > 1 and needed != len(found):
            candidate.refuse(
                f"{entry.at('attestors')}[{index}].count",
                "a count below all entries in one of several attestor sets has no sigscope equivalent",
            )
    attestations: list[dict[str, Any]] = []
    for path, value in entry.items("attestations"):
        attestations.extend(_attestation(Fields(value, path, candidate), names, trusted_root))
    if not signers and not attestations and not candidate.problems:
        candidate.refuse(entry.at("attestors"), "required: nothing says who must sign")
    if threshold:
        candidate.rule["threshold"] = threshold
    candidate.rule["authorities"] = signers + attestations


def _attestor_set(
    attestor_set: Fields, names: _Names, trusted_root: str | None
) -> tuple[list[dict[str, Any]], int]:
    """The authorities of one attestor set and how many of them Kyverno needs."""
    if not attestor_set.ok:
        return [], 0
    attestor_set.known("count", "entries")
    found: list[dict[str, Any]] = []
    for path, value in attestor_set.items("entries", required=True):
        found.extend(_entry(Fields(value, path, attestor_set.candidate), names, trusted_root))
    count = attestor_set.integer("count")
    if count is not None and count > len(found):
        attestor_set.candidate.refuse(
            attestor_set.at("count"), f"{count} is more than the {len(found)} entries"
        )
    return found, len(found) if not count else min(count, len(found))


def _entry(entry: Fields, names: _Names, trusted_root: str | None) -> list[dict[str, Any]]:
    candidate = entry.candidate
    if not entry.ok:
        return []
    entry.refuse_present("attestor", "nested attestor sets have no sigscope equivalent")
    entry.refuse_present(
        "certificates", "inline certificates have no sigscope equivalent (certificate roots are files)"
    )
    entry.refuse_present("annotations", "signature annotations have no sigscope equivalent")
    entry.refuse_present("repository", "signatures in another repository have no sigscope equivalent")
    entry.known("keys", "keyless")
    keys, keyless = entry.sub("keys"), entry.sub("keyless")
    if keys is not None and keys.ok:
        keys.refuse_present("kms", "a key in a KMS cannot be read offline; inline it as publicKeys")
        keys.refuse_present(
            "secret", "a key in a Kubernetes Secret cannot be read offline; inline it as publicKeys"
        )
        keys.known("publicKeys", "signatureAlgorithm", "rekor", "ctlog")
        algorithm = keys.text("signatureAlgorithm")
        if algorithm not in (None, "sha256"):
            candidate.refuse(
                keys.at("signatureAlgorithm"), f"{algorithm} has no sigscope equivalent (sha256 only)"
            )
        text = keys.text("publicKeys", required="kms" not in keys.data and "secret" not in keys.data)
        pems = pem_keys(text, keys.at("publicKeys"), candidate) if text is not None else []
        return [{"name": names("key"), "key": {"pem": pem}} for pem in pems]
    if keyless is not None and keyless.ok:
        keyless.refuse_present("additionalExtensions", "certificate extensions have no sigscope equivalent")
        keyless.known("issuer", "subject", "issuerRegExp", "subjectRegExp", "roots", "rekor", "ctlog")
        for key in ("issuer", "subject"):
            value = keyless.data.get(key)
            if isinstance(value, str) and ("*" in value or "?" in value):
                candidate.refuse(
                    keyless.at(key), "a wildcard here has no exact sigscope equivalent; use a RegExp"
                )
                return []
        found = identity(keyless)
        if trusted_root is None:
            candidate.refuse(
                keyless.path, "a keyless attestor needs a trusted root file: give one with --trusted-root"
            )
            return []
        if found is None:
            return []
        return [{"name": names("keyless"), "keyless": {"trustedRoot": trusted_root, "identities": [found]}}]
    if not candidate.problems:
        candidate.refuse(entry.path, "needs keys or keyless")
    return []


def _attestation(attestation: Fields, names: _Names, trusted_root: str | None) -> list[dict[str, Any]]:
    candidate = attestation.candidate
    if not attestation.ok:
        return []
    attestation.known("predicateType", "type", "attestors", "conditions", ignored=("name",))
    kinds = {k for k in (attestation.text("predicateType"), attestation.text("type")) if k}
    if len(kinds) > 1:
        candidate.refuse(attestation.at("type"), "differs from predicateType")
        return []
    kind = predicate_type(next(iter(kinds), None), attestation.at("type"), candidate)
    conditions = _conditions(attestation)
    out: list[dict[str, Any]] = []
    sets = list(attestation.items("attestors"))
    if not sets:
        candidate.refuse(attestation.at("attestors"), "required here: name who signs the attestation")
    throwaway = _Names()
    for path, value in sets:
        found, needed = _attestor_set(Fields(value, path, candidate), throwaway, trusted_root)
        by = [_body(one) for one in found]  # inline signers: they do not count as image signers
        if not by:
            continue
        if needed == len(found):  # every signer: one attestation authority each
            groups = [[one] for one in by]
        elif needed == 1:
            groups = [by]
        else:
            candidate.refuse(
                f"{path}.count", "a count between one and all entries has no sigscope equivalent here"
            )
            return []
        for group in groups:
            check: dict[str, Any] = {"predicateType": kind, "by": group}
            if conditions:
                check["conditions"] = conditions
            out.append({"name": names("attestation"), "required": True, "attestation": check})
    return out


def _body(authority: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in authority.items() if k != "name"}


def _conditions(attestation: Fields) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path, value in attestation.items("conditions"):
        block = Fields(value, path, attestation.candidate)
        if not block.ok:
            continue
        block.known("all", "any")
        for item_path, item in block.items("all"):
            one = _condition(Fields(item, item_path, attestation.candidate))
            if one is not None:
                out.append(one)
        anyof = [_condition(Fields(v, p, attestation.candidate)) for p, v in block.items("any")]
        if len(anyof) == 1 and anyof[0] is not None:
            out.append(anyof[0])
        elif len(anyof) > 1 and None not in anyof:
            merged = _any_as_in(anyof)  # type: ignore[arg-type]
            if merged is None:
                attestation.candidate.refuse(
                    block.at("any"), "alternatives other than one field's values have no sigscope equivalent"
                )
            else:
                out.append(merged)
    return out


def _any_as_in(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`any` of conditions on one path, each `equals` or `in`: one `in` over every value."""
    if len({c["path"] for c in conditions}) != 1:
        return None
    values: list[Any] = []
    for c in conditions:
        for value in [c["equals"]] if "equals" in c else c.get("in", []):
            if isinstance(value, (list, dict)):
                return None
            if value not in values:
                values.append(value)
    return {"path": conditions[0]["path"], "in": values}


def _condition(condition: Fields) -> dict[str, Any] | None:
    candidate = condition.candidate
    if not condition.ok:
        return None
    condition.known("key", "operator", "value", ignored=("message",))
    key = condition.data.get("key")
    match = _VARIABLE.fullmatch(key.strip()) if isinstance(key, str) else None
    if match is None:
        candidate.refuse(
            condition.at("key"),
            "only a {{ field.path }} variable has a sigscope equivalent "
            "(JMESPath beyond the supported subset)",
        )
        return None
    path = "$." + match.group(1)
    operator = condition.text("operator", required=True)
    value = condition.data.get("value")
    if operator in ("Equals", "Equal"):
        if not _plain_scalar(value):
            candidate.refuse(condition.at("value"), _PLAIN)
            return None
        return {"path": path, "equals": value}
    if operator in ("In", "AnyIn"):
        if not isinstance(value, list) or not value or not all(_plain_scalar(v) for v in value):
            candidate.refuse(condition.at("value"), f"a non-empty list of values: {_PLAIN}")
            return None
        return {"path": path, "in": list(value)}
    if operator is not None:
        candidate.refuse(condition.at("operator"), f"{operator} has no sigscope equivalent")
    return None


def _plain_scalar(value: Any) -> bool:
    """A value Kyverno's Equals compares as sigscope's `equals` does: no wildcard, quantity, duration or
    variable in a string."""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value == value):
        return True
    if not isinstance(value, str) or len(value) > 4096:
        return False
    return not (
        "*" in value
        or "?" in value
        or "{{" in value
        or _QUANTITY.fullmatch(value)
        or _DURATION.fullmatch(value)
    )
