"""The referrers tag schema (OCI distribution 1.1 fallback), as pure functions.

Registries without the referrers API (Debian's distribution 2.8 among them)
keep referrers in an OCI index tagged `<alg>-<hex>` of the subject digest. The
client maintains that index; these helpers build and amend it without I/O.
"""

from __future__ import annotations

import json
from typing import Any

from sigscope.errors import IntegrityError, MalformedJSONError
from sigscope.formats import gojson
from sigscope.model import Descriptor, Manifest
from sigscope.oci import mediatypes


def descriptor_for(manifest: Manifest) -> Descriptor:
    """The descriptor a referrers listing carries for `manifest`: artifact type and all annotations."""
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=len(manifest.raw),
        annotations=manifest.annotations(),
        artifact_type=manifest.artifact_type(),
    )


def empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}


def parse_index(raw: bytes, where: str) -> list[Descriptor]:
    try:
        data = gojson.read(raw, f"referrers index {where}")
    except MalformedJSONError as exc:
        raise IntegrityError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
        raise IntegrityError(f"referrers index {where} is not an OCI image index")
    return [Descriptor.from_json(m) for m in data.get("manifests") or []]


def filter_artifact_type(descriptors: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    # Registries may ignore the filter; apply it ourselves every time.
    if artifact_type is None:
        return descriptors
    return [d for d in descriptors if d.artifact_type == artifact_type]


def add_to_index(existing: dict[str, Any] | None, descriptor: Descriptor) -> tuple[bytes, bool]:
    """Append `descriptor` to a fallback index; returns (new bytes, changed).

    Existing entries are kept as they are (including fields we do not model),
    since another tool wrote them and dropping one would hide a signature.
    """
    index = dict(existing) if existing is not None else empty_index()
    manifests = list(index.get("manifests") or [])
    if any(isinstance(m, dict) and m.get("digest") == descriptor.digest for m in manifests):
        return serialize(index), False
    manifests.append(descriptor.to_json())
    index["manifests"] = manifests
    index.setdefault("schemaVersion", 2)
    index.setdefault("mediaType", mediatypes.OCI_INDEX)
    return serialize(index), True


def remove_from_index(existing: dict[str, Any], digest: str) -> tuple[bytes, bool]:
    manifests = [
        m for m in existing.get("manifests") or [] if not (isinstance(m, dict) and m.get("digest") == digest)
    ]
    changed = len(manifests) != len(existing.get("manifests") or [])
    index = dict(existing)
    index["manifests"] = manifests
    return serialize(index), changed


def serialize(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
