"""A small Docker registry v2 bearer-token server (the Docker Hub / GHCR / Harbor flow).

It speaks the protocol distribution's ``auth.token`` checks against:

* ``GET /token?service=S&scope=repository:NAME:pull,push&scope=...`` with optional HTTP Basic credentials.
  - correct credentials: the token grants every requested ``repository`` action, plus
    ``registry:catalog:*`` when that scope is asked for;
  - wrong credentials (unknown user or bad password): ``401`` from the token server itself;
  - no credentials: an *anonymous* token with an empty ``access`` claim (unless ``anonymous_pull`` is set,
    which grants ``pull`` only). distribution accepts the token for ``GET /v2/`` (200) but answers any
    repository request with ``401 UNAUTHORIZED`` (``error="insufficient_scope"`` in ``WWW-Authenticate``),
    exactly like a private repository on Docker Hub.
  - ``offline_token=true`` (with valid credentials) also issues a ``refresh_token``.
* ``POST /token`` (OAuth2, form-encoded, as used with a docker config ``identitytoken``):
  ``grant_type=refresh_token&refresh_token=...&service=...&scope=...`` (scopes space-separated), or
  ``grant_type=password&username=...&password=...``. A bad refresh token or password → ``401``; a missing or
  unsupported grant → ``400``.

Tokens are ES256 JWTs whose header carries ``x5c`` = [base64 DER of the self-signed signing certificate];
that certificate (``cert_pem``) is what goes into the registry's ``auth.token.rootcertbundle``.

Note that distribution allows 60 s of clock leeway on ``exp``/``nbf``: a token with ``expires_in=N`` is still
accepted by the registry for ~N+60 s. Tests of *client-side* expiry should look at ``token_requests``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _make_signing_cert(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def parse_scope(scope: str) -> dict[str, Any] | None:
    """``repository:demo/alpine:pull,push`` → ``{"type", "name", "actions"}`` (None if malformed).

    The name may itself contain ``:`` (e.g. a host with a port), so split type off the left and actions off
    the right, as distribution does.
    """
    typ, sep, rest = scope.partition(":")
    if not sep:
        return None
    name, sep, actions = rest.rpartition(":")
    if not sep or not name:
        return None
    return {"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenServer:
    """Threaded token server on ``HOST:<free port>`` (default 127.0.0.1); :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        refresh_tokens: dict[str, str] | None = None,
        service: str = "sigscope-test-registry",
        issuer: str = "sigscope-test-token-issuer",
        expires_in: int = 300,
        anonymous_pull: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host  # any of 127.0.0.0/8: a realm on another host than the registry, still loopback
        self.users: dict[str, str] = dict(users or {})
        # refresh token → username (preconfigured ones plus those issued with offline_token=true)
        self.refresh_tokens: dict[str, str] = dict(refresh_tokens or {})
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.anonymous_pull = anonymous_pull
        self.token_requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._key, self._cert = _make_signing_cert(issuer)
        self.cert_pem: bytes = self._cert.public_bytes(serialization.Encoding.PEM)
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> TokenServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((self.host, 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "token server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The realm: ``http://HOST:PORT/token``."""
        return f"http://{self.host}:{self.port}/token"

    def reset_requests(self) -> None:
        with self._lock:
            self.token_requests.clear()

    # -- tokens ------------------------------------------------------------------------------------
    def grant(self, user: str | None, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """The access claim for ``user`` (None = anonymous) asking for ``scopes``."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            if parsed["type"] == "repository":
                if user is not None:
                    actions = [a for a in parsed["actions"] if a in ("pull", "push", "delete", "*")]
                elif self.anonymous_pull:
                    actions = [a for a in parsed["actions"] if a == "pull"]
                else:
                    actions = []
                if actions:
                    access.append({"type": "repository", "name": parsed["name"], "actions": actions})
            elif parsed["type"] == "registry" and parsed["name"] == "catalog" and user is not None:
                access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
        return access

    def make_token(
        self,
        user: str | None,
        access: list[dict[str, Any]],
        *,
        audience: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        """Sign an ES256 JWT the registry accepts (``aud`` is a plain string, as distribution 2.8 expects)."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": audience or self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64url(sig)

    def check_password(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and secrets.compare_digest(
            hashlib.sha256(expected.encode()).digest(), hashlib.sha256(password.encode()).digest()
        )

    def issue_refresh_token(self, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.token_requests.append(entry)


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send_json(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _unauthorized(self, message: str) -> None:
            self._send_json(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": message}], "error": "invalid_grant"},
                {"WWW-Authenticate": 'Basic realm="sigscope-test-token-server"'},
            )

        def _basic_user(self) -> tuple[str, str] | None:
            auth = self.headers.get("Authorization", "")
            if not auth.lower().startswith("basic "):
                return None
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return ("", "")
            return user, password

        def _respond_token(
            self, user: str | None, scopes: list[str], service: str, *, refresh: bool, oauth: bool
        ) -> None:
            access = server.grant(user, scopes)
            token = server.make_token(user, access, audience=service or None)
            body: dict[str, Any] = {
                "token": token,
                "access_token": token,
                "expires_in": server.expires_in,
                "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if oauth:
                body["scope"] = " ".join(scopes)
            if refresh and user is not None:
                body["refresh_token"] = server.issue_refresh_token(user)
            self._send_json(200, body)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                self._send_json(404, {"error": "not found"})
                return
            query = urllib.parse.parse_qs(url.query)
            scopes = query.get("scope", [])
            service = query.get("service", [""])[0]
            creds = self._basic_user()
            user = creds[0] if creds else None
            ok = creds is None or server.check_password(*creds)
            server._record(
                {
                    "path": url.path,
                    "method": "GET",
                    "scopes": scopes,
                    "service": service,
                    "user": user,
                    "grant_type": None,
                    "ok": ok,
                    "time": time.time(),
                }
            )
            if not ok:
                self._unauthorized("invalid username or password")
                return
            offline = query.get("offline_token", ["false"])[0].lower() == "true"
            self._respond_token(user, scopes, service, refresh=offline, oauth=False)

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            if url.path != "/token":
                self._send_json(404, {"error": "not found"})
                return
            form = urllib.parse.parse_qs(raw)
            grant_type = form.get("grant_type", [""])[0]
            service = form.get("service", [""])[0]
            scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
            entry: dict[str, Any] = {
                "path": url.path,
                "method": "POST",
                "scopes": scopes,
                "service": service,
                "user": None,
                "grant_type": grant_type,
                "ok": False,
                "time": time.time(),
            }
            user: str | None = None
            refresh = False
            if grant_type == "refresh_token":
                with server._lock:
                    user = server.refresh_tokens.get(form.get("refresh_token", [""])[0])
            elif grant_type == "password":
                name = form.get("username", [""])[0]
                if server.check_password(name, form.get("password", [""])[0]):
                    user = name
                refresh = form.get("access_type", [""])[0] == "offline"
            else:
                server._record(entry)
                self._send_json(400, {"error": "unsupported_grant_type"})
                return
            entry["user"] = user
            entry["ok"] = user is not None
            server._record(entry)
            if user is None:
                self._unauthorized("invalid refresh token or credentials")
                return
            self._respond_token(user, scopes, service, refresh=refresh, oauth=True)

    return Handler
