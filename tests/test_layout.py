"""OCI image layouts behave like a registry repository, including referrers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sigscope.errors import (
    IntegrityError,
    InvalidReferenceError,
    LayoutError,
    NotFoundError,
    TooLargeError,
)
from sigscope.oci import digest as digests
from sigscope.oci import mediatypes
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import referrers_tag
from sigscope.oci.store import open_image


def _manifest(config: str, layer: bytes, **extra: object) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digests.of(layer),
                "size": len(layer),
            }
        ],
        **extra,
    }
    return json.dumps(body).encode()


async def _image(layout: OCILayout, tag: str, seed: bytes) -> str:
    config = await layout.put_blob(b"{}")
    await layout.put_blob(seed)
    return (await layout.put_manifest(_manifest(config.digest, seed), mediatypes.OCI_MANIFEST, tag)).digest


async def test_round_trip_tags_and_retag(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "l", create=True)
    d1 = await _image(layout, "v1", b"one")
    d2 = await _image(layout, "v2", b"two")
    assert sorted(await layout.list_tags()) == ["v1", "v2"]
    assert (await layout.resolve("v1")).digest == d1
    manifest = await layout.get_manifest("v2")
    assert manifest.digest == d2 and manifest.media_type == mediatypes.OCI_MANIFEST
    d3 = await _image(layout, "v1", b"three")
    assert (await layout.resolve("v1")).digest == d3
    assert sorted(await layout.list_tags()) == ["v1", "v2"]
    reopened = OCILayout(tmp_path / "l")
    assert (await reopened.get_manifest(d2)).raw == manifest.raw


async def test_tampered_blob_is_an_integrity_error(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "l", create=True)
    digest = await _image(layout, "v1", b"one")
    blob = tmp_path / "l" / "blobs" / "sha256" / digest.split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        await layout.get_manifest("v1")


async def test_blob_reads_hold_size_limits_and_name_what_is_wrong(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "l", create=True)
    blob = await layout.put_blob(b"x" * 100)
    assert await layout.get_blob(blob.digest, max_size=100) == b"x" * 100
    with pytest.raises(TooLargeError, match="100 bytes, over the 99-byte limit"):
        await layout.get_blob(blob.digest, max_size=99)
    absent = digests.of(b"absent")
    with pytest.raises(NotFoundError, match=f"blob {absent} not found"):
        await layout.get_blob(absent)
    # a blob path that is a directory, or an unreadable name, is a layout error, never a traceback
    odd = digests.of(b"odd")
    (tmp_path / "l" / "blobs" / "sha256" / odd.split(":")[1]).mkdir()
    with pytest.raises(LayoutError, match="cannot read"):
        await layout.get_blob(odd)
    with pytest.raises(InvalidReferenceError, match="invalid digest"):
        await layout.get_blob("sha256:../../etc/passwd")


async def test_missing_and_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="does not exist"):
        OCILayout(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        OCILayout(tmp_path / "empty")
    layout = OCILayout(tmp_path / "l", create=True)
    with pytest.raises(NotFoundError):
        await layout.resolve("missing")


async def test_default_reference_needs_a_single_image(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "l", create=True)
    d1 = await _image(layout, "v1", b"one")
    async with open_image(f"oci:{tmp_path / 'l'}") as opened:
        assert opened.reference == d1
    await _image(layout, "v2", b"two")
    with pytest.raises(LayoutError, match="name one with"):
        layout.default_reference()


async def test_referrers_via_fallback_tag_and_subject_scan(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "l", create=True)
    subject = await _image(layout, "v1", b"one")
    subject_desc = await layout.resolve(subject)
    empty = await layout.put_blob(mediatypes.EMPTY_JSON, mediatypes.OCI_EMPTY)
    signatures = []
    for n in range(2):
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "artifactType": "application/vnd.cncf.notary.signature",
                "config": empty.to_json(),
                "layers": [],
                "subject": subject_desc.to_json(),
                "annotations": {"n": str(n)},
            }
        ).encode()
        signatures.append((await layout.push_referrer(body, mediatypes.OCI_MANIFEST)).digest)
    # Pushing the same referrer twice must not duplicate it.
    await layout.push_referrer(body, mediatypes.OCI_MANIFEST)
    assert referrers_tag(subject) in await layout.list_tags()
    found = await layout.referrers(subject)
    assert [d.digest for d in found] == signatures
    assert found[0].artifact_type == "application/vnd.cncf.notary.signature"
    assert found[1].annotations == {"n": "1"}
    assert await layout.referrers(subject, "application/other") == []
    # An oras-style untagged entry whose subject names the image is a referrer too.
    sbom = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "application/spdx+json", "digest": empty.digest, "size": 2},
            "layers": [],
            "subject": subject_desc.to_json(),
        }
    ).encode()
    await layout.put_manifest(sbom, mediatypes.OCI_MANIFEST)
    types = {d.artifact_type for d in await layout.referrers(subject)}
    assert types == {"application/vnd.cncf.notary.signature", "application/spdx+json"}
    # The image itself is still the only image.
    assert layout.default_reference() == subject
