"""Whether a registry's credentials may go to the token service (the `realm`) the registry names.

The realm comes from the registry's `WWW-Authenticate` header, so a registry, or whoever sits between it and
us, chooses where the password goes. docker, containerd (remotes/docker/authorizer.go) and containers/image
(docker_client.go getBearerToken) all send it there, whatever the scheme or host. sigscope is stricter:

- an HTTPS realm gets the credentials (Docker Hub, GHCR, Harbor, Quay: their token services are HTTPS,
  often on another host, auth.docker.io for registry-1.docker.io);
- a plain-HTTP realm gets them only when the registry itself is plain HTTP (--insecure, a choice the user
  made) and the realm is on the same host (any port): a test or home registry with its token service beside
  it;
- otherwise the token is asked for anonymously. A public image still pulls; a private one fails with a
  message that says the credentials were withheld and why.

A realm that is neither http nor https is never requested at all.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def credentials_withheld(registry_url: str, realm: str) -> str | None:
    """Why credentials for the registry at `registry_url` must not go to `realm`, or None if they may."""
    registry, target = urlsplit(registry_url), urlsplit(realm)
    if target.scheme == "https":
        return None
    if target.scheme != "http":
        return f"its scheme {target.scheme!r} is neither https nor http"
    if registry.scheme == "https":
        return "it is plain HTTP behind an HTTPS registry"
    if (target.hostname or "").lower() != (registry.hostname or "").lower():
        return "it is plain HTTP on another host than the registry"
    return None
