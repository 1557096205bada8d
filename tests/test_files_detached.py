"""Detached signatures: gpg OpenPGP, cosign sign-blob pairs, Sigstore bundles (sigstore-python vectors)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import absent, vectors
from testbed.signing import GpgHome

from sigscope.files.base import FileTrust
from sigscope.files.detached import DETACHED, DetachedSignatureError, classify, inspect_detached
from sigscope.model import Status
from sigscope.trust.pgp import load_keyring

FIXTURES = Path(__file__).parent / "fixtures" / "files"
PKI = FIXTURES / "pki"
ASSETS = vectors.ROOT / "sigstore-sigstore-python" / "test" / "assets"


def _cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((PKI / f"{name}.crt").read_bytes())


def _trust(**kwargs: object) -> FileTrust:
    return FileTrust(at=datetime.now(UTC), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- OpenPGP


@pytest.fixture(scope="module")
def gpg() -> Iterator[GpgHome]:
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    with GpgHome("detached signer <detached@sigscope.test>") as home:
        yield home


@pytest.fixture(scope="module")
def other_gpg() -> Iterator[GpgHome]:
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    with GpgHome("someone else <else@sigscope.test>", algo="rsa") as home:
        yield home


def _gpg_sign(home: GpgHome, target: Path, *, armor: bool) -> Path:
    out = target.with_name(target.name + (".asc" if armor else ".sig"))
    home.gpg(*(["--armor"] if armor else []), "--detach-sign", "--output", str(out), str(target))
    return out


@pytest.mark.parametrize("armor", [True, False])
def test_openpgp_detached_verified_with_keyring(gpg: GpgHome, tmp_path: Path, armor: bool) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release contents\n" * 1000)
    signature = _gpg_sign(gpg, artifact, armor=armor)
    head = signature.read_bytes()[:4096]
    assert classify(head, signature) == "openpgp"
    assert DETACHED.sniff(head, signature)

    scanned = inspect_detached(signature, False, _trust())
    assert scanned.subject == artifact
    (record,) = scanned.signatures
    assert record.kind == "openpgp" and record.status is Status.UNVERIFIED
    assert record.pgp is not None and record.pgp.key_id == gpg.key_id
    assert not record.checks  # nothing checked without --verify

    keyring = load_keyring(gpg.export_public(tmp_path / "signer.gpg").read_bytes())
    (record,) = inspect_detached(signature, True, _trust(gpg_keyring=keyring)).signatures
    assert record.status is Status.VERIFIED, record.checks
    assert record.pgp is not None and record.pgp.fingerprint == gpg.fingerprint
    assert record.pgp.user_ids == ("detached signer <detached@sigscope.test>",)


def test_openpgp_tampered_file_is_badsig(gpg: GpgHome, tmp_path: Path) -> None:
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"original")
    signature = _gpg_sign(gpg, artifact, armor=True)
    artifact.write_bytes(b"tampered")
    keyring = load_keyring(gpg.export_public(tmp_path / "signer.gpg").read_bytes())
    (record,) = inspect_detached(signature, True, _trust(gpg_keyring=keyring)).signatures
    assert record.status is Status.INVALID
    assert "BADSIG" in record.reason


def test_openpgp_without_or_with_another_keyring_is_untrusted(
    gpg: GpgHome, other_gpg: GpgHome, tmp_path: Path
) -> None:
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"content")
    signature = _gpg_sign(gpg, artifact, armor=False)
    (record,) = inspect_detached(signature, True, _trust()).signatures
    assert record.status is Status.UNTRUSTED
    assert "no OpenPGP keyring" in record.reason

    other = load_keyring(other_gpg.export_public(tmp_path / "other.gpg").read_bytes())
    (record,) = inspect_detached(signature, True, _trust(gpg_keyring=other)).signatures
    assert record.status is Status.UNTRUSTED
    assert "not in the supplied keyring" in record.reason


def test_truncated_or_garbage_openpgp_is_an_error(gpg: GpgHome, tmp_path: Path) -> None:
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"content")
    signature = _gpg_sign(gpg, artifact, armor=False)
    signature.write_bytes(signature.read_bytes()[:20])
    with pytest.raises(DetachedSignatureError, match=r"app\.bin\.sig"):
        inspect_detached(signature, False, _trust())


def test_sniff_needs_the_signed_file_and_signature_bytes(tmp_path: Path) -> None:
    lonely = tmp_path / "nothing.tar.gz.asc"
    lonely.write_bytes(b"-----BEGIN PGP SIGNATURE-----\n\n")
    assert not DETACHED.sniff(lonely.read_bytes(), lonely)  # no nothing.tar.gz next to it
    (tmp_path / "data").write_bytes(b"x")
    binary = tmp_path / "data.sig"
    binary.write_bytes(b"\x00\x01\x02 not a signature")
    assert not DETACHED.sniff(binary.read_bytes(), binary)
    other_name = tmp_path / "data.txt"
    other_name.write_bytes(b"-----BEGIN PGP SIGNATURE-----\n")
    assert classify(other_name.read_bytes(), other_name) is None


# ---------------------------------------------------------------- cosign sign-blob


def _sign_blob(artifact: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    signature = key.sign(artifact.read_bytes(), ec.ECDSA(hashes.SHA256()))
    out = artifact.with_name(artifact.name + ".sig")
    out.write_bytes(base64.b64encode(signature))
    return out


def _pki_key(name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((PKI / f"{name}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.mark.parametrize("base64_pem", [False, True])
def test_cosign_blob_with_certificate(tmp_path: Path, base64_pem: bool) -> None:
    artifact = tmp_path / "tool.tgz"
    artifact.write_bytes(b"blob" * 5000)
    signature = _sign_blob(artifact, _pki_key("ec-signer"))
    pem = (PKI / "ec-signer.crt").read_bytes()
    (tmp_path / "tool.tgz.pem").write_bytes(base64.b64encode(pem) if base64_pem else pem)
    assert classify(signature.read_bytes(), signature) == "cosign-blob"

    (record,) = inspect_detached(signature, False, _trust()).signatures
    assert record.status is Status.INTEGRITY_OK
    assert record.signer is not None and record.signer.subject.startswith("CN=EC Code Signer")

    (record,) = inspect_detached(signature, True, _trust(roots=(_cert("root"),))).signatures
    assert record.status is Status.VERIFIED and record.chain_status == "trusted"

    (record,) = inspect_detached(signature, True, _trust(roots=(_cert("other-root"),))).signatures
    assert record.status is Status.UNTRUSTED and record.chain_status.startswith("untrusted")

    artifact.write_bytes(b"blob" * 4999 + b"evil")
    (record,) = inspect_detached(signature, True, _trust(roots=(_cert("root"),))).signatures
    assert record.status is Status.INVALID
    assert "does not verify" in record.reason


def test_cosign_blob_key_only(tmp_path: Path) -> None:
    artifact = tmp_path / "payload.bin"
    artifact.write_bytes(b"payload")
    key = ec.generate_private_key(ec.SECP256R1())
    signature = _sign_blob(artifact, key)
    (record,) = inspect_detached(signature, False, _trust()).signatures
    assert record.status is Status.UNVERIFIED and record.details["keyOnly"] is True

    (record,) = inspect_detached(signature, True, _trust(keys=(key.public_key(),))).signatures
    assert record.status is Status.VERIFIED
    assert record.public_key is not None

    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    (record,) = inspect_detached(signature, True, _trust(keys=(stranger,))).signatures
    assert record.status is Status.UNTRUSTED


# ---------------------------------------------------------------- Sigstore bundles and sigstore-python pairs


@pytest.fixture
def assets() -> Path:
    return vectors.require(ASSETS)


def test_sigstore_bundle_names_the_file(assets: Path, tmp_path: Path) -> None:
    scanned = inspect_detached(assets / "bundle.txt.sigstore", False, _trust())
    assert scanned.subject == assets / "bundle.txt"
    (record,) = scanned.signatures
    assert record.kind == "sigstore-bundle" and record.status is Status.INTEGRITY_OK
    assert record.signer is not None and "a@tny.town" in record.signer.emails
    assert any(c.name == "payload-digest" and c.outcome == "passed" for c in record.checks)

    # The same bundle next to other bytes: the digest it signs is not the file's.
    (tmp_path / "bundle.txt").write_bytes(b"not the signed text\n")
    shutil.copy(assets / "bundle.txt.sigstore", tmp_path / "bundle.txt.sigstore")
    (record,) = inspect_detached(tmp_path / "bundle.txt.sigstore", False, _trust()).signatures
    assert record.status is Status.INVALID and "payload-digest" in record.reason


def test_sigstore_bundle_for_other_material_is_invalid(assets: Path) -> None:
    (record,) = inspect_detached(assets / "bundle_cve_2022_36056.txt.sigstore", False, _trust()).signatures
    assert record.status is Status.INVALID and "tlog" in record.reason


def test_sigstore_bundle_chain_to_unrelated_root_is_untrusted(assets: Path) -> None:
    # A real keyless certificate checked against roots the user supplied that are not Fulcio's.
    (record,) = inspect_detached(
        assets / "bundle_v3.txt.sigstore", True, _trust(roots=(_cert("root"),))
    ).signatures
    assert record.status is Status.UNTRUSTED and record.chain_status.startswith("untrusted")


def test_sigstore_python_detached_pairs(assets: Path) -> None:
    (good,) = inspect_detached(assets / "a.txt.sig", False, _trust()).signatures
    assert good.kind == "cosign-blob" and good.status is Status.INTEGRITY_OK
    assert good.signer is not None and "william@yossarian.net" in good.signer.emails
    (bad,) = inspect_detached(assets / "bad.txt.sig", False, _trust()).signatures
    assert bad.status is Status.INVALID
