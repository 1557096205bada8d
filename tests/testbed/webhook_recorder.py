"""An HTTPS endpoint that records the AdmissionReviews a real kube-apiserver sends, and answers them.

Not a webhook server (that is `sigscope webhook serve`): it answers every review `allowed` with the request's
uid echoed, after ``delay`` seconds — enough to see what the API server sends (path, ``?timeout=``, the
review) and how it treats a slow webhook. Runs on loopback in a daemon thread::

    with WebhookRecorder(cert, key) as hook:
        ...  # register https://127.0.0.1:{hook.port} with kube.webhooks(...)
        hook.reviews  # [(path, query, review), ...]
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_REVIEW = 3 * 1024 * 1024  # the API server's request bodies stay below its own 3 MiB object limit


class WebhookRecorder:
    def __init__(self, cert: Path, key: Path, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.reviews: list[tuple[str, dict[str, list[str]], dict[str, Any]]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if not 0 < length <= MAX_REVIEW:
                    self.send_error(413)
                    return
                review = json.loads(self.rfile.read(length))
                parts = urlsplit(self.path)
                with recorder._lock:
                    recorder.reviews.append((parts.path, parse_qs(parts.query), review))
                time.sleep(recorder.delay)
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], "allowed": True},
                    }
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the API server gave up (timeoutSeconds) and closed the connection
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stopped = False

    def seen(self, kind: str, name: str) -> list[tuple[str, dict[str, list[str]], dict[str, Any]]]:
        """The reviews recorded for the object ``kind``/``name``."""
        with self._lock:
            return [
                r
                for r in self.reviews
                if r[2]["request"]["kind"]["kind"] == kind and r[2]["request"].get("name") == name
            ]

    def stop(self) -> None:
        """Stop answering: the port refuses connections from now on (a webhook that is down)."""
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
