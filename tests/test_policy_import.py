"""`sigscope policy import`: policy-controller ClusterImagePolicy and Kyverno verifyImages policies (written
for these tests from the peers' documented schemas) as sigscope policy documents, every refusal with its
path, hostile files, and the glob translation checked against models of how each peer matches references."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed.forge import make_pki, trusted_root_text

from sigscope.cli.policy_import import import_cmd
from sigscope.errors import UsageError
from sigscope.oci.reference import parse_reference
from sigscope.policy import parse_policy
from sigscope.policy.import_globs import GlobError, cip_glob, kyverno_pattern, may_overlap
from sigscope.policy.imports import MAX_POLICY_BYTES, ImportOptions, PolicyImportError, import_policy, render
from sigscope.policy.match import compile_pattern, safe_image_name

ROOT = "trusted_root.json"


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


KEY_A, KEY_B = _pem(), _pem()


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(*documents: Any) -> bytes:
    return yaml.dump_all(list(documents), Dumper=_NoAliases, sort_keys=False).encode()


def run(*documents: Any, **options: Any) -> dict[str, Any]:
    document = import_policy(dump(*documents), ImportOptions(**options)).document
    check_schema(document)
    return document


def refused(*documents: Any, **options: Any) -> list[str]:
    with pytest.raises(PolicyImportError) as caught:
        import_policy(dump(*documents), ImportOptions(**options))
    assert caught.value.exit_code == 2
    return caught.value.errors


# ---------------------------------------------------------------------------- the document's shape


@functools.cache
def _trusted_root() -> bytes:
    """A trusted_root.json for the keyless authorities imports name."""
    return trusted_root_text(make_pki().ca).encode()


def check_schema(document: dict[str, Any]) -> None:
    """The round trip: what import prints passes `policy check` (the engine's own load and validation)."""
    base = Path("/imported")
    files = {base / ROOT: _trusted_root()}
    for fmt in ("yaml", "json"):
        parse_policy(render(document, fmt).encode(), base=base, files=files)


# ------------------------------------------------------------------ globs against the peers' matching

DIGEST = "sha256:" + "ab" * 32
REFERENCES = [
    "ghcr.io/acme/app:v1",
    f"ghcr.io/acme/app@{DIGEST}",
    "ghcr.io/acme/app:latest",
    "ghcr.io/acme/application:v1",
    "ghcr.io/acme/app/sub:v1",
    f"ghcr.io/acme/x/y/z@{DIGEST}",
    "ghcr.io/acme:v1",
    "ghcr.io/other/app:v1",
    "ghcr.io.evil.example/acme/app:v1",
    "localhost:5000/acme/app:v1",
    "quay.io/acme/app:1abc",
    "index.docker.io/library/nginx:1.25",
    "docker.io/acme/app:v2",
    f"docker.io/acme/app@{DIGEST}",
]


def _normal(ref: str) -> tuple[str, str, str]:
    """(registry, repository, ':tag' or '@digest') as sigscope normalises it."""
    parsed = parse_reference(ref)
    suffix = f"@{parsed.digest}" if parsed.digest else f":{parsed.tag}"
    return parsed.registry, parsed.repository, suffix


def sigscope_matches(glob: str, ref: str) -> bool:
    """The policy engine's own matcher (sigscope.policy.match), as `policy test` and admission match."""
    name = safe_image_name(ref)
    assert name is not None, ref
    return compile_pattern(glob).matches(name)


def cip_matches(glob: str, ref: str) -> bool:
    """policy-controller (pkg/apis/glob): `**` is `.*`, `*` is `[^/]*`, matched against the reference with
    index.docker.io and its tag or digest."""
    if glob == "*":
        glob = "index.docker.io/library/*"
    elif glob == "*/*":
        glob = "index.docker.io/*/*"
    pattern = re.escape(glob).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    registry, repository, suffix = _normal(ref)
    registry = "index.docker.io" if registry == "docker.io" else registry
    return re.fullmatch(pattern, f"{registry}/{repository}{suffix}") is not None


def kyverno_matches(pattern: str, ref: str) -> bool:
    """Kyverno (ext/wildcard over ImageInfo.String()): `*` any run, `?` one character."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    registry, repository, suffix = _normal(ref)
    return re.fullmatch(regex, f"{registry}/{repository}{suffix}") is not None


CIP_GLOBS = [
    "**",
    "ghcr.io/**",
    "ghcr.io/acme/**",
    "ghcr.io/acme/*",
    "ghcr.io/acme/app*",
    "ghcr.io/acme/app**",
    "ghcr.io/acme/*:v1",
    "ghcr.io/acme/app:*",
    "ghcr.io/acme/app:**",
    "ghcr.io/acme/*:*",
    "ghcr.io/*/app:v1",
    "ghcr.io**",
    "index.docker.io/library/*",
    "index.docker.io/acme/*",
    "*",
    "*/*",
    "ghcr.io/acme/app:v1",
    "localhost:5000/**",
]
KYVERNO_PATTERNS = [
    "*",
    "ghcr.io/*",
    "ghcr.io/acme/*",
    "ghcr.io/acme/app*",
    "ghcr.io/acme/app:*",
    "ghcr.io/acme/*:v1",
    "ghcr.io/acme/*:*",
    "ghcr.io/acme/app:v1",
    "docker.io/library/nginx:*",
    "docker.io/acme/*",
    f"ghcr.io/acme/app@{DIGEST}",
    "localhost:5000/acme/*",
]


@pytest.mark.parametrize("glob", CIP_GLOBS)
def test_cip_globs_match_what_policy_controller_matches(glob: str) -> None:
    globs = cip_glob(glob)
    for ref in REFERENCES:
        assert any(sigscope_matches(g, ref) for g in globs) == cip_matches(glob, ref), (glob, globs, ref)


@pytest.mark.parametrize("pattern", KYVERNO_PATTERNS)
def test_kyverno_patterns_match_what_kyverno_matches(pattern: str) -> None:
    globs = kyverno_pattern(pattern)
    for ref in REFERENCES:
        assert any(sigscope_matches(g, ref) for g in globs) == kyverno_matches(pattern, ref), (
            pattern,
            globs,
            ref,
        )


def test_glob_translations_read_as_expected() -> None:
    assert kyverno_pattern("ghcr.io/acme/*") == ["ghcr.io/acme/**"]  # Kyverno's `*` crosses `/`
    assert cip_glob("ghcr.io/acme/*") == ["ghcr.io/acme/*"]
    assert cip_glob("index.docker.io/library/*") == ["docker.io/library/*"]
    assert cip_glob("ghcr.io/acme/app") == ["ghcr.io/acme/app:latest"]
    assert cip_glob("ghcr.io/acme/app**") == ["ghcr.io/acme/app*", "ghcr.io/acme/app*/**"]
    assert kyverno_pattern("ghcr.io/acme/*:*") == ["ghcr.io/acme/**"]


@pytest.mark.parametrize(
    ("translate", "pattern", "why"),
    [
        (cip_glob, "ghcr.io/**/app", "only at the end"),
        (cip_glob, "ghcr.io/a*b", "before the end of the last segment"),
        (cip_glob, "ghcr.io/acme/*:1*", "also match some digests"),
        (cip_glob, "ghcr.io/[a-z]*", "not a policy-controller glob"),
        (kyverno_pattern, "ghcr.io/acme/app?", "`?`"),
        (kyverno_pattern, "ghcr.io/acme/app", "matches no image"),
        (kyverno_pattern, "nginx:*", "names no registry"),
        (kyverno_pattern, "ghcr.io/*/app:*", "crosses `/`"),
        (kyverno_pattern, "ghcr.io/acme/app@sha256:*", "whole digest"),
    ],
)
def test_untranslatable_patterns(translate: Any, pattern: str, why: str) -> None:
    with pytest.raises(GlobError, match=re.escape(why)):
        translate(pattern)


def test_overlap_is_found_exactly() -> None:
    pairs = [(a, b) for a in ["**", *CIP_GLOBS[1:12]] for b in KYVERNO_PATTERNS[1:8]]
    for a, b in pairs:
        for ga in cip_glob(a):
            for gb in kyverno_pattern(b):
                if any(sigscope_matches(ga, r) and sigscope_matches(gb, r) for r in REFERENCES):
                    assert may_overlap(ga, gb), (ga, gb)
    assert not may_overlap("ghcr.io/acme/*", "ghcr.io/acme/*/**")  # depth 1 against depth 2 and more
    assert not may_overlap("ghcr.io/acme/app:v1", "ghcr.io/acme/app:v2")
    assert not may_overlap("ghcr.io/acme/**", "ghcr.io/acme:*")
    assert may_overlap("ghcr.io/acme/**", "ghcr.io/*/app")


# ---------------------------------------------------------------------------- policy-controller


def cip(name: str = "prod", **spec: Any) -> dict[str, Any]:
    body = {"images": [{"glob": "ghcr.io/acme/**"}], "authorities": [{"key": {"data": KEY_A}}], **spec}
    return {
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": body,
    }


def test_cip_key_keyless_and_mode() -> None:
    keyless = {
        "name": "ci",
        "keyless": {
            "url": "https://fulcio.sigstore.dev",
            "identities": [
                {
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subjectRegExp": "^https://github.com/acme/",
                }
            ],
        },
        "ctlog": {"url": "https://rekor.sigstore.dev"},
    }
    document = run(
        cip(authorities=[{"name": "release", "key": {"data": KEY_A}}, keyless], mode="warn"),
        trusted_root=ROOT,
    )
    assert document["unmatched"] == "deny"
    (rule,) = document["rules"]
    assert rule == {
        "name": "prod",
        "images": ["ghcr.io/acme/**"],
        "mode": "warn",
        "threshold": 1,
        "authorities": [
            {"name": "release", "key": {"pem": KEY_A}},
            {"name": "ci", "keyless": {"trustedRoot": ROOT, "identities": keyless["keyless"]["identities"]}},  # type: ignore[index]
        ],
    }
    v1alpha1 = cip(authorities=[{"key": {"data": KEY_A}}]) | {"apiVersion": "policy.sigstore.dev/v1alpha1"}
    assert run(v1alpha1, no_match="allow")["unmatched"] == "allow"
    assert run(v1alpha1)["rules"][0]["authorities"][0]["name"] == "authority-0"


def test_cip_attestations() -> None:
    """An authority with attestations is satisfied by them alone, signed by its key: the key is inline in
    `by` (not an image signer); several attestations of the policy's only authority are each required."""
    pem = {"key": {"pem": KEY_A}}
    authority = {"name": "a", "key": {"data": KEY_A}}
    one = run(cip(authorities=[{**authority, "attestations": [{"predicateType": "slsaprovenance1"}]}]))
    (rule,) = one["rules"]
    assert rule["threshold"] == 1
    assert rule["authorities"] == [
        {"name": "a", "attestation": {"predicateType": "https://slsa.dev/provenance/v1", "by": [pem]}}
    ]
    two = [{"name": "p", "predicateType": "cyclonedx"}, {"name": "v", "predicateType": "vuln"}]
    both = run(cip(authorities=[{**authority, "attestations": two}]))
    (rule,) = both["rules"]
    assert "threshold" not in rule
    assert [(a["name"], a["required"], a["attestation"]["by"]) for a in rule["authorities"]] == [
        ("a-p", True, [pem]),
        ("a-v", True, [pem]),
    ]


def test_kyverno_attestations_without_attestors() -> None:
    attestation = {"type": "cyclonedx", "attestors": [{"entries": [keys(KEY_A, KEY_B)], "count": 1}]}
    document = run(kyverno(verify(attestors=[], attestations=[attestation])))
    (rule,) = document["rules"]
    assert "threshold" not in rule
    (check,) = rule["authorities"]
    assert check["required"] is True and len(check["attestation"]["by"]) == 2  # either key signs it


def test_cip_static() -> None:
    document = run(
        cip(images=[{"glob": "quay.io/**"}], authorities=[{"static": {"action": "fail", "message": "no"}}])
    )
    assert document["rules"][0] == {
        "name": "prod",
        "images": ["quay.io/**"],
        "mode": "enforce",
        "static": "deny",
    }
    assert run(cip(authorities=[{"static": {"action": "pass"}}]))["rules"][0]["static"] == "allow"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {"authorities": [{"key": {"secretRef": {"name": "k"}}}]},
            "spec.authorities[0].key.secretRef: a key in a Kubernetes Secret",
        ),
        ({"authorities": [{"key": {"kms": "gcpkms://k"}}]}, "spec.authorities[0].key.kms: a key in a KMS"),
        (
            {"authorities": [{"key": {"data": KEY_A, "hashAlgorithm": "sha512"}}]},
            "spec.authorities[0].key.hashAlgorithm: sha512",
        ),
        (
            {"authorities": [{"key": {"data": "k8s://ns/secret"}}]},
            "spec.authorities[0].key.data: only inline PEM",
        ),
        (
            {"authorities": [{"keyless": {"identities": [{"issuer": "i", "subject": "s"}]}}]},
            "spec.authorities[0].keyless: a keyless authority needs a trusted root file",
        ),
        (
            {"authorities": [{"keyless": {"ca-cert": {"data": "x"}, "identities": [{"issuer": "i"}]}}]},
            "spec.authorities[0].keyless.ca-cert: an inline CA certificate",
        ),
        (
            {
                "authorities": [
                    {
                        "key": {"data": KEY_A},
                        "attestations": [{"name": "a", "predicateType": "spdx", "policy": {"type": "cue"}}],
                    }
                ]
            },
            "spec.authorities[0].attestations[0].policy: a policy over the attestation (CUE or Rego)",
        ),
        (
            {
                "authorities": [
                    {"key": {"data": KEY_A}},
                    {
                        "key": {"data": KEY_B},
                        "attestations": [{"predicateType": "spdx"}, {"predicateType": "vuln"}],
                    },
                ]
            },
            "spec.authorities[1].attestations: several attestations in one of several authorities",
        ),
        (
            {"policy": {"type": "cue", "data": "x"}},
            "spec.policy: a policy over the authorities (CUE or Rego) has no sigscope equivalent",
        ),
        ({"match": [{"resource": "pods"}]}, "spec.match: matching by resource kind"),
        ({"images": [{"regex": ".*"}]}, "spec.images[0].regex: regular expressions"),
        (
            {"images": [{"glob": "ghcr.io/**/app"}]},
            "spec.images[0].glob: 'ghcr.io/**/app': `**` only at the end",
        ),
        ({"mode": "audit"}, "spec.mode: 'audit' is neither enforce nor warn"),
        ({"surprise": 1}, "spec.surprise: unknown field"),
        (
            {"authorities": [{"static": {"action": "pass"}}, {"key": {"data": KEY_A}}]},
            "spec.authorities[0]: a static authority must be the policy's only authority",
        ),
        (
            {"authorities": [{"key": {"data": KEY_A}, "source": [{"oci": "other/repo"}]}]},
            "spec.authorities[0].source[0].oci: unknown field",
        ),
    ],
)
def test_cip_refusals_name_the_field(spec: dict[str, Any], error: str) -> None:
    errors = refused(cip(**spec))
    assert any(e.startswith(error) for e in errors), errors


def test_every_error_is_listed() -> None:
    errors = refused(cip(mode="audit", policy={"type": "rego"}, authorities=[{"key": {"kms": "x"}}]))
    assert len(errors) == 3, errors


# ---------------------------------------------------------------------------- Kyverno


def kyverno(
    verify: dict[str, Any], *, kind: str = "ClusterPolicy", api: str = "kyverno.io/v1", **spec: Any
) -> dict[str, Any]:
    rule = {"name": "verify", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "verifyImages": [verify]}
    rule.update(spec.pop("rule", {}))
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "check"},
        "spec": {"validationFailureAction": "Enforce", "rules": [rule], **spec},
    }


def keys(*pems: str, **extra: Any) -> dict[str, Any]:
    return {"keys": {"publicKeys": "".join(pems), **extra}}


def verify(**fields: Any) -> dict[str, Any]:
    return {"imageReferences": ["ghcr.io/acme/*"], "attestors": [{"entries": [keys(KEY_A)]}], **fields}


def condition(key: str, operator: str, value: Any) -> dict[str, Any]:
    return {"key": key, "operator": operator, "value": value}


def test_kyverno_keys_count_and_actions() -> None:
    document = run(kyverno(verify(attestors=[{"entries": [keys(KEY_A, KEY_B)]}]), failurePolicy="Ignore"))
    assert document["unmatched"] == "allow"
    (rule,) = document["rules"]
    assert (
        rule["name"] == "check.verify" and rule["images"] == ["ghcr.io/acme/**"] and rule["mode"] == "enforce"
    )
    # no count: every key of the bundle is an entry of its own, and all are needed
    assert rule["threshold"] == 2 and [a["key"]["pem"] for a in rule["authorities"]] == [KEY_A, KEY_B]
    assert rule["onError"] == "allow"
    one = run(kyverno(verify(attestors=[{"count": 1, "entries": [keys(KEY_A), keys(KEY_B)]}])))
    assert one["rules"][0]["threshold"] == 1
    audit = kyverno(verify(), api="kyverno.io/v2beta1")
    del audit["spec"]["validationFailureAction"]  # Kyverno's default is Audit
    assert run(audit)["rules"][0]["mode"] == "warn"
    assert run(kyverno(verify(failureAction="Audit")))["rules"][0]["mode"] == "warn"


def test_kyverno_keyless_attestations_conditions_and_exemptions() -> None:
    keyless = {
        "keyless": {
            "issuer": "https://token.actions.githubusercontent.com",
            "subjectRegExp": "^https://github.com/acme/",
            "rekor": {"url": "https://rekor.sigstore.dev"},
        }
    }
    attestation = {
        "type": "https://slsa.dev/provenance/v0.2",
        "attestors": [{"entries": [keyless]}],
        "conditions": [
            {
                "all": [
                    condition(
                        "{{ invocation.configSource.entryPoint }}", "Equals", ".github/workflows/release.yml"
                    ),
                    condition("{{ materials[0].uri }}", "AnyIn", ["git+https://github.com/acme/app"]),
                ],
                "any": [
                    condition("{{ builder.id }}", "Equals", "a"),
                    condition("{{builder.id}}", "In", ["b", "a"]),
                ],
            }
        ],
    }
    policy = kyverno(
        verify(
            attestors=[{"entries": [keyless]}],
            attestations=[attestation],
            skipImageReferences=["ghcr.io/acme/debug:*"],
            mutateDigest=False,
            verifyDigest=False,
        ),
        rule={"exclude": {"any": [{"resources": {"namespaces": ["kube-system", "tools"]}}]}},
    )
    document = run(policy, trusted_root=ROOT)
    assert document["exemptions"] == {
        "images": ["ghcr.io/acme/debug:*"],
        "namespaces": ["kube-system", "tools"],
    }
    (rule,) = document["rules"]
    assert rule["threshold"] == 1  # the image signer; the attestation is required besides it
    signer, check = rule["authorities"]
    assert signer["keyless"]["identities"] == [
        {"issuer": keyless["keyless"]["issuer"], "subjectRegExp": "^https://github.com/acme/"}
    ]
    assert check["required"] is True
    assert check["attestation"] == {
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "by": [{"keyless": signer["keyless"]}],  # inline: signing it is not signing the image
        "conditions": [
            {"path": "$.invocation.configSource.entryPoint", "equals": ".github/workflows/release.yml"},
            {"path": "$.materials[0].uri", "in": ["git+https://github.com/acme/app"]},
            {"path": "$.builder.id", "in": ["a", "b"]},
        ],
    }


ATT = "spec.rules[0].verifyImages[0]"


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        (
            kyverno(
                verify(
                    attestations=[
                        {
                            "type": "https://x.example/p",
                            "attestors": [{"entries": [keys(KEY_A)]}],
                            "conditions": [
                                {
                                    "all": [
                                        condition("{{ a }}", "Equals", 1),
                                        condition("{{ b }}", "NotEquals", 2),
                                    ]
                                }
                            ],
                        }
                    ]
                )
            ),
            f"{ATT}.attestations[0].conditions[0].all[1].operator: NotEquals has no sigscope equivalent",
        ),
        (
            kyverno(
                verify(
                    attestations=[
                        {
                            "type": "https://x.example/p",
                            "attestors": [{"entries": [keys(KEY_A)]}],
                            "conditions": [{"all": [condition("{{ length(subjects) }}", "Equals", 1)]}],
                        }
                    ]
                )
            ),
            f"{ATT}.attestations[0].conditions[0].all[0].key: only a {{{{ field.path }}}} variable",
        ),
        (
            kyverno(
                verify(
                    attestations=[
                        {
                            "type": "https://x.example/p",
                            "attestors": [{"entries": [keys(KEY_A)]}],
                            "conditions": [{"all": [condition("{{ a }}", "Equals", "1Gi")]}],
                        }
                    ]
                )
            ),
            f"{ATT}.attestations[0].conditions[0].all[0].value: only strings without wildcards",
        ),
        (
            kyverno(verify(attestors=[{"entries": [keys("k8s://ns/cosign")]}])),
            f"{ATT}.attestors[0].entries[0].keys.publicKeys: only inline PEM",
        ),
        (
            kyverno(verify(attestors=[{"entries": [{"keys": {"kms": "awskms://k"}}]}])),
            f"{ATT}.attestors[0].entries[0].keys.kms: a key in a KMS",
        ),
        (
            kyverno(verify(attestors=[{"entries": [{"certificates": {"cert": "x"}}]}])),
            f"{ATT}.attestors[0].entries[0].certificates: inline certificates",
        ),
        (
            kyverno(
                verify(
                    attestors=[
                        {"entries": [{"keyless": {"subject": "a@b", "issuer": "i", "rekor": {"url": "u"}}}]}
                    ]
                )
            ),
            f"{ATT}.attestors[0].entries[0].keyless: a keyless attestor needs a trusted root",
        ),
        (
            kyverno(verify(attestors=[{"entries": [keys(KEY_A, signatureAlgorithm="sha512")]}])),
            f"{ATT}.attestors[0].entries[0].keys.signatureAlgorithm: sha512",
        ),
        (kyverno(verify(type="Notary")), f"{ATT}.type: Notary verification has no sigscope equivalent"),
        (kyverno(verify(required=False)), f"{ATT}.required: false"),
        (kyverno(verify(mutateDigest=False)), f"{ATT}.verifyDigest: denying images named by tag"),
        (
            kyverno(verify(imageReferences=["ghcr.io/acme/app?"])),
            f"{ATT}.imageReferences[0]: 'ghcr.io/acme/app?': `?`",
        ),
        (
            kyverno(
                verify(
                    attestors=[
                        {"count": 1, "entries": [keys(KEY_A), keys(KEY_B)]},
                        {"entries": [keys(KEY_A)]},
                    ]
                )
            ),
            f"{ATT}.attestors[0].count: a count below all entries",
        ),
        (kyverno(verify(), kind="Policy"), "kind: a namespaced Policy applies in its own namespace only"),
        (
            kyverno(verify(), rule={"verifyImages": None, "validate": {"pattern": {}}}),
            "spec.rules[0].validate: a validate rule has no sigscope equivalent",
        ),
        (
            kyverno(
                verify(),
                rule={"match": {"any": [{"resources": {"kinds": ["Deployment"], "namespaces": ["prod"]}}]}},
            ),
            "spec.rules[0].match.any[0].resources.namespaces: unknown field",
        ),
        (
            kyverno(verify(), rule={"exclude": {"any": [{"resources": {"namespaces": ["kube-*"]}}]}}),
            "spec.rules[0].exclude.any[0].resources.namespaces[0]: only exact namespace names",
        ),
        (
            kyverno(verify(), validationFailureActionOverrides=[{"action": "Audit"}]),
            "spec.validationFailureActionOverrides: per-namespace actions",
        ),
        (
            kyverno(
                verify(
                    attestors=[
                        {"entries": [{"keyless": {"subject": "https://github.com/acme/*", "issuer": "i"}}]}
                    ]
                )
            ),
            f"{ATT}.attestors[0].entries[0].keyless.subject: a wildcard",
        ),
    ],
)
def test_kyverno_refusals_name_the_field(policy: dict[str, Any], error: str) -> None:
    errors = refused(policy)
    assert any(e.startswith(error) for e in errors), errors


# ---------------------------------------------------------------------------- several documents


def test_several_policies_become_several_rules() -> None:
    a = cip("prod", images=[{"glob": "ghcr.io/acme/**"}])
    b = cip("third-party", images=[{"glob": "quay.io/**"}], authorities=[{"static": {"action": "fail"}}])
    document = run(a, b)
    assert [rule["name"] for rule in document["rules"]] == ["prod", "third-party"]
    listed = {"apiVersion": "v1", "kind": "List", "items": [a, b]}
    assert run(listed) == document


def test_overlapping_and_mixed_policies_are_refused() -> None:
    errors = refused(
        cip("all", images=[{"glob": "ghcr.io/**"}]), cip("acme", images=[{"glob": "ghcr.io/acme/*"}])
    )
    assert errors == [
        "documents[1].spec.images[0].glob: matches images that rule 'all' (documents[0].spec.images[0].glob) "
        "matches too; policy-controller requires both, a sigscope rule applies alone (merge them by hand)"
    ]
    assert (
        "mixes policy-controller and Kyverno"
        in refused(cip(), kyverno(verify(imageReferences=["quay.io/*"])))[0]
    )
    assert any("is taken by" in e for e in refused(cip("x"), cip("x", images=[{"glob": "quay.io/**"}])))
    skip = kyverno(verify(skipImageReferences=["quay.io/acme/*"]))
    skip["spec"]["rules"].append({"name": "quay", "verifyImages": [verify(imageReferences=["quay.io/*"])]})
    assert any("also skips images that rule 'check.quay' checks" in e for e in refused(skip))


def test_allow_partial_drops_whole_rules_with_warnings() -> None:
    good = cip("good", images=[{"glob": "ghcr.io/**"}])
    bad = cip("bad", images=[{"glob": "quay.io/**"}], authorities=[{"key": {"kms": "x"}}])
    result = import_policy(dump(good, bad), ImportOptions(allow_partial=True))
    check_schema(result.document)
    assert [rule["name"] for rule in result.document["rules"]] == ["good"]
    assert result.warnings == [
        "documents[1].spec.authorities[0].key.kms: a key in a KMS cannot be read offline; inline it as data"
    ]
    with pytest.raises(PolicyImportError, match="cannot be imported"):
        import_policy(dump(bad), ImportOptions(allow_partial=True))


# ---------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"- a\n- b\n", "document: expected a mapping, not a list"),
        (b"just text\n", "document: expected a mapping, not a string"),
        (b"a: 1\na: 2\n", "duplicate key 'a' (line 2, column 1)"),
        (b"a: &x [1]\nb: *x\n", "anchors and aliases are refused"),
        (b"a: {<<: {b: 1}}\n", "merge keys"),
        (b"[" * 100 + b"]" * 100, "nesting deeper than 32"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "holds no policy"),
        (b"a: [1\n", "not valid YAML"),
        (b"{1: x}\n", "is not a string"),
        (b"---\n{}\n" * 300, "more than 256 documents"),
        (b"a: " + b"x" * MAX_POLICY_BYTES, "larger than"),
    ],
)
def test_hostile_files(data: bytes, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        import_policy(data, ImportOptions())
    assert caught.value.exit_code == 2
    if isinstance(caught.value, PolicyImportError):
        assert any(error in e for e in caught.value.errors), caught.value.errors
    else:
        assert error in caught.value.message


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (
            {"apiVersion": "policy.sigstore.dev/v1", "kind": "ClusterImagePolicy"},
            "kind: ClusterImagePolicy (policy.sigstore.dev/v1) is neither",
        ),
        (
            {"apiVersion": "kyverno.io/v1", "kind": "ValidatingPolicy"},
            "kind: ValidatingPolicy (kyverno.io/v1) is neither",
        ),
        (["a"], "document: expected a mapping, not a list"),
        (
            {
                "apiVersion": "policy.sigstore.dev/v1beta1",
                "kind": "ClusterImagePolicy",
                "metadata": {"name": "a\x1b[2J"},
                "spec": {},
            },
            "metadata.name: not a Kubernetes object name",
        ),
    ],
)
def test_wrong_objects(document: Any, error: str) -> None:
    errors = refused(document)
    assert any(error in e for e in errors), errors


# ---------------------------------------------------------------------------- the command


def test_command_yaml_json_and_output_file(tmp_path: Path) -> None:
    source = tmp_path / "cip.yaml"
    source.write_bytes(
        dump(cip(authorities=[{"keyless": {"identities": [{"issuer": "i", "subject": "s"}]}}]))
    )
    root = tmp_path / "trust" / "trusted_root.json"
    root.parent.mkdir()
    root.write_text("{}")
    runner = CliRunner()
    shown = runner.invoke(import_cmd, [str(source), "--trusted-root", str(root)])
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.stdout)["rules"][0]["authorities"][0]["keyless"]["trustedRoot"] == str(root)
    as_json = runner.invoke(import_cmd, [str(source), "--trusted-root", str(root), "-o", "json"])
    assert json.loads(as_json.stdout) == yaml.safe_load(shown.stdout)
    out = tmp_path / "out" / "policy.yaml"
    out.parent.mkdir()
    written = runner.invoke(import_cmd, [str(source), "--trusted-root", str(root), "--output-file", str(out)])
    assert written.exit_code == 0 and written.stdout == ""
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(shown.stdout)


def test_command_relative_trusted_root_follows_the_output_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cip.yaml").write_bytes(dump(cip(authorities=[{"keyless": {"identities": [{"issuer": "i"}]}}])))
    Path("trusted_root.json").write_text("{}")
    Path("policies").mkdir()
    result = CliRunner().invoke(
        import_cmd, ["cip.yaml", "--trusted-root", "trusted_root.json", "--output-file", "policies/p.yaml"]
    )
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(Path("policies/p.yaml").read_text())
    assert written["rules"][0]["authorities"][0]["keyless"]["trustedRoot"] == "../trusted_root.json"


def test_command_lists_every_error_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigscope.cli import main as entry

    source = tmp_path / "cip.yaml"
    source.write_bytes(dump(cip(mode="audit\x1b[31m", policy={"type": "cue"})))
    monkeypatch.setitem(entry.LazyGroup.lazy, "policy-import", "sigscope.cli.policy_import:import_cmd")
    with pytest.raises(SystemExit) as caught:
        entry.main(["policy-import", str(source)])
    assert caught.value.code == 2


def test_command_stderr(tmp_path: Path) -> None:
    source = tmp_path / "cip.yaml"
    source.write_bytes(dump(cip(mode="audit\x1b[31m", policy={"type": "cue"})))
    result = CliRunner().invoke(import_cmd, [str(source)])
    assert isinstance(result.exception, PolicyImportError) and result.exception.exit_code == 2
    lines = result.stderr.splitlines()
    assert (
        "sigscope: error: spec.policy: a policy over the authorities (CUE or Rego) has no sigscope equivalent"
        in lines
    )
    assert "sigscope: error: spec.mode: 'audit\\x1b[31m' is neither enforce nor warn" in lines
    assert "\x1b" not in result.stderr and result.stdout == ""
    missing = CliRunner().invoke(import_cmd, [str(tmp_path / "nope.yaml")])
    assert isinstance(missing.exception, UsageError) and "no such file" in missing.exception.message
