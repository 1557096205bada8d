"""Servers that accept a connection and then misbehave in time or size, for the timeout paths.

No real peer is silent or trickles on request, so these are small in-process socket servers on loopback
(TESTBED.md allows in-process servers for fault injection only). Each one runs its own event loop in a
daemon thread, so a test can point the real `sigscope` command line at it::

    with SlowServer("silent") as server:
        run_sigscope("ls", server.host, "--insecure", "--timeout", "2")

Modes:

* ``silent``: read the request, never answer;
* ``trickle-headers``: a status line, then one byte of a header every ``interval`` seconds, forever;
* ``trickle-body``: complete headers (a large Content-Length), then one body byte every ``interval``;
* ``endless-body``: complete headers without a length, then a body as fast as the client takes it
  (in both, a HEAD is answered at once and without a digest, so the GET that follows gets the body);
* ``challenge``: answer every request at once with 401 and a Bearer challenge whose realm is ``realm``
  (a registry whose token service is one of the servers above).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

MODES = ("silent", "trickle-headers", "trickle-body", "endless-body", "challenge")


class SlowServer:
    def __init__(self, mode: str, *, interval: float = 1.0, realm: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if (mode == "challenge") != (realm is not None):
            raise ValueError("a realm goes with mode 'challenge', and only with it")
        self.mode = mode
        self.interval = interval
        self.realm = realm
        self.host = ""
        self.url = ""
        #: request lines received, in order ("GET /v2/_catalog?n=1000 HTTP/1.1")
        self.requests: list[str] = []
        #: body bytes the client accepted (endless-body): a client that stops at its limit keeps this small
        self.body_bytes_sent = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SlowServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        self.url = f"http://{self.host}"
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"SlowServer-{self.mode}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("slow server did not start within 10 s")
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> SlowServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ one connection
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:  # keep-alive: a challenged client comes back on the same connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                with self._lock:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                if self.mode in ("trickle-body", "endless-body") and head.startswith(b"HEAD "):
                    # A HEAD answer has no body to trickle: complete headers (with no digest, so a
                    # registry client falls back to GET), and the GET that follows gets the slow body.
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
                    )
                    await writer.drain()
                    continue
                if self.mode != "challenge":
                    await self._misbehave(writer)
                    return
                writer.write(
                    b"HTTP/1.1 401 Unauthorized\r\n"
                    + f'WWW-Authenticate: Bearer realm="{self.realm}",service="slow"\r\n'.encode()
                    + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
        except (ConnectionError, OSError):
            return
        except asyncio.CancelledError:
            # stop(): end quietly (3.11's start_server callback would report a cancelled handler as an error)
            return
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _misbehave(self, writer: asyncio.StreamWriter) -> None:
        if self.mode == "silent":
            await asyncio.Event().wait()
        if self.mode == "trickle-headers":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            while True:
                await writer.drain()
                await asyncio.sleep(self.interval)
                writer.write(b"a")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if self.mode == "trickle-body":
            writer.write(head + b"Content-Length: 1000000\r\n\r\n")
            while True:
                await writer.drain()
                await asyncio.sleep(self.interval)
                writer.write(b" ")
        # endless-body: no length, the body ends only when the connection does.
        writer.write(head + b"Connection: close\r\n\r\n" + b'{"token": "')
        chunk = b"a" * 65536
        while True:
            writer.write(chunk)
            await writer.drain()
            self.body_bytes_sent += len(chunk)
