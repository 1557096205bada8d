"""`sigscope sign IMAGE --key KEY`: a cosign (legacy `.sig` tag) signature made with a cosign key file."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import click

from sigscope.cli.key import read_password
from sigscope.cli.options import OUTPUT_BASIC, registry_options
from sigscope.errors import UsageError
from sigscope.keys import FileSigner, KeyFormatError, KeyPasswordError, Signer, load_private_key
from sigscope.oci.client import RegistryOptions
from sigscope.oci.store import open_image
from sigscope.sign import (
    SignOptions,
    SignResult,
    check_certificate,
    docker_identity,
    parse_annotations,
    sign_image,
)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _text(data: bytes, what: str, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 PEM text") from None


def _pem_certificates(text: str) -> int:
    from sigscope.trust import certs

    try:
        return len(certs.load_pem_chain(text))
    except certs.CertificateError:
        return 0


def _write(path: str, data: bytes, what: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from None


def load_signer(path: str, password_file: str | None) -> Signer:
    """A :class:`FileSigner` over a cosign (or plain PEM) private key, asking for its password as
    `sigscope key` does."""
    data = _read(path, "key")
    try:
        key = load_private_key(
            data, lambda: read_password(password_file, new=False, purpose=f"private key {path}")
        )
        return FileSigner(key)
    except KeyPasswordError as exc:
        raise KeyPasswordError(f"{path}: {exc.message}") from None
    except KeyFormatError as exc:
        raise KeyFormatError(f"{path}: {exc.message}") from None


async def _sign(
    image: str, registry_options: RegistryOptions, signer: Signer, options: SignOptions
) -> tuple[str, list[SignResult]]:
    async with open_image(image, registry_options) as opened:
        identity = options.identity or docker_identity(opened.parsed)
        results = await sign_image(opened.repository, opened.reference, identity, signer, options)
        return opened.repository.display, results


@click.command("sign")
@click.argument("image")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Private key file: cosign's encrypted format (cosign.key, skopeo's .private) or plain PEM.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="Read the key password from this file (first line). Otherwise $SIGSCOPE_PASSWORD, then "
    "$COSIGN_PASSWORD, then a prompt on a terminal.",
)
@click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra signed claim, repeatable: goes into the payload's `optional` object.",
)
@click.option(
    "--certificate",
    type=click.Path(dir_okay=False),
    help="PEM certificate for the signing key, attached as dev.sigstore.cosign/certificate.",
)
@click.option(
    "--certificate-chain",
    type=click.Path(dir_okay=False),
    help="PEM intermediates…root for --certificate, attached as dev.sigstore.cosign/chain.",
)
@click.option("--recursive", is_flag=True, help="For an index, also sign every child manifest.")
@click.option(
    "--sign-container-identity",
    "identity",
    metavar="REF",
    help="docker-reference to sign instead of the image's repository.",
)
@click.option(
    "--output-signature",
    type=click.Path(dir_okay=False),
    help="Also write the (base64) signature of IMAGE's digest here.",
)
@click.option("--output-payload", type=click.Path(dir_okay=False), help="Also write the signed payload here.")
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
def sign_cmd(
    image: str,
    key_path: str,
    password_file: str | None,
    annotations: tuple[str, ...],
    certificate: str | None,
    certificate_chain: str | None,
    recursive: bool,
    identity: str | None,
    output_signature: str | None,
    output_payload: str | None,
    output: str,
    registry_options: RegistryOptions,
) -> None:
    """Sign IMAGE in cosign's format: resolve it to a digest, sign cosign's simple-signing payload and
    append the signature as a layer of the `sha256-<hex>.sig` manifest (existing signatures are kept).

    \b
    Examples:
      sigscope sign 127.0.0.1:5000/team/web:2.0 --key cosign.key --insecure
      SIGSCOPE_PASSWORD=… sigscope sign registry.example.com/app:1.0 --key cosign.key -a env=prod
      sigscope sign oci:./layout:v1 --key cosign.key --recursive
    """
    claims = parse_annotations(annotations)
    if certificate_chain is not None and certificate is None:
        raise UsageError("--certificate-chain needs --certificate")
    signer = load_signer(key_path, password_file)
    cert_text: str | None = None
    chain_text: str | None = None
    if certificate is not None:
        cert_bytes = _read(certificate, "certificate")
        check_certificate(cert_bytes, signer.public_key())
        cert_text = _text(cert_bytes, "certificate", certificate)
        if certificate_chain is not None:
            chain_text = _text(
                _read(certificate_chain, "certificate chain"), "certificate chain", certificate_chain
            )
            if not _pem_certificates(chain_text):
                raise UsageError(f"certificate chain {certificate_chain}: no PEM certificate found")
    options = SignOptions(
        annotations=claims,
        certificate=cert_text,
        chain=chain_text,
        recursive=recursive,
        identity=identity,
    )
    where, results = asyncio.run(_sign(image, registry_options, signer, options))
    top = results[0]
    if output_signature is not None:
        _write(output_signature, base64.b64encode(top.signature), "signature")
    if output_payload is not None:
        _write(output_payload, top.payload, "payload")
    if output == "json":
        click.echo(
            json.dumps({"image": image, "repository": where, "signed": [r.to_json() for r in results]})
        )
        return
    for result in results:
        state = "signed" if result.appended else "already signed (identical signature kept)"
        click.echo(f"{result.digest}  {state}")
        click.echo(f"  signature: {where}:{result.tag} ({result.layers} layer{'s' * (result.layers != 1)})")
