"""Notary Project certificate requirements and notation trust stores, against notation-core-go / notation-go
vectors (VECTORS.md §5.3, §6) and certificates built here for the cases the vectors lack."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testbed import vectors

from sigscope.model import Outcome
from sigscope.trust import notary_certs
from sigscope.trust.notary_certs import CertRequirementError
from sigscope.trust.truststore import (
    StoreRef,
    TrustStoreError,
    load_trust_store,
    parse_certificate_file,
    validate_store_certificates,
)

VECTORS = vectors.ROOT
CORE_X509 = VECTORS / "notaryproject-notation-core-go" / "x509"
MATRIX = CORE_X509 / "extracted-from-codesigning_cert_validations_test.go"
STORES = VECTORS / "notaryproject-notation-go" / "verifier" / "testdata" / "truststore"
pytestmark = pytest.mark.vectors


def pem(name: str) -> x509.Certificate:
    [cert] = parse_certificate_file((MATRIX / f"{name}.pem").read_bytes(), name)
    return cert


# Read at import for brevity below; without the vectors every test here is skipped by its marker.
if vectors.available():
    ROOT, INT1, INT2, LEAF = (
        pem("rootCertPem"),
        pem("intermediateCertPem1"),
        pem("intermediateCertPem2"),
        pem("codeSigningLeafPem"),
    )


def failure(chain: list[x509.Certificate], signing_time: datetime | None = None) -> str:
    with pytest.raises(CertRequirementError) as caught:
        notary_certs.validate_code_signing_chain(chain, signing_time)
    return str(caught.value)


# ---------------------------------------------------------------- chains


def test_valid_chain() -> None:
    notary_certs.validate_code_signing_chain([LEAF, INT2, INT1, ROOT])
    check = notary_certs.code_signing_check([LEAF, INT2, INT1, ROOT])
    assert check.outcome is Outcome.PASSED and check.name == "certificate-requirements"


def test_leaf_alone_is_not_self_signed() -> None:
    assert "invalid self-signed certificate" in failure([LEAF])


def test_chain_without_root() -> None:
    assert "CN=Intermediate1" in failure([LEAF, INT2, INT1]) and "not self-signed" in failure(
        [LEAF, INT2, INT1]
    )


def test_misordered_chain() -> None:
    assert "is not issued by" in failure([LEAF, INT1, INT2, ROOT])


def test_unrelated_certificate_after_the_root() -> None:
    assert "is self-signed" in failure([LEAF, INT2, INT1, ROOT, pem("unrelatedCertPem")])


def test_path_length() -> None:
    chain = [
        pem("codeSigningLeafInvalidPathLenPem"),
        pem("intermediateCertInvalidPathLenPem"),
        INT2,
        INT1,
        ROOT,
    ]
    message = failure(chain)
    assert "CN=Intermediate2" in message and "expected path length of 1" in message


def test_signing_time_outside_validity() -> None:
    # the leaf is valid 2022-06-30 .. 3021-10-31
    assert "invalid at signing time" in failure([LEAF, INT2, INT1, ROOT], datetime(2021, 7, 7, tzinfo=UTC))
    notary_certs.validate_code_signing_chain([LEAF, INT2, INT1, ROOT], datetime(2023, 7, 7, tzinfo=UTC))


def test_minimal_self_signed_certificate() -> None:
    chain = parse_certificate_file(
        (CORE_X509 / "testdata" / "openssl-minimum-self-signed.pem").read_bytes(), "x"
    )
    notary_certs.validate_code_signing_chain(chain)


def test_timestamping_chain() -> None:
    chain = [
        parse_certificate_file((CORE_X509 / "testdata" / f"timestamp_{n}.crt").read_bytes(), n)[0]
        for n in ("leaf", "intermediate", "root")
    ]
    notary_certs.validate_timestamping_chain(chain)
    # a code-signing leaf is no TSA
    with pytest.raises(CertRequirementError, match="only have Timestamping"):
        notary_certs.validate_timestamping_chain([LEAF, INT2, INT1, ROOT])


# ---------------------------------------------------------------- single certificates


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("noBasicConstraintsCaPem", "ca field in basic constraints"),
        ("basicConstraintsNotCaPem", "ca field in basic constraints"),
        ("kuNotCriticalCertSignCaPem", "key usage extension must be marked critical"),
        ("kuMissingCaPem", "key usage extension must be present"),
        ("kuNotCertSignCaPem", "key cert sign"),
    ],
)
def test_ca_requirements(name: str, message: str) -> None:
    with pytest.raises(CertRequirementError, match=message):
        notary_certs._check_ca(pem(name), 0, ku_must_be_critical=True)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("caTrueLeafPem", "ca field must be set to false"),
        ("kuNoDigitalSignatureLeafPem", "Digital Signature"),
        ("kuWrongValuesLeafPem", "CertSign, CRLSign"),
        ("rsaKeyTooSmallLeafPem", "rsa key size 1024"),
        ("ecdsaKeyTooSmallLeafPem", "ecdsa key size 224"),
        ("ekuWrongValuesCodeLeafPem", "must not contain ServerAuth"),
        ("ekuMissingCodeSigningLeafPem", "must not contain OCSPSigning"),
    ],
)
def test_leaf_requirements(name: str, message: str) -> None:
    with pytest.raises(CertRequirementError, match=message):
        notary_certs.check_code_signing_leaf(pem(name))


@pytest.mark.parametrize("name", ["validNoOptionsLeafPem", "codeSigningLeafPem"])
def test_valid_leaves(name: str) -> None:
    notary_certs.check_code_signing_leaf(pem(name))


def _self_signed(*, eku: list[x509.ObjectIdentifier] | None, ku_critical: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "built")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=ku_critical
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_server_auth_only_leaf_is_rejected() -> None:
    cert = _self_signed(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    check = notary_certs.code_signing_check([cert])
    assert check.outcome is Outcome.FAILED and "ServerAuth" in check.detail


def test_any_eku_is_rejected_and_code_signing_accepted() -> None:
    with pytest.raises(CertRequirementError, match="Any"):
        notary_certs.validate_code_signing_chain(
            [_self_signed(eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])]
        )
    notary_certs.validate_code_signing_chain([_self_signed(eku=[ExtendedKeyUsageOID.CODE_SIGNING])])


def test_non_critical_leaf_key_usage() -> None:
    with pytest.raises(CertRequirementError, match="must be marked critical"):
        notary_certs.validate_code_signing_chain([_self_signed(eku=None, ku_critical=False)])


# ---------------------------------------------------------------- certificate files and trust stores


@pytest.mark.parametrize(
    ("name", "count"), [("pem.crt", 1), ("multi-pem.crt", 2), ("der.der", 1), ("multi-der.der", 2)]
)
def test_certificate_files(name: str, count: int) -> None:
    assert len(parse_certificate_file((CORE_X509 / "testdata" / name).read_bytes(), name)) == count


def test_invalid_certificate_file() -> None:
    with pytest.raises(TrustStoreError, match="malformed certificate"):
        parse_certificate_file((CORE_X509 / "testdata" / "invalid").read_bytes(), "invalid")
    with pytest.raises(TrustStoreError, match="could not parse a certificate"):
        parse_certificate_file(b"", "empty")


@pytest.mark.parametrize(
    ("store", "count"),
    [
        (StoreRef("ca", "valid-trust-store"), 6),
        (StoreRef("ca", "valid-trust-store-2"), 2),
        (StoreRef("ca", "valid-trust-store-self-signed"), 1),
        (StoreRef("signingAuthority", "valid-trust-store"), 3),
        (StoreRef("tsa", "test-timestamp"), 1),
    ],
)
def test_valid_stores(store: StoreRef, count: int) -> None:
    loaded = load_trust_store(STORES, [store])
    assert len(loaded.stores[store]) == count


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            StoreRef("ca", "trust-store-with-leaf-certs"),
            "not a CA certificate or self-signed signing certificate",
        ),
        (
            StoreRef("ca", "trust-store-with-leaf-certs-in-single-file"),
            "not a CA certificate or self-signed signing certificate",
        ),
        (StoreRef("ca", "trust-store-with-invalid-certs"), "malformed certificate"),
        (StoreRef("tsa", "test-nonCA"), "not a root CA certificate"),
        (StoreRef("tsa", "test-nonSelfIssued"), "not a root CA certificate"),
        (StoreRef("ca", "does-not-exist"), "does not exist"),
    ],
)
def test_rejected_stores(store: StoreRef, message: str) -> None:
    with pytest.raises(TrustStoreError, match=message):
        load_trust_store(STORES, [store])


def test_store_rules_on_the_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "truststore"
    store = root / "x509" / "ca" / "acme"
    store.mkdir(parents=True)
    (store / "root.crt").write_bytes(ROOT.public_bytes(Encoding.PEM))
    (store / "sub").mkdir()
    loaded = load_trust_store(root, [StoreRef("ca", "acme")])
    assert loaded.stores[StoreRef("ca", "acme")] == [ROOT]
    assert any("sub-directory" in w for w in loaded.warnings)

    # a symlinked certificate file is refused, as notation refuses it
    os.symlink(store / "root.crt", store / "link.crt")
    with pytest.raises(TrustStoreError, match="symlink"):
        load_trust_store(root, [StoreRef("ca", "acme")])
    (store / "link.crt").unlink()

    # a symlinked store directory too
    os.symlink(store, root / "x509" / "ca" / "linked")
    with pytest.raises(TrustStoreError, match="not a regular directory"):
        load_trust_store(root, [StoreRef("ca", "linked")])

    empty = root / "x509" / "ca" / "empty"
    empty.mkdir()
    with pytest.raises(TrustStoreError, match="no x509 certificates"):
        load_trust_store(root, [StoreRef("ca", "empty")])
    with pytest.raises(TrustStoreError, match="must follow"):
        load_trust_store(root, [StoreRef("ca", "bad name")])
    with pytest.raises(TrustStoreError, match="no x509/ directory"):
        load_trust_store(tmp_path, [StoreRef("ca", "acme")])


def test_store_accepts_self_signed_leaf_but_not_issued_leaf() -> None:
    validate_store_certificates("ca", [_self_signed(eku=None)], "self-signed.crt")
    with pytest.raises(TrustStoreError):
        validate_store_certificates("ca", [LEAF], "leaf.crt")
    with pytest.raises(TrustStoreError):
        validate_store_certificates("tsa", [_self_signed(eku=None)], "self-signed.crt")
    validate_store_certificates("tsa", [ROOT], "root.crt")
