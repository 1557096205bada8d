"""A small code-signing PKI written to disk, for the peers that sign with files (jarsigner, osslsigncode,
openssl ts, xmlsec1) and for trust stores in tests.

`build_pki(DIR)` writes, for each entity NAME: `NAME.key` (PKCS#8 PEM, unencrypted), `NAME.crt` (PEM),
`NAME.chain.pem` (the certificate then its issuers, root last) and `NAME.p12` (key + chain, password
`changeit`, usable as a jarsigner/keytool PKCS12 keystore with alias `NAME`, and by osslsigncode -pkcs12).

Entities:
  root            self-signed RSA-3072 CA (keyCertSign critical)
  other-root      an unrelated CA, for "untrusted root" cases
  rsa-signer      RSA-2048 code-signing leaf under root (digitalSignature, EKU codeSigning)
  ec-signer       P-256 code-signing leaf under root
  expired-signer  RSA-2048 code-signing leaf under root, valid 2020-01-01 .. 2021-01-01
  self-signer     self-signed RSA-2048 code-signing certificate
  server-only     RSA-2048 leaf under root with EKU serverAuth only (must be refused for code signing)
  untrusted-signer RSA-2048 code-signing leaf under other-root
  tsa             RSA-2048 timestamping leaf under root (EKU timeStamping, critical, as RFC 3161 requires)
  ec-tsa          P-256 timestamping leaf under root
  tsa-no-eku      RSA-2048 leaf under root without the timeStamping EKU (a TSA to reject)

Run as a script to (re)build a directory: `python -m testbed.pki DIR` from tests/.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

P12_PASSWORD = "changeit"
_EKU = x509.oid.ObjectIdentifier


@dataclass
class Entity:
    name: str
    key: CertificateIssuerPrivateKeyTypes
    cert: x509.Certificate
    chain: list[x509.Certificate]  # issuers after the certificate itself, root last
    dir: Path

    @property
    def key_path(self) -> Path:
        return self.dir / f"{self.name}.key"

    @property
    def cert_path(self) -> Path:
        return self.dir / f"{self.name}.crt"

    @property
    def chain_path(self) -> Path:
        return self.dir / f"{self.name}.chain.pem"

    @property
    def p12_path(self) -> Path:
        return self.dir / f"{self.name}.p12"

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


@dataclass
class PKI:
    dir: Path
    entities: dict[str, Entity]

    def __getitem__(self, name: str) -> Entity:
        return self.entities[name]


def _name(cn: str, org: str = "sigscope tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def issue(
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    *,
    ca: bool,
    eku: list[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = False,
    san: list[x509.GeneralName] | None = None,
    path_length: int | None = None,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The test certificate builder (every testbed PKI issues through it): a CA (keyCertSign, cRLSign) or a
    leaf (digitalSignature) with the EKUs and SANs given; self-signed when `subject` is `issuer`."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if subject != issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def build_pki(directory: Path) -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=1), now + timedelta(days=3650)
    entities: dict[str, Entity] = {}

    def add(
        name: str,
        key: CertificateIssuerPrivateKeyTypes,
        cn: str,
        issuer: Entity | None,
        *,
        ca: bool = False,
        eku: list[x509.ObjectIdentifier] | None = None,
        eku_critical: bool = False,
        valid: tuple[datetime, datetime] = (start, end),
    ) -> Entity:
        subject = _name(cn)
        issuer_name = issuer.cert.subject if issuer else subject
        issuer_key = issuer.key if issuer else key
        cert = issue(
            subject,
            key.public_key(),
            issuer_name,
            issuer_key,
            ca=ca,
            eku=eku,
            eku_critical=eku_critical,
            not_before=valid[0],
            not_after=valid[1],
        )
        chain = ([issuer.cert, *issuer.chain]) if issuer else []
        entity = Entity(name, key, cert, chain, directory)
        entities[name] = entity
        return entity

    code = [ExtendedKeyUsageOID.CODE_SIGNING]
    stamp = [ExtendedKeyUsageOID.TIME_STAMPING]
    root = add("root", _rsa(3072), "sigscope Test Root CA", None, ca=True)
    other = add("other-root", _rsa(2048), "Unrelated Root CA", None, ca=True)
    add("rsa-signer", _rsa(), "RSA Code Signer", root, eku=code)
    add("ec-signer", ec.generate_private_key(ec.SECP256R1()), "EC Code Signer", root, eku=code)
    past = datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC)
    add("expired-signer", _rsa(), "Expired Code Signer", root, eku=code, valid=past)
    add("self-signer", _rsa(), "Self-Signed Code Signer", None, eku=code)
    add("server-only", _rsa(), "Server Auth Only", root, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    add("untrusted-signer", _rsa(), "Untrusted Code Signer", other, eku=code)
    add("tsa", _rsa(), "sigscope Test TSA", root, eku=stamp, eku_critical=True)
    add(
        "ec-tsa",
        ec.generate_private_key(ec.SECP256R1()),
        "sigscope Test EC TSA",
        root,
        eku=stamp,
        eku_critical=True,
    )
    add("tsa-no-eku", _rsa(), "TSA Without EKU", root, eku=code)

    for entity in entities.values():
        _write(entity)
    return PKI(directory, entities)


def _write(entity: Entity) -> None:
    key_pem = entity.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    entity.key_path.write_bytes(key_pem)
    entity.cert_path.write_bytes(entity.cert.public_bytes(serialization.Encoding.PEM))
    entity.chain_path.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [entity.cert, *entity.chain])
    )
    # keytool/jarsigner read PKCS12 only with a legacy-compatible MAC/PBE set; the builder's AES-SHA256
    # form is what JDK 17 accepts.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(P12_PASSWORD.encode())
    )
    entity.p12_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            entity.name.encode(), entity.key, entity.cert, entity.chain or None, encryption
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m testbed.pki DIR")
    pki = build_pki(Path(sys.argv[1]))
    for name, entity in pki.entities.items():
        print(f"{name}: {entity.subject}")
