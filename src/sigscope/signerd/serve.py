"""Running the signing service until it is told to stop."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from collections.abc import Callable

from aiohttp import web

from sigscope.errors import UsageError
from sigscope.signerd.app import ServiceConfig, SigningService, server_tls


async def _serve(
    config: ServiceConfig, context_factory: Callable[[], object], address: str, port: int
) -> None:
    runner = web.AppRunner(SigningService(config).app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, address, port, ssl_context=context_factory(), backlog=512)  # type: ignore[arg-type]
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host, bound = runner.addresses[0][:2]
    where = f"[{host}]" if ":" in host else host
    print(f"sigscope signer: serving {len(config.keys)} key(s) on https://{where}:{bound}", file=sys.stderr)
    sys.stderr.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if config.audit is not None:
            print(f"sigscope signer: audit log head sha256:{config.audit.head}", file=sys.stderr)
            config.audit.close()


def run(
    config: ServiceConfig,
    *,
    tls_cert: str,
    tls_key: str,
    client_ca: str | None,
    address: str,
    port: int,
) -> None:
    """Serve until SIGINT/SIGTERM; the bound address goes to stderr (port 0 picks a free one)."""

    def context() -> object:
        return server_tls(tls_cert, tls_key, client_ca, tokens=config.tokens is not None)

    try:
        context()  # a bad certificate or key is reported before anything listens
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot use --tls-cert/--tls-key/--client-ca: {exc.strerror or exc}") from None
    asyncio.run(_serve(config, context, address, port))
