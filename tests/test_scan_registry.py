"""`sigscope scan registry` against a real registry holding real signatures made by skopeo, gpg and notation.

Identities are asserted, not just counts; the negative cases are pushed next to the good ones and each must
come out `invalid` with its reason while the rest of the scan goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed import SignedRegistry, notation_layout, vectors
from testbed.forge import PKI, make_pki, pem, push_cosign_signature, push_image
from testbed.proxy import RegistryProxy

from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions

COSIGN_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json"

# The shared report is built on a registry holding notation-go's vector signature (signed/notation:1.0).
pytestmark = pytest.mark.vectors


def sigscope(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent-sigscope-test"}
    result = subprocess.run(
        [sys.executable, "-m", "sigscope", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


# --------------------------------------------------------------- forged signatures (negative cases)


@dataclass
class Negatives:
    digests: dict[str, str]
    pki: PKI


async def _build_negatives(signed: SignedRegistry) -> Negatives:
    pki = make_pki()
    found: dict[str, str] = {}
    options = RegistryOptions(insecure=True, use_auth_files=False)
    async with RegistryClient(signed.host, options) as client:
        # A good certificate-bearing cosign signature, then the same with each flaw.
        for repo, kwargs in {
            "neg/cert-good": {"cert": pem(pki.leaf), "chain": pem(pki.ca)},
            "neg/cert-tampered": {"cert": pem(pki.leaf), "chain": pem(pki.ca), "tamper": True},
            "neg/cert-badchain": {"cert": pem(pki.leaf), "chain": pem(pki.other_ca)},
        }.items():
            image = await push_image(client, repo, "1.0", repo)
            await push_cosign_signature(client, repo, image.digest, image.digest, pki.leaf_key, **kwargs)  # type: ignore[arg-type]
            found[repo] = image.digest
        image = await push_image(client, "neg/self-signed", "1.0", "self")
        await push_cosign_signature(
            client, "neg/self-signed", image.digest, image.digest, pki.self_key, cert=pem(pki.self_signed)
        )
        found["neg/self-signed"] = image.digest
        # A .sig whose payload names another image's digest.
        image = await push_image(client, "neg/wrong-digest", "1.0", "wrong")
        other = await push_image(client, "neg/wrong-digest", "2.0", "other")
        await push_cosign_signature(
            client,
            "neg/wrong-digest",
            image.digest,
            other.digest,
            pki.leaf_key,
            cert=pem(pki.leaf),
            chain=pem(pki.ca),
        )
        found["neg/wrong-digest:1.0"] = image.digest
        found["neg/wrong-digest:2.0"] = other.digest
        # A referrer listed for this image whose manifest names another subject (the notation vector's).
        image = await push_image(client, "neg/subject", "1.0", "subject")
        notation_repo = "signed/notation"
        subject_digest = signed.images["signed/notation:1.0"]
        [listed] = await client.referrers(notation_repo, subject_digest)
        sig_manifest = await client.get_manifest(notation_repo, listed.digest)
        await client.put_blob("neg/subject", mediatypes.EMPTY_JSON)
        for layer in sig_manifest.layers():
            await client.put_blob("neg/subject", await client.get_blob(notation_repo, layer.digest))
        await client.put_manifest("neg/subject", sig_manifest.raw, sig_manifest.media_type)
        await client.add_referrer_to_fallback("neg/subject", image.digest, listed)
        found["neg/subject"] = image.digest
    return Negatives(found, pki)


@pytest.fixture(scope="module")
def negatives(signed_registry: SignedRegistry) -> Negatives:
    return asyncio.run(_build_negatives(signed_registry))


@pytest.fixture(scope="module")
def report(signed_registry: SignedRegistry, negatives: Negatives) -> dict[str, Any]:
    registries_d = str(signed_registry.registries_d)
    host = signed_registry.host
    result = sigscope(
        "scan", "registry", host, "--insecure", "--registries.d", registries_d, "--platforms", "-o", "json"
    )
    data: dict[str, Any] = json.loads(result.stdout)
    assert "Found" in result.stderr
    return data


def entries_for(report: dict[str, Any], repository: str) -> list[dict[str, Any]]:
    return [e for e in report["registry"]["signatures"] if e["repository"] == repository]


# ------------------------------------------------------------------------------------------ tests


def test_cosign_signatures_made_by_skopeo(signed_registry: SignedRegistry, report: dict[str, Any]) -> None:
    [one] = entries_for(report, "signed/cosign")
    assert one["format"] == "cosign" and one["digest"] == signed_registry.images["signed/cosign:1.0"]
    assert one["path"] == "signed/cosign:1.0"
    # skopeo signs with a bare key: nothing to check it against yet, so unverified, with the claims shown.
    assert one["status"] == "unverified"
    assert one["claims"]["docker-reference"] == f"{signed_registry.host}/signed/cosign:1.0"
    assert one["signedDigest"] == one["digest"]
    checks = {c["name"]: c["outcome"] for c in one["checks"]}
    assert checks["payload-digest"] == "passed" and checks["signature"] == "skipped"
    assert len(entries_for(report, "signed/cosign2")) == 2


def test_gpg_simple_signing_from_lookaside(signed_registry: SignedRegistry, report: dict[str, Any]) -> None:
    [gpg] = entries_for(report, "signed/gpg")
    assert gpg["format"] == "simple-signing"
    assert gpg["signer"]["pgp"]["keyId"].upper() == signed_registry.gpg.key_id.upper()
    assert gpg["subjectname"] == f"OpenPGP key {gpg['signer']['pgp']['keyId']}"
    assert gpg["status"] == "unverified" and gpg["signedDigest"] == signed_registry.images["signed/gpg:1.0"]
    assert gpg["location"].startswith("lookaside file://")


def test_notation_signature_identity(signed_registry: SignedRegistry, report: dict[str, Any]) -> None:
    [notation] = entries_for(report, "signed/notation")
    assert notation["format"] == "notation-cose"
    assert notation["subjectname"] == "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"
    assert notation["status"] == "integrity-ok" and notation["selfSigned"] is True
    assert notation["thumbprints"] == '"9f5f5aecee24b5cfdc7a91f6d5ac5c3a5348feb17c934d403f59ac251549ea0d"'
    assert notation["claims"]["signingScheme"] == "notary.x509"


def test_certificate_signatures_and_negatives(negatives: Negatives, report: dict[str, Any]) -> None:
    [good] = entries_for(report, "neg/cert-good")
    assert good["subjectname"] == "CN=Release Signer,O=sigscope tests"
    assert good["issuer"] == "CN=Test Root CA,O=sigscope tests"
    assert good["status"] == "integrity-ok" and good["selfSigned"] is False

    def reason(repository: str) -> str:
        [entry] = entries_for(report, repository)
        assert entry["status"] == "invalid", entry
        return str(entry["reason"])

    assert reason("neg/cert-tampered").startswith("signature:")
    assert "chain" in reason("neg/cert-badchain") and "not issued by" in reason("neg/cert-badchain")
    wrong = reason("neg/wrong-digest")
    assert "payload-digest" in wrong and negatives.digests["neg/wrong-digest:2.0"] in wrong
    subject = reason("neg/subject")
    assert subject.startswith("subject:") and negatives.digests["neg/subject"] in subject

    [selfie] = entries_for(report, "neg/self-signed")
    assert selfie["selfSigned"] is True and selfie["subjectname"] == "CN=Self Signer,O=sigscope tests"


def test_unsigned_index_and_platforms(signed_registry: SignedRegistry, report: dict[str, Any]) -> None:
    images = {(i["path"], i.get("platform")): i for i in report["images"]}
    assert images[("plain/unsigned:1.0", None)]["signed"] is False
    index = images[("signed/multi:1.0", None)]
    assert index["signed"] is True and index["signatureCount"] == 1
    children = [i for i in report["images"] if i.get("parent") == index["digest"]]
    assert sorted(c["platform"] for c in children) == ["linux/amd64", "linux/arm64"]
    assert all(not c["signed"] for c in children)  # skopeo signed the index only
    summary = report["summary"]
    assert summary["unsignedImages"] >= 3 and summary["byStatus"]["invalid"] == 4


def test_subjectnames_for_jq(report: dict[str, Any]) -> None:
    names = {e["subjectname"] for e in report["registry"]["signatures"]}
    assert {"CN=alpine,O=Notary,L=Seattle,ST=WA,C=US", "CN=Release Signer,O=sigscope tests"} <= names


def test_key_makes_cosign_verified_or_untrusted(signed_registry: SignedRegistry) -> None:
    key = signed_registry.cosign_keys[0].public_key
    out = sigscope(
        "scan",
        "registry",
        signed_registry.host,
        "--insecure",
        "--repo",
        "signed/cosign*",
        "--key",
        str(key),
        "-o",
        "json",
    )
    entries = json.loads(out.stdout)["registry"]["signatures"]
    statuses = sorted((e["repository"], e["status"]) for e in entries)
    assert statuses == [
        ("signed/cosign", "verified"),
        ("signed/cosign2", "untrusted"),
        ("signed/cosign2", "verified"),
    ]
    verified = next(e for e in entries if e["status"] == "verified")
    assert verified["subjectname"].startswith("ECDSA key sha256:")
    # A key that signed nothing here: everything key-verifiable is untrusted, nothing verified.
    other = signed_registry.cosign_keys[1].public_key
    out = sigscope(
        "scan",
        "registry",
        signed_registry.host,
        "--insecure",
        "--repo",
        "signed/cosign",
        "--key",
        str(other),
        "-o",
        "json",
    )
    assert [e["status"] for e in json.loads(out.stdout)["registry"]["signatures"]] == ["untrusted"]


def test_fail_on_and_streaming_outputs(signed_registry: SignedRegistry, negatives: Negatives) -> None:
    host = signed_registry.host
    assert (
        sigscope(
            "scan", "registry", host, "--insecure", "--repo", "plain/*", "--fail-on", "unsigned", check=False
        ).returncode
        == 1
    )
    assert (
        sigscope(
            "scan", "registry", host, "--insecure", "--repo", "signed/cosign", "--fail-on", "unsigned"
        ).returncode
        == 0
    )
    invalid = sigscope(
        "scan", "registry", f"{host}/neg", "--insecure", "--fail-on", "invalid", "-o", "sarif", check=False
    )
    assert invalid.returncode == 1 and "--fail-on matched: invalid" in invalid.stderr
    sarif = json.loads(invalid.stdout)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"SIG002", "SIG003"}
    lines = sigscope("scan", "registry", host, "--insecure", "-o", "ndjson").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[-1]["type"] == "summary" and all(r["type"] == "image" for r in records[:-1])
    csv_text = sigscope("scan", "registry", host, "--insecure", "--repo", "neg/*", "-o", "csv").stdout
    assert csv_text.splitlines()[0].startswith("path,repository,tags,digest")
    html_text = sigscope("scan", "registry", host, "--insecure", "-o", "html").stdout
    assert "<table>" in html_text and "neg/cert-good" in html_text


def test_one_broken_image_does_not_stop_the_scan(signed_registry: SignedRegistry) -> None:
    with RegistryProxy(signed_registry.url) as proxy:
        # The registry (or something between) serves bytes that do not match this image's digest.
        proxy.tamper(r"/v2/signed/cosign/manifests/sha256-")
        out = sigscope("scan", "registry", proxy.host, "--insecure", "--repo", "signed/*", "-o", "json")
    data = json.loads(out.stdout)
    broken = [e for e in data["registry"]["signatures"] if e["repository"] == "signed/cosign"]
    assert broken and broken[0]["status"] == "invalid" and "digest mismatch" in broken[0]["error"]
    assert any(
        e["repository"] == "signed/notation" and e["status"] == "integrity-ok"
        for e in data["registry"]["signatures"]
    )


def test_scan_oci_layout_with_notation_vector(tmp_path: Path) -> None:
    try:
        layout, subject, _signature = notation_layout(tmp_path / "layout", formats=("cose", "jws"))
    except FileNotFoundError as exc:
        vectors.unavailable(f"notation vectors unavailable: {exc}")
    data = json.loads(sigscope("scan", "registry", f"oci:{layout}", "-o", "json").stdout)
    entries = data["registry"]["signatures"]
    assert sorted(e["format"] for e in entries) == ["notation-cose", "notation-jws"]
    assert all(e["subjectname"] == "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US" for e in entries)
    assert all(e["digest"] == subject for e in entries)
    tree = sigscope("inspect", f"oci:{layout}:v2", "--signatures").stdout
    assert "notation-cose" in tree and "✓ payload-digest" in tree


def test_inspect_signatures_json(signed_registry: SignedRegistry) -> None:
    out = sigscope(
        "inspect", f"{signed_registry.host}/signed/cosign2:1.0", "--insecure", "--signatures", "-o", "json"
    )
    data = json.loads(out.stdout)
    assert len(data["signatures"]) == 2 and all(s["format"] == "cosign" for s in data["signatures"])
    out = sigscope(
        "inspect", f"{signed_registry.host}/signed/multi:1.0", "--insecure", "--signatures", "-o", "json"
    )
    data = json.loads(out.stdout)
    assert len(data["signatures"]) == 1 and len(data["platformSignatures"]) == 2


def test_broken_referrers_index_is_a_problem_not_a_signature(signed_registry: SignedRegistry) -> None:
    # The fallback index of one image is served as garbage: its other signatures are still reported.
    with RegistryProxy(signed_registry.url) as proxy:
        subject = signed_registry.images["signed/notation:1.0"]
        proxy.tamper(rf"/v2/signed/notation/manifests/sha256-{subject.split(':')[1]}$", replace=b"not json")
        out = sigscope(
            "scan", "registry", proxy.host, "--insecure", "--repo", "signed/notation", "-o", "json"
        )
        failing = sigscope(
            "scan",
            "registry",
            proxy.host,
            "--insecure",
            "--repo",
            "signed/notation",
            "--fail-on",
            "error",
            check=False,
        )
    [image] = json.loads(out.stdout)["images"]
    assert image["signatureCount"] == 0 and "digest mismatch" in image["problems"][0]
    assert failing.returncode == 1


async def _push_sbom_with_signature(signed: SignedRegistry) -> tuple[str, str, str]:
    """An SPDX SBOM referrer on a fresh image, and a Notary signature manifest attached to the SBOM."""
    repo = "att/sbom"
    async with RegistryClient(signed.host, RegistryOptions(insecure=True, use_auth_files=False)) as client:
        image = await push_image(client, repo, "1.0", "sbom-subject")
        sbom_blob = await client.put_blob(repo, b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json")
        sbom = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "artifactType": "application/spdx+json",
                "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": mediatypes.EMPTY_DIGEST, "size": 2},
                "layers": [sbom_blob.to_json()],
                "subject": image.to_json(),
            }
        ).encode()
        sbom_desc = await client.push_referrer(repo, sbom, mediatypes.OCI_MANIFEST)
        # Reuse the vector's envelope: it signs another digest, so the SBOM's signature is found but invalid.
        notation_repo = "signed/notation"
        [listed] = await client.referrers(notation_repo, signed.images["signed/notation:1.0"])
        vector = (await client.get_manifest(notation_repo, listed.digest)).json()
        for layer in vector["layers"]:
            await client.put_blob(repo, await client.get_blob(notation_repo, layer["digest"]))
        vector["subject"] = sbom_desc.to_json()
        await client.push_referrer(repo, json.dumps(vector).encode(), mediatypes.OCI_MANIFEST)
        return image.digest, sbom_desc.digest, repo


def test_other_referrers_are_attachments_and_say_if_signed(signed_registry: SignedRegistry) -> None:
    image, sbom, repo = asyncio.run(_push_sbom_with_signature(signed_registry))
    out = sigscope("scan", "registry", signed_registry.host, "--insecure", "--repo", repo, "-o", "json")
    [result] = json.loads(out.stdout)["images"]
    assert result["digest"] == image and result["signed"] is False
    [attachment] = result["attachments"]
    assert attachment["artifactType"] == "application/spdx+json" and attachment["digest"] == sbom
    assert attachment["signed"] is True
    [sbom_signature] = attachment["signatures"]
    assert sbom_signature["format"] == "notation-cose" and sbom_signature["status"] == "invalid"
    assert "payload-digest" in sbom_signature["reason"]
