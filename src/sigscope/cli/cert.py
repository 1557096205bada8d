"""`sigscope cert generate-test NAME`: a test CA and code-signing leaf for Notary Project signing, as
`notation cert generate-test` makes one, optionally added to a notation trust store."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sigscope.cli.options import OUTPUT_BASIC
from sigscope.errors import UsageError
from sigscope.trust.notation_policy import POLICY_FILES, TrustPolicyError, parse_policy, validate_scope
from sigscope.trust.truststore import StoreRef

LEGACY_POLICY_FILE = POLICY_FILES[1]

KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
_CURVES: dict[str, ec.EllipticCurve] = {
    "ecdsa-p256": ec.SECP256R1(),
    "ecdsa-p384": ec.SECP384R1(),
    "ecdsa-p521": ec.SECP521R1(),
}
# The hash each key size signs certificates with, matching the Notary algorithm table (FORMATS §2.5).
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "rsa-2048": hashes.SHA256,
    "rsa-3072": hashes.SHA384,
    "rsa-4096": hashes.SHA512,
    "ecdsa-p256": hashes.SHA256,
    "ecdsa-p384": hashes.SHA384,
    "ecdsa-p521": hashes.SHA512,
}
_STORE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Issued a little in the past, so a signer whose clock lags the one that made the certificate still signs.
_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class TestCertificate:
    """A generated leaf (and its CA unless self-signed): key, chain leaf first, and the trust anchor."""

    key: CertificateIssuerPrivateKeyTypes
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def anchor(self) -> x509.Certificate:
        return self.chain[-1]


def _name(common_name: str) -> x509.Name:
    # notation's test certificates carry this DN, so trust policies written for them fit ours.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Notary"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _generate_key(key_type: str) -> CertificateIssuerPrivateKeyTypes:
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    return ec.generate_private_key(_CURVES[key_type])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def generate_test_certificate(
    name: str, *, key_type: str = "rsa-2048", days: int = 365, self_signed: bool = False, now: datetime
) -> TestCertificate:
    """A code-signing leaf `CN=NAME,O=Notary,L=Seattle,ST=WA,C=US` under a fresh CA `CN=NAME CA,…` (or a
    single self-signed leaf), meeting the Notary Project certificate requirements (FORMATS §2.6)."""
    if key_type not in KEY_TYPES:
        raise UsageError(f"key type {key_type!r} is not one of {', '.join(KEY_TYPES)}")
    if days < 1:
        raise UsageError("--days must be at least 1")
    digest = _HASHES[key_type]()
    start = now.replace(microsecond=0) - _BACKDATE
    end = start + _BACKDATE + timedelta(days=days)
    leaf_key = _generate_key(key_type)
    subject = _name(name)
    if self_signed:
        issuer_name, issuer_key = subject, leaf_key
        ca_cert = None
    else:
        issuer_key = _generate_key(key_type)
        issuer_name = _name(f"{name} CA")
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(issuer_name)
            .issuer_name(issuer_name)
            .public_key(issuer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            # The CA outlives the leaf, so the chain is never judged by an expired anchor first.
            .not_valid_after(end + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
            .sign(issuer_key, digest)
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
    )
    if ca_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    leaf = builder.sign(issuer_key, digest)
    chain = (leaf,) if ca_cert is None else (leaf, ca_cert)
    return TestCertificate(leaf_key, chain)


def trusted_identity(cert: x509.Certificate) -> str:
    """The `trustedIdentities` entry of a notation trust policy that names `cert`'s subject."""
    return "x509.subject:" + cert.subject.rfc4514_string()


def trust_policy_document(
    store_name: str, identity: str, scopes: tuple[str, ...] = ("*",)
) -> dict[str, object]:
    """A notation trust policy (version 1.0) with one strict statement: artifacts in `scopes` must be signed
    by a chain in the trust store `ca:store_name` whose leaf has the subject `identity` names."""
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": store_name,
                "registryScopes": list(scopes),
                "signatureVerification": {"level": "strict"},
                "trustStores": [f"ca:{store_name}"],
                "trustedIdentities": [identity],
            }
        ],
    }


def _check_scopes(scopes: tuple[str, ...]) -> None:
    for scope in scopes:
        if scope != "*":
            try:
                validate_scope(scope)
            except TrustPolicyError as exc:
                raise UsageError(f"--registry-scope: {exc}") from None
    if "*" in scopes and len(scopes) > 1:
        raise UsageError("--registry-scope '*' cannot be combined with other scopes")


def _policy_bytes(store_name: str, identity: str, scopes: tuple[str, ...], path: Path) -> bytes:
    data = (json.dumps(trust_policy_document(store_name, identity, scopes), indent=2) + "\n").encode()
    parse_policy(data, str(path))  # what `verify --notation-config` will read must be valid, always
    return data


def _trusts(policy: Path, store_name: str, identity: str) -> bool:
    """Whether an existing policy file has a statement naming `ca:store_name` and `identity` (or `*`)."""
    try:
        document = parse_policy(policy.read_bytes(), str(policy))
    except (OSError, TrustPolicyError):
        return False
    return any(
        StoreRef("ca", store_name) in statement.trust_stores
        and (
            statement.identities.wildcard or any(raw == identity for raw, _ in statement.identities.subjects)
        )
        for statement in document.statements
    )


def _pem(certs: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _check_free(paths: list[Path], force: bool) -> None:
    if force:
        return
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise UsageError(f"{', '.join(taken)} already exist(s); use --force to overwrite")


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            # notation refuses symlinked trust store entries; writing through one plants a file elsewhere.
            raise UsageError(f"{path} is a symbolic link; refusing to write through it")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


@click.group("cert")
def cert_group() -> None:
    """Certificates for Notary Project signing."""


@cert_group.command("generate-test")
@click.argument("name")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where NAME.key, NAME.crt (leaf + CA, for sign --cert) and NAME.ca.crt are written.",
)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa-2048", show_default=True)
@click.option("--days", type=int, default=365, show_default=True, help="Validity of the leaf certificate.")
@click.option("--self-signed", is_flag=True, help="One self-signed leaf instead of a CA and a leaf.")
@click.option(
    "--trust-store",
    type=click.Path(file_okay=False),
    help="Add the CA to this notation trust store directory as x509/ca/NAME/NAME.crt.",
)
@click.option(
    "--notation-config",
    type=click.Path(file_okay=False),
    help="Add the CA to DIR/truststore/x509/ca/NAME/NAME.crt (a notation configuration directory).",
)
@click.option(
    "--trust-policy",
    "trust_policy",
    type=click.Path(dir_okay=False),
    help="Write a notation trust policy trusting ca:NAME and the leaf's subject to this file. With "
    "--notation-config one is written to DIR/trustpolicy.json anyway when DIR has none.",
)
@click.option(
    "--no-trust-policy",
    is_flag=True,
    help="With --notation-config: write no trust policy, even when DIR has none.",
)
@click.option(
    "--registry-scope",
    "registry_scopes",
    multiple=True,
    metavar="SCOPE",
    help="registryScopes of the written trust policy (host/repository, repeatable; default '*': all).",
)
@click.option(
    "--force", is_flag=True, help="Overwrite existing files (never an existing --notation-config policy)."
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
def generate_test_cmd(
    name: str,
    output_dir: str,
    key_type: str,
    days: int,
    self_signed: bool,
    trust_store: str | None,
    notation_config: str | None,
    trust_policy: str | None,
    no_trust_policy: bool,
    registry_scopes: tuple[str, ...],
    force: bool,
    output: str,
) -> None:
    """Generate a test CA and a code-signing certificate NAME for `sign --format notation`, like
    `notation cert generate-test`: the key (unencrypted PKCS#8, mode 0600), the chain and the CA certificate;
    with --trust-store / --notation-config the CA is added to the trust store under `ca:NAME`.

    With --notation-config DIR a trust policy is written too, DIR/trustpolicy.json, unless DIR already
    has one (trustpolicy.oci.json or trustpolicy.json, never overwritten) or --no-trust-policy: one strict
    statement for --registry-scope (default '*') trusting `ca:NAME` and the leaf's subject, so
    `verify --notation-config DIR` works at once. --trust-policy FILE writes that policy to FILE instead.

    \b
    Examples:
      sigscope cert generate-test wabbit-networks.io --notation-config ~/.config/notation
      sigscope cert generate-test acme --trust-store ./truststore --trust-policy ./trustpolicy.json
      sigscope cert generate-test release --key-type ecdsa-p384 --output-dir keys --days 30
    """
    if not _STORE_NAME.fullmatch(name):
        raise UsageError(
            f"name {name!r} may only hold letters, digits, '_', '.' and '-' (a trust store name)"
        )
    if trust_store is not None and notation_config is not None:
        raise UsageError("give --trust-store or --notation-config, not both")
    directory = Path(output_dir)
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    ca_path = None if self_signed else directory / f"{name}.ca.crt"
    store_root = (
        Path(trust_store)
        if trust_store
        else Path(notation_config) / "truststore"
        if notation_config
        else None
    )
    store_path = store_root / "x509" / "ca" / name / f"{name}.crt" if store_root is not None else None
    if no_trust_policy and trust_policy is not None:
        raise UsageError("give --trust-policy or --no-trust-policy, not both")
    if registry_scopes and trust_policy is None and (notation_config is None or no_trust_policy):
        raise UsageError(
            "--registry-scope needs a trust policy to write (--trust-policy or --notation-config)"
        )
    scopes = registry_scopes or ("*",)
    _check_scopes(scopes)
    policy_path: Path | None = None
    existing_policy: Path | None = None
    if trust_policy is not None:
        policy_path = Path(trust_policy)
    elif notation_config is not None and not no_trust_policy:
        config = Path(notation_config)
        existing_policy = next(
            (config / f for f in POLICY_FILES if (config / f).exists() or (config / f).is_symlink()), None
        )
        if existing_policy is None:
            # trustpolicy.json: the name notation 1.x (1.3.2, the newest release) reads; sigscope reads both.
            policy_path = config / LEGACY_POLICY_FILE
    _check_free([p for p in (key_path, cert_path, ca_path, store_path, policy_path) if p is not None], force)

    generated = generate_test_certificate(
        name, key_type=key_type, days=days, self_signed=self_signed, now=datetime.now(UTC)
    )
    key_pem = generated.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, _pem(generated.chain))
    if ca_path is not None:
        _write(ca_path, _pem((generated.anchor,)))
    if store_path is not None:
        _write(store_path, _pem((generated.anchor,)))
    identity = trusted_identity(generated.leaf)
    if policy_path is not None:
        _write(policy_path, _policy_bytes(name, identity, scopes, policy_path))
    if output == "json":
        out = {
            "name": name,
            "keyType": key_type,
            "key": str(key_path),
            "certificate": str(cert_path),
            "ca": str(ca_path) if ca_path is not None else None,
            "trustStore": str(store_path) if store_path is not None else None,
            "trustStoreReference": f"ca:{name}",
            "trustedIdentity": identity,
            "trustPolicy": str(policy_path) if policy_path is not None else None,
            "existingTrustPolicy": str(existing_policy) if existing_policy is not None else None,
            "notAfter": generated.leaf.not_valid_after_utc.isoformat(),
        }
        click.echo(json.dumps(out))
        return
    click.echo(f"key:          {key_path} ({key_type})")
    click.echo(
        f"certificate:  {cert_path} ({'self-signed' if self_signed else 'leaf + CA'}, for sign --cert)"
    )
    if ca_path is not None:
        click.echo(f"CA:           {ca_path}")
    if store_path is not None:
        click.echo(f'trust store:  {store_path} (trustStores: "ca:{name}")')
    click.echo(f"identity:     {identity}")
    if policy_path is not None:
        click.echo(
            f"trust policy: {policy_path} (scope {', '.join(scopes)}, strict, ca:{name}, this identity)"
        )
    elif existing_policy is not None:
        if _trusts(existing_policy, name, identity):
            click.echo(
                f"trust policy: {existing_policy} (kept; it already trusts ca:{name} and this identity)"
            )
        else:
            click.echo(
                f"trust policy: {existing_policy} exists and was left as is: to trust this certificate a "
                f'statement needs "ca:{name}" in trustStores and the identity above in trustedIdentities'
            )
