"""Notary Project verification: notation-go vectors under trust policies and stores, envelopes built here
for each failure mode, and `sigscope verify|scan --notation-config` against a real registry serving the
vectors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testbed import RegistryHandle, vectors
from testbed.cli import run_sigscope as sigscope
from testbed.notation_vectors import ENVELOPES, NOTATION_TESTDATA, push_notation_vector, vectors_available

from sigscope.formats import notation
from sigscope.model import Check, Descriptor, Outcome, Signature, Status
from sigscope.trust.notation_policy import NotationTrust, TrustPolicyStatement, parse_policy
from sigscope.trust.notation_verify import (
    CHECK_IDENTITY,
    CHECK_POLICY,
    CHECK_REVOCATION,
    CHECK_TIMESTAMP,
    CHECK_TRUST_STORE,
    NotationResult,
    apply_notation,
    evaluate,
    verify_image,
)
from sigscope.trust.truststore import StoreRef, TrustStore, load_trust_store

VECTORS = vectors.ROOT
NOTATION_GO = VECTORS / "notaryproject-notation-go"
pytestmark = pytest.mark.vectors
MOCK = NOTATION_GO / "internal" / "mock" / "testdata"
SIG_ENV = NOTATION_GO / "verifier" / "testdata" / "timestamp" / "sigEnv"
STORES = NOTATION_GO / "verifier" / "testdata" / "truststore"

NOW = datetime.now(UTC)
TEST_ROOT = "x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
MOCK_SUBJECT = Descriptor(
    "application/vnd.docker.distribution.manifest.v2+json",
    "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
    528,
)
TIMESTAMP_SUBJECT = Descriptor(
    "application/vnd.docker.distribution.manifest.v2+json",
    "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
    528,
)


def policy_statement(
    level: str = "strict",
    stores: tuple[str, ...] = ("ca:valid-trust-store", "signingAuthority:valid-trust-store"),
    identities: tuple[str, ...] = (TEST_ROOT,),
    **verification: Any,
) -> TrustPolicyStatement:
    sv = {"level": level, **verification}
    body = {"name": "p", "registryScopes": ["*"], "signatureVerification": sv}
    if level != "skip":
        body |= {"trustStores": list(stores), "trustedIdentities": list(identities)}
    document = json.dumps({"version": "1.0", "trustPolicies": [body]}).encode()
    return parse_policy(document, "test policy").statements[0]


def parse_file(path: Path, subject: Descriptor, at: datetime = NOW) -> Signature:
    blob = path.read_bytes()
    media = notation.JWS_MEDIA_TYPE if blob.lstrip().startswith(b"{") else notation.COSE_MEDIA_TYPE
    return notation.parse_envelope(blob, media, subject=subject, location=path.name, now=at)


def judge(sig: Signature, statement: TrustPolicyStatement, store: TrustStore | None = None) -> NotationResult:
    if store is None:
        store = load_trust_store(STORES, statement.trust_stores)
    return evaluate(sig, statement, store, NOW)


def check(result: NotationResult, name: str) -> Check:
    [found] = [c for c in result.checks if c.name == name]
    return found


# ---------------------------------------------------------------- notation-go vectors (VECTORS.md §5)


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_valid_vector(scheme: str) -> None:
    result = judge(parse_file(MOCK / f"{scheme}_valid_sig_env.json", MOCK_SUBJECT), policy_statement())
    assert result.satisfied and result.trusted and result.status is Status.VERIFIED
    assert check(result, CHECK_TRUST_STORE).outcome is Outcome.PASSED
    expected_store = "signingAuthority:valid-trust-store" if scheme == "sa" else "ca:valid-trust-store"
    assert expected_store in check(result, CHECK_TRUST_STORE).detail
    assert check(result, CHECK_IDENTITY).outcome is Outcome.PASSED
    assert check(result, CHECK_REVOCATION).outcome is Outcome.SKIPPED
    assert "(non-revocable)" in check(result, CHECK_REVOCATION).detail


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_invalid_vector(scheme: str) -> None:
    result = judge(parse_file(MOCK / f"{scheme}_invalid_sig_env.json", MOCK_SUBJECT), policy_statement())
    assert not result.satisfied and result.status is Status.INVALID
    assert check(result, CHECK_TRUST_STORE).outcome is Outcome.SKIPPED  # integrity failed first


@pytest.mark.parametrize("scheme", ["ca", "sa"])
def test_expired_vector(scheme: str) -> None:
    sig = parse_file(MOCK / f"{scheme}_expired_sig_env.json", MOCK_SUBJECT)
    strict = judge(sig, policy_statement())
    assert not strict.satisfied and strict.reason.startswith(
        "expiry: digital signature has expired on 2022-07-29"
    )
    # permissive and audit log expiry: notation passes the signature, with a warning
    for level in ("permissive", "audit"):
        logged = judge(sig, policy_statement(level))
        assert logged.satisfied and logged.trusted, level
        assert (
            check(logged, "expiry").outcome is Outcome.SKIPPED
            and "not enforced" in check(logged, "expiry").detail
        )
        assert logged.warnings
    overridden = judge(sig, policy_statement(override={"expiry": "log"}))
    assert overridden.satisfied


@pytest.mark.parametrize(
    "name",
    [
        "ca_plugin_sig_env.json",
        "sa_plugin_sig_env.json",
        "ca_compatible_pluginver_sig_env_1.0.0.json",
        "ca_incompatible_pluginver_sig_env_1.2.3.json",
    ],
)
def test_plugin_required_vectors_fail(name: str) -> None:
    for level in ("strict", "permissive", "audit"):
        result = judge(parse_file(MOCK / name, MOCK_SUBJECT), policy_statement(level))
        assert not result.satisfied and result.status is Status.INVALID
        assert "plugin" in result.reason


def test_skip_level_passes_without_judging() -> None:
    sig = parse_file(MOCK / "ca_invalid_sig_env.json", MOCK_SUBJECT)
    result = judge(sig, policy_statement("skip"))
    assert result.satisfied and not result.trusted and result.status is Status.UNTRUSTED
    assert check(result, CHECK_POLICY).outcome is Outcome.SKIPPED


def test_audit_logs_authenticity_but_never_calls_it_verified() -> None:
    sig = parse_file(MOCK / "ca_valid_sig_env.json", MOCK_SUBJECT)
    strict = judge(sig, policy_statement(stores=("ca:valid-trust-store-2",)))
    assert not strict.satisfied and check(strict, CHECK_TRUST_STORE).outcome is Outcome.FAILED
    audit = judge(sig, policy_statement("audit", stores=("ca:valid-trust-store-2",)))
    assert audit.satisfied and not audit.trusted and audit.status is Status.UNTRUSTED
    assert check(audit, CHECK_POLICY).outcome is Outcome.FAILED


def test_signing_authority_needs_its_store_type() -> None:
    sig = parse_file(MOCK / "sa_valid_sig_env.json", MOCK_SUBJECT)
    result = judge(sig, policy_statement(stores=("ca:valid-trust-store",)))
    assert not result.satisfied and "signingAuthority" in check(result, CHECK_TRUST_STORE).detail
    ca_sig = parse_file(MOCK / "ca_valid_sig_env.json", MOCK_SUBJECT)
    assert not judge(ca_sig, policy_statement(stores=("signingAuthority:valid-trust-store",))).satisfied


TSA_STATEMENT = ("ca:valid-trust-store", "tsa:test-timestamp")


@pytest.mark.parametrize("name", ["jwsWithTimestamp.sig", "coseWithTimestamp.sig"])
def test_timestamped_vectors(name: str) -> None:
    result = judge(
        parse_file(SIG_ENV / name, TIMESTAMP_SUBJECT),
        policy_statement(stores=TSA_STATEMENT, identities=("*",)),
    )
    assert check(result, CHECK_TIMESTAMP).outcome is Outcome.PASSED
    assert "time-stamped" in check(result, CHECK_TIMESTAMP).detail
    assert result.satisfied


@pytest.mark.parametrize("name", ["jwsExpiredWithTimestamp.sig", "coseExpiredWithTimestamp.sig"])
def test_expired_certificate_with_timestamp(name: str) -> None:
    sig = parse_file(SIG_ENV / name, TIMESTAMP_SUBJECT)
    # the timestamp lies inside the expired certificate's validity: authentic (notation's timestamp_test.go)
    with_tsa = judge(sig, policy_statement(stores=TSA_STATEMENT, identities=("*",)))
    assert check(with_tsa, CHECK_TIMESTAMP).outcome is Outcome.PASSED
    # without a tsa store nothing vouches for the time: the certificate has expired
    without = judge(sig, policy_statement(stores=("ca:valid-trust-store",), identities=("*",)))
    failed = check(without, CHECK_TIMESTAMP)
    assert failed.outcome is Outcome.FAILED and "expired at 2024-06-18" in failed.detail
    assert not without.satisfied


def test_missing_timestamp_fails_when_tsa_configured() -> None:
    result = judge(
        parse_file(SIG_ENV / "withoutTimestamp.sig", TIMESTAMP_SUBJECT),
        policy_statement(stores=TSA_STATEMENT, identities=("*",)),
    )
    assert check(result, CHECK_TIMESTAMP).detail == "no timestamp countersignature was found"
    assert not result.satisfied
    after = judge(
        parse_file(SIG_ENV / "withoutTimestamp.sig", TIMESTAMP_SUBJECT),
        policy_statement(stores=TSA_STATEMENT, identities=("*",), verifyTimestamp="afterCertExpiry"),
    )
    assert check(after, CHECK_TIMESTAMP).outcome is Outcome.PASSED  # certificate still valid: no TSA needed


@pytest.mark.parametrize("name", ["timestampBeforeNotBefore.sig", "timestampAfterNotAfter.sig"])
def test_timestamp_outside_certificate_validity(name: str) -> None:
    result = judge(
        parse_file(SIG_ENV / name, TIMESTAMP_SUBJECT),
        policy_statement(stores=TSA_STATEMENT, identities=("*",)),
    )
    failed = check(result, CHECK_TIMESTAMP)
    assert failed.outcome is Outcome.FAILED and "outside the signing certificates' validity" in failed.detail


def test_timestamp_from_an_untrusted_tsa() -> None:
    result = judge(
        parse_file(SIG_ENV / "jwsWithTimestamp.sig", TIMESTAMP_SUBJECT),
        policy_statement(stores=("ca:valid-trust-store", "tsa:test-mismatch"), identities=("*",)),
    )
    failed = check(result, CHECK_TIMESTAMP)
    assert failed.outcome is Outcome.FAILED and "does not verify" in failed.detail


# ---------------------------------------------------------------- envelopes built here: one failure each


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class Pki:
    def __init__(self, label: str = "Root") -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Acme {label}"))
            .issuer_name(_name(f"Acme {label}"))
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.root_key, hashes.SHA256())
        )

    def leaf(
        self,
        cn: str = "Acme Signer",
        *,
        eku: list[x509.ObjectIdentifier] | None = None,
        not_after: datetime | None = None,
        crl: bool = False,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=10))
            .not_valid_after(not_after or now + timedelta(days=365))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        )
        if crl:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier("http://127.0.0.1:9/acme.crl")], None, None, None
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return key, builder.sign(self.root_key, hashes.SHA256())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def build_jws(
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    *,
    subject: Descriptor = MOCK_SUBJECT,
    extra: dict[str, Any] | None = None,
    crit: list[str] | None = None,
    expiry: datetime | None = None,
    tamper: bool = False,
) -> bytes:
    protected: dict[str, Any] = {
        "alg": "ES256",
        "cty": notation.PAYLOAD_MEDIA_TYPE,
        "crit": ["io.cncf.notary.signingScheme", *(crit or [])],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(extra or {}),
    }
    if expiry is not None:
        protected["io.cncf.notary.expiry"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        protected["crit"].append("io.cncf.notary.expiry")
    encoded = b64url(json.dumps(protected).encode())
    payload = b64url(json.dumps({"targetArtifact": subject.to_json()}).encode())
    signing_input = f"{encoded}.{payload}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if tamper:
        payload = b64url(
            json.dumps({"targetArtifact": {**subject.to_json(), "size": subject.size + 1}}).encode()
        )
    header = {"x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]}
    return json.dumps(
        {"payload": payload, "protected": encoded, "header": header, "signature": b64url(signature)}
    ).encode()


ACME_IDENTITY = "x509.subject:C=US,ST=WA,O=Acme,CN=Acme Signer"


def acme_statement(
    level: str = "strict", identity: str = ACME_IDENTITY, **verification: Any
) -> TrustPolicyStatement:
    return policy_statement(level, stores=("ca:acme",), identities=(identity,), **verification)


def run_built(
    blob: bytes,
    pki: Pki,
    statement: TrustPolicyStatement | None = None,
    *,
    subject: Descriptor = MOCK_SUBJECT,
    store_root: x509.Certificate | None = None,
) -> NotationResult:
    sig = notation.parse_envelope(blob, notation.JWS_MEDIA_TYPE, subject=subject, location="built", now=NOW)
    store = TrustStore.from_certificates({StoreRef("ca", "acme"): [store_root or pki.root]})
    return evaluate(sig, statement or acme_statement(), store, NOW)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_built_envelope_verifies(pki: Pki) -> None:
    key, leaf = pki.leaf()
    result = run_built(build_jws(key, [leaf, pki.root]), pki)
    assert result.satisfied and result.trusted, result.reason
    assert check(result, "certificate-requirements").outcome is Outcome.PASSED


def test_tampered_payload(pki: Pki) -> None:
    key, leaf = pki.leaf()
    result = run_built(build_jws(key, [leaf, pki.root], tamper=True), pki)
    assert not result.satisfied and result.status is Status.INVALID
    assert result.reason.startswith("signature:")


def test_wrong_subject_digest(pki: Pki) -> None:
    key, leaf = pki.leaf()
    other = Descriptor(MOCK_SUBJECT.media_type, "sha256:" + "1" * 64, MOCK_SUBJECT.size)
    result = run_built(build_jws(key, [leaf, pki.root], subject=other), pki)
    assert not result.satisfied and result.reason.startswith("payload-digest:")


def test_untrusted_root(pki: Pki) -> None:
    key, leaf = pki.leaf()
    result = run_built(build_jws(key, [leaf, pki.root]), pki, store_root=Pki("Other Root").root)
    assert not result.satisfied and result.status is Status.UNTRUSTED
    assert result.reason.startswith("trust-store:") and "not produced by a trusted signer" in result.reason


def test_identity_mismatch(pki: Pki) -> None:
    key, leaf = pki.leaf("Someone Else")
    result = run_built(build_jws(key, [leaf, pki.root]), pki)
    assert not result.satisfied and result.reason.startswith("trusted-identity:")
    assert check(result, CHECK_TRUST_STORE).outcome is Outcome.PASSED
    # a subset DN matches any signer it describes; the wildcard matches anyone
    assert run_built(
        build_jws(key, [leaf, pki.root]), pki, acme_statement(identity="x509.subject:C=US,ST=WA,O=Acme")
    ).satisfied
    assert run_built(build_jws(key, [leaf, pki.root]), pki, acme_statement(identity="*")).satisfied


def test_unknown_critical_header(pki: Pki) -> None:
    key, leaf = pki.leaf()
    blob = build_jws(key, [leaf, pki.root], extra={"com.acme.policy": "x"}, crit=["com.acme.policy"])
    result = run_built(blob, pki, acme_statement("audit"))
    assert not result.satisfied and result.reason.startswith("critical-headers:")
    assert "unknown critical header com.acme.policy" in result.reason


def test_expired_signature(pki: Pki) -> None:
    key, leaf = pki.leaf()
    blob = build_jws(key, [leaf, pki.root], expiry=NOW - timedelta(seconds=1))
    result = run_built(blob, pki)
    assert not result.satisfied and result.reason.startswith("expiry: digital signature has expired")
    assert run_built(blob, pki, acme_statement("permissive")).satisfied


def test_expired_certificate_without_timestamp(pki: Pki) -> None:
    key, leaf = pki.leaf(not_after=datetime.now(UTC) - timedelta(days=1))
    result = run_built(build_jws(key, [leaf, pki.root]), pki)
    assert not result.satisfied and result.reason.startswith("authentic-timestamp:")
    assert "no trusted timestamp applies" in result.reason
    logged = run_built(
        build_jws(key, [leaf, pki.root]), pki, acme_statement(override={"authenticTimestamp": "log"})
    )
    assert logged.satisfied and logged.warnings


def test_server_auth_only_leaf(pki: Pki) -> None:
    key, leaf = pki.leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    result = run_built(build_jws(key, [leaf, pki.root]), pki, acme_statement("audit"))
    assert not result.satisfied and result.status is Status.INVALID
    assert result.reason.startswith("certificate-requirements:") and "ServerAuth" in result.reason


def test_revocation_under_strict(pki: Pki) -> None:
    key, leaf = pki.leaf(crl=True)
    blob = build_jws(key, [leaf, pki.root])
    strict = run_built(blob, pki)
    # no revocation evidence was fetched (tests/test_revocation.py fetches it from loopback peers)
    assert not strict.satisfied and strict.reason.startswith("revocation: revocation status not checked")
    logged = run_built(blob, pki, acme_statement(override={"revocation": "log"}))
    assert logged.satisfied and check(logged, CHECK_REVOCATION).outcome is Outcome.SKIPPED
    skipped = run_built(blob, pki, acme_statement(override={"revocation": "skip"}))
    assert skipped.satisfied


def test_apply_notation_statuses(pki: Pki) -> None:
    key, leaf = pki.leaf()
    blob = build_jws(key, [leaf, pki.root])
    policy = parse_policy(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "acme",
                        "registryScopes": ["reg.io/acme/app"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:acme"],
                        "trustedIdentities": [ACME_IDENTITY],
                    }
                ],
            }
        ).encode()
    )
    trust = NotationTrust(policy, TrustStore.from_certificates({StoreRef("ca", "acme"): [pki.root]}))

    def found() -> Signature:
        return notation.parse_envelope(
            blob, notation.JWS_MEDIA_TYPE, subject=MOCK_SUBJECT, location="x", now=NOW
        )

    assert apply_notation(found(), trust, "reg.io/acme/app", NOW).status is Status.VERIFIED
    other = NotationTrust(policy, TrustStore.from_certificates({StoreRef("ca", "acme"): [Pki("X").root]}))
    assert apply_notation(found(), other, "reg.io/acme/app", NOW).status is Status.UNTRUSTED
    # no statement covers the repository: reported, never verified
    unscoped = apply_notation(found(), trust, "reg.io/acme/other", NOW)
    assert unscoped.status is Status.INTEGRITY_OK
    tampered = notation.parse_envelope(
        build_jws(key, [leaf, pki.root], tamper=True),
        notation.JWS_MEDIA_TYPE,
        subject=MOCK_SUBJECT,
        location="x",
        now=NOW,
    )
    assert apply_notation(tampered, trust, "reg.io/acme/app", NOW).status is Status.INVALID


def test_verify_image_passes_when_one_signature_does(pki: Pki) -> None:
    key, leaf = pki.leaf()
    good = notation.parse_envelope(
        build_jws(key, [leaf, pki.root]), notation.JWS_MEDIA_TYPE, subject=MOCK_SUBJECT, location="a", now=NOW
    )
    bad = notation.parse_envelope(
        build_jws(key, [leaf, pki.root], tamper=True),
        notation.JWS_MEDIA_TYPE,
        subject=MOCK_SUBJECT,
        location="b",
        now=NOW,
    )
    policy = parse_policy(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "all",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:acme"],
                        "trustedIdentities": [ACME_IDENTITY],
                    }
                ],
            }
        ).encode()
    )
    trust = NotationTrust(policy, TrustStore.from_certificates({StoreRef("ca", "acme"): [pki.root]}))
    assert verify_image("img", MOCK_SUBJECT.digest, "reg.io/a", [bad, good], trust, NOW).verified
    assert not verify_image("img", MOCK_SUBJECT.digest, "reg.io/a", [bad], trust, NOW).verified
    limited = verify_image("img", MOCK_SUBJECT.digest, "reg.io/a", [bad, good], trust, NOW, max_signatures=1)
    assert not limited.verified and limited.not_evaluated == 1 and "--max-signatures" in limited.reason
    assert not verify_image("img", MOCK_SUBJECT.digest, "reg.io/a", [], trust, NOW).verified


# ---------------------------------------------------------------- end to end: a registry serving the vectors


ALPINE = "x509.subject:CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"


def notation_config(directory: Path, scope: str, identity: str = ALPINE, *, level: str = "strict") -> Path:
    """A notation config dir whose ca store holds the vectors' self-signed signing certificate."""
    blob = (NOTATION_TESTDATA / ENVELOPES["jws"][0]).read_bytes()
    der = base64.b64decode(json.loads(blob)["header"]["x5c"][0])
    store = directory / "truststore" / "x509" / "ca" / "alpine"
    store.mkdir(parents=True)
    (store / "alpine.crt").write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "vectors",
                "registryScopes": [scope],
                "signatureVerification": {"level": level},
                "trustStores": ["ca:alpine"],
                "trustedIdentities": [identity],
            }
        ],
    }
    (directory / "trustpolicy.json").write_text(json.dumps(policy))
    return directory


@pytest.fixture(scope="module")
def served(registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if not vectors_available():
        vectors.unavailable("the notation-go vector layout is incomplete")
    work = tmp_path_factory.mktemp("notation-verify")
    pushed = push_notation_vector(
        registry.host,
        "notation-verify/app",
        "v1",
        work,
        storage_root=registry.rootdir,
        formats=("cose", "jws"),
    )
    return f"{registry.host}/notation-verify/app", pushed.subject_digest


def test_cli_verify_passes(served: tuple[str, str], tmp_path: Path) -> None:
    repo, digest = served
    config = notation_config(tmp_path, repo)
    result = sigscope(
        "verify", f"{repo}@{digest}", "--insecure", "--notation-config", str(config), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verified"] and verdict["policy"] == "vectors"
    assert sorted(s["format"] for s in verdict["signatures"]) == ["notation-cose", "notation-jws"]
    assert all(s["status"] == "verified" for s in verdict["signatures"])
    # --trust-policy + --trust-store name the same files separately
    split = sigscope(
        "verify",
        f"{repo}:v1",
        "--insecure",
        "--trust-policy",
        str(config / "trustpolicy.json"),
        "--trust-store",
        str(config / "truststore"),
    )
    assert split.returncode == 0, split.stderr
    assert "2 of 2 signature(s) satisfy" in split.stdout


def test_cli_verify_identity_mismatch(served: tuple[str, str], tmp_path: Path) -> None:
    repo, digest = served
    config = notation_config(tmp_path, repo, "x509.subject:CN=someone,O=Notary,L=Seattle,ST=WA,C=US")
    result = sigscope("verify", f"{repo}@{digest}", "--insecure", "--notation-config", str(config))
    assert result.returncode == 1
    assert "trusted-identity" in result.stdout and "not verified: no signature satisfies" in result.stdout
    assert result.stderr == ""


def test_cli_verify_no_applicable_statement(served: tuple[str, str], tmp_path: Path) -> None:
    repo, digest = served
    config = notation_config(tmp_path, "reg.example.com/elsewhere")
    result = sigscope("verify", f"{repo}@{digest}", "--insecure", "--notation-config", str(config))
    assert result.returncode == 2
    assert "no applicable trust policy statement" in result.stderr


def test_cli_verify_invalid_policy_and_store(served: tuple[str, str], tmp_path: Path) -> None:
    repo, digest = served
    config = notation_config(tmp_path, repo)
    policy = json.loads((config / "trustpolicy.json").read_text())
    policy["trustPolicies"][0]["registryScopes"] = ["*", repo]
    (config / "trustpolicy.json").write_text(json.dumps(policy))
    result = sigscope("verify", f"{repo}@{digest}", "--insecure", "--notation-config", str(config))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "trustpolicy.json" in line and "wildcard scope cannot be used in conjunction" in line
    assert "Traceback" not in result.stderr

    policy["trustPolicies"][0]["registryScopes"] = [repo]
    policy["trustPolicies"][0]["trustStores"] = ["ca:nothere"]
    (config / "trustpolicy.json").write_text(json.dumps(policy))
    result = sigscope("verify", f"{repo}@{digest}", "--insecure", "--notation-config", str(config))
    assert result.returncode == 2 and "ca:nothere does not exist" in result.stderr

    alone = sigscope(
        "verify", f"{repo}@{digest}", "--insecure", "--trust-policy", str(config / "trustpolicy.json")
    )
    assert alone.returncode == 2 and "--trust-store" in alone.stderr


def test_cli_scan_reports_verified_and_untrusted(
    served: tuple[str, str], registry: RegistryHandle, tmp_path: Path
) -> None:
    repo, _ = served
    trusted = notation_config(tmp_path / "trusted", repo)
    result = sigscope(
        "scan",
        "registry",
        registry.host,
        "--insecure",
        "--repo",
        "notation-verify/*",
        "--notation-config",
        str(trusted),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["registry"]["signatures"]
    notary = [r for r in records if r["format"].startswith("notation")]
    assert len(notary) == 2 and all(r["status"] == "verified" for r in notary)
    assert all("CN=alpine" in r["subjectname"] for r in notary)

    other = notation_config(tmp_path / "other", repo, "x509.subject:CN=someone,O=Notary,L=Seattle,ST=WA,C=US")
    result = sigscope(
        "scan",
        "registry",
        registry.host,
        "--insecure",
        "--repo",
        "notation-verify/*",
        "--notation-config",
        str(other),
        "-o",
        "json",
    )
    records = json.loads(result.stdout)["registry"]["signatures"]
    assert all(r["status"] == "untrusted" for r in records if r["format"].startswith("notation"))


COUNTERSIGNATURES = NOTATION_GO / "verifier" / "testdata" / "timestamp" / "countersignature"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("TimeStampToken.p7s", "timestamp-imprint"),
        ("TimeStampTokenWithInvalideContentType.p7s", "failed to parse timestamp countersignature"),
        ("TimeStampTokenWithInvalidTSTInfo.p7s", "failed to parse timestamp countersignature"),
        ("TimeStampTokenWithoutCertificate.p7s", "does not verify"),
    ],
)
def test_bad_countersignatures(token: str, message: str) -> None:
    # The token sits in the unprotected header: swapping it leaves the envelope's own signature intact.
    envelope = json.loads((SIG_ENV / "jwsWithTimestamp.sig").read_bytes())
    envelope["header"]["io.cncf.notary.timestampSignature"] = base64.b64encode(
        (COUNTERSIGNATURES / token).read_bytes()
    ).decode()
    sig = notation.parse_envelope(
        json.dumps(envelope).encode(),
        notation.JWS_MEDIA_TYPE,
        subject=TIMESTAMP_SUBJECT,
        location=token,
        now=NOW,
    )
    result = judge(sig, policy_statement(stores=TSA_STATEMENT, identities=("*",)))
    failed = check(result, CHECK_TIMESTAMP)
    assert failed.outcome is Outcome.FAILED and message in failed.detail, failed.detail
    assert not result.satisfied


def test_integrity_is_never_inferred_from_missing_checks(pki: Pki) -> None:
    key, leaf = pki.leaf()
    sig = notation.parse_envelope(
        build_jws(key, [leaf, pki.root]), notation.JWS_MEDIA_TYPE, subject=MOCK_SUBJECT, location="x", now=NOW
    )
    sig.checks = [c for c in sig.checks if c.name != "signature"]
    store = TrustStore.from_certificates({StoreRef("ca", "acme"): [pki.root]})
    result = evaluate(sig, acme_statement(), store, NOW)
    assert not result.satisfied and result.reason.startswith("signature:")
