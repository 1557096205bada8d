"""`sigscope inspect IMAGE`: what a reference resolves to, checked against its digest."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click
from rich.table import Table

from sigscope.cli.options import OUTPUT_BASIC, TrustMaterial, registry_options, trust_options
from sigscope.cli.progress import stdout_console, waiting
from sigscope.cli.tree import signature_tree
from sigscope.errors import IntegrityError, MalformedJSONError
from sigscope.formats import gojson
from sigscope.model import Manifest
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import ImageReference
from sigscope.oci.store import open_image
from sigscope.report.cells import DigestCell, Fit, print_fields
from sigscope.scan.registry import ImageResult, ScanOptions, scan_image
from sigscope.trust.certs import utcnow

MAX_CONFIG = 1 << 20
_CONFIG_MAPS = gojson.GO_MAPS | {"Labels", "ExposedPorts", "Volumes", "labels"}
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)


@dataclass
class Inspection:
    reference: str
    manifest: Manifest
    platforms: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    total_size: int | None = None
    signatures: list[ImageResult] | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.manifest.json()
        out: dict[str, Any] = {
            "reference": self.reference,
            "digest": self.manifest.digest,
            "mediaType": self.manifest.media_type,
            "size": len(self.manifest.raw),
        }
        artifact_type = self.manifest.artifact_type()
        # An ordinary image's config type says nothing; only a real artifact type is worth showing.
        if artifact_type and artifact_type not in IMAGE_CONFIG_TYPES:
            out["artifactType"] = artifact_type
        if self.manifest.is_index:
            out["platforms"] = self.platforms
        else:
            out["totalSize"] = self.total_size
            out["layers"] = len(data.get("layers") or [])
            if self.config is not None:
                out["config"] = self.config
        if self.manifest.annotations():
            out["annotations"] = self.manifest.annotations()
        subject = self.manifest.subject()
        if subject is not None:
            out["subject"] = subject.to_json()
        if self.signatures is not None:
            top, *children = self.signatures
            out["signatures"] = [s.to_json() for s in top.signatures]
            out["attachments"] = [a.to_json() for a in top.attachments]
            if children:
                out["platformSignatures"] = [
                    {
                        "platform": c.platform,
                        "digest": c.digest,
                        "signatures": [s.to_json() for s in c.signatures],
                        "attachments": [a.to_json() for a in c.attachments],
                        **({"error": c.error} if c.error else {}),
                    }
                    for c in children
                ]
        return out


async def inspect_image(image: str, options: RegistryOptions, scan: ScanOptions | None = None) -> Inspection:
    async with open_image(image, options) as opened:
        repo = opened.repository
        manifest = await repo.get_manifest(opened.reference)
        result = Inspection(opened.display, manifest)
        if scan is not None:
            ref = opened.parsed
            registry, repo_name = (
                (ref.registry, ref.repository) if isinstance(ref, ImageReference) else ("", "")
            )
            result.signatures = await scan_image(
                repo,
                opened.reference,
                source=registry or opened.display,
                repo_name=repo_name,
                registry=registry,
                options=scan,
            )
        if manifest.is_index:
            for child in manifest.children():
                entry: dict[str, Any] = {
                    "digest": child.digest,
                    "mediaType": child.media_type,
                    "size": child.size,
                }
                if child.platform is not None:
                    entry["platform"] = str(child.platform)
                if child.artifact_type:
                    entry["artifactType"] = child.artifact_type
                if child.annotations:
                    entry["annotations"] = child.annotations
                result.platforms.append(entry)
            return result
        result.total_size = manifest.total_size()
        config = manifest.config()
        if config is not None and config.media_type.endswith("json") and config.size <= MAX_CONFIG:
            raw = await repo.get_blob(config.digest, max_size=MAX_CONFIG)
            try:
                # Labels, ExposedPorts, Volumes: Go maps in an image config, so no key folding there.
                config_json = (
                    gojson.read(raw, f"config blob {config.digest}", maps=_CONFIG_MAPS) if raw else {}
                )
            except MalformedJSONError as exc:
                raise IntegrityError(str(exc)) from None
            summary: dict[str, Any] = {"digest": config.digest, "mediaType": config.media_type}
            if isinstance(config_json, dict):
                for key in ("architecture", "os", "variant", "created"):
                    if config_json.get(key):
                        summary[key] = config_json[key]
            result.config = summary
        return result


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _print_pretty(result: Inspection) -> None:
    data = result.to_json()
    console = stdout_console()
    rows: list[tuple[str, str]] = [
        ("Reference", result.reference),
        ("Digest", data["digest"]),
        ("Media type", data["mediaType"]),
        ("Manifest size", f"{data['size']} B"),
    ]
    if "artifactType" in data:
        rows.append(("Artifact type", data["artifactType"]))
    if result.manifest.is_index:
        rows.append(("Manifests", str(len(result.platforms))))
    else:
        rows += [("Total size", _human(result.total_size)), ("Layers", str(data["layers"]))]
        if result.config:
            platform = "/".join(
                str(result.config[k]) for k in ("os", "architecture", "variant") if k in result.config
            )
            if platform:
                rows.append(("Platform", platform))
            rows.append(("Config", result.config["digest"]))
    if "subject" in data:
        rows.append(("Subject", data["subject"]["digest"]))
    for key, value in (data.get("annotations") or {}).items():
        rows.append(("Annotation", f"{key}={value}"))
    print_fields(console, rows)
    if result.manifest.is_index:
        children = Table(title="Manifests", title_justify="left")
        children.add_column("Platform")
        children.add_column("Digest")
        children.add_column("Size", justify="right", no_wrap=True)
        children.add_column("Media type")
        for child in result.platforms:
            children.add_row(
                Fit(child.get("platform") or child.get("artifactType") or "-", where="end"),
                DigestCell(child["digest"]),
                str(child["size"]),
                Fit(child["mediaType"], where="end"),
            )
        console.print(children)
    if result.signatures is not None:
        console.print(signature_tree(result.reference, result.signatures))


@click.command("inspect")
@click.argument("image")
@click.option(
    "--raw", is_flag=True, help="Print the manifest bytes exactly as fetched (after the digest check)."
)
@click.option(
    "--signatures", is_flag=True, help="Also find and show every signature on the image, as a tree."
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@trust_options
@registry_options
def inspect_cmd(
    image: str,
    raw: bool,
    signatures: bool,
    output: str,
    trust: TrustMaterial,
    registry_options: RegistryOptions,
) -> None:
    """Show what IMAGE resolves to: digest, media type, platforms of an index, size.

    \b
    Examples:
      sigscope inspect 127.0.0.1:5000/demo/alpine:1.0 --insecure
      sigscope inspect oci:./layout:v1 -o json
      sigscope inspect registry.example.com/app@sha256:… --raw | jq .
      sigscope inspect 127.0.0.1:5000/team/api:1.4.2 --insecure --signatures
    """
    scan = None
    if signatures:
        scan = ScanOptions(
            now=utcnow(),
            platforms=True,
            registries_d=trust.registries_d,
            lookaside_timeout=registry_options.timeout,
            keys=trust.keys,
            gpg_keyring=trust.gpg_keyring,
            certificates=trust.certificates,
            notation=trust.notation,
            timestamps=trust.timestamps,
        )
    with waiting(f"Inspecting {image}"):
        result = asyncio.run(inspect_image(image, registry_options, scan))
    if raw:
        sys.stdout.buffer.write(result.manifest.raw)
        sys.stdout.buffer.flush()
        return
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_pretty(result)
