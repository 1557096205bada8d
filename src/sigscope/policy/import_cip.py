"""A Sigstore policy-controller ClusterImagePolicy (policy.sigstore.dev v1beta1, v1alpha1) as a sigscope rule.

policy-controller admits an image when, in every ClusterImagePolicy whose globs match it, at least one
authority is satisfied: one rule with `threshold: 1`. An authority with `attestations` is satisfied by
those attestations alone (all of them), not by a signature on the image: one attestation is a sigscope
`attestation` authority whose signer is inline in `by` (so it is not also counted as a signature); several
are `required` attestation authorities, which only the policy's sole authority can say exactly. An
attestation `policy` (CUE or Rego) is refused (see docs/policy-import.md).
"""

from __future__ import annotations

from typing import Any

from sigscope.policy.import_common import Candidate, Fields, add_images, identity, pem_keys, predicate_type
from sigscope.policy.import_globs import cip_glob

__all__ = ["API_VERSIONS", "KIND", "translate_cip"]

API_VERSIONS = ("policy.sigstore.dev/v1beta1", "policy.sigstore.dev/v1alpha1")
KIND = "ClusterImagePolicy"
_MODES = {"enforce": "enforce", "warn": "warn"}
_STATIC = {"pass": "allow", "fail": "deny"}


def translate_cip(doc: Fields, name: str, trusted_root: str | None) -> Candidate:
    """The rule for one ClusterImagePolicy (`doc` is the whole object, `name` its metadata.name)."""
    candidate = doc.candidate
    candidate.rule["name"] = name
    spec = doc.sub("spec")
    if spec is None or not spec.ok:
        if spec is None:
            candidate.refuse(doc.at("spec"), "required")
        return candidate
    spec.refuse_present("policy", "a policy over the authorities (CUE or Rego) has no sigscope equivalent")
    spec.refuse_present("match", "matching by resource kind or label has no sigscope equivalent")
    spec.known("images", "authorities", "mode")
    for path, image in spec.items("images", required=True):
        pattern = Fields(image, path, candidate)
        if pattern.ok:
            pattern.refuse_present(
                "regex", "regular expressions over image names have no sigscope equivalent"
            )
            pattern.known("glob")
            glob = pattern.text("glob", required=True)
            if glob is not None:
                add_images(candidate, pattern.at("glob"), glob, cip_glob)
    mode = spec.text("mode") or "enforce"
    if mode not in _MODES:
        candidate.refuse(spec.at("mode"), f"{mode!r} is neither enforce nor warn")
    candidate.rule["mode"] = _MODES.get(mode, "enforce")
    authorities = list(spec.items("authorities", required=True))
    statics = [a for a in authorities if isinstance(a[1], dict) and "static" in a[1]]
    if statics:
        if len(authorities) > 1:
            candidate.refuse(statics[0][0], "a static authority must be the policy's only authority")
            return candidate
        _static(Fields(statics[0][1], statics[0][0], candidate))
        return candidate
    out: list[dict[str, Any]] = []
    for index, (path, value) in enumerate(authorities):
        authority = Fields(value, path, candidate)
        if authority.ok:
            out.extend(_authority(authority, index, trusted_root, alone=len(authorities) == 1))
    if not all(a.get("required") for a in out):
        candidate.rule["threshold"] = 1
    candidate.rule["authorities"] = out
    names = [a["name"] for a in out]
    if len(set(names)) != len(names):
        candidate.refuse(spec.at("authorities"), "two authorities have the same name")
    return candidate


def _static(authority: Fields) -> None:
    authority.known("static", "name")
    static = authority.sub("static")
    if static is None or not static.ok:
        return
    static.known("action", ignored=("message",))
    action = static.text("action", required=True)
    if action is not None and action not in _STATIC:
        static.candidate.refuse(static.at("action"), f"{action!r} is neither pass nor fail")
        return
    if action is not None:
        static.candidate.rule["static"] = _STATIC[action]


def _authority(authority: Fields, index: int, trusted_root: str | None, alone: bool) -> list[dict[str, Any]]:
    authority.refuse_present(
        "rfc3161timestamp", "RFC 3161 timestamp authorities have no sigscope equivalent here"
    )
    authority.known("name", "key", "keyless", "ctlog", "source", "signatureFormat", "attestations")
    name = authority.text("name") or f"authority-{index}"
    for path, value in authority.items("source"):
        source = Fields(value, path, authority.candidate)
        if source.ok:
            source.known(ignored=("signaturePullSecrets",))
    fmt = authority.text("signatureFormat")
    if fmt not in (None, "legacy", "bundle"):
        authority.candidate.refuse(authority.at("signatureFormat"), f"{fmt!r} is neither legacy nor bundle")
    key = authority.sub("key")
    keyless = authority.sub("keyless")
    if (key is None) == (keyless is None):
        authority.candidate.refuse(authority.path, "needs exactly one of key, keyless and static")
        return []
    signer: dict[str, Any] | None
    if key is not None:
        signer = next(({"key": {"pem": pem}} for pem in _key(key)), None)
    else:
        assert keyless is not None
        translated = _keyless(keyless, trusted_root)
        signer = {"keyless": translated} if translated is not None else None
    if signer is None:
        return []
    if "attestations" in authority.data:
        return _attestations(authority, name, signer, alone)
    return [{"name": name, **signer}]


def _attestations(authority: Fields, name: str, signer: dict[str, Any], alone: bool) -> list[dict[str, Any]]:
    """Every attestation must verify with the authority's signer (its signature on the image is not asked)."""
    candidate = authority.candidate
    listed = list(authority.items("attestations", required=True))
    if len(listed) > 1 and not alone:
        candidate.refuse(
            authority.at("attestations"),
            "several attestations in one of several authorities (all of these, or another authority) "
            "have no sigscope equivalent",
        )
        return []
    out: list[dict[str, Any]] = []
    for index, (path, value) in enumerate(listed):
        attestation = Fields(value, path, candidate)
        if not attestation.ok:
            continue
        attestation.refuse_present(
            "policy", "a policy over the attestation (CUE or Rego) has no sigscope equivalent"
        )
        attestation.known("name", "predicateType")
        kind = predicate_type(attestation.text("predicateType"), attestation.at("predicateType"), candidate)
        if kind is None:
            continue
        entry: dict[str, Any] = {"name": name, "attestation": {"predicateType": kind, "by": [signer]}}
        if len(listed) > 1:
            entry["name"] = f"{name}-{attestation.text('name') or index}"
            entry["required"] = True
        out.append(entry)
    return out


def _key(key: Fields) -> list[str]:
    if not key.ok:
        return []
    key.refuse_present("secretRef", "a key in a Kubernetes Secret cannot be read offline; inline it as data")
    key.refuse_present("kms", "a key in a KMS cannot be read offline; inline it as data")
    key.known("data", "hashAlgorithm")
    algorithm = key.text("hashAlgorithm")
    if algorithm not in (None, "sha256"):
        key.candidate.refuse(key.at("hashAlgorithm"), f"{algorithm} has no sigscope equivalent (sha256 only)")
    data = key.text("data", required="secretRef" not in key.data and "kms" not in key.data)
    if data is None:
        return []
    keys = pem_keys(data, key.at("data"), key.candidate)
    if len(keys) > 1:
        key.candidate.refuse(key.at("data"), "policy-controller reads one key here, not several")
        return []
    return keys


def _keyless(keyless: Fields, trusted_root: str | None) -> dict[str, Any] | None:
    if not keyless.ok:
        return None
    keyless.refuse_present(
        "ca-cert",
        "an inline CA certificate has no place in a sigscope keyless authority (a trusted root file)",
    )
    keyless.known("url", "identities", "trustRootRef", "insecureIgnoreSCT")
    identities = []
    for path, value in keyless.items("identities", required=True):
        one = Fields(value, path, keyless.candidate)
        if one.ok:
            one.known("issuer", "subject", "issuerRegExp", "subjectRegExp")
            found = identity(one)
            if found is not None:
                identities.append(found)
    if trusted_root is None:
        keyless.candidate.refuse(
            keyless.path, "a keyless authority needs a trusted root file: give one with --trusted-root"
        )
        return None
    return {"trustedRoot": trusted_root, "identities": identities}
