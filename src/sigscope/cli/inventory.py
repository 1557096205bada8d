"""`sigscope inventory`: keeping the inventory current between scans (docs/inventory.md)."""

from __future__ import annotations

import logging
from typing import Any

import click

from sigscope.cli.options import TrustMaterial, registry_options, trust_options
from sigscope.cli.sizes import size_callback
from sigscope.oci.client import RegistryOptions
from sigscope.serve.server import listen_options

# listen's own options: they shape how events arrive, never a verdict, so they stay out of the trust
# fingerprint (a re-scan by listen reuses what `scan registry` with the same trust material verified).
_LISTEN_ONLY = frozenset(
    {
        "registry",
        "db",
        "port",
        "address",
        "token_file",
        "basic_auth_file",
        "max_body",
        "max_pending",
        "settle",
    }
)


@click.group("inventory")
def inventory_group() -> None:
    """Keep the inventory current between scans (docs/inventory.md)."""


@inventory_group.command("listen")
@click.option(
    "--registry",
    required=True,
    metavar="HOST[:PORT]",
    help="The registry whose notifications arrive here, scanned as `scan registry HOST` would.",
)
@click.option(
    "--db",
    metavar="URL",
    envvar="SIGSCOPE_DB",
    required=True,
    help="The inventory (a SQLite PATH, sqlite:///PATH, 'default', or postgresql://…) [env: SIGSCOPE_DB].",
)
@listen_options(port=None)
@click.option(
    "--token-file",
    metavar="FILE",
    envvar="SIGSCOPE_LISTEN_TOKEN_FILE",
    help="Accept only requests with `Authorization: Bearer <the file's token>` (set the same header in the "
    "registry's notifications endpoint) [env: SIGSCOPE_LISTEN_TOKEN_FILE].",
)
@click.option(
    "--basic-auth-file",
    metavar="FILE",
    help="Accept only requests with Basic credentials USER:PASSWORD (the file's one line).",
)
@click.option(
    "--max-body",
    callback=size_callback,
    default="1MiB",
    metavar="SIZE",
    show_default=True,
    help="Largest notification body read; past it the request is refused (413).",
)
@click.option(
    "--max-pending",
    type=click.IntRange(1, 100_000),
    default=1024,
    show_default=True,
    help="Repositories that may wait for a re-scan; past it deliveries are refused (503) and retried.",
)
@click.option(
    "--settle",
    type=click.FloatRange(0, 10),
    default=0.1,
    show_default=True,
    metavar="SECONDS",
    help="How long a burst of events (an image and its signature) is gathered before the re-scan.",
)
@trust_options
@registry_options
def listen_cmd(
    registry: str,
    db: str,
    port: int,
    address: str,
    token_file: str | None,
    basic_auth_file: str | None,
    max_body: int,
    max_pending: int,
    settle: float,
    trust: TrustMaterial,
    registry_options: RegistryOptions,
) -> None:
    """Receive a registry's push and delete notifications and re-scan the repository each one names into
    the inventory: new images and signatures appear, deleted ones are gone, within about a second and
    without polling. Answers 200 at once; the scans run behind.

    Point distribution's `notifications.endpoints` (its config.yml) at http://ADDRESS:PORT/events.
    Trust options are those of `scan registry`: with the same ones, a digest a scheduled scan already
    verified is not verified again.

    \b
    Examples:
      sigscope inventory listen --registry 127.0.0.1:5000 --insecure --db inventory.db --port 5080
      sigscope inventory listen --registry reg.example.com --db postgresql://… --port 5080 \\
          --token-file /run/secrets/notify-token --key cosign.pub
    """
    from sigscope.cli.scan import registry_scan_options
    from sigscope.listen.app import ListenApp, authorization_values, read_secret
    from sigscope.listen.queue import ScanQueue
    from sigscope.listen.rescan import RepositoryRescan
    from sigscope.oci.client import RegistryClient
    from sigscope.oci.reference import parse_registry_target
    from sigscope.serve.server import Listening, config
    from sigscope.store import Inventory

    host = parse_registry_target(registry)[0]
    accepted = authorization_values(
        read_secret(token_file, "--token-file") if token_file else None,
        read_secret(basic_auth_file, "--basic-auth-file") if basic_auth_file else None,
    )
    Inventory.open(db).close()  # a bad URL or an unreachable database is one line now, not per event
    params: dict[str, Any] = {
        k: v for k, v in click.get_current_context().params.items() if k not in _LISTEN_ONLY
    }
    client = RegistryClient(host, registry_options)
    rescan = RepositoryRescan(db, client, registry_scan_options(trust, registry_options, [], False), params)
    queue = ScanQueue(rescan, max_pending=max_pending, settle=settle)
    app = ListenApp(
        queue, accepted=accepted, max_body=max_body, on_startup=client.open, on_shutdown=client.close
    )
    logging.basicConfig(level=logging.INFO, format="sigscope listen: %(message)s")
    served = Listening.on(config(app, limit_concurrency=256), address, port)
    served.run(f"sigscope: listening on http://{served.origin}/events for {host}")
