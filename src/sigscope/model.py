"""Plain records that flow between sources, the pure core and the faces."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sigscope.errors import IntegrityError
from sigscope.oci import mediatypes


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=data.get("variant"),
            os_version=data.get("os.version"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what, how big, and its digest."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    artifact_type: str | None = None
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise IntegrityError("descriptor is not a JSON object")
        try:
            media_type = str(data["mediaType"])
            digest = str(data["digest"])
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"descriptor lacks a valid mediaType, digest or size: {exc}") from None
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise IntegrityError("descriptor annotations are not a JSON object")
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            artifact_type=data.get("artifactType"),
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as fetched: the bytes are the evidence."""

    descriptor: Descriptor
    raw: bytes

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.raw)
        except ValueError as exc:
            raise IntegrityError(f"manifest {self.digest} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"manifest {self.digest} is not a JSON object")
        return data

    @property
    def is_index(self) -> bool:
        return mediatypes.is_index(self.media_type)

    def children(self) -> list[Descriptor]:
        """Platform manifests of an index (empty for an image manifest)."""
        manifests = self.json().get("manifests") or []
        if not isinstance(manifests, list):
            raise IntegrityError(f"index {self.digest} has a malformed manifests list")
        return [Descriptor.from_json(m) for m in manifests]

    def layers(self) -> list[Descriptor]:
        layers = self.json().get("layers") or []
        if not isinstance(layers, list):
            raise IntegrityError(f"manifest {self.digest} has a malformed layers list")
        return [Descriptor.from_json(m) for m in layers]

    def config(self) -> Descriptor | None:
        config = self.json().get("config")
        return Descriptor.from_json(config) if config is not None else None

    def subject(self) -> Descriptor | None:
        subject = self.json().get("subject")
        return Descriptor.from_json(subject) if subject is not None else None

    def artifact_type(self) -> str | None:
        """The artifact type the referrers API would report for this manifest."""
        data = self.json()
        if data.get("artifactType"):
            return str(data["artifactType"])
        config = data.get("config")
        if isinstance(config, dict) and config.get("mediaType"):
            return str(config["mediaType"])
        return None

    def annotations(self) -> dict[str, str]:
        annotations = self.json().get("annotations") or {}
        return {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {}

    def total_size(self) -> int:
        """Bytes of the manifest plus its config and layers (what a pull would move)."""
        total = len(self.raw)
        config = self.config()
        if config is not None:
            total += config.size
        return total + sum(layer.size for layer in self.layers())
