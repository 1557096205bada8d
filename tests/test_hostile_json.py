"""JSON from outside (issue 12, item 5): formats/gojson.read, and a scan that meets deeply nested JSON in a
manifest, a `.sig` manifest or a referrers index reports that one image as an error row and goes on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import RegistryHandle
from testbed.cli import run_sigscope as run
from testbed.forge import push_cosign_signature, push_image

from sigscope.errors import MalformedJSONError, SigscopeError
from sigscope.formats import gojson
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import referrers_tag

# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "doc nests JSON deeper than 64 levels"),
        (b"[" * 100_000, "doc nests JSON deeper than 64 levels"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "doc nests JSON deeper than 64 levels"),
        # brackets in strings do not count, escaped quotes do not end a string
        (b'{"s\\"[":' * 65 + b"1" + b"}" * 65, "doc nests JSON deeper than 64 levels"),
        (b'{"a":1,"a":2}', "doc is ambiguous JSON: duplicate key 'a' in the top level"),
        (b'{"x":[{"k":1,"k":2}]}', "duplicate key 'k' in x[0]"),
        (b'{"a":{"b":1,"B":2}}', "keys 'b' and 'B' in a differ only in case"),
        (b'{"a":{"k":1,"\\u212a":2}}', "differ only in case"),  # KELVIN SIGN folds to k in Go too
        (b'{"annotations":{"k":1,"k":2}}', "duplicate key 'k' in annotations"),
        (b'{"a":"\\ud800"}', "a lone UTF-16 surrogate in a"),
        (b'{"\\udc00":1}', "a lone UTF-16 surrogate in a key of the top level"),
        (b"NaN", "NaN is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"1e400", "out of range for a float64"),
        (b"1" * 400, "out of range for a float64"),
        (b"\xef\xbb\xbf{}", "doc is not valid JSON: Unexpected UTF-8 BOM"),
        (b'{"a":"\xff"}', "doc is not valid JSON: not UTF-8"),
        (b'"\xed\xa0\x80"', "not UTF-8"),  # a surrogate encoded as UTF-8
        (b"{} x", "doc is not valid JSON: Extra data"),
    ],
)
def test_read_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedJSONError) as info:
        gojson.read(raw, "doc")
    assert reason in str(info.value)
    assert isinstance(info.value, SigscopeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"[" * 64 + b"]" * 64, eval("[" * 64 + "]" * 64)),
        (b'{"a":"' + b"[" * 1000 + b'"}', {"a": "[" * 1000}),
        (b'["\\\\",' + b"[]," * 100 + b"1]", ["\\", *([[]] * 100), 1]),
        (b'{"annotations":{"k":1,"K":2}}', {"annotations": {"k": 1, "K": 2}}),  # a Go map: two entries
        (b'{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a surrogate pair is one character
        (b"1.5e3", 1500.0),
        (b"-0", 0),
    ],
)
def test_read_accepts(raw: bytes, value: Any) -> None:
    assert gojson.read(raw, "doc") == value
    assert gojson.read(raw.decode("utf-8"), "doc") == value


def test_fold_collisions_allowed_only_in_the_maps_named() -> None:
    raw = b'{"labels":{"a":1,"A":2}}'
    with pytest.raises(MalformedJSONError):
        gojson.read(raw, "doc")
    assert gojson.read(raw, "doc", maps=frozenset({"labels"})) == {"labels": {"a": 1, "A": 2}}


def test_depth_scan_is_cheap_on_large_documents() -> None:
    entry = b'{"mediaType":"x","digest":"sha256:%064d","size":1,"annotations":{"a":"[{"}}'
    big = b'{"manifests":[' + b",".join(entry % n for n in range(20_000)) + b"]}"
    started = time.perf_counter()
    assert len(gojson.read(big, "index")["manifests"]) == 20_000
    assert time.perf_counter() - started < 5  # a Python loop per byte would take seconds more
    started = time.perf_counter()
    with pytest.raises(MalformedJSONError, match="deeper than 64"):
        gojson.read(b"[" * 4_000_000, "doc")
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- a scan that meets them

# Deeper than Python's recursion limit, shallower than Go's 10,000 (distribution stores it).
DEEP = "[" * 5_000 + "]" * 5_000


def _deep(document: dict[str, Any]) -> bytes:
    text = json.dumps(document)
    return (text[:-1] + ',"x-deep":' + DEEP + "}").encode()


async def _push_deep(client: RegistryClient, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    fine = await push_image(client, "deep/fine", "1.0", "sigscope/deep/fine")
    await push_cosign_signature(client, "deep/fine", fine.digest, fine.digest, key)

    # an image manifest and an index with a deep member distribution ignores
    template = await push_image(client, "deep/manifest", "template", "sigscope/deep/manifest")
    body = json.loads((await client.get_manifest("deep/manifest", template.digest)).raw)
    await client.put_manifest("deep/manifest", _deep(body), mediatypes.OCI_MANIFEST, "1.0")
    await client.delete_manifest("deep/manifest", template.digest)
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}
    await client.put_blob("deep/index", mediatypes.EMPTY_JSON)  # distribution lists repositories with blobs
    await client.put_manifest("deep/index", _deep(index), mediatypes.OCI_INDEX, "1.0")

    # a .sig manifest nested deeply
    signed = await push_image(client, "deep/sig", "1.0", "sigscope/deep/sig")
    config = await client.put_blob("deep/sig", b"{}")
    sig = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.digest,
            "size": config.size,
        },
        "layers": [],
    }
    tag = "sha256-" + signed.digest.split(":", 1)[1] + ".sig"
    await client.put_manifest("deep/sig", _deep(sig), mediatypes.OCI_MANIFEST, tag)

    # a referrers (tag schema) index nested deeply
    referred = await push_image(client, "deep/referrers", "1.0", "sigscope/deep/referrers")
    await client.put_manifest(
        "deep/referrers", _deep(index), mediatypes.OCI_INDEX, referrers_tag(referred.digest)
    )
    return {"fine": fine.digest, "sig": signed.digest, "referrers": referred.digest}


def test_scan_reports_deep_json_as_one_error_row_each(registry: RegistryHandle) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    async def forge() -> dict[str, str]:
        async with RegistryClient(
            registry.host, RegistryOptions(insecure=True, use_auth_files=False)
        ) as client:
            return await _push_deep(client, key)

    digests = asyncio.run(forge())
    result = run(
        "scan", "registry", registry.host, "--insecure", "--repo", "deep/*", "--platforms", "-o", "json"
    )
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    images: dict[str, list[dict[str, Any]]] = {}
    for row in report["images"]:
        images.setdefault(row["repository"], []).append(row)
    signatures: dict[str, list[dict[str, Any]]] = {}
    for row in report["registry"]["signatures"]:
        signatures.setdefault(row["repository"], []).append(row)
    # every repository is reported: the good one with its signature ...
    [fine] = signatures["deep/fine"]
    assert fine["format"] == "cosign" and fine["digest"] == digests["fine"] and "error" not in fine, fine
    # ... the broken ones each with an error where the deep JSON was read (the registry client names a
    # manifest it cannot read "not a JSON object", whatever gojson.read found in it)
    [sig] = signatures["deep/sig"]
    assert sig["status"] == "invalid" and "is not a JSON object" in sig["error"], sig
    # (the index itself is listed, and the row for its platforms carries the error)
    assert any("is not a JSON object" in row.get("error", "") for row in images["deep/index"]), images
    [referred] = images["deep/referrers"]
    assert any("is not a JSON object" in problem for problem in referred["problems"]), referred
    # an image manifest the scan does not need to parse is reported as an image like any other
    [manifest] = images["deep/manifest"]
    assert manifest["signatureCount"] == 0 and "error" not in manifest, manifest
    assert report["summary"]["images"] == 5
