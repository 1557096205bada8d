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
) -> None:
    payload = json.dumps(
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
