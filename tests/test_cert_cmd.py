"""`sigscope cert generate-test`: a test CA + code-signing leaf as `notation cert generate-test` makes one,
usable by `sign --format notation` and trusted through a notation trust store."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from testbed import build_layout
from testbed.cli import run_sigscope as run

from sigscope.cli.cert import generate_test_certificate, trusted_identity
from sigscope.errors import UsageError
from sigscope.keys import FileSigner, load_private_key
from sigscope.trust import certs, notary_certs
from sigscope.trust.truststore import StoreRef, load_trust_store

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def generate(directory: Path, name: str, *extra: str) -> dict[str, str]:
    result = run("cert", "generate-test", name, "--output-dir", str(directory), *extra, "-o", "json")
    assert result.returncode == 0, result.stderr
    out: dict[str, str] = json.loads(result.stdout)
    return out


@pytest.mark.parametrize(
    ("key_type", "size"),
    [("rsa-2048", 2048), ("rsa-3072", 3072), ("ecdsa-p256", 256), ("ecdsa-p384", 384), ("ecdsa-p521", 521)],
)
def test_generated_chain_meets_notary_requirements(key_type: str, size: int) -> None:
    made = generate_test_certificate("wabbit-networks.io", key_type=key_type, now=NOW)
    leaf, ca = made.chain
    notary_certs.validate_code_signing_chain(made.chain, NOW)
    assert leaf.subject.rfc4514_string() == "CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US"
    assert ca.subject.rfc4514_string() == "CN=wabbit-networks.io CA,O=Notary,L=Seattle,ST=WA,C=US"
    assert certs.is_self_signed(ca) and certs.issued_by(leaf, ca) and notary_certs.is_ca(ca)
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    assert (key.key_size if isinstance(key, rsa.RSAPublicKey) else key.curve.key_size) == size
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]
    assert leaf.not_valid_before_utc <= NOW < leaf.not_valid_after_utc <= ca.not_valid_after_utc
    assert trusted_identity(leaf) == "x509.subject:CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US"
    # the private key signs with the certificate's key
    assert FileSigner(made.key).public_key() == key


def test_self_signed_variant() -> None:
    made = generate_test_certificate("solo", self_signed=True, now=NOW)
    [only] = made.chain
    assert certs.is_self_signed(only) and not notary_certs.is_ca(only)
    notary_certs.validate_code_signing_chain(made.chain, NOW)  # a single self-signed leaf is a valid chain
    with pytest.raises(UsageError):
        generate_test_certificate("x", key_type="rsa-1024", now=NOW)
    with pytest.raises(UsageError):
        generate_test_certificate("x", days=0, now=NOW)


def test_cli_writes_files_and_trust_store(tmp_path: Path) -> None:
    out = generate(tmp_path / "keys", "acme", "--trust-store", str(tmp_path / "truststore"))
    key_path, cert_path, ca_path = Path(out["key"]), Path(out["certificate"]), Path(out["ca"])
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = load_private_key(key_path.read_bytes())
    chain = certs.load_pem_chain(cert_path.read_bytes())
    assert len(chain) == 2 and chain[0].public_key() == key.public_key()
    assert certs.load_pem_chain(ca_path.read_bytes()) == [chain[1]]
    assert out["trustStore"] == str(tmp_path / "truststore" / "x509" / "ca" / "acme" / "acme.crt")
    assert out["trustedIdentity"] == "x509.subject:CN=acme,O=Notary,L=Seattle,ST=WA,C=US"
    # our trust store loader (notation's rules: CA or self-signed certificates only) takes it
    store = load_trust_store(tmp_path / "truststore", [StoreRef("ca", "acme")])
    assert store.certificates([StoreRef("ca", "acme")], "ca") == [chain[1]]

    # existing files are not overwritten without --force
    again = run("cert", "generate-test", "acme", "--output-dir", str(tmp_path / "keys"))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert certs.load_pem_chain(cert_path.read_bytes()) == chain
    forced = generate(tmp_path / "keys", "acme", "--force")
    assert certs.load_pem_chain(Path(forced["certificate"]).read_bytes()) != chain


def test_cli_notation_config_and_bad_names(tmp_path: Path) -> None:
    out = generate(tmp_path, "solo", "--self-signed", "--notation-config", str(tmp_path / "notation"))
    assert out["ca"] is None
    stored = tmp_path / "notation" / "truststore" / "x509" / "ca" / "solo" / "solo.crt"
    assert out["trustStore"] == str(stored)
    assert certs.load_pem_chain(stored.read_bytes()) == certs.load_pem_chain(
        Path(out["certificate"]).read_bytes()
    )
    for bad in ("a/b", "../x", "sp ace"):
        result = run("cert", "generate-test", bad, "--output-dir", str(tmp_path))
        assert result.returncode == 2 and "may only hold" in result.stderr, result.stderr
    both = run("cert", "generate-test", "x", "--trust-store", "a", "--notation-config", "b")
    assert both.returncode == 2 and "not both" in both.stderr
    assert not (tmp_path / "a/b.key").exists()


def test_generated_certificate_signs_and_verifies(tmp_path: Path) -> None:
    """The notation quick start, end to end on an OCI layout: generate-test, sign, verify with the policy."""
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/cert-cmd")
    config = tmp_path / "notation"
    made = generate(
        tmp_path, "wabbit-networks.io", "--key-type", "ecdsa-p384", "--notation-config", str(config)
    )
    other = generate(tmp_path / "other", "someone-else", "--notation-config", str(tmp_path / "other-config"))
    signed = run(
        "sign",
        f"oci:{layout}:v1",
        "--format",
        "notation-cose",
        "--key",
        made["key"],
        "--cert",
        made["certificate"],
    )
    assert signed.returncode == 0, signed.stderr
    assert "ES384" in signed.stdout

    def policy(directory: Path, identity: str, store: str) -> None:
        document = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "wabbit",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": [f"ca:{store}"],
                    "trustedIdentities": [identity],
                }
            ],
        }
        (directory / "trustpolicy.json").write_text(json.dumps(document))

    # generate-test wrote config/trustpolicy.json: the signature verifies with nothing written by hand
    verified = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert verified.returncode == 0, verified.stderr
    (config / "trustpolicy.json").unlink()
    policy(config, made["trustedIdentity"], "wabbit-networks.io")
    verified = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert verified.returncode == 0, verified.stderr
    # trusted store, but the identity of another certificate
    policy(config, other["trustedIdentity"], "wabbit-networks.io")
    wrong_identity = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert wrong_identity.returncode == 1 and "trusted-identity" in wrong_identity.stdout
    # the other certificate's CA does not vouch for our signature
    policy(tmp_path / "other-config", made["trustedIdentity"], "someone-else")
    wrong_store = run("verify", f"oci:{layout}:v1", "--notation-config", str(tmp_path / "other-config"))
    assert wrong_store.returncode == 1, wrong_store.stderr


def test_validity_window_is_respected() -> None:
    made = generate_test_certificate("short", days=1, now=NOW)
    notary_certs.validate_code_signing_chain(made.chain, NOW + timedelta(hours=23))
    with pytest.raises(notary_certs.CertRequirementError, match="invalid at signing time"):
        notary_certs.validate_code_signing_chain(made.chain, NOW + timedelta(days=2))


# ---------------------------------------------------------------- the trust policy it writes


def test_trust_policy_document_is_read_back_by_the_reader(tmp_path: Path) -> None:
    from sigscope.cli.cert import trust_policy_document
    from sigscope.trust.notation_policy import TrustPolicyError, load_notation_trust, parse_policy

    made = generate_test_certificate("wabbit-networks.io", now=NOW)
    identity = trusted_identity(made.leaf)
    scoped = parse_policy(
        json.dumps(
            trust_policy_document("wabbit-networks.io", identity, ("registry.example/net/app",))
        ).encode()
    )
    [statement] = scoped.statements
    assert statement.level.name == "strict"
    assert statement.trust_stores == (StoreRef("ca", "wabbit-networks.io"),)
    assert [raw for raw, _ in statement.identities.subjects] == [identity]
    assert not statement.identities.wildcard
    assert scoped.select("registry.example/net/app") is statement
    with pytest.raises(TrustPolicyError, match="no applicable trust policy"):
        scoped.select("registry.example/other")

    # what the CLI writes into a notation configuration directory loads with its trust store
    config = tmp_path / "notation"
    out = generate(tmp_path / "keys", "wabbit-networks.io", "--notation-config", str(config))
    assert out["trustPolicy"] == str(config / "trustpolicy.json")
    trust = load_notation_trust(config)
    [written] = trust.policy.statements
    assert written.registry_scopes == ("*",) and trust.policy.select(None) is written
    assert [raw for raw, _ in written.identities.subjects] == [out["trustedIdentity"]]
    anchor = certs.load_pem_chain(Path(out["ca"]).read_bytes())
    assert trust.store.certificates([StoreRef("ca", "wabbit-networks.io")], "ca") == anchor


def test_trust_policy_is_never_overwritten_by_default(tmp_path: Path) -> None:
    config = tmp_path / "notation"
    config.mkdir()
    mine = b'{"version": "1.0", "trustPolicies": []}'
    (config / "trustpolicy.json").write_bytes(mine)  # the legacy name counts too
    out = generate(tmp_path, "acme", "--notation-config", str(config), "--force")
    assert out["trustPolicy"] is None and out["existingTrustPolicy"] == str(config / "trustpolicy.json")
    assert (config / "trustpolicy.json").read_bytes() == mine
    assert not (config / "trustpolicy.oci.json").exists()  # nor a second policy beside it
    args = ("--output-dir", str(tmp_path), "--notation-config", str(config), "--force")
    pretty = run("cert", "generate-test", "acme", *args)
    assert pretty.returncode == 0 and "left as is" in pretty.stdout and '"ca:acme"' in pretty.stdout

    # the newer name counts as well: nothing is written beside it
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "trustpolicy.oci.json").write_bytes(mine)
    out = generate(tmp_path / "k0", "acme", "--notation-config", str(newer))
    assert out["trustPolicy"] is None and not (newer / "trustpolicy.json").exists()

    # a re-run over its own policy says it already trusts the certificate
    fresh = tmp_path / "fresh"
    generate(tmp_path / "k1", "acme", "--notation-config", str(fresh))
    again = run("cert", "generate-test", "acme", "--output-dir", str(tmp_path / "k1"), "--notation-config",
                str(fresh), "--force")  # fmt: skip
    assert again.returncode == 0 and "already trusts ca:acme" in again.stdout, again.stdout

    none = generate(tmp_path / "k2", "acme", "--notation-config", str(tmp_path / "bare"), "--no-trust-policy")
    assert none["trustPolicy"] is None and not (tmp_path / "bare" / "trustpolicy.json").exists()


def test_trust_policy_file_and_scopes(tmp_path: Path) -> None:
    from sigscope.trust.notation_policy import load_notation_trust

    policy = tmp_path / "policy.json"
    out = generate(
        tmp_path, "acme", "--trust-store", str(tmp_path / "store"), "--trust-policy", str(policy),
        "--registry-scope", "registry.example/team/api", "--registry-scope", "localhost:5000/team/web",
    )  # fmt: skip
    assert out["trustPolicy"] == str(policy)
    trust = load_notation_trust(policy_file=policy, store_dir=tmp_path / "store")
    assert trust.policy.statements[0].registry_scopes == (
        "registry.example/team/api",
        "localhost:5000/team/web",
    )
    # an explicit file is a file like the others: kept unless --force
    kept = run("cert", "generate-test", "other", "--output-dir", str(tmp_path), "--trust-policy", str(policy))
    assert kept.returncode == 2 and "--force" in kept.stderr
    for bad, message in (
        (("--trust-policy", "p.json", "--registry-scope", "https://registry.example/app"), "registry scope"),
        (
            ("--trust-policy", "p.json", "--registry-scope", "*", "--registry-scope", "r.example/app"),
            "combined",
        ),
        (("--registry-scope", "registry.example/app"), "needs a trust policy"),
        (("--trust-policy", "p.json", "--no-trust-policy"), "not both"),
    ):
        result = run("cert", "generate-test", "bad", "--output-dir", str(tmp_path / "bad"), *bad)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "bad").exists() and not Path("p.json").exists()
