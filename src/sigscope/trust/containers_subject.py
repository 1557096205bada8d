"""The subject containers/image presents to a policy for one image (docker:// or oci:)."""

from __future__ import annotations

import os

from sigscope.oci.reference import ImageReference, LayoutReference
from sigscope.sources.lookaside import RegistriesD
from sigscope.trust import containers_policy as cp


def subject_for(
    parsed: ImageReference | LayoutReference, digest: str, registries_d: RegistriesD
) -> cp.Subject:
    if isinstance(parsed, LayoutReference):
        # c/image names a layout by its real path
        resolved = os.path.realpath(parsed.path)
        suffix = f":{parsed.tag}" if parsed.tag else (f"@{parsed.digest}" if parsed.digest else "")
        return cp.layout_subject(resolved, digest, display=f"oci:{resolved}{suffix}")
    return cp.docker_subject(
        parsed.registry,
        parsed.repository,
        tag=parsed.tag if parsed.digest is None else None,
        digest=parsed.digest,
        manifest_digest=digest,
        sigstore_attachments=registries_d.use_sigstore_attachments(
            parsed.registry, parsed.repository, tag=parsed.tag, digest=parsed.digest
        ),
    )
