"""`--signer-*` flags: how a signing verb reaches a `--key remote+https://…` signing service."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from sigscope.cli.options import F
from sigscope.keys.remote import RemoteSignerOptions

_FLAGS = ("signer_ca", "signer_cert", "signer_key", "signer_token_file", "signer_timeout")


def remote_signer_options(command: F) -> F:
    """Adds the flags; the command receives `remote_signer: RemoteSignerOptions`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {flag: kwargs.pop(flag) for flag in _FLAGS}
        kwargs["remote_signer"] = RemoteSignerOptions(
            ca_file=values["signer_ca"],
            cert_file=values["signer_cert"],
            key_file=values["signer_key"],
            token_file=values["signer_token_file"],
            timeout=values["signer_timeout"],
        )
        return command(*args, **kwargs)

    path = click.Path(dir_okay=False, exists=True)
    decorators: list[Callable[[Any], Any]] = [
        click.option(
            "--signer-ca", type=path, help="remote signer: CA bundle its TLS certificate chains to."
        ),
        click.option("--signer-cert", type=path, help="remote signer: client certificate (mutual TLS)."),
        click.option("--signer-key", type=path, help="remote signer: the client certificate's key."),
        click.option(
            "--signer-token-file", type=path, help="remote signer: file whose first line is a bearer token."
        ),
        click.option(
            "--signer-timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="remote signer: deadline per request, in seconds.",
        ),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper  # type: ignore[return-value]
