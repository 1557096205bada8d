"""`sigscope sign IMAGE --format notation|notation-cose --key KEY --cert CHAIN.pem`: a Notary Project
signature (JWS or COSE) pushed as an OCI 1.1 referrer, as `notation sign` makes one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import click
from cryptography import x509

from sigscope.cli.options import role
from sigscope.errors import UsageError
from sigscope.formats import notation_build as build
from sigscope.keys import HashSigner, Signer
from sigscope.keys.files import load_certificates_file
from sigscope.keys.signer import CertifiedSigner
from sigscope.model import Descriptor
from sigscope.oci.client import RegistryOptions
from sigscope.oci.store import open_image
from sigscope.report.escape import printable
from sigscope.sign_notation import (
    NotationSignOptions,
    NotationSignResult,
    SignedEnvelope,
    parse_duration,
    parse_user_metadata,
    sign_notation_with,
)

FORMATS = {"notation": build.ENVELOPE_JWS, "notation-cose": build.ENVELOPE_COSE}


def _certificates(path: str, flag: str) -> list[x509.Certificate]:
    return load_certificates_file(path, role(flag))


def _chain(
    signer: Signer, sign_format: str, cert_path: str | None, chain_path: str | None
) -> tuple[x509.Certificate, ...]:
    """The x5c chain: --cert, or the certificate the key's token keeps beside it followed by
    --certificate-chain (intermediates…root)."""
    if cert_path is not None:
        if chain_path is not None:
            raise UsageError(
                "--certificate-chain goes with a token's certificate; with --cert, put the chain in it"
            )
        return tuple(_certificates(cert_path, "--cert"))
    stored = signer.certificate_chain() if isinstance(signer, CertifiedSigner) else ()
    if not stored:
        raise UsageError(
            f"--format {sign_format} needs --cert CHAIN.pem (leaf first, root last), or a token key with its "
            "certificate beside it"
        )
    extra = tuple(_certificates(chain_path, "--certificate-chain")) if chain_path is not None else ()
    return stored + extra


@dataclass(frozen=True)
class PluginRequest:
    """`--plugin NAME --id KEY --plugin-config k=v --plugin-timeout S`."""

    name: str
    key_id: str
    config: tuple[str, ...]
    timeout: float


async def _sign(
    image: str, registry_options: RegistryOptions, make: Callable[[Descriptor], Awaitable[SignedEnvelope]]
) -> tuple[str, NotationSignResult]:
    async with open_image(image, registry_options) as opened:
        result = await sign_notation_with(opened.repository, opened.reference, make)
        return opened.repository.display, result


def _plugin_maker(
    plugin: PluginRequest, options: NotationSignOptions
) -> Callable[[Descriptor], Awaitable[SignedEnvelope]]:
    from sigscope.notation_plugin.host import Plugin, find_plugin, parse_plugin_config, plugin_envelope

    running = Plugin(
        name=plugin.name,
        path=find_plugin(plugin.name),
        key_id=plugin.key_id,
        config=parse_plugin_config(plugin.config),
        timeout=plugin.timeout,
    )
    return lambda target: plugin_envelope(running, target, options)


def run_notation_signing(
    image: str,
    *,
    sign_format: str,
    signer: Signer | None,
    cert_path: str | None,
    chain_path: str | None = None,
    expiry: str | None,
    user_metadata: tuple[str, ...],
    signing_scheme: str,
    timestamp_url: str | None,
    timestamp_root: str | None,
    output: str,
    registry_options: RegistryOptions,
    plugin: PluginRequest | None = None,
) -> None:
    if plugin is None:
        if not isinstance(signer, HashSigner):
            raise UsageError(
                f"--format {sign_format} needs a key that can sign RSASSA-PSS / ECDSA with its hash"
            )
        chain = _chain(signer, sign_format, cert_path, chain_path)
    else:
        # The plugin returns its own chain (describe-key / generate-signature); --cert only adds to it.
        chain = tuple(_certificates(cert_path, "--cert")) if cert_path else ()
    if timestamp_root is not None and timestamp_url is None:
        raise UsageError("--timestamp-root goes with --timestamp-url")
    roots: tuple[x509.Certificate, ...] = ()
    if timestamp_url is not None:
        from sigscope.sources.tsa import check_url

        check_url(timestamp_url)
        if timestamp_root is None:
            raise UsageError("--timestamp-url needs --timestamp-root FILE (the TSA's root certificate)")
        roots = tuple(_certificates(timestamp_root, "--timestamp-root"))
    options = NotationSignOptions(
        chain=chain,
        envelope=FORMATS[sign_format],
        signing_scheme=signing_scheme,
        expiry=parse_duration(expiry) if expiry is not None else None,
        user_metadata=parse_user_metadata(user_metadata),
        timestamp_url=timestamp_url,
        timestamp_roots=roots,
        timestamp_timeout=registry_options.timeout,
    ).checked()
    if plugin is not None:
        make = _plugin_maker(plugin, options)
    else:
        # Refused before anything is fetched: a bad key or certificate must not cost a registry round trip.
        from datetime import UTC, datetime

        from sigscope.sign_notation import check_signing_material, make_envelope

        key = cast(HashSigner, signer)
        check_signing_material(key.public_key(), options.chain, datetime.now(UTC))

        def make(target: Descriptor) -> Awaitable[SignedEnvelope]:
            return make_envelope(key, target, options)

    where, result = asyncio.run(_sign(image, registry_options, make))
    if output == "json":
        click.echo(json.dumps({"image": image, "repository": where, "signed": [result.to_json()]}))
        return
    envelope = result.envelope
    click.echo(printable(f"{result.digest}  signed ({sign_format}, {envelope.alg})"))
    click.echo(printable(f"  signature manifest: {where}@{result.signature_manifest}"))
    if envelope.expiry is not None:
        click.echo(printable(f"  expires: {envelope.expiry.isoformat()}"))
    if envelope.timestamp is not None:
        click.echo(printable(f"  timestamp: {envelope.timestamp.isoformat()} (RFC 3161)"))
