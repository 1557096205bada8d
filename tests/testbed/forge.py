"""Signatures made in Python where no peer makes the case we need: certificate-bearing cosign signatures
(our own PKI, self-signed, tampered, broken chain, wrong digest). Used by tests and the demo.

The shapes follow ../shared/FORMATS.md §1.2 to 1.4 (cosign .sig manifest, annotations, payload).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sigscope.model import Descriptor
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient

COSIGN_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json"


def _name(cn: str) -> x509.Name:
    # RFC 4514 prints the most specific attribute first, so this reads "CN=…,O=sigscope tests".
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigscope tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


@dataclass
class PKI:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    other_ca: x509.Certificate
    self_key: ec.EllipticCurvePrivateKey
    self_signed: x509.Certificate


def make_pki() -> PKI:
    ca_key, leaf_key, other_key, self_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("Test Root CA", ca_key, "Test Root CA", ca_key, ca=True)
    return PKI(
        ca_key=ca_key,
        ca=ca,
        leaf_key=leaf_key,
        leaf=_cert("Release Signer", leaf_key, "Test Root CA", ca_key, ca=False),
        other_ca=_cert("Unrelated CA", other_key, "Unrelated CA", other_key, ca=True),
        self_key=self_key,
        self_signed=_cert("Self Signer", self_key, "Self Signer", self_key, ca=False),
    )


async def push_image(client: RegistryClient, repo: str, tag: str, seed: str) -> Descriptor:
    """A small OCI image whose digest depends on `seed`; the empty blob rides along for referrers."""
    await client.put_blob(repo, mediatypes.EMPTY_JSON)
    config = await client.put_blob(
        repo, json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    )
    layer = await client.put_blob(repo, seed.encode())
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.digest,
                "size": config.size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer.digest,
                    "size": layer.size,
                }
            ],
        }
    ).encode()
    descriptor, _ = await client.put_manifest(repo, body, mediatypes.OCI_MANIFEST, tag)
    return descriptor


async def push_cosign_signature(
    client: RegistryClient,
    repo: str,
    attach_to: str,
    names: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    cert: str | None = None,
    chain: str | None = None,
    tamper: bool = False,
    payload: bytes | None = None,
) -> None:
    """A cosign `.sig` for `attach_to` whose payload names `names`, or is exactly `payload` when given
    (hand-made ambiguous payloads, validly signed so that only their content can get them rejected)."""
    payload = (
        payload
        or json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": f"{client.registry}/{repo}"},
                    "image": {"docker-manifest-digest": names},
                    "type": "cosign container image signature",
                },
                "optional": None,
            },
            separators=(",", ":"),
        ).encode()
    )
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if tamper:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    annotations = {"dev.cosignproject.cosign/signature": base64.b64encode(signature).decode()}
    if cert is not None:
        annotations["dev.sigstore.cosign/certificate"] = cert
        annotations["dev.sigstore.cosign/chain"] = chain or ""
    layer = await client.put_blob(repo, payload, COSIGN_MEDIA)
    config = await client.put_blob(
        repo,
        json.dumps(
            {
                "architecture": "",
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
                "config": {},
            }
        ).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.size,
            "digest": config.digest,
        },
        "layers": [
            {
                "mediaType": COSIGN_MEDIA,
                "size": layer.size,
                "digest": layer.digest,
                "annotations": annotations,
            }
        ],
    }
    tag = "sha256-" + attach_to.split(":", 1)[1] + ".sig"
    await client.put_manifest(repo, json.dumps(manifest).encode(), mediatypes.OCI_MANIFEST, tag)


# ---------------------------------------------------------------- certificate-trust cases


FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
FULCIO_OTHERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    oidc_issuer: str | None = None,
) -> x509.Certificate:
    """One certificate; `issuer=None` makes it self-signed. Leaves get codeSigning unless `eku` says else."""
    now = datetime.now(UTC)
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        usages = [ExtendedKeyUsageOID.CODE_SIGNING] if eku is None else eku
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if oidc_issuer is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(FULCIO_ISSUER_V1, oidc_issuer.encode()), critical=False
        ).add_extension(x509.UnrecognizedExtension(FULCIO_ISSUER_V2, der_utf8(oidc_issuer)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Signer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate]  # what the signature carries after the leaf


@dataclass
class CodePKI:
    """Root → intermediate → leaves, plus the certificates each trust failure needs."""

    root: x509.Certificate
    intermediate: x509.Certificate
    other_root: x509.Certificate
    release: Signer  # SAN email release@example.com + URI, codeSigning, under the intermediate
    keyless: Signer  # Fulcio-shaped: no DN, otherName SAN, OIDC issuer extensions v1 and v2
    expired: Signer  # valid 2020-01-01 .. 2021-01-01
    no_eku: Signer  # serverAuth only
    self_signed: Signer  # self-signed, SAN release@example.com
    untrusted: Signer  # under other_root, SAN release@example.com


RELEASE_EMAIL = "release@example.com"
RELEASE_URI = "https://ci.example.com/workflows/release@refs/heads/main"
KEYLESS_ID = "builder!oidc.example.com"
KEYLESS_ISSUER = "https://oidc.example.com"


def make_code_pki() -> CodePKI:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(9)]
    root_key, int_key, other_key = keys[0], keys[1], keys[2]
    # CAs valid since 2019, so the expired leaf's lifetime (2020) lies inside theirs
    since = datetime(2019, 1, 1, tzinfo=UTC)
    until = datetime.now(UTC) + timedelta(days=3650)
    root = issue("Code Root CA", root_key, None, root_key, ca=True, not_before=since, not_after=until)
    intermediate = issue(
        "Code Intermediate CA", int_key, root, root_key, ca=True, not_before=since, not_after=until
    )
    other_root = issue("Other Root CA", other_key, None, other_key, ca=True)
    release_sans: list[x509.GeneralName] = [
        x509.RFC822Name(RELEASE_EMAIL),
        x509.UniformResourceIdentifier(RELEASE_URI),
    ]

    def leaf(key: ec.EllipticCurvePrivateKey, **kw: object) -> Signer:
        cert = issue("Leaf", key, intermediate, int_key, **kw)  # type: ignore[arg-type]
        return Signer(key, cert, [intermediate])

    return CodePKI(
        root=root,
        intermediate=intermediate,
        other_root=other_root,
        release=leaf(keys[3], sans=release_sans),
        keyless=leaf(
            keys[4],
            sans=[x509.OtherName(FULCIO_OTHERNAME, der_utf8(KEYLESS_ID))],
            oidc_issuer=KEYLESS_ISSUER,
        ),
        expired=leaf(
            keys[5],
            sans=release_sans,
            not_before=datetime(2020, 1, 1, tzinfo=UTC),
            not_after=datetime(2021, 1, 1, tzinfo=UTC),
        ),
        no_eku=leaf(keys[6], sans=release_sans, eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
        self_signed=Signer(keys[7], issue("Self", keys[7], None, keys[7], sans=release_sans), []),
        untrusted=Signer(
            keys[8], issue("Stranger", keys[8], other_root, other_key, sans=release_sans), [other_root]
        ),
    )


def trusted_root_text(*certificates: x509.Certificate) -> str:
    """A Sigstore trusted_root.json naming one certificate authority (`certificates`, leaf-most first), with
    no transparency logs, CT logs or TSAs: a keyless root made of a test PKI."""
    import base64

    chain = [
        {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
        for c in certificates
    ]
    authority = {
        "subject": {"organization": "sigscope tests", "commonName": "test CA"},
        "uri": "https://ca.invalid",
        "certChain": {"certificates": chain},
        "validFor": {"start": "2019-01-01T00:00:00Z"},
    }
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [],
            "certificateAuthorities": [authority],
            "ctlogs": [],
            "timestampAuthorities": [],
        }
    )
