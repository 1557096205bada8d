"""A :class:`~sigscope.keys.HashSigner` whose key lives in a remote signing service
(`sigscope signer serve`): `remote+https://HOST:PORT/NAME`.

Only a digest leaves the process: the data is hashed here and `POST /v1/keys/NAME/sign` returns a signature
over that digest, which is verified against the key's public key before anyone uses it (a service that
answers with a wrong signature is an error, never a bad signature pushed). Requests run on a private event
loop thread with a persistent connection pool, each under one deadline; responses are size-limited.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import json
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import DeadlineError, SigscopeError, TLSError, UnreachableError, UsageError
from sigscope.keys import prehashed
from sigscope.keys.signer import check_signing_key
from sigscope.keys.small_file import first_line, read_small_file

SCHEME = "remote+https://"
MAX_RESPONSE = 256 * 1024
MAX_TOKEN = 4096
_T = TypeVar("_T")


class RemoteSignerError(SigscopeError):
    """The signing service refused, failed or answered with something that is not a valid signature;
    `status` is the HTTP status of a refusal."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteSignerOptions:
    """How to reach and authenticate to the service: its CA (else the system's), a client certificate and
    key (mutual TLS) or a file holding a bearer token; a deadline per request."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token_file: str | None = None
    timeout: float = 30.0
    max_response: int = MAX_RESPONSE


def is_remote(spec: str) -> bool:
    return spec.startswith(SCHEME)


def parse_uri(uri: str) -> tuple[str, str]:
    """(base URL, key name) of `remote+https://HOST[:PORT][/PREFIX]/NAME`."""
    if not is_remote(uri):
        raise UsageError(f"{uri!r} is not a remote+https:// signer URI")
    parts = urlsplit(uri.removeprefix("remote+"))
    path = parts.path.rstrip("/")
    prefix, _, name = path.rpartition("/")
    if not parts.hostname or not name or parts.query or parts.fragment or parts.username:
        raise UsageError(f"remote signer {uri!r} is not remote+https://HOST:PORT/KEYNAME")
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise UsageError(f"remote signer {uri!r} has a malformed port") from None
    return f"https://{parts.netloc}{prefix}", name


def _read_token(path: str) -> str:
    token = first_line(read_small_file(path, "signer token file", limit=MAX_TOKEN)).strip()
    if not token:
        raise UsageError(f"signer token file {path} holds no token on its first line")
    if not token.isascii():
        raise UsageError(f"signer token file {path}: the token is not ASCII")
    return token


def client_tls(options: RemoteSignerOptions) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=options.ca_file)
        if (options.cert_file is None) != (options.key_file is None):
            raise UsageError("a client certificate needs both --signer-cert and --signer-key")
        if options.cert_file is not None:
            context.load_cert_chain(options.cert_file, options.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot use the signer's TLS files: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


class _Loop:
    """An event loop on a daemon thread: the Signer protocol is synchronous, its callers may be async."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="remote-signer", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class RemoteSigner:
    """A :class:`~sigscope.keys.HashSigner` over one key of a signing service."""

    def __init__(self, uri: str, options: RemoteSignerOptions) -> None:
        self._closed = False
        self._base, self._name = parse_uri(uri)
        self.uri = uri
        self._options = options
        self._headers = {"Accept": "application/json"}
        if options.token_file is not None:
            self._headers["Authorization"] = f"Bearer {_read_token(options.token_file)}"
        self._tls = client_tls(options)
        self._loop = _Loop()
        self._session: aiohttp.ClientSession | None = None
        # A CLI run ends without closing what it opened; the connection pool is closed on the way out.
        atexit.register(self.close)
        try:
            document = self._loop.run(self._request("GET", f"/v1/keys/{quote(self._name, safe='')}"))
            self._describe(document)
        except BaseException:
            self.close()
            raise

    def _describe(self, document: dict[str, Any]) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(str(document["publicKey"]).encode())
            check_signing_key(key)
            self._algorithms = prehashed.allowed(key)
            chain = document.get("certificateChain") or []
            if not isinstance(chain, list) or len(chain) > 16:
                raise ValueError("certificateChain is not a list of at most 16 PEM certificates")
            self.chain = tuple(x509.load_pem_x509_certificate(str(pem).encode()) for pem in chain)
            self._algorithm = str(document["algorithm"])
        except (KeyError, ValueError, TypeError, SigscopeError) as exc:
            raise RemoteSignerError(f"signer {self.uri}: the key description is unusable: {exc}") from None
        self._public_key = key

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def public_key(self) -> PublicKeyTypes:
        return self._public_key

    def certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The chain the service hands out with the key (`GET /v1/keys/NAME`), leaf first; may be empty."""
        return self.chain

    def sign(self, data: bytes) -> bytes:
        return self.sign_digest(prehashed.digest_of(data, prehashed.default(self._public_key)), None)

    def sign_with(self, data: bytes, hash_algorithm: hashes.HashAlgorithm, *, pss: bool = False) -> bytes:
        name = prehashed.for_hash(self._public_key, hash_algorithm, pss)
        return self.sign_digest(prehashed.digest_of(data, name), name)

    def sign_digest(self, digest: bytes, algorithm: str | None) -> bytes:
        """The service's signature over `digest`, verified here against the key's public key."""
        name = algorithm or prehashed.default(self._public_key)
        body = {"digest": base64.b64encode(digest).decode("ascii"), "algorithm": name}
        path = f"/v1/keys/{quote(self._name, safe='')}/sign"
        document = self._loop.run(self._request("POST", path, body))
        try:
            signature = base64.b64decode(str(document["signature"]), validate=True)
        except (KeyError, binascii.Error, ValueError):
            raise RemoteSignerError(f"signer {self.uri} answered without a base64 signature") from None
        if not prehashed.verify_digest(self._public_key, signature, digest, name):
            raise RemoteSignerError(
                f"signer {self.uri} returned a signature that does not verify with its public key ({name})"
            )
        return signature

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self._base + path
        options = self._options
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=64)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        try:
            async with asyncio.timeout(options.timeout):
                async with self._session.request(method, url, json=body, allow_redirects=False) as response:
                    data = b""
                    while len(data) <= options.max_response:
                        chunk = await response.content.read(options.max_response + 1 - len(data))
                        if not chunk:
                            break
                        data += chunk
                    status = response.status
        except TimeoutError:
            raise DeadlineError(f"signer {self.uri}: no answer within {options.timeout:g} s") from None
        except aiohttp.ClientSSLError as exc:
            raise TLSError(f"signer {self.uri}: TLS failed: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UnreachableError(f"signer {self.uri}: {type(exc).__name__}: {exc}") from None
        if len(data) > options.max_response:
            raise RemoteSignerError(f"signer {self.uri}: answer larger than {options.max_response} bytes")
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            document = None
        if status != 200:
            message = document.get("message") if isinstance(document, dict) else None
            why = f": {str(message)[:200]}" if message else ""
            raise RemoteSignerError(f"signer {self.uri} refused ({status}){why}", status)
        if not isinstance(document, dict):
            raise RemoteSignerError(f"signer {self.uri} answered with something that is not a JSON object")
        return document

    def close(self) -> None:
        """Close the connections and stop the loop thread (again: nothing)."""
        atexit.unregister(self.close)
        if self._closed:
            return
        self._closed = True
        session = self._session
        if session is not None:
            self._session = None
            try:
                self._loop.run(session.close())
            except RuntimeError:
                pass
        self._loop.stop()

    def __repr__(self) -> str:
        return f"RemoteSigner({self.uri})"


def open_remote_signer(uri: str, options: RemoteSignerOptions) -> RemoteSigner:
    """Connect to the service, fetch the key's description and return a signer for it."""
    return RemoteSigner(uri, options)
