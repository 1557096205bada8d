"""Media types a client must name in `Accept` and recognise in answers."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_VERSION = "1.0.0"

EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})

# Order matters to some registries: the first type they can serve wins, and
# distribution 2.8 hides OCI manifests unless the OCI type is named at all.
MANIFEST_ACCEPT = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1_SIGNED]
)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


_SHORT_NAMES = {
    OCI_MANIFEST: "oci manifest",
    OCI_INDEX: "oci index",
    DOCKER_MANIFEST: "docker manifest",
    DOCKER_MANIFEST_LIST: "docker list",
    DOCKER_MANIFEST_V1: "docker v1",
    DOCKER_MANIFEST_V1_SIGNED: "docker v1 signed",
}


def short_name(media_type: str) -> str:
    """What a narrow table shows for a manifest media type (the full ones differ only at the end, so a cut one
    says nothing); other types are left whole."""
    return _SHORT_NAMES.get(media_type, media_type)


def is_index(media_type: str | None) -> bool:
    return media_type in INDEX_TYPES
