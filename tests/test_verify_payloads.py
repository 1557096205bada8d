"""Payloads two readers could read two ways (issue 12, item 18).

Each payload below is signed with the trusted key, so nothing but its content can get it rejected; each
must be rejected by `verify --key`, `verify --containers-policy` and `scan --key`, with the same reason,
while the clean payload passes all three (so these tests can fail).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import RegistryHandle
from testbed.cli import run_sigscope as run
from testbed.forge import push_cosign_signature, push_image
from testbed.signing import write_registries_d

from sigscope.oci.client import RegistryClient, RegistryOptions

COSIGN_TYPE = "cosign container image signature"
OTHER = "sha256:" + "e" * 64


Build = Callable[[str, str], bytes]


def _payload(
    image: str = '{"docker-manifest-digest":"DIGEST"}', optional: str = "null", tail: str = ""
) -> Build:
    """A payload written by hand, keeping what json.dumps cannot express (duplicates, lone surrogates, NaN,
    bytes that are not UTF-8); REF, DIGEST and UPPERDIGEST are filled in per image, XFF becomes 0xff."""

    def build(reference: str, digest: str) -> bytes:
        text = (
            '{"critical":{"identity":{"docker-reference":"REF"},"image":'
            + image
            + ',"type":"'
            + COSIGN_TYPE
            + '"}'
            ',"optional":' + optional + tail + "}"
        )
        text = text.replace("UPPERDIGEST", "sha256:" + digest[7:].upper())
        text = text.replace("REF", reference).replace("DIGEST", digest)
        return text.encode("utf-8", "surrogatepass").replace(b"XFF", b"\xff")

    return build


# name -> (payload, the reason every path must give)
CASES: dict[str, tuple[Build, str]] = {
    "both-cases": (
        _payload('{"docker-manifest-digest":"DIGEST","Docker-Manifest-Digest":"' + OTHER + '"}'),
        "keys 'docker-manifest-digest' and 'Docker-Manifest-Digest' in critical.image differ only in case",
    ),
    "go-folds": (
        _payload('{"Docker-Manifest-Digest":"DIGEST"}'),
        "key 'Docker-Manifest-Digest' in critical.image is 'docker-manifest-digest' to Go's",
    ),
    "duplicate-digest": (
        _payload('{"docker-manifest-digest":"' + OTHER + '","docker-manifest-digest":"DIGEST"}'),
        "duplicate key 'docker-manifest-digest' in critical.image",
    ),
    "duplicate-critical": (
        _payload(
            '{"docker-manifest-digest":"' + OTHER + '"}',
            tail=',"critical":{"identity":{"docker-reference":"REF"},"image":{"docker-manifest-digest":"DIGEST"}'
            ',"type":"' + COSIGN_TYPE + '"}',
        ),
        "duplicate key 'critical' in the top level",
    ),
    "duplicate-in-optional": (
        _payload(optional='{"creator":"a","creator":"b"}'),
        "duplicate key 'creator' in optional",
    ),
    "upper-case-hex": (
        _payload('{"docker-manifest-digest":"UPPERDIGEST"}'),
        "sha256 needs exactly 64 lowercase hex characters",
    ),
    "lone-surrogate": (
        _payload(optional='{"creator":"\\ud800"}'),
        "a lone UTF-16 surrogate in optional.creator",
    ),
    "nan": (_payload(optional='{"timestamp":NaN}'), "NaN is not a JSON number"),
    "not-utf8": (_payload(optional='{"creator":"XFF"}'), "not UTF-8"),
}


@dataclass
class Bed:
    host: str
    public_key: Path
    policy: Path
    registries_d: Path


@pytest.fixture(scope="module")
def bed(registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory) -> Bed:
    work = tmp_path_factory.mktemp("payloads")
    key = ec.generate_private_key(ec.SECP256R1())
    public = work / "trusted.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    builders = {name: build for name, (build, _) in CASES.items()} | {"clean": _payload()}

    async def forge() -> None:
        options = RegistryOptions(insecure=True, use_auth_files=False)
        async with RegistryClient(registry.host, options) as client:
            for name, build in builders.items():
                repo = f"payloads/{name}"
                image = await push_image(client, repo, "1.0", f"sigscope/payloads/{name}")
                blob = build(f"{registry.host}/{repo}", image.digest)
                await push_cosign_signature(client, repo, image.digest, image.digest, key, payload=blob)

    asyncio.run(forge())
    policy = work / "policy.json"
    requirement = {
        "type": "sigstoreSigned",
        "keyPath": str(public),
        "signedIdentity": {"type": "matchRepository"},
    }
    policy.write_text(
        json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {"": [requirement]}}})
    )
    return Bed(registry.host, public, policy, write_registries_d(work / "registries.d"))


def _verify(bed: Bed, name: str, *trust: str) -> subprocess.CompletedProcess[str]:
    result = run("verify", f"{bed.host}/payloads/{name}:1.0", "--insecure", *trust)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def _key(bed: Bed) -> tuple[str, ...]:
    return ("--key", str(bed.public_key))


def _policy(bed: Bed) -> tuple[str, ...]:
    return ("--containers-policy", str(bed.policy), "--registries.d", str(bed.registries_d))


def test_clean_payload_verifies_on_every_path(bed: Bed) -> None:
    for trust in (_key(bed), _policy(bed)):
        result = _verify(bed, "clean", *trust)
        assert result.returncode == 0, (trust, result.stdout, result.stderr)


@pytest.mark.parametrize("name", sorted(CASES))
def test_ambiguous_payload_rejected_by_verify_with_one_reason(bed: Bed, name: str) -> None:
    reason = CASES[name][1]
    for trust in (_key(bed), _policy(bed)):
        result = _verify(bed, name, *trust)
        assert result.returncode == 1, (trust, result.stdout, result.stderr)
        assert reason in result.stdout + result.stderr, (trust, result.stdout, result.stderr)


def test_scan_with_key_rejects_each_ambiguous_payload(bed: Bed) -> None:
    result = run("scan", "registry", bed.host, "--insecure", "--repo", "payloads/*", *_key(bed), "-o", "json")
    assert "Traceback" not in result.stderr, result.stderr
    rows: dict[str, list[dict[str, Any]]] = {}
    for entry in json.loads(result.stdout)["registry"]["signatures"]:
        rows.setdefault(entry["repository"].removeprefix("payloads/"), []).append(entry)
    [clean] = rows["clean"]
    assert clean["status"] == "verified", clean
    for name, (_, reason) in CASES.items():
        [row] = rows[name]
        assert row["status"] != "verified", (name, row)
        assert reason in json.dumps(row, ensure_ascii=False), (name, row)
