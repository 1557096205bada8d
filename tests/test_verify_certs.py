"""Certificate-based verification: own PKI (root → intermediate → leaf) and Fulcio-shaped identities.

Signatures are made by testbed.forge (certificate annotations as cosign writes them) and pushed to the real
registry fixture, or made by `sigscope sign --certificate` into an `oci:` layout. Each trust failure is a
distinct named check.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from testbed import RegistryHandle, build_layout
from testbed.cli import run_sigscope as run
from testbed.forge import (
    KEYLESS_ID,
    KEYLESS_ISSUER,
    RELEASE_EMAIL,
    RELEASE_URI,
    CodePKI,
    Signer,
    make_code_pki,
    pem,
    push_cosign_signature,
    push_image,
)

from sigscope.model import Check, Outcome, Signature, SignatureFormat, Status
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.trust.identity import (
    CertificateTrust,
    IdentityPolicy,
    PolicyError,
    apply_certificates,
    identity_check,
    issuer_check,
    oidc_issuer,
    subject_alternative_names,
)
from sigscope.verify import Policy, verify

PASSWORD = "certs-test-pw"


def outcomes(checks: list[dict[str, Any]]) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in checks}


# ---------------------------------------------------------------- the pure core


@pytest.fixture(scope="module")
def pki() -> CodePKI:
    return make_code_pki()


def test_identity_matching_follows_cosign(pki: CodePKI) -> None:
    cert = pki.release.cert
    assert subject_alternative_names(cert) == [("email", RELEASE_EMAIL), ("uri", RELEASE_URI)]
    exact = IdentityPolicy.build(identity=RELEASE_EMAIL)
    assert identity_check(cert, exact)[0].outcome is Outcome.PASSED
    assert identity_check(cert, IdentityPolicy.build(identity=RELEASE_URI))[0].outcome is Outcome.PASSED
    # exact means exact: no case folding, no prefix
    assert (
        identity_check(cert, IdentityPolicy.build(identity="Release@example.com"))[0].outcome
        is Outcome.FAILED
    )
    assert identity_check(cert, IdentityPolicy.build(identity="release@example"))[0].outcome is Outcome.FAILED
    # regexps are unanchored searches, as Go's regexp.MatchString in cosign
    assert identity_check(cert, IdentityPolicy.build(identity_regexp="example"))[0].outcome is Outcome.PASSED
    assert identity_check(cert, IdentityPolicy.build(identity_regexp="^example"))[0].outcome is Outcome.FAILED
    check, matched = identity_check(cert, IdentityPolicy.build(identity_regexp=r"^https://ci\.example\.com/"))
    assert check.outcome is Outcome.PASSED and matched == RELEASE_URI

    keyless = pki.keyless.cert
    assert subject_alternative_names(keyless) == [("otherName", KEYLESS_ID)]
    assert oidc_issuer(keyless) == KEYLESS_ISSUER
    assert identity_check(keyless, IdentityPolicy.build(identity=KEYLESS_ID))[0].outcome is Outcome.PASSED
    wrong = IdentityPolicy.build(identity="builder@oidc.example.com")
    assert identity_check(keyless, wrong)[0].outcome is Outcome.FAILED
    good = IdentityPolicy.build(identity=KEYLESS_ID, issuer=KEYLESS_ISSUER)
    assert issuer_check(keyless, good)[0].outcome is Outcome.PASSED
    pinned = IdentityPolicy.build(identity=KEYLESS_ID, issuer_regexp=r"^https://oidc\.example\.com$")
    assert issuer_check(keyless, pinned)[0].outcome is Outcome.PASSED
    other = IdentityPolicy.build(identity=KEYLESS_ID, issuer="https://token.actions.githubusercontent.com")
    assert issuer_check(keyless, other)[0].outcome is Outcome.FAILED
    # own-PKI certificates carry no OIDC issuer: asking for one fails rather than passing vacuously
    assert issuer_check(cert, good)[0].outcome is Outcome.FAILED


def test_policy_errors() -> None:
    with pytest.raises(PolicyError, match="not both"):
        IdentityPolicy.build(identity="a", identity_regexp="b")
    with pytest.raises(PolicyError, match="not a regular expression"):
        IdentityPolicy.build(identity_regexp="(")


def _signature(signer: Signer, *, timestamped_at: datetime | None = None) -> Signature:
    """A record as discovery leaves it for a certificate-bearing cosign layer whose signature held."""
    sig = Signature(format=SignatureFormat.COSIGN, subject_digest="sha256:" + "a" * 64, location="test")
    sig.evidence["certificate"] = pem(signer.cert).encode()
    sig.evidence["chain"] = pem(*signer.chain).encode()
    sig.checks.append(Check.passed("signature", "verified over the payload with the certificate key"))
    if timestamped_at is not None:
        sig.timestamped = True
        sig.signing_time = timestamped_at
        sig.claims["signingTimeSource"] = "RFC 3161 timestamp (verified)"
    return sig.settle()


def test_validity_uses_only_a_verified_timestamp(pki: CodePKI) -> None:
    trust = CertificateTrust(policy=IdentityPolicy.build(identity=RELEASE_EMAIL), roots=(pki.root,))
    now = datetime.now(UTC)
    inside = datetime(2020, 6, 1, tzinfo=UTC)
    expired = apply_certificates(_signature(pki.expired), trust, now)
    assert expired.status is Status.UNTRUSTED
    assert next(c for c in expired.checks if c.name == "certificate-validity").outcome is Outcome.FAILED
    # dated by a verified timestamp inside its validity, the same certificate holds (chain judged then)
    stamped = apply_certificates(_signature(pki.expired, timestamped_at=inside), trust, now)
    assert stamped.status is Status.VERIFIED, stamped.checks
    # the same time from an unverified Rekor integratedTime does not count
    sig = _signature(pki.expired, timestamped_at=inside)
    sig.claims["signingTimeSource"] = "rekor integratedTime (unverified)"
    assert apply_certificates(sig, trust, now).status is Status.UNTRUSTED
    # a timestamp outside the validity fails too
    late = apply_certificates(_signature(pki.expired, timestamped_at=now - timedelta(days=1)), trust, now)
    assert late.status is Status.UNTRUSTED


def test_unverified_signature_is_never_trusted_by_its_certificate(pki: CodePKI) -> None:
    trust = CertificateTrust(policy=IdentityPolicy.build(identity=RELEASE_EMAIL), roots=(pki.root,))
    sig = Signature(format=SignatureFormat.COSIGN, subject_digest="sha256:" + "a" * 64, location="test")
    sig.evidence["certificate"] = pem(pki.release.cert).encode()
    sig.checks.append(Check.skipped("signature", "not checked"))
    assert apply_certificates(sig.settle(), trust, datetime.now(UTC)).status is Status.UNTRUSTED


def test_either_key_or_certificate_suffices_in_settle() -> None:
    sig = Signature(format=SignatureFormat.COSIGN, subject_digest="sha256:" + "a" * 64, location="test")
    sig.checks = [
        Check.passed("signature", ""),
        Check.failed("trusted-key", "not signed by any of the 1 supplied key(s)"),
        Check.passed("certificate-validity", ""),
        Check.passed("certificate-chain", ""),
        Check.passed("certificate-identity", ""),
    ]
    assert sig.settle().status is Status.VERIFIED
    sig.checks.append(Check.failed("certificate-issuer", "mismatch"))
    assert sig.settle().status is Status.UNTRUSTED
    # the chain alone (no identity check) never verifies
    sig.checks = [Check.passed("signature", ""), Check.passed("certificate-chain", "")]
    assert sig.settle().status is Status.INTEGRITY_OK


def test_threshold_counts_identities_not_certificates(pki: CodePKI) -> None:
    trust = CertificateTrust(policy=IdentityPolicy.build(identity=RELEASE_EMAIL), roots=(pki.root,))
    now = datetime.now(UTC)
    sigs = []
    for _ in range(2):
        sig = _signature(pki.release)
        sig.claims["docker-reference"] = "127.0.0.1:5000/x"
        sig.checks.append(Check.passed("payload-digest", "signs it"))
        sigs.append(apply_certificates(sig, trust, now))
    verdict = verify("127.0.0.1:5000/x:1", "sha256:" + "a" * 64, sigs, Policy(threshold=2))
    assert [j.satisfied for j in verdict.signatures] == [True, True]
    assert verdict.keys == [f"identity:{RELEASE_EMAIL}"]
    assert not verdict.verified


# ---------------------------------------------------------------- the real registry


@dataclass
class Files:
    root: Path
    intermediate: Path
    other_root: Path
    bundle: Path  # intermediate + root


@dataclass
class Pushed:
    host: str
    files: Files
    images: dict[str, str]  # case -> image reference


CASES = ("release", "release-no-chain", "keyless", "expired", "no-eku", "self-signed", "untrusted")


@pytest.fixture(scope="module")
def pushed(registry: RegistryHandle, pki: CodePKI, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    directory = tmp_path_factory.mktemp("certs")
    files = Files(
        root=directory / "root.pem",
        intermediate=directory / "intermediate.pem",
        other_root=directory / "other-root.pem",
        bundle=directory / "bundle.pem",
    )
    files.root.write_text(pem(pki.root))
    files.intermediate.write_text(pem(pki.intermediate))
    files.other_root.write_text(pem(pki.other_root))
    files.bundle.write_text(pem(pki.intermediate, pki.root))
    signers = {
        "release": (pki.release, pem(*pki.release.chain)),
        "release-no-chain": (pki.release, ""),
        "keyless": (pki.keyless, pem(*pki.keyless.chain)),
        "expired": (pki.expired, pem(*pki.expired.chain)),
        "no-eku": (pki.no_eku, pem(*pki.no_eku.chain)),
        "self-signed": (pki.self_signed, ""),
        "untrusted": (pki.untrusted, pem(*pki.untrusted.chain)),
    }
    images: dict[str, str] = {}

    async def push_all() -> None:
        async with RegistryClient(
            registry.host, RegistryOptions(insecure=True, use_auth_files=False)
        ) as client:
            for case, (signer, chain) in signers.items():
                repo = f"verify-certs/{case}"
                image = await push_image(client, repo, "1.0", f"verify-certs/{case}")
                await push_cosign_signature(
                    client, repo, image.digest, image.digest, signer.key, cert=pem(signer.cert), chain=chain
                )
                images[case] = f"{registry.host}/{repo}:1.0"

    asyncio.run(push_all())
    return Pushed(registry.host, files, images)


def verify_json(image: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    extra = ("--insecure",) if not image.startswith("oci:") else ()
    result = run("verify", image, *extra, *args, "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout)


def single(data: dict[str, Any]) -> dict[str, Any]:
    [judged] = data["signatures"]
    return judged  # type: ignore[no-any-return]


def test_own_pki_chain_with_intermediate(pushed: Pushed) -> None:
    roots = ("--ca-roots", str(pushed.files.root))
    result, data = verify_json(pushed.images["release"], *roots, "--certificate-identity", RELEASE_EMAIL)
    assert result.returncode == 0, result.stderr
    judged = single(data)
    assert judged["satisfied"] and judged["status"] == "verified"
    checks = outcomes(judged["checks"])
    for name in ("certificate-chain", "certificate-validity", "certificate-identity"):
        assert checks[name] == "passed", judged["checks"]
    assert "certificate-issuer" not in checks  # not asked
    assert judged["key"] == f"identity:{RELEASE_EMAIL}"
    # the URI SAN by regexp works as well
    result, _ = verify_json(
        pushed.images["release"], *roots, "--certificate-identity-regexp", r"^https://ci\.example\.com/"
    )
    assert result.returncode == 0, result.stderr


def test_intermediates_from_the_command_line(pushed: Pushed) -> None:
    image = pushed.images["release-no-chain"]
    identity = ("--certificate-identity", RELEASE_EMAIL)
    result, data = verify_json(image, "--ca-roots", str(pushed.files.root), *identity)
    assert result.returncode == 1
    assert outcomes(single(data)["checks"])["certificate-chain"] == "failed"
    result, _ = verify_json(
        image,
        "--ca-roots",
        str(pushed.files.root),
        "--ca-intermediates",
        str(pushed.files.intermediate),
        *identity,
    )
    assert result.returncode == 0, result.stderr


def test_keyless_identity_and_issuer(pushed: Pushed) -> None:
    image = pushed.images["keyless"]
    roots = ("--ca-roots", str(pushed.files.root))
    result, data = verify_json(
        image, *roots, "--certificate-identity", KEYLESS_ID, "--certificate-oidc-issuer", KEYLESS_ISSUER
    )
    assert result.returncode == 0, result.stderr
    assert outcomes(single(data)["checks"])["certificate-issuer"] == "passed"
    assert single(data)["key"] == f"identity:{KEYLESS_ID} ({KEYLESS_ISSUER})"


def _fails_with(pushed: Pushed, case: str, check: str, phrase: str, *args: str) -> None:
    result, data = verify_json(pushed.images[case], *args)
    assert result.returncode == 1, result.stdout
    judged = single(data)
    assert not judged["satisfied"] and judged["status"] == "untrusted"
    failed = {c["name"]: c.get("detail", "") for c in judged["checks"] if c["outcome"] == "failed"}
    assert check in failed, judged["checks"]
    assert re.search(phrase, failed[check]), failed[check]
    # the one-line reason names the failure (what stderr prints in pretty mode)
    assert re.search(phrase, judged["reason"]), judged["reason"]


def test_identity_mismatch(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "release",
        "certificate-identity",
        "no subject alternative name matches 'someone@example.com'",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        "someone@example.com",
    )


def test_issuer_mismatch(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "keyless",
        "certificate-issuer",
        "does not match 'https://accounts.google.com'",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        KEYLESS_ID,
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    )


def test_expired_without_timestamp(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "expired",
        "certificate-validity",
        "expired 2021-01-01.*no verified timestamp",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        RELEASE_EMAIL,
    )


def test_chain_to_untrusted_root(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "untrusted",
        "certificate-chain",
        "no path to a trusted root",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        RELEASE_EMAIL,
    )


def test_leaf_without_code_signing(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "no-eku",
        "certificate-chain",
        "extendedKeyUsage lacks codeSigning",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        RELEASE_EMAIL,
    )


def test_self_signed_leaf_not_in_roots(pushed: Pushed) -> None:
    _fails_with(
        pushed,
        "self-signed",
        "certificate-chain",
        "self-signed certificate not among the trusted roots",
        "--ca-roots",
        str(pushed.files.root),
        "--certificate-identity",
        RELEASE_EMAIL,
    )


def test_key_and_certificates_combined(pushed: Pushed, pki: CodePKI, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(
        pki.untrusted.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    roots = ("--ca-roots", str(pushed.files.root), "--certificate-identity", RELEASE_EMAIL)
    # the key does not match, the certificate policy holds: either suffices
    result, data = verify_json(pushed.images["release"], "--key", str(other), *roots)
    assert result.returncode == 0, result.stderr
    checks = outcomes(single(data)["checks"])
    assert checks["trusted-key"] == "failed" and checks["certificate-identity"] == "passed"
    # the key matches, the certificate chains nowhere: the key suffices
    result, _ = verify_json(pushed.images["untrusted"], "--key", str(other), *roots)
    assert result.returncode == 0, result.stderr
    # neither holds
    result, _ = verify_json(pushed.images["no-eku"], "--key", str(other), *roots)
    assert result.returncode == 1


def test_scan_and_inspect_take_the_same_flags(pushed: Pushed) -> None:
    trust = ("--ca-roots", str(pushed.files.root), "--certificate-identity", RELEASE_EMAIL)
    result = run(
        "scan", "registry", pushed.host, "--insecure", "--repo", "verify-certs/*", *trust, "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    status = {s["path"].split("/", 2)[-1]: s["status"] for s in data["registry"]["signatures"]}
    assert status["release:1.0"] == "verified"
    assert status["untrusted:1.0"] == "untrusted"
    assert status["expired:1.0"] == "untrusted"
    assert status["keyless:1.0"] == "untrusted"  # other identity
    result = run("inspect", pushed.images["release"], "--insecure", "--signatures", *trust, "-o", "json")
    assert result.returncode == 0, result.stderr
    [sig] = json.loads(result.stdout)["signatures"]
    assert sig["status"] == "verified"


def test_flag_errors(pushed: Pushed) -> None:
    image = pushed.images["release"]
    cases = [
        (("--ca-roots", str(pushed.files.root)), "need --certificate-identity"),
        (("--certificate-identity", RELEASE_EMAIL), "need --ca-roots or --trusted-root"),
        (
            ("--ca-roots", str(pushed.files.root), "--certificate-identity-regexp", "("),
            "not a regular expression",
        ),
        (
            ("--ca-roots", "/nonexistent.pem", "--certificate-identity", "x"),
            "/nonexistent.pem: no such file (--ca-roots for verify",
        ),
        (("--trusted-root", str(pushed.files.root), "--certificate-identity", "x"), "--trusted-root"),
    ]
    for args, message in cases:
        result = run("verify", image, "--insecure", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------- oci: layouts, signed by `sigscope sign`


def test_layout_signed_with_certificate(pki: CodePKI, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="verify-certs/layout")
    plain = tmp_path / "leaf.pem"
    plain.write_bytes(
        pki.release.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    imported = run("key", "import", str(plain), "--output-prefix", str(tmp_path / "leaf"), password=PASSWORD)
    assert imported.returncode == 0, imported.stderr
    cert = tmp_path / "leaf.crt"
    cert.write_text(pem(pki.release.cert))
    chain = tmp_path / "chain.pem"
    chain.write_text(pem(pki.intermediate, pki.root))
    root = tmp_path / "root.pem"
    root.write_text(pem(pki.root))
    image = f"oci:{layout}:v1"
    signed = run(
        "sign",
        image,
        "--key",
        str(tmp_path / "leaf.key"),
        "--certificate",
        str(cert),
        "--certificate-chain",
        str(chain),
        "--sign-container-identity",
        f"oci:{layout}",
        password=PASSWORD,
    )
    assert signed.returncode == 0, signed.stderr
    result, data = verify_json(image, "--ca-roots", str(root), "--certificate-identity", RELEASE_EMAIL)
    assert result.returncode == 0, result.stderr
    assert outcomes(single(data)["checks"])["certificate-chain"] == "passed"
    # the chain the signature carries ends in its own root; trusting another root must still fail
    other = tmp_path / "other.pem"
    other.write_text(pem(pki.other_root))
    result, data = verify_json(image, "--ca-roots", str(other), "--certificate-identity", RELEASE_EMAIL)
    assert result.returncode == 1
    assert outcomes(single(data)["checks"])["certificate-chain"] == "failed"


def test_certificate_loader_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    result = run("verify", "oci:/nonexistent:v1", "--ca-roots", str(bad), "--certificate-identity", "x")
    assert result.returncode == 2 and "--ca-roots" in result.stderr, result.stderr


def test_pem_round_trip(pki: CodePKI) -> None:
    # forge.pem writes what load_pem_chain reads back in order (the loader the CLI uses)
    from sigscope.trust.certs import load_pem_chain

    assert load_pem_chain(pem(pki.intermediate, pki.root)) == [pki.intermediate, pki.root]
