"""`sigscope sign IMAGE --format simple-signing --gpg-key FPR`: a GPG simple signature in the lookaside."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from pathlib import Path

import click

from sigscope.errors import UsageError
from sigscope.keys.gpg import GpgSigner
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import LayoutReference, parse_image
from sigscope.oci.store import open_image
from sigscope.report.escape import printable
from sigscope.sign_simple import SimpleSignResult, load_registries_d, sign_simple
from sigscope.sources.lookaside import RegistriesD
from sigscope.trust.certs import utcnow


def _write(path: str, data: bytes, what: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from None


async def _sign(
    image: str,
    registry_options: RegistryOptions,
    signer: GpgSigner,
    registries_d: RegistriesD,
    identity: str | None,
    annotations: Mapping[str, str],
) -> SimpleSignResult:
    async with open_image(image, registry_options) as opened:
        return await sign_simple(
            opened.repository,
            opened.parsed,
            opened.reference,
            signer,
            registries_d,
            now=utcnow(),
            identity=identity,
            optional=annotations,
        )


def run_simple_signing(
    image: str,
    *,
    gpg_key: str | None,
    gnupg_home: str | None,
    registries_d: str | None,
    annotations: Mapping[str, str],
    identity: str | None,
    output_payload: str | None,
    output_signature: str | None,
    output: str,
    registry_options: RegistryOptions,
) -> None:
    if not gpg_key:
        raise UsageError("--format simple-signing needs --gpg-key FPR")
    if isinstance(parse_image(image), LayoutReference):
        # Checked before gpg runs: there is nowhere to store the signature.
        raise UsageError(
            "simple signing stores signatures in a registry's lookaside; containers/image keeps none for "
            "oci: layouts (push the image to a registry and sign it there, or use --format cosign)"
        )
    config = load_registries_d(registries_d)
    signer = GpgSigner(gpg_key, home=gnupg_home)
    result = asyncio.run(_sign(image, registry_options, signer, config, identity, annotations))
    if output_payload is not None:
        _write(output_payload, result.payload, "payload")
    if output_signature is not None:
        _write(output_signature, base64.b64encode(result.signature), "signature")
    if output == "json":
        data = {"image": image, "key": signer.key.fingerprint, **result.to_json()}
        click.echo(json.dumps(data))
        return
    click.echo(printable(f"{result.digest}  signed by {signer.key.fingerprint}"))
    click.echo(printable(f"  identity:  {result.identity}"))
    click.echo(printable(f"  signature: {result.url}"))
