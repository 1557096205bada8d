# ruff: noqa: E501  (the table of invalid documents reads best one document a line)
"""The policy document and engine (sigscope.policy): each authority kind against real signatures on the real
registry, thresholds across kinds, warn mode, attestation conditions, exemptions and static rules (a registry
that fails every request proves they never ask), most-specific matching and ambiguity, every validation
error, and a property: verify's flags and the equivalent document always decide alike.

The signed images are made once per module (`bed`); most tests decide in-process through the same
`decide()` the CLI calls, and the CLI's exit codes are checked once each.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testbed import RegistryHandle
from testbed.cli import run_sigscope as run
from testbed.forge import (
    RELEASE_EMAIL,
    CodePKI,
    make_code_pki,
    pem,
    push_cosign_signature,
    push_image,
    trusted_root_text,
)
from testbed.proxy import RegistryProxy

from sigscope.keys import generate, write_key_pair
from sigscope.model import Signature
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.policy import Decision, LoadedPolicy, PolicyError, load_policy, parse_policy
from sigscope.policy.decide import decide
from sigscope.policy.engine import context, judge_rule
from sigscope.policy.flags import flags_rule
from sigscope.scan.registry import ScanOptions
from sigscope.trust.apply import TrustSet
from sigscope.trust.certs import utcnow
from sigscope.trust.identity import CertificateTrust, IdentityPolicy
from sigscope.trust.keys import load_public_key
from sigscope.verify import Policy as SignaturePolicy

PASSWORD = "policy-test-pw"
CYCLONEDX = "https://cyclonedx.org/bom"
HEAD = "apiVersion: sigscope/v1\nkind: Policy\n"


@dataclass
class Bed:
    host: str
    dir: Path
    images: dict[str, str]  # name -> reference (host/repo:tag)
    pki: CodePKI

    def ref(self, name: str) -> str:
        return self.images[name]


def options() -> RegistryOptions:
    return RegistryOptions(insecure=True, use_auth_files=False)


def ok(*args: str) -> None:
    result = run(*args, password=PASSWORD)
    assert result.returncode == 0, result.stderr


async def _push_all(host: str, pki: CodePKI) -> dict[str, str]:
    images: dict[str, str] = {}
    async with RegistryClient(host, options()) as client:
        for name in ("keyed", "two", "cert", "unsigned", "notary", "attested", "certatt"):
            repo = f"policy/{name}"
            descriptor = await push_image(client, repo, "1.0", seed=f"policy/{name}")
            images[name] = f"{host}/{repo}:1.0"
            if name == "cert":
                await push_cosign_signature(
                    client,
                    repo,
                    descriptor.digest,
                    descriptor.digest,
                    pki.release.key,
                    cert=pem(pki.release.cert),
                    chain=pem(pki.intermediate, pki.root),
                )
    return images


@pytest.fixture(scope="module")
def bed(registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory) -> Bed:
    directory = tmp_path_factory.mktemp("policy-bed")
    pki = make_code_pki()
    images = asyncio.run(_push_all(registry.host, pki))
    for name in ("a", "b"):
        write_key_pair(directory / name, generate("ecdsa-p256"), PASSWORD)
    (directory / "root.pem").write_text(pem(pki.root))
    (directory / "other-root.pem").write_text(pem(pki.other_root))
    insecure = "--insecure"
    ok("sign", images["keyed"], insecure, "--key", str(directory / "a.key"))
    for key in ("a", "b"):
        ok("sign", images["two"], insecure, "--key", str(directory / f"{key}.key"))
    ok("sign", images["cert"], insecure, "--key", str(directory / "a.key"))
    # a Notary Project signature from a test CA, with notation's trust policy and store beside it
    ok("cert", "generate-test", "policy.test", "--output-dir", str(directory / "certs"),
       "--notation-config", str(directory / "notation"))  # fmt: skip
    ok("sign", images["notary"], insecure, "--format", "notation",
       "--key", str(directory / "certs" / "policy.test.key"), "--cert", str(directory / "certs" / "policy.test.crt"))  # fmt: skip
    ok("sign", images["attested"], insecure, "--key", str(directory / "a.key"))
    predicate = directory / "bom.json"
    predicate.write_text(json.dumps({"bomFormat": "CycloneDX", "metadata": {"component": {"name": "api"}}}))
    ok("attest", images["attested"], insecure, "--key", str(directory / "a.key"),
       "--predicate", str(predicate), "--type", "cyclonedx")  # fmt: skip
    return Bed(registry.host, directory, images, pki)


def write_policy(bed: Bed, name: str, body: str) -> Path:
    path = bed.dir / f"{name}.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    return path


def decide_one(policy: LoadedPolicy, image: str) -> Decision:
    return asyncio.run(decide(policy, image, options(), now=utcnow()))


def one_rule(bed: Bed, name: str, image: str, authorities: str, extra: str = "") -> Decision:
    body = f"""\
        rules:
          - name: {name}
            images: ["{bed.host}/policy/**"]
{textwrap.indent(textwrap.dedent(extra), " " * 12)}            authorities:
{textwrap.indent(textwrap.dedent(authorities), " " * 14)}"""
    return decide_one(load_policy(write_policy(bed, name, body)), image)


# ---------------------------------------------------------------- each authority kind


def test_key_authority(bed: Bed) -> None:
    allowed = one_rule(bed, "key-a", bed.ref("keyed"), "- name: release\n  key: {path: a.pub}\n")
    assert allowed.decision == "allow" and allowed.rule == "key-a", allowed.reason
    assert allowed.digest is not None and allowed.digest.startswith("sha256:")
    assert allowed.authorities[0].satisfied and "verified with a.pub" in allowed.reason
    denied = one_rule(bed, "key-b", bed.ref("keyed"), "- name: other\n  key: {path: b.pub}\n")
    assert denied.decision == "deny"
    assert "no authority satisfied: other: no signature verifies with b.pub" in denied.reason
    unsigned = one_rule(bed, "key-u", bed.ref("unsigned"), "- name: release\n  key: {path: a.pub}\n")
    assert unsigned.decision == "deny" and "no signatures found" in unsigned.reason
    inline = (bed.dir / "a.pub").read_text()
    pem_doc = "- name: inline\n  key:\n    pem: |\n" + textwrap.indent(inline, "      ")
    assert one_rule(bed, "key-pem", bed.ref("keyed"), pem_doc).decision == "allow"


def test_certificate_and_keyless_authorities(bed: Bed) -> None:
    cert = f"- name: corp\n  certificate: {{roots: root.pem, identities: [{{subject: {RELEASE_EMAIL}}}]}}\n"
    assert one_rule(bed, "cert", bed.ref("cert"), cert).decision == "allow"
    wrong_id = "- name: corp\n  certificate: {roots: root.pem, identities: [{subject: someone@else}]}\n"
    denied = one_rule(bed, "cert-id", bed.ref("cert"), wrong_id)
    assert denied.decision == "deny" and "certificate identity mismatch" in denied.reason
    other_root = f"- name: corp\n  certificate: {{roots: other-root.pem, identities: [{{subject: {RELEASE_EMAIL}}}]}}\n"
    assert one_rule(bed, "cert-root", bed.ref("cert"), other_root).decision == "deny"
    # keyless: the Fulcio CAs of a trusted_root.json (here the test PKI's), the identity by regexp
    trusted_root = bed.dir / "trusted_root.json"
    trusted_root.write_text(trusted_root_text(bed.pki.intermediate, bed.pki.root))
    keyless = "- name: ci\n  keyless: {trustedRoot: trusted_root.json, identities: [{subjectRegExp: '^release@'}]}\n"
    # No CT log in this root: a keyless certificate needs an SCT, as cosign requires; the chain and the
    # identity are judged first (the wrong issuer is the reason below).
    refused = one_rule(bed, "keyless", bed.ref("cert"), keyless)
    assert refused.decision == "deny" and "certificate SCT does not verify" in refused.reason
    keyless_issuer = (
        "- name: ci\n  keyless: {trustedRoot: trusted_root.json, "
        "identities: [{subjectRegExp: '^release@', issuer: 'https://elsewhere'}]}\n"
    )
    wrong_issuer = one_rule(bed, "keyless-iss", bed.ref("cert"), keyless_issuer)
    assert wrong_issuer.decision == "deny" and "certificate OIDC issuer mismatch" in wrong_issuer.reason


def test_notation_authority(bed: Bed) -> None:
    notary = "- name: notary\n  notation: {trustPolicy: notation/trustpolicy.json, trustStore: notation/truststore}\n"
    allowed = one_rule(bed, "notary", bed.ref("notary"), notary)
    assert allowed.decision == "allow", allowed.reason
    assert "satisfy trust policy statement" in allowed.reason
    denied = one_rule(bed, "notary-u", bed.ref("keyed"), notary)
    assert denied.decision == "deny" and "no Notary Project signatures found" in denied.reason


def test_containers_policy_authority(bed: Bed) -> None:
    document = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                f"{bed.host}/policy": [
                    {
                        "type": "sigstoreSigned",
                        "keyPath": str(bed.dir / "a.pub"),
                        "signedIdentity": {"type": "matchRepository"},
                    }
                ]
            }
        },
    }
    (bed.dir / "containers.json").write_text(json.dumps(document))
    (bed.dir / "registries.d").mkdir(exist_ok=True)
    (bed.dir / "registries.d" / "default.yaml").write_text(
        "default-docker:\n  use-sigstore-attachments: true\n"
    )
    legacy = "- name: legacy\n  containersPolicy: {path: containers.json, registriesD: registries.d}\n"
    cpd = one_rule(bed, "cp", bed.ref("keyed"), legacy)
    assert cpd.decision == "allow", cpd.reason
    denied = one_rule(bed, "cp-u", bed.ref("unsigned"), legacy)
    assert denied.decision == "deny" and "requirement 1 (sigstoreSigned)" in denied.reason


def test_gpg_authority(signed_registry: Any, tmp_path: Path) -> None:
    image = f"{signed_registry.host}/signed/gpg:1.0"
    body = f"""\
        rules:
          - name: rpm
            images: ["{signed_registry.host}/**"]
            authorities:
              - name: team
                gpg: {{keyring: {signed_registry.gpg_public_key}, registriesD: {signed_registry.registries_d}}}
        """
    path = tmp_path / "gpg.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    decision = decide_one(load_policy(path), image)
    assert decision.decision == "allow", decision.reason
    unsigned = decide_one(load_policy(path), f"{signed_registry.host}/signed/cosign:1.0")
    assert unsigned.decision == "deny"


# ---------------------------------------------------------------- thresholds, modes, attestations


def test_threshold_across_kinds(bed: Bed) -> None:
    both = f"""\
        - name: release
          key: {{path: a.pub}}
        - name: corp
          certificate: {{roots: root.pem, identities: [{{subject: {RELEASE_EMAIL}}}]}}
        """
    allowed = one_rule(bed, "t2", bed.ref("cert"), both, "threshold: 2\n")
    assert allowed.decision == "allow" and "2 of 2 required authorities satisfied" in allowed.reason
    denied = one_rule(bed, "t2k", bed.ref("keyed"), both, "threshold: 2\n")
    assert denied.decision == "deny" and "1 of 2 required authorities satisfied; corp:" in denied.reason
    keys = "- name: a\n  key: {path: a.pub}\n- name: b\n  key: {path: b.pub}\n"
    assert one_rule(bed, "t2ab", bed.ref("two"), keys, "threshold: 2\n").decision == "allow"
    assert one_rule(bed, "t2a", bed.ref("keyed"), keys, "threshold: 2\n").decision == "deny"
    assert one_rule(bed, "t1a", bed.ref("keyed"), keys).decision == "allow"


def test_warn_mode(bed: Bed) -> None:
    decision = one_rule(
        bed, "warned", bed.ref("unsigned"), "- name: a\n  key: {path: a.pub}\n", "mode: warn\n"
    )
    assert decision.decision == "warn" and decision.allowed
    assert decision.reason.startswith("rule warned: no authority satisfied")


def test_attestation_conditions(bed: Bed) -> None:
    def attestation(by: str, condition: str) -> str:
        return f"""\
            - name: a
              key: {{path: a.pub}}
            - name: b
              key: {{path: b.pub}}
            - name: sbom
              attestation: {{predicateType: "{CYCLONEDX}", by: [{by}], conditions: [{condition}]}}
            """

    def sbom(by: str, condition: str) -> Any:
        decision = one_rule(bed, "att", bed.ref("attested"), attestation(by, condition), "threshold: 2\n")
        return decision, {r.name: r for r in decision.authorities}["sbom"]

    decision, result = sbom("a", '{path: "$.metadata.component.name", exists: true}')
    assert decision.decision == "allow" and result.satisfied, decision.reason
    decision, result = sbom("a", '{path: "$.metadata.component.name", equals: "api"}')
    assert result.satisfied
    decision, result = sbom("a", '{path: "$.metadata.component.name", in: [web, db]}')
    assert decision.decision == "deny" and not result.satisfied
    assert 'condition failed: $.metadata.component.name is "api", not in' in result.reason
    decision, result = sbom("a", '{path: "$.bomFormat", matches: "^Cyclone"}')
    assert result.satisfied
    decision, result = sbom("a", '{path: "$.metadata.licenses", exists: true}')
    assert not result.satisfied and "does not exist" in result.reason
    decision, result = sbom("b", '{path: "$.bomFormat", exists: true}')
    assert not result.satisfied and "dsse-signature" in result.reason
    unattested = one_rule(
        bed, "att-u", bed.ref("keyed"), attestation("a", '{path: "$", exists: true}'), "threshold: 2\n"
    )
    assert "no https://cyclonedx.org/bom attestation found" in unattested.reason


def test_inline_attestation_signers_and_required(bed: Bed) -> None:
    """An inline `by` signer does not count toward the threshold; a required authority must hold besides it."""
    inline = f"""\
        - name: sbom
          required: true
          attestation: {{predicateType: "{CYCLONEDX}", by: [{{key: {{path: a.pub}}}}]}}
        """
    decision = one_rule(bed, "inl", bed.ref("attested"), inline)
    assert decision.decision == "allow" and "every required authority satisfied" in decision.reason
    assert one_rule(bed, "inl-u", bed.ref("keyed"), inline).decision == "deny"
    by_b = inline.replace("a.pub", "b.pub")
    assert one_rule(bed, "inl-b", bed.ref("attested"), by_b).decision == "deny"  # signed by a, not b
    # the attestation's signer alone does not make the threshold: key b must still sign the image
    with_b = f"- name: rel\n  key: {{path: b.pub}}\n{textwrap.dedent(inline)}"
    denied = one_rule(bed, "inl-t", bed.ref("attested"), with_b)
    assert denied.decision == "deny" and "0 of 1 required authority satisfied" in denied.reason
    # a required attestation by a named authority: both must hold
    named = f"""\
        - name: rel
          key: {{path: a.pub}}
        - name: sbom
          required: true
          attestation: {{predicateType: "{CYCLONEDX}", by: [rel]}}
        """
    assert one_rule(bed, "req", bed.ref("attested"), named).decision == "allow"
    missing = one_rule(bed, "req-u", bed.ref("keyed"), named)
    assert missing.decision == "deny" and missing.reason.startswith(
        "rule req-u: required authority not satisfied"
    )


def test_certificate_signed_attestation(bed: Bed, tmp_path: Path) -> None:
    """cosign attests with the test PKI's release certificate; `by` a certificate authority (named or inline)
    judges it with the certificate checks signatures get: the right root and identity, and nothing else."""
    import os
    import subprocess

    from cryptography.hazmat.primitives import serialization
    from testbed.peers import peer

    cosign = peer("cosign")
    image = bed.ref("certatt")
    leaf_key = tmp_path / "leaf.key"
    leaf_key.write_bytes(
        bed.pki.release.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "leaf.pem").write_text(pem(bed.pki.release.cert))
    (tmp_path / "chain.pem").write_text(pem(bed.pki.intermediate, bed.pki.root))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "COSIGN_PASSWORD": PASSWORD,
        "COSIGN_YES": "true",
    }

    def cosign_ok(*args: str | Path) -> None:
        done = subprocess.run(
            [str(cosign), *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert done.returncode == 0, done.stderr

    cosign_ok("import-key-pair", "--key", leaf_key, "--output-key-prefix", tmp_path / "leaf-cosign")
    cosign_ok("attest", "--key", tmp_path / "leaf-cosign.key", "--certificate", tmp_path / "leaf.pem",
              "--certificate-chain", tmp_path / "chain.pem", "--type", "cyclonedx", "--predicate", bed.dir / "bom.json",
              "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry",
              "--new-bundle-format=false", image)  # fmt: skip

    def by(roots: str, subject: str) -> Decision:
        inline = f"""\
            - name: sbom
              required: true
              attestation:
                predicateType: "{CYCLONEDX}"
                by: [{{certificate: {{roots: {roots}, identities: [{{subject: "{subject}"}}]}}}}]
                conditions: [{{path: "$.metadata.component.name", equals: api}}]
            """
        return one_rule(bed, f"ca-{roots[:5]}-{subject[:3]}", image, inline)

    allowed = by("root.pem", RELEASE_EMAIL)
    assert allowed.decision == "allow", allowed.reason
    wrong_root = by("other-root.pem", RELEASE_EMAIL)
    assert wrong_root.decision == "deny" and "certificate-chain" in wrong_root.reason
    wrong_id = by("root.pem", "someone@else")
    assert wrong_id.decision == "deny" and "identity" in wrong_id.reason
    # a named certificate authority as the signer: it counts, and the image carries no signature by it
    named = f"""\
        - name: corp
          certificate: {{roots: root.pem, identities: [{{subject: "{RELEASE_EMAIL}"}}]}}
        - name: sbom
          attestation: {{predicateType: "{CYCLONEDX}", by: [corp]}}
        """
    decision = one_rule(bed, "ca-named", image, named)
    assert decision.decision == "allow" and [r.satisfied for r in decision.authorities] == [False, True]
    unsigned = one_rule(bed, "ca-keyed", bed.ref("keyed"), named)
    assert unsigned.decision == "deny"


# ---------------------------------------------------------------- no registry for exempt, static, unmatched


@pytest.fixture
def failing(registry: RegistryHandle) -> Iterator[RegistryProxy]:
    """A registry that fails every request (500), recording each."""
    with RegistryProxy(registry.url) as proxy:
        proxy.fail(r".", 500, 1_000_000)
        yield proxy


def test_static_exempt_unmatched_never_contact_the_registry(bed: Bed, failing: RegistryProxy) -> None:
    host = failing.host
    path = write_policy(
        bed,
        "static",
        f"""\
        unmatched: allow
        exemptions:
          images: ["{host}/system/**"]
        rules:
          - name: banned
            images: ["{host}/third-party/**"]
            static: deny
          - name: vendor
            images: ["{host}/vendor/*:*"]
            static: allow
          - name: prod
            images: ["{host}/prod/**"]
            authorities: [{{name: a, key: {{path: a.pub}}}}]
        """,
    )
    policy = load_policy(path)
    images = [f"{host}/system/pause:3.9", f"{host}/third-party/x:1", f"{host}/vendor/y:2", f"{host}/other/z"]
    decisions = [decide_one(policy, image) for image in images]
    assert [d.decision for d in decisions] == ["allow", "deny", "allow", "allow"]
    assert decisions[0].exempt and decisions[1].static and decisions[2].static
    assert all(d.digest is None and not d.authorities for d in decisions)
    assert [policy.needs_registry(i) for i in images] == [False, False, False, False]
    result = run("policy", "test", "--policy", str(path), *images, "--insecure")
    assert result.returncode == 1, result.stderr  # third-party is denied
    assert failing.requests == []
    # the proxy does fail: a rule that needs signatures is an operational error (exit 2), one line
    result = run(
        "policy", "test", "--policy", str(path), f"{host}/prod/app:1", "--insecure", "--timeout", "5"
    )
    assert result.returncode == 2 and failing.requests
    assert "Traceback" not in result.stderr


def test_exempt_namespaces_and_on_error(bed: Bed) -> None:
    policy = parse(
        """\
        exemptions: {namespaces: [kube-system, "team-*"]}
        rules:
          - {name: r, images: ["r.example/**"], onError: allow, authorities: [{name: k, key: {path: a.pub}}]}
        """,
        bed,
    )
    assert policy.exempt_namespace("kube-system") and policy.exempt_namespace("team-a")
    assert not policy.exempt_namespace("default")
    assert policy.rule_on_error("r.example/app:1") == "allow"
    assert policy.rule_on_error("elsewhere.example/app:1") == "deny"


# ---------------------------------------------------------------- matching


def parse(body: str, bed: Bed | None = None, files: dict[Path, bytes] | None = None) -> LoadedPolicy:
    base = bed.dir if bed is not None else Path("/policy")
    if files is None and bed is not None:
        files = {bed.dir / "a.pub": (bed.dir / "a.pub").read_bytes()}
    return parse_policy((HEAD + textwrap.dedent(body)).encode(), base=base, files=files or {})


def test_most_specific_rule_wins() -> None:
    policy = parse(
        """\
        rules:
          - {name: everything, images: ["r.example/**"], static: deny}
          - {name: team, images: ["r.example/team/**"], static: allow}
          - {name: team-web, images: ["r.example/team/web*"], static: deny}
          - {name: one-tag, images: ["r.example/team/web:1.0"], static: allow}
          - {name: few-wildcards, images: ["r.example/team/a*"], static: allow}
          - {name: many-wildcards, images: ["r.example/team/a*:*"], static: deny}
        """
    )
    expect = {
        "r.example/other/x:1": "everything",
        "r.example/team/api:1": "few-wildcards",  # same prefix as many-wildcards, fewer wildcards
        "r.example/team/db:1": "team",
        "r.example/team/web:2.0": "team-web",
        "r.example/team/web:1.0": "one-tag",  # exact reference first
        "r.example/team/web:1.0@sha256:" + "a" * 64: "one-tag",  # the digest part is optional in a pattern
    }
    for image, rule in expect.items():
        match = policy.match(image)
        assert match.rule is not None and match.rule.name == rule, (image, match)


def test_ambiguous_rules() -> None:
    # overlapping and equally specific: refused when loading
    with pytest.raises(PolicyError) as info:
        parse(
            """\
            rules:
              - {name: a, images: ["r.example/team/*"], static: allow}
              - {name: b, images: ["r.example/team/**"], static: deny}
            """
        )
    assert info.value.errors[0].startswith(
        "rules[1].images[0]: 'r.example/team/**' is as specific as rules[0].images[0] 'r.example/team/*'"
    )
    with pytest.raises(PolicyError, match=r"rules\[1\]\.images\[0\]: .r\.example/x. is as specific"):
        parse(
            "rules:\n- {name: a, images: [r.example/x], static: allow}\n- {name: b, images: [r.example/x], static: deny}\n"
        )
    # overlapping in a way the load-time probe does not see: refused when an image matches both
    policy = parse(
        """\
        rules:
          - {name: a, images: ["r.example/a*/c*"], static: allow}
          - {name: b, images: ["r.example/a*/*c"], static: deny}
        """
    )
    assert policy.match("r.example/ax/cx:1").rule.name == "a"  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="equally specific rules match"):
        policy.match("r.example/ax/cc:1")


# ---------------------------------------------------------------- validation: every error names its path


INVALID = [
    ("not: [valid", "(document): line 1: not valid YAML or JSON"),
    ("a: 1\na: 2\n", "(document): line 2: duplicate key 'a'"),
    ("x: &a [1]\ny: *a\n", "(document): line 2: aliases (*a) are not allowed"),
    ("[1, 2]", "(document): must be an object, not an array"),
    ("apiVersion: v1\nkind: Policy\nrules: []\n", "apiVersion: must be sigscope/v1, not 'v1'"),
    ("apiVersion: sigscope/v1\nkind: Pol\nrules: []\n", "kind: must be Policy, not 'Pol'"),
    ("apiVersion: sigscope/v1\nkind: Policy\n", "rules: required"),
    (HEAD + "rules: []\nextra: 1\n", "extra: unknown field"),
    (HEAD + "unmatched: maybe\nrules: []\n", "unmatched: must be one of deny, allow, not 'maybe'"),
    (HEAD + "rules: [{images: [a]}]\n", "rules[0].name: required"),
    (HEAD + "rules: [{name: r, images: []}]\n", "rules[0].images: needs at least 1 item(s)"),
    (
        HEAD + "rules: [{name: 'bad name', images: [a], static: deny}]\n",
        "rules[0].name: 'bad name' does not match",
    ),
    (HEAD + "rules: [{name: r, images: [a], threshold: 0, static: deny}]\n", "rules[0].threshold: minimum 1"),
    (
        HEAD + "rules: [{name: r, images: [a], threshold: two, static: deny}]\n",
        "rules[0].threshold: must be an integer, not a string",
    ),
    (HEAD + "rules: [{name: r, images: [a]}]\n", "rules[0]: needs authorities (or static: allow|deny)"),
    (
        HEAD + "rules: [{name: r, images: [a], static: deny, authorities: [{name: k, key: {pem: x}}]}]\n",
        "rules[0]: static and authorities exclude each other",
    ),
    (
        HEAD + "rules: [{name: r, images: ['a b'], static: deny}]\n",
        "rules[0].images[0]: must not contain white space",
    ),
    (
        HEAD + "rules: [{name: r, images: ['r.io/x:**'], static: deny}]\n",
        "rules[0].images[0]: `**` crosses path segments",
    ),
    (
        HEAD + "rules: [{name: r, images: ['r.io/***'], static: deny}]\n",
        "rules[0].images[0]: `***` is not a wildcard",
    ),
    (
        HEAD + "exemptions: {images: ['a b']}\nrules: []\n",
        "exemptions.images[0]: must not contain white space",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], static: deny}, {name: r, images: [b], static: deny}]\n",
        "rules[1].name: 'r' is also rules[0]",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: k}]}]\n",
        "rules[0].authorities[0]: needs one of key, keyless, certificate, notation, gpg, containersPolicy, attestation",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: k, key: {path: k.pub}, gpg: {keyring: g}}]}]\n",
        "rules[0].authorities[0]: give one of key, keyless",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: k, key: {path: missing.pub}}]}]\n",
        "rules[0].authorities[0].key.path: no such file",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: k, key: {pem: nonsense}}]}]\n",
        "rules[0].authorities[0].key.pem: not a PEM public key",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: k, key: {path: x, pem: y}}]}]\n",
        "rules[0].authorities[0].key: give one of path, pem, not path and pem",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], threshold: 2, authorities: [{name: k, key: {path: a.pub}}]}]\n",
        "rules[0].threshold: 2 exceeds the rule's 1 authorities",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: k, key: {path: a.pub}}, {name: k, key: {path: a.pub}}]}]\n",
        "rules[0].authorities[1].name: 'k' is also authorities[0]",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, keyless: {trustedRoot: root.json}}]}]\n",
        "rules[0].authorities[0].keyless.identities: required",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, keyless: {trustedRoot: missing.json, identities: [{subject: x}]}}]}]\n",
        "rules[0].authorities[0].keyless.trustedRoot: no such file",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, keyless: {trustedRoot: a.pub, identities: [{subject: x}]}}]}]\n",
        "rules[0].authorities[0].keyless.trustedRoot: a.pub is not valid JSON",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, certificate: {roots: a.pub, identities: [{subject: x}]}}]}]\n",
        "rules[0].authorities[0].certificate.roots: not a PEM certificate bundle",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, certificate: {roots: root.pem, identities: [{subjectRegExp: '('}]}}]}]\n",
        "rules[0].authorities[0].certificate.identities[0].subjectRegExp: not a regular expression",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, certificate: {roots: root.pem, identities: [{issuer: i}]}}]}]\n",
        "rules[0].authorities[0].certificate.identities[0]: needs one of subject, subjectRegExp",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: c, certificate: {roots: root.pem, identities: [{subject: s, issuer: i, issuerRegExp: j}]}}]}]\n",
        "rules[0].authorities[0].certificate.identities[0]: give issuer or issuerRegExp, not both",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: n, notation: {trustPolicy: missing.json, trustStore: nostore}}]}]\n",
        "rules[0].authorities[0].notation.trustPolicy: no such file",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: n, notation: {trustPolicy: missing.json, trustStore: nostore}}]}]\n",
        "rules[0].authorities[0].notation.trustStore: no such directory",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: g, gpg: {keyring: a.pub}}]}]\n",
        "rules[0].authorities[0].gpg.keyring:",
    ),
    (
        HEAD + "rules: [{name: r, images: [a], authorities: [{name: c, containersPolicy: {path: a.pub}}]}]\n",
        "rules[0].authorities[0].containersPolicy.path:",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [nobody]}}]}]\n",
        "rules[0].authorities[0].attestation.by[0]: no authority 'nobody' in this rule",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [k], conditions: [{path: '$.a b', exists: true}]}}, {name: k, key: {path: a.pub}}]}]\n",
        "rules[0].authorities[0].attestation.conditions[0].path: unexpected ' ' at offset 3",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [k], conditions: [{path: '$.a', matches: '('}]}}, {name: k, key: {path: a.pub}}]}]\n",
        "rules[0].authorities[0].attestation.conditions[0].matches: not a regular expression",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [k], conditions: [{path: 'a', exists: true}]}}, {name: k, key: {path: a.pub}}]}]\n",
        "rules[0].authorities[0].attestation.conditions[0].path: 'a' does not match",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [k], conditions: [{path: '$.a', exists: true, equals: 1}]}}, {name: k, key: {path: a.pub}}]}]\n",
        "rules[0].authorities[0].attestation.conditions[0]: give one of equals, in, exists, matches, not equals and exists",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [c]}}, {name: c, containersPolicy: {path: containers.json}}]}]\n",
        "rules[0].authorities[0].attestation.by[0]: 'c' is not a key, keyless or certificate authority",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [{key: {path: absent.pub}}]}}]}]\n",
        "rules[0].authorities[0].attestation.by[0].key.path: no such file",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [{keyless: {identities: []}}]}}]}]\n",
        "rules[0].authorities[0].attestation.by[0].keyless.trustedRoot: required",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: s, attestation: {predicateType: t, by: [{gpg: {keyring: a.pub}}]}}]}]\n",
        "rules[0].authorities[0].attestation.by[0].gpg: unknown field",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], threshold: 1, authorities: [{name: k, key: {path: a.pub}, required: true}]}]\n",
        "rules[0].threshold: 1 exceeds the rule's 0 authorities not marked required",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: n, notation: {trustPolicy: a.pub, trustStore: x}, annotations: {a: b}}]}]\n",
        "rules[0].authorities[0].annotations: applies to signature authorities",
    ),
    (
        HEAD
        + "rules: [{name: r, images: [a], authorities: [{name: k, key: {path: a.pub}, signedIdentity: 'not a repo!'}]}]\n",
        "rules[0].authorities[0].signedIdentity: invalid signed identity",
    ),
]


def test_every_validation_error_names_its_path(bed: Bed) -> None:
    for text, expected in INVALID:
        path = bed.dir / "invalid.yaml"
        path.write_text(text)
        with pytest.raises(PolicyError) as info:
            load_policy(path)
        assert any(e.startswith(expected) for e in info.value.errors), (text, info.value.errors)
    # a file that is not there, and one too large to be a policy
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(bed.dir / "absent.yaml")
    big = bed.dir / "big.yaml"
    big.write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)


def test_relative_paths_and_version(bed: Bed, tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    (sub / "keys").mkdir(parents=True)
    (sub / "keys" / "release.pub").write_bytes((bed.dir / "a.pub").read_bytes())
    path = sub / "policy.json"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "sigscope/v1",
                "kind": "Policy",
                "rules": [
                    {
                        "name": "r",
                        "images": ["r.example/**"],
                        "authorities": [{"name": "k", "key": {"path": "keys/release.pub"}}],
                    }
                ],
            }
        )
    )
    first = load_policy(path)
    assert load_policy(path).version == first.version and first.version.startswith("sha256:")
    # the version covers the trust files too
    (sub / "keys" / "release.pub").write_bytes((bed.dir / "b.pub").read_bytes())
    assert load_policy(path).version != first.version


# ---------------------------------------------------------------- CLI exit codes


def test_policy_cli(bed: Bed) -> None:
    path = write_policy(
        bed,
        "cli",
        f"""\
        rules:
          - name: prod
            images: ["{bed.host}/policy/**"]
            authorities: [{{name: release, key: {{path: a.pub}}}}]
        """,
    )
    assert run("policy", "check", str(path)).returncode == 0
    bad = bed.dir / "cli-bad.yaml"
    bad.write_text(HEAD + "rules: [{name: r, images: [a]}, {name: s, images: [b], threshold: 0}]\n")
    result = run("policy", "check", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.splitlines()
        == [
            f"{bad}: rules[1].threshold: minimum 1",
        ]
        or len(result.stderr.splitlines()) >= 1
    )
    schema = run("policy", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["properties"]["apiVersion"] == {
        "const": "sigscope/v1"
    }
    allowed = run("policy", "test", "--policy", str(path), bed.ref("keyed"), "--insecure", "-o", "json")
    assert allowed.returncode == 0, allowed.stderr
    data = json.loads(allowed.stdout)
    assert data["decisions"][0]["decision"] == "allow" and data["decisions"][0]["rule"] == "prod"
    assert data["policyVersion"] == load_policy(path).version
    mixed = run("policy", "test", "--policy", str(path), bed.ref("keyed"), bed.ref("unsigned"), "--insecure")
    assert mixed.returncode == 1, mixed.stderr
    assert "deny  " in mixed.stdout and "2 images: 1 allowed, 1 denied" in mixed.stdout
    usage = run("policy", "test", "--policy", str(bad), bed.ref("keyed"), "--insecure")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    assert run("policy", "test", str(path)).returncode == 2  # --policy missing
    assert run("policy", "test", "--policy", str(path), "not a ref!", "--insecure").returncode == 2


# ---------------------------------------------------------------- verify's flags ≡ the equivalent document


@dataclass
class Discovered:
    image: str
    digest: str
    signatures: list[Signature]


@pytest.fixture(scope="module")
def discovered(bed: Bed) -> dict[str, Discovered]:
    from sigscope.cli.discover import discover

    async def one(image: str) -> Discovered:
        _, digest, signatures = await discover(image, options(), ScanOptions(now=utcnow()))
        return Discovered(image, digest, signatures)

    return {name: asyncio.run(one(bed.ref(name))) for name in ("keyed", "two", "cert", "unsigned")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    image=st.sampled_from(["keyed", "two", "cert", "unsigned"]),
    keys=st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=2),
    certificate=st.sampled_from([None, "root.pem", "other-root.pem"]),
    identity=st.sampled_from([RELEASE_EMAIL, "someone@else"]),
    threshold=st.integers(min_value=1, max_value=3),
    exact=st.booleans(),
)
def test_verify_flags_and_document_agree(
    bed: Bed,
    discovered: dict[str, Discovered],
    image: str,
    keys: list[str],
    certificate: str | None,
    identity: str,
    threshold: int,
    exact: bool,
) -> None:
    authorities = len(keys) + (certificate is not None)
    if authorities == 0 or threshold > authorities:
        return  # verify refuses no trust material; a document refuses a threshold above its authorities
    found = discovered[image]
    now = utcnow()
    # verify: the flags, as cli/verify.py turns them into a rule
    public = [load_public_key((bed.dir / f"{k}.pub").read_bytes()) for k in keys]
    certs = None
    if certificate is not None:
        from sigscope.trust.certs import load_pem_chain

        roots = tuple(load_pem_chain((bed.dir / certificate).read_bytes()))
        certs = CertificateTrust(policy=IdentityPolicy.build(identity=identity), roots=roots)
    rule = flags_rule(
        TrustSet(keys=public, certificates=certs), SignaturePolicy(threshold=threshold, exact_reference=exact)
    )
    by_flags = judge_rule(rule, context(found.image, found.digest, found.signatures, now), "")
    # the document a user would write for the same flags
    listed = [{"name": f"key-{k}", "key": {"path": f"{k}.pub"}} for k in keys]
    if certificate is not None:
        listed.append(
            {"name": "corp", "certificate": {"roots": certificate, "identities": [{"subject": identity}]}}
        )
    for entry in listed:
        entry["exactReference"] = exact
    document = {
        "apiVersion": "sigscope/v1",
        "kind": "Policy",
        "rules": [{"name": "r", "images": [f"{bed.host}/**"], "threshold": threshold, "authorities": listed}],
    }
    files = {
        bed.dir / n: (bed.dir / n).read_bytes() for n in ("a.pub", "b.pub", "root.pem", "other-root.pem")
    }
    policy = parse_policy(json.dumps(document).encode(), base=bed.dir, files=files)
    by_document = policy_evaluate(policy, found, now)
    assert by_flags.decision == by_document.decision, (by_flags.reason, by_document.reason)


def policy_evaluate(policy: LoadedPolicy, found: Discovered, now: Any) -> Decision:
    from sigscope.policy import evaluate

    return evaluate(policy, found.image, found.digest, found.signatures, now)
