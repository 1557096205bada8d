"""Lookaside signature storage and the registries.d files that point at it, read as containers/image does.

A lookaside store keeps simple signatures beside a registry rather than in it (FORMATS §4.3):
`<base>/<repository>@<algorithm>=<hex>/signature-<N>`, N = 1, 2, … up to the first one missing. `file://`
stores can be read and written; `http(s)://` ones only read. Which base applies to an image comes from
registries.d (FORMATS §4.5): YAML files mapping scopes to `lookaside`/`lookaside-staging` URLs.

Where c/image's documentation and its code differ, this follows the code (docker/registries_d.go and
policyconfiguration.DockerReferenceNamespaces), because that is what skopeo and podman actually do.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from sigscope import __version__
from sigscope.errors import SigscopeError, TLSError, TooLargeError, UnreachableError, UsageError
from sigscope.oci.reference import ImageReference
from sigscope.sources.body import read_limited
from sigscope.sources.deadline import request_deadline

if TYPE_CHECKING:
    # Imported where used: aiohttp costs ~0.4 s at start-up and yaml is only for registries.d; most scans
    # (and every `oci:` layout) never read a lookaside store over HTTP or a registries.d directory.
    import aiohttp

DEFAULT_MAX_SIGNATURES = 64
DEFAULT_MAX_SIGNATURE_SIZE = 4 * 1024 * 1024  # c/image's iolimits.MaxSignatureBodySize
DEFAULT_TIMEOUT = 30.0  # seconds for each signature request as a whole, as the registry's --timeout default
# Where c/image reads and writes when no registries.d entry applies (docker/registries_d.go).
ROOT_LOOKASIDE = "file:///var/lib/containers/sigstore"
USER_LOOKASIDE_DIR = Path(".local/share/containers/sigstore")
SYSTEM_REGISTRIES_D = Path("/etc/containers/registries.d")
USER_REGISTRIES_D = Path(".config/containers/registries.d")

_LEGACY_DOCKER_HUB = "index.docker.io"
_WRITE_ATTEMPTS = 1024  # indexes tried by write_signature before it assumes something is wrong


class LookasideError(SigscopeError):
    """A lookaside store answered, but not with a signature or a clean "no more signatures"."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ registries.d


@dataclass(frozen=True)
class RegistryNamespace:
    """One configuration section: `default-docker`, or one scope under `docker`."""

    lookaside: str | None = None
    lookaside_staging: str | None = None
    sigstore: str | None = None  # deprecated spelling of `lookaside`
    sigstore_staging: str | None = None  # deprecated spelling of `lookaside-staging`
    use_sigstore_attachments: bool | None = None
    source: str = field(default="", compare=False)  # the file it came from, for messages

    def top_level(self, write: bool) -> str | None:
        """The base URL this section gives for reading (or writing), or None if it gives none."""
        if write:
            if self.lookaside_staging:
                return self.lookaside_staging
            if self.sigstore_staging:
                return self.sigstore_staging
        return self.lookaside or self.sigstore or None


@dataclass(frozen=True)
class RegistriesD:
    """The merged contents of one registries.d directory."""

    default_docker: RegistryNamespace | None = None
    docker: Mapping[str, RegistryNamespace] = field(default_factory=dict)

    def lookaside_for(
        self,
        registry: str,
        repository: str,
        *,
        tag: str | None = None,
        digest: str | None = None,
        write: bool = False,
    ) -> str | None:
        """The lookaside base for an image, or None when nothing is configured (see `default_lookaside`).

        The most precise scope *that sets a URL* wins: c/image's code falls through to a parent scope when
        the matching section sets none, although its man page says parents are ignored.
        """
        for section in self._sections(registry, repository, tag, digest):
            url = section.top_level(write)
            if url:
                return url
        return None

    def use_sigstore_attachments(
        self, registry: str, repository: str, *, tag: str | None = None, digest: str | None = None
    ) -> bool:
        """Whether c/image would read and write cosign `.sig` attachments for this image."""
        for section in self._sections(registry, repository, tag, digest):
            if section.use_sigstore_attachments is not None:
                return section.use_sigstore_attachments
        return False

    def _sections(
        self, registry: str, repository: str, tag: str | None, digest: str | None
    ) -> list[RegistryNamespace]:
        found = [
            self.docker[s] for s in scopes(registry, repository, tag=tag, digest=digest) if s in self.docker
        ]
        if self.default_docker is not None:
            found.append(self.default_docker)
        return found


def scopes(registry: str, repository: str, *, tag: str | None = None, digest: str | None = None) -> list[str]:
    """registries.d scopes that can apply to an image, most precise first (without `default-docker`).

    `host/ns/repo:tag` (or `@digest`), `host/ns/repo`, `host/ns`, `host[:port]`, then `*.domain` wildcards
    of the host without its port.
    """
    registry = _normalise_registry(registry)
    _validated(registry, repository, tag=tag or "latest", digest=digest)
    name = f"{registry}/{repository}"
    found: list[str] = []
    # c/image cannot name an image that has both a tag and a digest, so such an image has no exact scope.
    if tag is not None and digest is None:
        found.append(f"{name}:{tag}")
    elif digest is not None and tag is None:
        found.append(f"{name}@{digest}")
    while True:
        found.append(name)
        parent, slash, _ = name.rpartition("/")
        if not slash:
            break
        name = parent
    host = name.partition(":")[0]
    while "." in host:
        host = host.partition(".")[2]
        found.append(f"*.{host}")
    return found


def load_registries_d(path: Path) -> RegistriesD:
    """Merge every `*.yaml` in `path`, refusing a scope (or `default-docker`) defined in two files.

    A missing directory is an empty configuration, as in c/image.
    """
    if not path.exists():
        return RegistriesD()
    if not path.is_dir():
        raise UsageError(f"registries.d path {path} is not a directory")
    import yaml

    default_docker: RegistryNamespace | None = None
    docker: dict[str, RegistryNamespace] = {}
    try:
        names = sorted(p for p in path.iterdir() if p.name.endswith(".yaml"))
    except OSError as exc:
        raise UsageError(f"cannot list registries.d directory {path}: {exc.strerror or exc}") from None
    for file in names:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read registries.d file {file}: {exc}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"registries.d file {file} is not valid YAML: {exc}") from None
        section, scoped = _parse_file(document, str(file))
        if section is not None:
            if default_docker is not None:
                raise UsageError(
                    f'"default-docker" is defined both in {default_docker.source} and in {file} '
                    "(containers/image refuses this too)"
                )
            default_docker = section
        for scope, value in scoped.items():
            if scope in docker:
                raise UsageError(
                    f'"docker" scope {scope!r} is defined both in {docker[scope].source} and in {file} '
                    "(containers/image refuses this too)"
                )
            docker[scope] = value
    return RegistriesD(default_docker=default_docker, docker=docker)


def _fields(mapping: dict[Any, Any]) -> dict[str, Any]:
    # c/image decodes these files through JSON into Go structs, whose field names match case-insensitively.
    return {str(k).lower(): v for k, v in mapping.items()}


def _parse_file(document: Any, source: str) -> tuple[RegistryNamespace | None, dict[str, RegistryNamespace]]:
    if document is None:
        return None, {}
    if not isinstance(document, dict):
        raise UsageError(f"registries.d file {source} must be a YAML mapping")
    top = _fields(document)
    # An empty `default-docker:` decodes to a nil pointer in Go: it neither configures nor conflicts.
    raw_default = top.get("default-docker")
    default = _parse_section(raw_default, source, "default-docker") if raw_default is not None else None
    raw_docker = top.get("docker")
    if raw_docker is None:
        return default, {}
    if not isinstance(raw_docker, dict):
        raise UsageError(f'"docker" in {source} must be a mapping of scopes to sections')
    scoped = {
        str(scope): _parse_section(section, source, f"docker scope {scope!r}")
        for scope, section in raw_docker.items()
    }
    return default, scoped


def _parse_section(value: Any, source: str, where: str) -> RegistryNamespace:
    if value is None:
        return RegistryNamespace(source=source)
    if not isinstance(value, dict):
        raise UsageError(f"{where} in {source} must be a mapping")
    fields = _fields(value)

    def url(key: str) -> str | None:
        item = fields.get(key)
        if item is None or isinstance(item, str):
            return item or None
        raise UsageError(f"{key!r} of {where} in {source} must be a URL string, not {item!r}")

    attachments = fields.get("use-sigstore-attachments")
    if attachments is not None and not isinstance(attachments, bool):
        raise UsageError(f"'use-sigstore-attachments' of {where} in {source} must be true or false")
    return RegistryNamespace(
        lookaside=url("lookaside"),
        lookaside_staging=url("lookaside-staging"),
        sigstore=url("sigstore"),
        sigstore_staging=url("sigstore-staging"),
        use_sigstore_attachments=attachments,
        source=source,
    )


def default_registries_d(home: Path | None = None) -> Path:
    """The directory c/image reads: the user's if it exists, else the system one."""
    user = (home if home is not None else Path.home()) / USER_REGISTRIES_D
    return user if user.is_dir() else SYSTEM_REGISTRIES_D


def default_lookaside(euid: int | None = None, home: Path | None = None) -> str:
    """c/image's built-in lookaside when registries.d names none: per user, or system-wide for root."""
    if (os.geteuid() if euid is None else euid) == 0:
        return ROOT_LOOKASIDE
    directory = (home if home is not None else Path.home()) / USER_LOOKASIDE_DIR
    return directory.as_uri()


# ------------------------------------------------------------------ URLs


def _normalise_registry(registry: str) -> str:
    return "docker.io" if registry == _LEGACY_DOCKER_HUB else registry


def _validated(registry: str, repository: str, *, tag: str | None = None, digest: str | None = None) -> None:
    """Refuse names that could escape the store (`..`, `/`-prefixed, `?`): they end up in paths and URLs."""
    # The reference grammar is exactly the safety rule: components of [a-z0-9] joined by . _ __ -.
    ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)


def signature_url(base: str, repository: str, digest: str, index: int) -> str:
    """`<base>/<repository>@<algorithm>=<hex>/signature-<index>`, exactly as c/image builds it.

    c/image appends `/<repository>` to the base's path without trimming a trailing slash, so a base ending
    in `/` yields `//` in the URL; that is kept, so both tools ask the server for the same thing.
    """
    if isinstance(index, bool) or index < 1:
        raise UsageError(f"signature index must be 1 or more, not {index!r}")
    _validated("localhost", repository, digest=digest)
    parts = _split_base(base)
    algorithm, _, encoded = digest.partition(":")
    path = f"{parts.path}/{repository}@{algorithm}={encoded}/signature-{index}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _split_base(base: str) -> SplitResult:
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("file", "http", "https"):
        raise UsageError(f"unsupported lookaside URL {_redact(base)!r}: use file://, http:// or https://")
    if scheme == "file" and parts.netloc not in ("", "localhost"):
        raise UsageError(f"lookaside URL {base!r} names host {parts.netloc!r}; file:// URLs must be local")
    if scheme != "file" and not parts.netloc:
        raise UsageError(f"lookaside URL {_redact(base)!r} has no host")
    return parts


def _file_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def _redact(url: str) -> str:
    """The URL without any user:password, so it can go into messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


# ------------------------------------------------------------------ reading


async def read_signatures(
    base: str,
    repository: str,
    digest: str,
    *,
    session: aiohttp.ClientSession | None = None,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
    max_size: int = DEFAULT_MAX_SIGNATURE_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[tuple[str, bytes]]:
    """(url, blob) for signature-1, signature-2, … up to the first missing one (ENOENT or HTTP 404).

    More than `max_signatures` is an error rather than a silent cut, as in c/image: a store that never says
    "missing" is broken, and a truncated list would hide signatures.
    """
    scheme = _split_base(base).scheme.lower()
    signature_url(base, repository, digest, 1)  # validates names before any I/O
    if scheme == "file":
        return await asyncio.to_thread(_read_files, base, repository, digest, max_signatures, max_size)
    if session is not None:
        return await _read_http(session, base, repository, digest, max_signatures, max_size, timeout)
    import aiohttp

    # The deadline of each request is request_deadline's; a per-read limit would let a trickle live for ever.
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, timeout))
    async with aiohttp.ClientSession(
        timeout=client_timeout, trust_env=False, headers={"User-Agent": f"sigscope/{__version__}"}
    ) as own:
        return await _read_http(own, base, repository, digest, max_signatures, max_size, timeout)


def _too_many(base: str, max_signatures: int) -> LookasideError:
    return LookasideError(
        f"lookaside {_redact(base)} holds more than {max_signatures} signatures for one image; "
        "refusing to read on (raise the limit if this is expected)"
    )


def _read_files(
    base: str, repository: str, digest: str, max_signatures: int, max_size: int
) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for index in range(1, max_signatures + 2):
        url = signature_url(base, repository, digest, index)
        path = _file_path(url)
        try:
            with path.open("rb") as handle:
                blob = handle.read(max_size + 1)
        except FileNotFoundError:
            return found
        except OSError as exc:
            # Only ENOENT means "no more"; c/image fails on anything else (EACCES, EISDIR, ENOTDIR).
            raise LookasideError(f"cannot read signature {path}: {exc.strerror or exc}") from None
        if index > max_signatures:
            raise _too_many(base, max_signatures)
        if len(blob) > max_size:
            raise TooLargeError(f"signature {path} exceeds the {max_size}-byte limit")
        found.append((url, blob))
    return found


async def _read_http(
    session: aiohttp.ClientSession,
    base: str,
    repository: str,
    digest: str,
    max_signatures: int,
    max_size: int,
    timeout: float,
) -> list[tuple[str, bytes]]:
    import aiohttp  # the caller's session has loaded it

    found: list[tuple[str, bytes]] = []
    for index in range(1, max_signatures + 2):
        url = signature_url(base, repository, digest, index)
        shown = _redact(url)
        split = urlsplit(shown)
        try:
            # identity: the limit must apply to the signature's bytes, and a session built with
            # auto_decompress=False would otherwise hand back gzip.
            async with (
                request_deadline(timeout, split.netloc, f"GET {split.path}") as clock,
                session.get(url, headers={"Accept-Encoding": "identity"}) as resp,
            ):
                clock.answered = True
                if resp.status == 404:
                    return found
                if resp.status != 200:
                    text = (await resp.content.read(200)).decode(errors="replace").strip()
                    first = text.splitlines()[0] if text else resp.reason or ""
                    raise LookasideError(
                        f"lookaside {shown} answered HTTP {resp.status}" + (f" ({first})" if first else ""),
                        status=resp.status,
                    )
                if index > max_signatures:
                    raise _too_many(base, max_signatures)
                blob = await read_limited(resp, max_size, f"signature {shown}")
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TLSError(f"TLS verification failed for {shown}: {exc.certificate_error}") from None
        except aiohttp.ClientSSLError as exc:
            raise TLSError(f"TLS handshake failed for {shown}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise UnreachableError(f"cannot connect to lookaside {shown}: {reason}") from None
        except TimeoutError:  # aiohttp's connect limit; the request's own deadline speaks for itself
            raise UnreachableError(
                f"lookaside {shown}: no connection within {min(10.0, timeout):g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UnreachableError(f"reading {shown} failed: {exc}") from None
        found.append((url, blob))
    return found


# ------------------------------------------------------------------ writing


def write_signature(base: str, repository: str, digest: str, blob: bytes) -> str:
    """Store `blob` at the first missing signature-N of a `file://` lookaside; return its URL.

    The file appears complete or not at all (written aside, then hard-linked into place), and a link
    never replaces an existing file, so two writers racing for one index cannot overwrite each other.
    """
    scheme = _split_base(base).scheme.lower()
    if scheme != "file":
        raise UsageError(
            f"lookaside over HTTP is read-only ({_redact(base)}); "
            "configure a file:// lookaside-staging in registries.d and publish its files"
        )
    if not blob:
        raise UsageError("refusing to store an empty signature")
    directory = _file_path(signature_url(base, repository, digest, 1)).parent
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".signature-", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write to lookaside directory {directory}: {exc.strerror or exc}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        # c/image writes 0644; mkstemp's 0600 would hide the file from the web server that publishes it.
        temp.chmod(0o644)
        for index in range(1, _WRITE_ATTEMPTS + 1):
            url = signature_url(base, repository, digest, index)
            try:
                os.link(temp, _file_path(url))
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    if _write_exclusive(_file_path(url), blob):
                        return url
                    continue
                raise UsageError(f"cannot write signature {_file_path(url)}: {exc.strerror or exc}") from None
            _fsync_dir(directory)
            return url
    except OSError as exc:
        raise UsageError(f"cannot write signature in {directory}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)
    raise UsageError(f"{directory} already holds {_WRITE_ATTEMPTS} signatures; not adding more")


def _write_exclusive(path: Path, blob: bytes) -> bool:
    """Fallback for filesystems without hard links: O_EXCL still never overwrites, only atomicity is lost."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _fsync_dir(directory: Path) -> None:
    # Best effort: makes the new name durable where the platform allows opening directories.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
