"""Flags shared by every command that talks to a registry."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sigscope.errors import UsageError
from sigscope.oci.client import RegistryOptions

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from sigscope.sources.lookaside import RegistriesD
    from sigscope.trust.pgp import Keyring

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_BASIC = click.Choice(["pretty", "json"])


def registry_options(func: F) -> F:
    """Add the registry connection flags; the command receives `registry_options: RegistryOptions`."""

    @click.option("--insecure", is_flag=True, help="Use plain HTTP for this registry (as sigscan).")
    @click.option("--skip-tls-verify", is_flag=True, help="Use TLS but do not verify the certificate.")
    @click.option(
        "--ca-file", type=click.Path(dir_okay=False), help="Trust only this CA bundle (PEM) for TLS."
    )
    @click.option(
        "-u", "--username", help="Registry user name (default: credentials from docker config.json)."
    )
    @click.option("-p", "--password", help="Registry password; prefer --password-stdin.")
    @click.option("--password-stdin", is_flag=True, help="Read the registry password from standard input.")
    @click.option(
        "--authfile",
        type=click.Path(dir_okay=False),
        help="Credentials file, docker config.json format (default: $REGISTRY_AUTH_FILE, docker config).",
    )
    @click.option(
        "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds."
    )
    @click.option(
        "--max-concurrency",
        type=click.IntRange(min=1, max=512),
        default=32,
        show_default=True,
        help="Requests in flight per registry.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        insecure: bool,
        skip_tls_verify: bool,
        ca_file: str | None,
        username: str | None,
        password: str | None,
        password_stdin: bool,
        authfile: str | None,
        timeout: float,
        max_concurrency: int,
        **kwargs: Any,
    ) -> Any:
        if insecure and (skip_tls_verify or ca_file):
            raise UsageError("--insecure (plain HTTP) cannot be combined with --skip-tls-verify or --ca-file")
        if password_stdin:
            if password is not None:
                raise UsageError("--password and --password-stdin are mutually exclusive")
            password = sys.stdin.readline().rstrip("\r\n")
        if password is not None and username is None:
            raise UsageError("a password needs --username")
        if ca_file is not None and not Path(ca_file).is_file():
            raise UsageError(f"CA file {ca_file} does not exist")
        kwargs["registry_options"] = RegistryOptions(
            insecure=insecure,
            skip_tls_verify=skip_tls_verify,
            ca_file=ca_file,
            username=username,
            password=password,
            auth_files=[Path(authfile)] if authfile else None,
            timeout=timeout,
            max_concurrency=max_concurrency,
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class TrustMaterial:
    """What `--registries.d`, `--key` and `--gpg-keyring` name, read and checked once."""

    registries_d: RegistriesD | None
    keys: list[PublicKeyTypes]
    gpg_keyring: Keyring | None

    @property
    def empty(self) -> bool:
        return not self.keys and self.gpg_keyring is None


def load_keys(paths: tuple[str, ...]) -> list[PublicKeyTypes]:
    """Read `--key` files (PEM public keys); a bad one is a usage error naming the file."""
    from sigscope.trust.keys import KeyError_, load_public_key

    keys = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read key {path}: {exc.strerror}") from None
        try:
            keys.append(load_public_key(data))
        except KeyError_ as exc:
            raise UsageError(f"key {path}: {exc}") from None
    return keys


def load_gpg_keyrings(paths: tuple[str, ...]) -> Keyring | None:
    """Read `--gpg-keyring` files into one keyring; a bad file is a usage error naming it."""
    if not paths:
        return None
    from sigscope.trust.pgp import KeyringError, load_keyrings

    blobs: list[bytes] = []
    for path in paths:
        try:
            blobs.append(Path(path).read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read keyring {path}: {exc.strerror}") from None
    try:
        keyring = load_keyrings(blobs)
    except KeyringError as exc:
        where = paths[exc.index] if exc.index is not None else ", ".join(paths)
        raise UsageError(f"keyring {where}: {exc.message}") from None
    for skipped in keyring.skipped:
        click.echo(f"sigscope: --gpg-keyring: left out {skipped}", err=True)
    return keyring


def trust_options(func: F) -> F:
    """Add `--registries.d`, `--key` and `--gpg-keyring`; the command receives `trust: TrustMaterial`."""

    @click.option(
        "--registries.d",
        "registries_d",
        type=click.Path(file_okay=False, exists=True),
        help="containers registries.d directory: GPG simple signatures are read from its lookaside.",
    )
    @click.option(
        "--key",
        "keys",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Trusted public key (PEM, cosign.pub), repeatable: cosign signatures it verifies become "
        "'verified', other cosign signatures 'untrusted'.",
    )
    @click.option(
        "--gpg-keyring",
        "gpg_keyrings",
        multiple=True,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Trusted OpenPGP public keys (gpg --export, binary or armored), repeatable: GPG simple "
        "signatures they verify become 'verified', other simple signatures 'untrusted'.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        registries_d: str | None,
        keys: tuple[str, ...],
        gpg_keyrings: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        from sigscope.sources.lookaside import load_registries_d

        kwargs["trust"] = TrustMaterial(
            registries_d=load_registries_d(Path(registries_d)) if registries_d else None,
            keys=load_keys(keys),
            gpg_keyring=load_gpg_keyrings(gpg_keyrings),
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
