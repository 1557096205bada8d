"""Image references: registry names the way docker reads them, and `oci:` layouts.

Registry references follow distribution/reference `ParseNormalizedNamed`, so a
name means the same image here as it does to `docker pull` and containerd; the
one deliberate difference is that an uppercase first component without a `.`,
`:` or `localhost` is rejected instead of being taken for a registry host (the
upstream tests carry that acceptance as a FIXME). Layout references follow
skopeo's `oci:PATH[:TAG|@DIGEST]`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from sigscope.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_LEGACY_DOCKER_HUB = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_LAYOUT_PREFIX = "oci:"
_DOCKER_PREFIX = "docker://"

# Go's `\w` is ASCII-only, Python's is not: spell the classes out.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?",
)
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
_TAG_ILLEGAL = re.compile(r"[^A-Za-z0-9_.-]")

# Only algorithms sigscope can verify: a reference pinned to anything else could
# never be checked, so it is refused up front rather than at fetch time.
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}

# Other skopeo transports; without a hint, "dir:/x" would be reported as a bad
# registry host, which sends the user looking in the wrong place.
_OTHER_TRANSPORTS = frozenset(
    {
        "containers-storage",
        "dir",
        "docker-archive",
        "docker-daemon",
        "oci-archive",
        "ostree",
        "sif",
        "tarball",
    }
)


@dataclass(frozen=True)
class ImageReference:
    """A normalised registry reference; `tag` or `digest` (or both) is always set."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __post_init__(self) -> None:
        # The fields end up in URL paths, so a hand-built instance must obey the
        # same grammar as a parsed one (no "..", no stray "/" or "?").
        if not _HOST.fullmatch(self.registry):
            raise InvalidReferenceError(f"invalid registry host {self.registry!r}")
        problem = _repository_problem(self.repository)
        if problem:
            raise InvalidReferenceError(f"invalid repository {self.repository!r}: {problem}")
        if self.tag is not None and (problem := _tag_problem(self.tag)):
            raise InvalidReferenceError(f"invalid tag {self.tag!r}: {problem}")
        if self.digest is not None and (problem := _digest_problem(self.digest)):
            raise InvalidReferenceError(f"invalid digest {self.digest!r}: {problem}")
        if self.tag is None and self.digest is None:
            raise InvalidReferenceError(
                f"reference {self.registry}/{self.repository} needs a tag or a digest"
            )

    @property
    def reference(self) -> str:
        """What goes into `/v2/<repository>/manifests/<reference>`; a digest wins over a tag."""
        if self.digest is not None:
            return self.digest
        assert self.tag is not None  # guaranteed by __post_init__
        return self.tag

    @property
    def api_registry(self) -> str:
        """The host that actually serves the registry API."""
        return api_host(self.registry)

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        """Pin to `digest`, keeping the tag for display."""
        return dataclasses.replace(self, digest=validate_digest(digest))

    def with_tag(self, tag: str) -> ImageReference:
        """Point at `tag`; any digest is dropped, since it would otherwise win over the new tag."""
        if problem := _tag_problem(tag):
            raise InvalidReferenceError(f"invalid tag {tag!r}: {problem}")
        return dataclasses.replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class LayoutReference:
    """An image in a local OCI image layout directory.

    Neither tag nor digest means "the only image in the layout".
    """

    path: str
    tag: str | None
    digest: str | None

    def __post_init__(self) -> None:
        if not self.path:
            raise InvalidReferenceError("OCI layout reference needs a path")
        if self.tag is not None and (problem := _tag_problem(self.tag)):
            raise InvalidReferenceError(f"invalid tag {self.tag!r}: {problem}")
        if self.digest is not None and (problem := _digest_problem(self.digest)):
            raise InvalidReferenceError(f"invalid digest {self.digest!r}: {problem}")

    def __str__(self) -> str:
        text = f"{_LAYOUT_PREFIX}{self.path}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def api_host(registry: str) -> str:
    """Docker Hub is named docker.io but served from registry-1.docker.io."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def name_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot go into a URL path as a `kind` ("repository", "tag", "digest", "reference": a tag
    or a digest), or None. Names from a registry (catalog, tag lists, referrers) are checked with this
    before they are requested, the same grammar the user's references are parsed with."""
    if kind == "repository":
        if len(value) > NAME_MAX:
            return f"repository name is {len(value)} characters long, at most {NAME_MAX} are allowed"
        return _repository_problem(value)
    if kind == "reference":
        kind = "digest" if ":" in value else "tag"
    if kind == "digest":
        return _digest_problem(value)
    return _tag_problem(value)


def validate_digest(digest: str) -> str:
    """Return `digest` unchanged, or raise InvalidReferenceError saying what is wrong with it."""
    if problem := _digest_problem(digest):
        raise InvalidReferenceError(f"invalid digest {digest!r}: {problem}")
    return digest


def referrers_tag(digest: str) -> str:
    """The tag under which the OCI referrers tag schema stores the referrers of `digest`.

    Only the digest's shape is checked, not whether sigscope supports its
    algorithm: the tag must be computable for whatever a registry hands back.
    """
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise InvalidReferenceError(f"invalid digest {digest!r}: expected algorithm:encoded")
    algorithm, encoded = match.groups()
    return _TAG_ILLEGAL.sub("-", f"{algorithm[:32]}-{encoded[:64]}")


def parse_reference(text: str, *, default_tag: str = DEFAULT_TAG) -> ImageReference:
    """Parse a registry reference, normalised as docker does.

    `default_tag` is applied only when the reference has neither tag nor digest.
    An optional `docker://` prefix (skopeo syntax) is accepted.
    """
    if problem := _tag_problem(default_tag):
        raise InvalidReferenceError(f"invalid default tag {default_tag!r}: {problem}")

    body = text.removeprefix(_DOCKER_PREFIX)
    if not body:
        raise _invalid(text, "empty reference")
    _reject_other_syntaxes(text, body)
    if _IMAGE_ID.fullmatch(body):
        raise _invalid(
            text, "a 64-character hex string is an image ID, not a repository name (use NAME@sha256:...)"
        )

    name_and_tag, at, digest = body.partition("@")
    first, slash, rest = name_and_tag.partition("/")
    if slash and _looks_like_host(first):
        registry, remote_and_tag = first, rest
    else:
        registry, remote_and_tag = DOCKER_HUB, name_and_tag
    if registry == _LEGACY_DOCKER_HUB:
        registry = DOCKER_HUB

    remote, colon, tag = remote_and_tag.partition(":")
    if not remote:
        raise _invalid(text, "missing repository name")
    if problem := _repository_problem(remote):
        raise _invalid(text, problem)
    if not _HOST.fullmatch(registry):
        raise _invalid(text, f"invalid registry host {registry!r}")
    if colon and (problem := _tag_problem(tag)):
        raise _invalid(text, f"invalid tag {tag!r}: {problem}")
    if at and (problem := _digest_problem(digest)):
        raise _invalid(text, f"invalid digest {digest!r}: {problem}")

    # Only Docker Hub has the implicit "library/" namespace for official images.
    if registry == DOCKER_HUB and "/" not in remote:
        remote = _OFFICIAL_PREFIX + remote
    name_length = len(registry) + 1 + len(remote)
    if name_length > NAME_MAX:
        raise _invalid(text, f"name too long ({name_length} characters, at most {NAME_MAX})")

    final_tag = tag if colon else None
    final_digest = digest if at else None
    if final_tag is None and final_digest is None:
        final_tag = default_tag
    return ImageReference(registry=registry, repository=remote, tag=final_tag, digest=final_digest)


def parse_layout(text: str) -> LayoutReference:
    """Parse `oci:PATH[:TAG][@DIGEST]`.

    `@` starts a digest unless what follows it contains a `/` (so a directory
    named `a@b` can be written `oci:a@b/`). The last `:` starts a tag only if
    what follows is a valid tag, so paths with colons in them still work.
    """
    if not text.startswith(_LAYOUT_PREFIX):
        raise _invalid(text, f"an OCI layout reference starts with {_LAYOUT_PREFIX!r}")
    body = text.removeprefix(_LAYOUT_PREFIX)

    digest: str | None = None
    before, at, after = body.rpartition("@")
    if at and "/" not in after:
        if problem := _digest_problem(after):
            raise _invalid(text, f"invalid digest {after!r}: {problem}")
        body, digest = before, after

    tag: str | None = None
    before, colon, after = body.rpartition(":")
    if colon and is_valid_tag(after):
        body, tag = before, after

    if not body:
        raise _invalid(text, "empty OCI layout path")
    return LayoutReference(path=body, tag=tag, digest=digest)


def parse_image(text: str) -> ImageReference | LayoutReference:
    """Parse either an `oci:` layout reference or a registry reference."""
    if text.startswith(_LAYOUT_PREFIX):
        return parse_layout(text)
    return parse_reference(text)


def parse_registry_target(text: str) -> tuple[str, str]:
    """Split `[scheme://]host[:port][/namespace...]` into (registry, namespace or "").

    Unlike an image reference, the first component is always the host, so
    `localhost` and single-label names work without a port.
    """
    body = text
    for scheme in ("https://", "http://"):
        if body.startswith(scheme):
            body = body.removeprefix(scheme)
            break
    body = body.rstrip("/")
    if not body:
        raise _invalid(text, "empty registry")
    if "://" in body:
        scheme = body.partition("://")[0]
        raise _invalid(text, f"unsupported scheme {scheme + '://'!r} (use https:// or http://, or none)")

    registry, _, namespace = body.partition("/")
    if not _HOST.fullmatch(registry):
        raise _invalid(text, f"invalid registry host {registry!r}")
    if registry == _LEGACY_DOCKER_HUB:
        registry = DOCKER_HUB
    if namespace and (problem := _repository_problem(namespace, what="namespace")):
        raise _invalid(text, problem)
    return registry, namespace


def _invalid(text: str, problem: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid reference {text!r}: {problem}")


def _looks_like_host(component: str) -> bool:
    return component == "localhost" or "." in component or ":" in component


def _reject_other_syntaxes(text: str, body: str) -> None:
    scheme, sep, _ = body.partition("://")
    if sep and "/" not in scheme:
        raise _invalid(text, f"unsupported scheme {scheme + '://'!r} (only docker:// is accepted)")
    transport, colon, rest = body.partition(":")
    # "dir:5000/x" is a registry on host "dir", port 5000, not the dir transport.
    if colon and transport in _OTHER_TRANSPORTS and not rest[:1].isdigit():
        raise _invalid(
            text, f"transport {transport + ':'!r} is not supported (use oci:PATH or a registry reference)"
        )


def _repository_problem(repository: str, *, what: str = "repository name") -> str | None:
    for component in repository.split("/"):
        if not component:
            return f"{what} {repository!r} has an empty path component"
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()):
            return f"{what} must be lowercase ({component!r})"
        return (
            f"invalid {what} component {component!r}: use lowercase letters and digits, "
            "separated by '.', '_', '__' or '-' (not at the start or end)"
        )
    return None


def _tag_problem(tag: str) -> str | None:
    if not tag:
        return "empty tag"
    if len(tag) > 128:
        return f"tag is {len(tag)} characters long, at most 128 are allowed"
    if not _TAG.fullmatch(tag):
        return "a tag is letters, digits, '_', '.' and '-', and cannot start with '.' or '-'"
    return None


def _digest_problem(digest: str) -> str | None:
    match = _DIGEST.fullmatch(digest)
    if match is None:
        return "expected algorithm:encoded, e.g. sha256:<64 hex characters>"
    algorithm, encoded = match.groups()
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is None:
        supported = ", ".join(sorted(_DIGEST_LENGTHS))
        return f"unsupported digest algorithm {algorithm!r} (supported: {supported})"
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        return f"{algorithm} needs exactly {length} lowercase hex characters"
    return None
