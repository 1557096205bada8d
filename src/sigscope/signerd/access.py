"""Who is asking, and may they: bearer tokens, client-certificate identities, per-key access, rate limits.

Identities are strings with a kind: `token:NAME` (a bearer token's name in the tokens file),
`subject:DN` (a client certificate's subject, RFC 4514) and `san:VALUE` (each DNS name, e-mail address, URI
or IP address of its subjectAltName). The access file maps key names to the identities allowed to use them;
`*` allows every authenticated client.

The tokens file holds `SHA256-HEX NAME` lines (`sigscope signer token` prints one for a new token): the
service never holds a token in clear, and never logs one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import yaml
from cryptography import x509

from sigscope.errors import UsageError
from sigscope.keys.small_file import read_small_file

MAX_CONFIG = 1024 * 1024
MAX_TOKEN = 4096
ANY = "*"
_TOKEN_LINE = re.compile(r"([0-9a-f]{64})\s+(\S{1,128})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def valid_key_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _read(path: str, what: str) -> str:
    return read_small_file(path, what, limit=MAX_CONFIG)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tokens:
    """Token SHA-256 → identity."""

    by_digest: Mapping[str, str]

    @classmethod
    def load(cls, path: str) -> Tokens:
        found: dict[str, str] = {}
        for number, raw in enumerate(_read(path, "tokens file").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _TOKEN_LINE.fullmatch(line)
            if match is None:
                raise UsageError(
                    f"tokens file {path} line {number}: not `SHA256-HEX NAME` (lowercase hex of the token's "
                    "SHA-256, then the client's name)"
                )
            found[match.group(1)] = f"token:{match.group(2)}"
        if not found:
            raise UsageError(f"tokens file {path} names no token")
        return cls(found)

    def identity(self, token: str) -> str | None:
        """The identity of a presented token, or None."""
        if not token or len(token) > MAX_TOKEN:
            return None
        digest = token_digest(token)
        for known, name in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        return None


def certificate_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """`subject:DN` first, then `san:VALUE` for each subjectAltName entry."""
    out = [f"subject:{cert.subject.rfc4514_string()}"]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return tuple(out)
    for kind in (x509.DNSName, x509.RFC822Name, x509.UniformResourceIdentifier, x509.IPAddress):
        out.extend(f"san:{value}" for value in san.get_values_for_type(kind))
    return tuple(out)


@dataclass(frozen=True)
class Access:
    """Key name → identities allowed to use it; None allows every authenticated client every key."""

    rules: Mapping[str, frozenset[str]] | None = None

    @classmethod
    def load(cls, path: str, keys: Iterable[str]) -> Access:
        try:
            document = yaml.safe_load(_read(path, "access file"))
        except yaml.YAMLError as exc:
            raise UsageError(f"access file {path} is not YAML/JSON: {str(exc).splitlines()[0]}") from None
        if isinstance(document, dict) and set(document) == {"keys"}:
            document = document["keys"]
        if not isinstance(document, dict):
            raise UsageError(f"access file {path}: expected a mapping of key name to a list of identities")
        rules: dict[str, frozenset[str]] = {}
        known = set(keys)
        for name, who in document.items():
            if name not in known:
                raise UsageError(f"access file {path} names key {name!r}, which --key does not serve")
            if not isinstance(who, list) or not all(isinstance(w, str) for w in who):
                raise UsageError(f"access file {path}: key {name!r} needs a list of identity strings")
            for identity in who:
                if identity != ANY and not identity.startswith(("token:", "subject:", "san:")):
                    raise UsageError(
                        f"access file {path}: identity {identity!r} must start with token:, subject: or san: "
                        "(or be *)"
                    )
            rules[name] = frozenset(who)
        return cls(rules)

    def allows(self, key: str, identities: Iterable[str]) -> bool:
        if self.rules is None:
            return True
        allowed = self.rules.get(key, frozenset())
        return ANY in allowed or any(identity in allowed for identity in identities)


@dataclass
class RateLimiter:
    """A token bucket per client: `rate` requests a second, bursts of up to max(1, rate)."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_clients: int = 100_000

    def take(self, client: str) -> float:
        """0 when `client` may proceed now, else the seconds until it may."""
        now = self.clock()
        capacity = max(1.0, self.rate)
        tokens, last = self._buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._store(client, tokens - 1.0, now)
            return 0.0
        self._store(client, tokens, now)
        return (1.0 - tokens) / self.rate

    def _store(self, client: str, tokens: float, now: float) -> None:
        if client not in self._buckets and len(self._buckets) >= self.max_clients:
            # Bounded memory: full buckets carry no state worth keeping.
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < max(1.0, self.rate)}
        self._buckets[client] = (tokens, now)


def parse_rate(text: str) -> float:
    """`N/s`, `N/m` or a bare N (per second) → requests per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min))?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"--rate {text!r} is not like 50/s or 600/m")
    value = float(match.group(1))
    return value / 60.0 if match.group(2) in ("m", "min") else value


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
