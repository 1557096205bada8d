"""notation trust policies: every validation rule notation-go applies, scope selection, DN matching."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from testbed import vectors

from sigscope.trust.notation_policy import (
    Action,
    TrustPolicyError,
    ValidationType,
    certificate_dn,
    find_policy_file,
    is_subset_dn,
    load_notation_trust,
    parse_dn,
    parse_policy,
)
from sigscope.trust.truststore import StoreRef, TrustStoreError

VECTORS = vectors.ROOT
VERIFIER = VECTORS / "notaryproject-notation-go" / "verifier" / "testdata"

WABBIT = "x509.subject: C=US, ST=WA, O=wabbit-networks.io, OU=Security Tools"
STATEMENT: dict[str, Any] = {
    "name": "wabbit-networks-images",
    "registryScopes": ["registry.acme-rockets.io/software/net-monitor"],
    "signatureVerification": {"level": "strict"},
    "trustStores": ["ca:acme-rockets", "tsa:acme-tsa"],
    "trustedIdentities": [WABBIT],
}


def doc(*statements: dict[str, Any], version: str = "1.0") -> bytes:
    return json.dumps({"version": version, "trustPolicies": list(statements) or [STATEMENT]}).encode()


def statement(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(STATEMENT)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_valid_policy() -> None:
    policy = parse_policy(doc(), "trustpolicy.json")
    [s] = policy.statements
    assert s.level.name == "strict" and s.verify_timestamp == "always"
    assert s.trust_stores == (StoreRef("ca", "acme-rockets"), StoreRef("tsa", "acme-tsa"))
    assert s.identities.subjects[0][1] == {
        "C": "US",
        "ST": "WA",
        "O": "wabbit-networks.io",
        "OU": "Security Tools",
    }
    assert policy.store_refs == {StoreRef("ca", "acme-rockets"), StoreRef("tsa", "acme-tsa")}


def test_levels_and_overrides() -> None:
    permissive = (
        parse_policy(doc(statement(signatureVerification={"level": "permissive"}))).statements[0].level
    )
    assert permissive.action(ValidationType.AUTHENTICITY) is Action.ENFORCE
    assert permissive.action(ValidationType.EXPIRY) is Action.LOG
    audit = parse_policy(doc(statement(signatureVerification={"level": "audit"}))).statements[0].level
    assert audit.action(ValidationType.AUTHENTICITY) is Action.LOG
    assert audit.action(ValidationType.INTEGRITY) is Action.ENFORCE
    custom = parse_policy(
        doc(
            statement(
                signatureVerification={
                    "level": "strict",
                    "override": {"expiry": "log", "revocation": "skip"},
                    "verifyTimestamp": "afterCertExpiry",
                }
            )
        )
    ).statements[0]
    assert custom.level.action(ValidationType.EXPIRY) is Action.LOG
    assert custom.level.action(ValidationType.REVOCATION) is Action.SKIP
    assert custom.level.action(ValidationType.AUTHENTICITY) is Action.ENFORCE
    assert custom.verify_timestamp == "afterCertExpiry"
    skip = parse_policy(
        doc(statement(signatureVerification={"level": "skip"}, trustStores=None, trustedIdentities=None))
    )
    assert skip.statements[0].level.skips_all


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "malformed trust policy"),
        (b"[]", "malformed trust policy"),
        (doc(version=""), "empty version"),
        (doc(version="2.0"), "unsupported version '2.0'"),
        (json.dumps({"version": "1.0", "trustPolicies": []}).encode(), "zero trust policy statements"),
        (doc(statement(name="")), "missing a name"),
        (doc(STATEMENT, statement(registryScopes=["a.io/b"])), "same name"),
        (doc(statement(signatureVerification={})), "level is empty or missing"),
        (doc(statement(signatureVerification={"level": "paranoid"})), "invalid signature verification level"),
        (
            doc(statement(signatureVerification={"level": "skip", "override": {"expiry": "log"}})),
            "can't be used to customize",
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"integrity": "log"}})),
            "integrity",
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"expiry": "skip"}})),
            "can not be skipped",
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"bogus": "log"}})),
            "not supported",
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "override": {"expiry": "maybe"}})),
            "not supported",
        ),
        (
            doc(statement(signatureVerification={"level": "strict", "verifyTimestamp": "never"})),
            "verifyTimestamp",
        ),
        (doc(statement(signatureVerification={"level": "skip"})), "set to skip signature verification"),
        (doc(statement(trustStores=None)), "missing trust stores or trusted identities"),
        (doc(statement(trustedIdentities=[])), "missing trust stores or trusted identities"),
        (doc(statement(trustStores=["acme"])), "malformed trust store value"),
        (doc(statement(trustStores=["x509:acme"])), "unsupported trust store type"),
        (doc(statement(trustStores=["ca:acme rockets"])), "unsupported trust store name"),
        (doc(statement(trustedIdentities=["*", WABBIT])), "wildcard identity cannot be used in conjunction"),
        (doc(statement(trustedIdentities=[""])), "empty trusted identity"),
        (doc(statement(trustedIdentities=["x509.subject"])), "missing separator"),
        (doc(statement(trustedIdentities=["x509.subject:"])), "without an identity value"),
        (
            doc(statement(trustedIdentities=["x509.subject: C=US, O=acme"])),
            "no mandatory RDN attribute for 'ST'",
        ),
        (doc(statement(trustedIdentities=["x509.subject: C=US+ST=WA, O=acme"])), "multi-valued"),
        (doc(statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=a, O=b"])), "duplicate RDN"),
        (doc(statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=#0403"])), '"=#"'),
        (
            doc(statement(trustedIdentities=[WABBIT, "x509.subject: C=US, ST=WA, O=wabbit-networks.io"])),
            "overlapping x509 trustedIdentities",
        ),
        (doc(statement(registryScopes=[])), "zero registry scopes"),
        (doc(statement(registryScopes=None)), "zero registry scopes"),
        (doc(statement(registryScopes=["*", "a.io/b"])), "wildcard scope cannot be used in conjunction"),
        (doc(statement(registryScopes=["a.io/b*"])), "wild card"),
        (doc(statement(registryScopes=["a.io/b:tag"])), "is not valid"),
        (doc(statement(registryScopes=["https://a.io/b"])), "is not valid"),
        (doc(statement(registryScopes=["localhost"])), "is not valid"),
        (
            doc(STATEMENT, statement(name="other")),
            "present in multiple trust policy statements",
        ),
        (doc(statement(trustStores="ca:acme")), "must be an array of strings"),
    ],
)
def test_invalid_policies(document: bytes, message: str) -> None:
    with pytest.raises(TrustPolicyError) as caught:
        parse_policy(document, "/etc/notation/trustpolicy.json")
    assert message in str(caught.value)
    # the file is always named, so the one line on stderr says where to look
    assert str(caught.value).startswith("/etc/notation/trustpolicy.json")


def test_scope_selection() -> None:
    exact = statement(name="exact", registryScopes=["reg.io/team/app", "127.0.0.1:5000/x"])
    wildcard = statement(name="rest", registryScopes=["*"])
    policy = parse_policy(doc(wildcard, exact))
    assert policy.select("reg.io/team/app").name == "exact"
    assert policy.select("127.0.0.1:5000/x").name == "exact"
    assert policy.select("reg.io/team/other").name == "rest"
    assert policy.select(None).name == "rest"
    only_exact = parse_policy(doc(exact))
    with pytest.raises(TrustPolicyError, match="no applicable trust policy"):
        only_exact.select("reg.io/team/other")


def test_dn_parsing_and_matching() -> None:
    assert parse_dn(r"C=US,S=WA,O=a\,b\ ,CN=x") == {"C": "US", "ST": "WA", "O": "a,b ", "CN": "x"}
    assert parse_dn(r"C=US;ST=WA;O=\41cme") == {"C": "US", "ST": "WA", "O": "Acme"}
    wanted = parse_dn("C=US, ST=WA, O=Notary")
    cert = x509.load_pem_x509_certificate(
        vectors.require(VERIFIER / "verifier" / "signing-cert.pem").read_bytes()
    )
    subject = certificate_dn(cert)
    assert subject["CN"] == "SomeCN" and is_subset_dn(wanted, subject) is False
    assert is_subset_dn(parse_dn("C=US, ST=WA, O=SomeOrg, OU=SomeOU"), subject)
    assert not is_subset_dn(parse_dn("C=US, ST=WA, O=SomeOrg, CN=Other"), subject)


def test_certificate_subject_with_hex_form_never_matches() -> None:
    cert = x509.load_pem_x509_certificate(
        vectors.require(VERIFIER / "verifier" / "bad-cert.pem").read_bytes()
    )
    with pytest.raises(TrustPolicyError, match="=#"):
        certificate_dn(cert)


def test_policy_files(tmp_path: Path) -> None:
    with pytest.raises(TrustPolicyError, match="no trust policy"):
        find_policy_file(tmp_path)
    (tmp_path / "trustpolicy.json").write_bytes(doc())
    assert find_policy_file(tmp_path).path.name == "trustpolicy.json"
    (tmp_path / "trustpolicy.oci.json").write_bytes(doc(statement(name="oci")))
    assert find_policy_file(tmp_path).path.name == "trustpolicy.oci.json"
    (tmp_path / "trustpolicy.oci.json").unlink()
    os.symlink(tmp_path / "trustpolicy.json", tmp_path / "trustpolicy.oci.json")
    with pytest.raises(TrustPolicyError, match="not a regular file"):
        find_policy_file(tmp_path)


def test_load_notation_trust(tmp_path: Path) -> None:
    (tmp_path / "trustpolicy.json").write_bytes(doc(statement(trustStores=["ca:missing"])))
    (tmp_path / "truststore" / "x509" / "ca").mkdir(parents=True)
    with pytest.raises(TrustStoreError, match="ca:missing does not exist"):
        load_notation_trust(tmp_path)
    with pytest.raises(TrustPolicyError, match="no trust policy given"):
        load_notation_trust()
    with pytest.raises(TrustPolicyError, match="no trust store given"):
        load_notation_trust(policy_file=tmp_path / "trustpolicy.json")
