"""The signing service's HTTP face (aiohttp: the peer certificate of each TLS connection is at hand, which
ASGI servers do not pass on).

    GET  /v1/keys/{name}        public key, certificate chain, algorithms
    POST /v1/keys/{name}/sign   {"digest": B64, "algorithm": "ECDSA-SHA-256"} → {"signature": B64}
                                ("encoding": "hex" for a hex digest)

Every request is authenticated (a bearer token, else a verified client certificate), rate-limited per
client, checked against the key's access list and written to the audit log, whatever its outcome. Only a
digest of exactly the algorithm's length is ever signed; bodies are capped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import os
import re
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509

from sigscope.keys import prehashed
from sigscope.signerd.access import Access, RateLimiter, Tokens, certificate_identities, retry_after
from sigscope.signerd.audit import AuditLog
from sigscope.signerd.served import ServedKey

MAX_BODY = 4096
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class ServiceConfig:
    keys: Mapping[str, ServedKey]
    tokens: Tokens | None
    access: Access
    audit: AuditLog | None
    rate: RateLimiter | None


@dataclass(frozen=True)
class Client:
    primary: str
    identities: tuple[str, ...]


class Refusal(Exception):
    """A request answered with an error status; `result` is the audit log's word for it."""

    def __init__(self, status: int, result: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.result = result
        self.message = message
        self.headers = dict(headers or {})


@functools.lru_cache(maxsize=1024)
def _identities(der: bytes) -> tuple[str, ...]:
    """A verified client certificate's identities; a client keeps its certificate, so parse it once."""
    return certificate_identities(x509.load_der_x509_certificate(der))


def _client(request: web.Request, tokens: Tokens | None) -> Client:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        identity = tokens.identity(token.strip()) if tokens and scheme.lower() == "bearer" else None
        if identity is None:
            raise Refusal(401, "unauthenticated", "bad bearer token", {"WWW-Authenticate": "Bearer"})
        return Client(identity, (identity,))
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der:
        identities = _identities(der)
        return Client(identities[0], identities)
    raise Refusal(
        401, "unauthenticated", "no client certificate or bearer token", {"WWW-Authenticate": "Bearer"}
    )


def _decode_digest(value: object, encoding: object, size: int) -> bytes:
    """`digest` in its `encoding` (base64 unless "hex": a string never reads two ways), `size` bytes."""
    if not isinstance(value, str) or not value or len(value) > 2 * 64:
        raise Refusal(400, "refused", "digest must be a base64 or hex string")
    if encoding not in (None, "base64", "hex"):
        raise Refusal(400, "refused", "encoding must be base64 or hex")
    try:
        if encoding == "hex":
            if not _HEX.fullmatch(value):
                raise ValueError
            digest = bytes.fromhex(value)
        else:
            digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(400, "refused", f"digest is not {encoding or 'base64'}") from None
    if len(digest) != size:
        raise Refusal(400, "refused", f"digest must be {size} bytes for this algorithm, not {len(digest)}")
    return digest


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refusal(413, "refused", f"body larger than {MAX_BODY} bytes")
    data = await request.content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise Refusal(413, "refused", f"body larger than {MAX_BODY} bytes")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "refused", "body is not JSON") from None
    if not isinstance(document, dict):
        raise Refusal(400, "refused", "body must be a JSON object")
    return document


class SigningService:
    """The request handlers over one :class:`ServiceConfig`."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        # For keys that do not sign inline: their signer must be safe to call from several threads (a
        # PKCS#11 one locks its session).
        self._pool = ThreadPoolExecutor(max_workers=4 * (os.cpu_count() or 2), thread_name_prefix="sign")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/v1/keys/{name}", self.describe)
        app.router.add_post("/v1/keys/{name}/sign", self.sign)
        app.router.add_get("/healthz", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _audit(self, who: str | None, key: str | None, record: Mapping[str, Any]) -> None:
        if self.config.audit is not None:
            self.config.audit.append({"client": who, "key": key, **record})

    def _admit(self, request: web.Request, action: str) -> tuple[Client, ServedKey]:
        """Authenticate, rate-limit, find the key and check access, in that order."""
        client = _client(request, self.config.tokens)
        request["client"] = client.primary
        if self.config.rate is not None:
            wait = self.config.rate.take(client.primary)
            if wait > 0:
                raise Refusal(429, "rate-limited", "too many requests", {"Retry-After": retry_after(wait)})
        name = request.match_info["name"]
        key = self.config.keys.get(name)
        if key is None:
            raise Refusal(404, "unknown-key", "no such key")
        request["key"] = name
        if not self.config.access.allows(name, client.identities):
            raise Refusal(403, "denied", f"this client may not {action} with this key")
        return client, key

    async def _answer(self, request: web.Request, action: str, record: dict[str, Any]) -> web.Response:
        try:
            body, record = await self._handle(request, action, record)
        except Refusal as refusal:
            self._audit(
                request.get("client"),
                request.get("key"),
                {**record, "result": refusal.result, "status": refusal.status, "reason": refusal.message},
            )
            return web.json_response(
                {"error": refusal.result, "message": refusal.message},
                status=refusal.status,
                headers=refusal.headers,
            )
        self._audit(request.get("client"), request.get("key"), {**record, "status": 200})
        return web.json_response(body)

    async def _handle(
        self, request: web.Request, action: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        _, key = self._admit(request, action)
        if action == "describe":
            return key.describe(), {**record, "result": "described"}
        document = await _body(request)
        algorithm = document.get("algorithm")
        if not isinstance(algorithm, str) or algorithm not in key.algorithms:
            raise Refusal(400, "refused", f"algorithm must be one of {', '.join(key.algorithms)}")
        record["algorithm"] = algorithm
        _, hash_algorithm = prehashed.split(algorithm)
        digest = _decode_digest(document.get("digest"), document.get("encoding"), hash_algorithm.digest_size)
        record["digest"] = digest.hex()
        if key.signer.inline:
            signature = key.signer.sign_digest(digest, algorithm)
        else:  # RSA, a token: the work runs without the GIL (and a token may block); the loop serves on
            loop = asyncio.get_running_loop()
            signature = await loop.run_in_executor(self._pool, key.signer.sign_digest, digest, algorithm)
        return (
            {"signature": base64.b64encode(signature).decode("ascii"), "algorithm": algorithm},
            {**record, "result": "signed"},
        )

    async def describe(self, request: web.Request) -> web.Response:
        return await self._answer(request, "describe", {"action": "describe"})

    async def sign(self, request: web.Request) -> web.Response:
        return await self._answer(request, "sign", {"action": "sign"})


def server_tls(cert: str, key: str, client_ca: str | None, *, tokens: bool) -> ssl.SSLContext:
    """TLS 1.2+ with the service's certificate; with `client_ca`, client certificates are verified
    (required unless bearer tokens are also accepted)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL if tokens else ssl.CERT_REQUIRED
    return context
