"""Images of every pod-bearing kind, with their JSON Pointer paths, and the patch that pins them (pure).

Where the pod spec lives depends on the kind: a Pod carries it at `/spec`, the controllers in their pod
template, a CronJob one level further down in its job template. Each container list is read
(`containers`, `initContainers`, `ephemeralContainers`), so an init or debug container cannot slip an
image past the webhook.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# The pod spec inside each kind's object, as JSON Pointer segments.
POD_SPEC: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    # Before Kubernetes 1.22 the pods/ephemeralcontainers subresource carried this kind, with the list at
    # the top; since then it carries the Pod itself.
    "EphemeralContainers": (),
}
# A pod has a few containers; thousands are a hostile or broken request, refused before any work.
DEFAULT_MAX_CONTAINERS = 256
MAX_IMAGE_LENGTH = 1024


class WorkloadError(ValueError):
    """The object does not have the shape its kind promises (one line, for a 400)."""


@dataclass(frozen=True)
class ImageSite:
    """One container's image and where it sits in the object."""

    image: str
    pointer: str  # JSON Pointer, e.g. /spec/template/spec/containers/0/image
    container: str  # the container's name ("" when it has none)
    field: str  # containers | initContainers | ephemeralContainers

    @property
    def pinned(self) -> bool:
        return "@" in self.image


def pointer(segments: tuple[str | int, ...]) -> str:
    """RFC 6901: `~` and `/` in a segment are escaped."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


def pod_bearing(kind: str) -> bool:
    return kind in POD_SPEC


def image_sites(kind: str, obj: Any, *, max_containers: int = DEFAULT_MAX_CONTAINERS) -> list[ImageSite]:
    """Every container image of `obj` (of `kind`), in spec order; [] for a kind that bears no pods."""
    path = POD_SPEC.get(kind)
    if path is None or obj is None:
        return []
    spec: Any = obj
    for segment in path:
        if not isinstance(spec, dict):
            raise WorkloadError(f"{kind} object has no {pointer(path)} object")
        spec = spec.get(segment)
        if spec is None:
            return []  # a template without a spec is the API server's to refuse, and has no images
    if not isinstance(spec, dict):
        raise WorkloadError(f"{kind} {pointer(path) or 'object'} is not an object")
    sites: list[ImageSite] = []
    for field in CONTAINER_LISTS:
        containers = spec.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise WorkloadError(f"{pointer((*path, field))} is not a list")
        if len(sites) + len(containers) > max_containers:
            raise WorkloadError(f"more than {max_containers} containers in one object")
        for index, container in enumerate(containers):
            where: tuple[str | int, ...] = (*path, field, index)
            if not isinstance(container, dict):
                raise WorkloadError(f"{pointer(where)} is not an object")
            image = container.get("image")
            if image is None:
                continue  # no image: nothing to run, the API server refuses the object
            if not isinstance(image, str) or not image or len(image) > MAX_IMAGE_LENGTH:
                raise WorkloadError(f"{pointer((*where, 'image'))} is not an image reference")
            name = container.get("name")
            sites.append(
                ImageSite(
                    image=image,
                    pointer=pointer((*where, "image")),
                    container=name if isinstance(name, str) else "",
                    field=field,
                )
            )
    return sites


def pin_patch(
    sites: list[ImageSite], digests: Mapping[str, str], allowed: Collection[str]
) -> list[dict[str, Any]]:
    """JSON Patch ops pinning each `name:tag` to `name:tag@digest`.

    Only images in `allowed` with a digest in `digests` are pinned, so a denied image is never patched;
    an image already carrying a digest is left alone, so a reinvocation yields no ops. Each replace is
    guarded by a `test` of the value judged: the API server fails the patch rather than pin an image
    something else changed in between.
    """
    ops: list[dict[str, Any]] = []
    for site in sites:
        digest = digests.get(site.image)
        if site.pinned or digest is None or site.image not in allowed:
            continue
        ops.append({"op": "test", "path": site.pointer, "value": site.image})
        ops.append({"op": "replace", "path": site.pointer, "value": f"{site.image}@{digest}"})
    return ops
