"""Registry credentials and authentication challenges.

Credentials are read the way docker and podman read them (config.json `auths`,
`credsStore`, `credHelpers`), so a user who ran `docker login` needs nothing
else. Secrets never appear in an error message or a repr.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigscope.errors import AuthError, UsageError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = "explicit"

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and self.password is not None

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _host_of(key: str) -> str:
    """`https://host:port/v1/` and `host:port` name the same registry in config.json."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    return key.split("/", 1)[0].lower()


def _lookup_keys(registry: str) -> list[str]:
    registry = registry.lower()
    if registry in DOCKER_HUB_KEYS:
        return list(DOCKER_HUB_KEYS)
    return [registry]


def docker_config_path() -> Path:
    config_dir = os.environ.get("DOCKER_CONFIG")
    base = Path(config_dir) if config_dir else Path.home() / ".docker"
    return base / "config.json"


def default_auth_files() -> list[Path]:
    """Where credentials live, in the order podman and docker look."""
    files: list[Path] = []
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        files.append(Path(explicit))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        files.append(Path(runtime) / "containers" / "auth.json")
    files.append(docker_config_path())
    return files


def _load_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read credentials file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"credentials file {path} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"credentials file {path} is not a JSON object")
    return data


def _from_auth_entry(entry: Any, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    source = f"{path} ({key})"
    identity_token = entry.get("identitytoken") or None
    username = entry.get("username")
    password = entry.get("password")
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (ValueError, UnicodeDecodeError):
            raise UsageError(f"credentials for {key} in {path}: 'auth' is not base64 user:password") from None
        if ":" not in decoded:
            raise UsageError(f"credentials for {key} in {path}: 'auth' does not hold user:password")
        username, password = decoded.split(":", 1)
    if not (username or identity_token):
        return None
    return Credentials(username=username, password=password, identity_token=identity_token, source=source)


def run_credential_helper(helper: str, registry: str, timeout: float = 15.0) -> Credentials | None:
    """Speak the docker-credential-helpers protocol: server URL on stdin, JSON on stdout."""
    program = f"docker-credential-{helper}"
    server = DOCKER_HUB_KEYS[0] if registry in DOCKER_HUB_KEYS else registry
    try:
        proc = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise AuthError(f"credential helper {program} is configured but not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} did not answer within {timeout:.0f}s") from None
    if proc.returncode != 0:
        message = proc.stdout.decode(errors="replace").strip() or proc.stderr.decode(errors="replace").strip()
        if "credentials not found" in message.lower():
            return None
        # The helper's own words, first line only: helpers do not echo secrets on failure.
        first = message.splitlines()[0] if message else f"exit status {proc.returncode}"
        raise AuthError(f"credential helper {program} failed for {server}: {first}")
    try:
        data = json.loads(proc.stdout)
        username = str(data["Username"])
        secret = str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"credential helper {program} returned malformed output for {server}") from None
    source = f"credential helper {program}"
    if username == IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=username, password=secret, source=source)


def find_credentials(registry: str, auth_files: list[Path] | None = None) -> Credentials | None:
    """Credentials for `registry` from the first auth file that names it."""
    keys = _lookup_keys(registry)
    for path in auth_files if auth_files is not None else default_auth_files():
        config = _load_config(path)
        if config is None:
            continue
        helpers = config.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for name, helper in helpers.items():
                if _host_of(name) in keys:
                    return run_credential_helper(str(helper), registry)
        auths = config.get("auths") or {}
        entry_creds: Credentials | None = None
        if isinstance(auths, dict):
            for name, entry in auths.items():
                if _host_of(name) in keys:
                    entry_creds = _from_auth_entry(entry, path, name)
                    if entry_creds:
                        break
        if entry_creds:
            return entry_creds
        store = config.get("credsStore")
        if store:
            found = run_credential_helper(str(store), registry)
            if found:
                return found
    return None


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `WWW-Authenticate` (RFC 7235): `Bearer realm="…",service="…",scope="…"`."""
    challenges: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        match = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*").match(text, pos)
        if not match:
            break
        scheme = match.group(1).lower()
        pos = match.end()
        params: dict[str, str] = {}
        while pos < len(text):
            param = _CHALLENGE_PARAM.match(text, pos)
            if not param:
                break
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = param.end()
        challenges.append(Challenge(scheme, params))
        text_rest = text[pos:].lstrip(", ")
        pos = len(text) - len(text_rest)
    return challenges


@dataclass
class _CachedToken:
    token: str = field(repr=False)
    expires_at: float


class TokenCache:
    """Bearer tokens per (realm, service, scopes); reused until shortly before expiry."""

    # Refresh a little early so a token does not expire between our check and the registry's.
    _MARGIN = 10.0

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _CachedToken] = {}

    def get(self, realm: str, service: str, scopes: tuple[str, ...]) -> str | None:
        cached = self._tokens.get((realm, service, scopes))
        if cached and cached.expires_at - self._MARGIN > time.monotonic():
            return cached.token
        return None

    def put(self, realm: str, service: str, scopes: tuple[str, ...], token: str, expires_in: float) -> None:
        self._tokens[(realm, service, scopes)] = _CachedToken(token, time.monotonic() + expires_in)

    def drop(self, realm: str, service: str, scopes: tuple[str, ...]) -> None:
        self._tokens.pop((realm, service, scopes), None)
