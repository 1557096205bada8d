"""uvicorn as the ASGI faces run it: quiet (no access log, no Server header), lifespan on, on a socket
that is listening before the face prints where it serves; and their --address/--port."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sigscope.errors import UsageError

if TYPE_CHECKING:
    import uvicorn

LISTEN_BACKLOG = 2048  # uvicorn's default
F = TypeVar("F", bound=Callable[..., Any])


def listen_options(*, port: int | None, address_help: str = "Address to listen on.") -> Callable[[F], F]:
    """--address and --port for a command that serves (`port` its default; None: --port is required). The
    command receives `address` and `port` for Listening.on, which listens before the face says where."""

    def decorate(func: F) -> F:
        func = click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=port,
            required=port is None,
            show_default=port is not None,
            help="Port to listen on (0: any free port, printed at start).",
        )(func)
        return click.option("--address", default="127.0.0.1", show_default=True, help=address_help)(func)

    return decorate


def config(app: Any, **settings: Any) -> uvicorn.Config:
    """uvicorn's Config with the faces' defaults; `settings` adds to them (TLS, limits)."""
    import uvicorn

    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", server_header=False, **settings
    )


def listen(address: str, port: int) -> socket.socket:
    """A TCP socket bound to ADDRESS:PORT (0: any free port) and listening; UsageError when it cannot be."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    # Listening from here on, before the start line is printed: a client that connects as soon as it reads
    # the line is queued by the kernel until the server accepts, not refused (a bound socket that does not
    # listen yet answers with a reset). uvicorn's own listen() later only sets the backlog again.
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass
class Listening:
    server: uvicorn.Server
    sock: socket.socket

    @classmethod
    def on(cls, settings: uvicorn.Config, address: str, port: int) -> Listening:
        import uvicorn

        return cls(uvicorn.Server(settings), listen(address, port))

    @property
    def origin(self) -> str:
        """HOST:PORT as bound (the port chosen for 0), as a URL writes it."""
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def run(self, line: str) -> None:
        """Print `line` on stderr, then serve until stopped."""
        click.echo(line, err=True)
        self.server.run(sockets=[self.sock])
