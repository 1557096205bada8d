"""`sigscope sign IMAGE --key KEY`: a cosign (legacy `.sig` tag) signature made with a cosign key file."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from sigscope.cli.key import password_file_option, prompt_pin, read_password
from sigscope.cli.options import OUTPUT_BASIC, F, registry_options, role
from sigscope.cli.remote_options import remote_signer_options
from sigscope.errors import KeyFileError, UsageError
from sigscope.keys import Signer
from sigscope.keys.files import CERTIFICATES, load_certificates_file, read_file
from sigscope.keys.remote import RemoteSignerOptions
from sigscope.oci.client import RegistryOptions
from sigscope.oci.store import open_image
from sigscope.report.escape import printable
from sigscope.sign import (
    REFERRERS_LEGACY,
    REFERRERS_MODES,
    SignOptions,
    SignResult,
    check_certificate,
    docker_identity,
    parse_annotations,
    sign_image,
)


def _certificate_pem(path: str, flag: str) -> str:
    """The PEM text of a certificate file, stored as the user wrote it once keys.files has found
    certificates in it (and said what it holds instead, if not)."""
    load_certificates_file(path, role(flag))
    data = read_file(path, CERTIFICATES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(path, "not UTF-8 text", expected=CERTIFICATES, role=role(flag)) from None


def _write(path: str, data: bytes, what: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from None


def load_signer(spec: str, password_file: str | None, remote: RemoteSignerOptions | None = None) -> Signer:
    """The signer a `--key` value names (keys/resolve.py): a cosign (or plain PEM) private key file, its
    password asked as `sigscope key` does; a `pkcs11:` URI, its PIN prompted for on a terminal when the
    URI and environment give none; or a `remote+https://` key of a signing service (the key never comes
    here)."""
    from sigscope.keys.resolve import open_signer, scheme_of

    if password_file is not None and scheme_of(spec) is not None:
        raise UsageError("--password-file is for key files; a token's PIN comes from the URI's pin-source")
    return open_signer(
        spec,
        password=lambda: read_password(password_file, new=False, purpose=f"private key {spec}"),
        pin=prompt_pin,
        role=role("--key"),
        remote=remote,
    )


def private_key_option(*, required: bool) -> Callable[[F], F]:
    """`--key`: the signing key (file or URI); the command receives `key_path`."""
    return click.option(
        "--key",
        "key_path",
        required=required,
        metavar="KEY",
        help="Private key: a file (cosign's encrypted format, skopeo's .private, plain PEM), a PKCS#11 "
        "URI, pkcs11:token=T;object=O?module-path=M&pin-source=file:PIN (docs/keys.md), or "
        "remote+https://HOST:PORT/NAME, a key of `sigscope signer serve` (see --signer-*).",
    )


def referrers_mode_option(help: str) -> Callable[[F], F]:
    """`--registry-referrers-mode` (legacy tag or OCI 1.1 referrer); the command receives `referrers_mode`."""
    return click.option(
        "--registry-referrers-mode",
        "referrers_mode",
        type=click.Choice(REFERRERS_MODES),
        default=REFERRERS_LEGACY,
        show_default=True,
        help=help,
    )


async def _sign(
    image: str, registry_options: RegistryOptions, signer: Signer, options: SignOptions
) -> tuple[str, list[SignResult]]:
    async with open_image(image, registry_options) as opened:
        identity = options.identity or docker_identity(opened.parsed)
        results = await sign_image(opened.repository, opened.reference, identity, signer, options)
        return opened.repository.display, results


def _refuse(flags: Mapping[str, object], why: str) -> None:
    """One usage error naming every given flag (a value other than None) that this format does not take."""
    given = [flag for flag, value in flags.items() if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)} {why}")


@click.command("sign")
@click.argument("image")
@private_key_option(required=False)
@click.option(
    "--format",
    "sign_format",
    type=click.Choice(["cosign", "simple-signing", "notation", "notation-cose"]),
    default="cosign",
    show_default=True,
    help="cosign: a .sig tag layer signed with --key; simple-signing: a GPG signature in the lookaside "
    "(as skopeo --sign-by), signed with --gpg-key; notation / notation-cose: a Notary Project JWS / COSE "
    "signature (--key + --cert) pushed as an OCI 1.1 referrer.",
)
@click.option("--gpg-key", metavar="FPR", help="simple-signing: the GPG secret key (fingerprint) to use.")
@click.option(
    "--gnupg-home",
    type=click.Path(file_okay=False),
    help="simple-signing: GnuPG home holding --gpg-key (default: $GNUPGHOME, ~/.gnupg).",
)
@click.option(
    "--registries.d",
    "registries_d",
    type=click.Path(file_okay=False, exists=True),
    help="simple-signing: containers registries.d naming the lookaside(-staging) to write to "
    "(default: containers' own).",
)
@password_file_option
@click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra signed claim, repeatable: goes into the payload's `optional` object (oci-1-1: the "
    "statement subject's annotations, as cosign v3 signs them).",
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
@referrers_mode_option(
    "legacy: a layer of the sha256-<hex>.sig tag. oci-1-1: the Sigstore bundle v0.3 cosign v3 signs with (a "
    "DSSE in-toto statement, predicate https://sigstore.dev/cosign/sign/v1, naming the manifest digest) "
    "pushed as an OCI 1.1 referrer (referrers API, else the fallback tag index)."
)
@click.option(
    "--timestamp-url",
    "--timestamp-server-url",
    "timestamp_url",
    metavar="URL",
    help="RFC 3161 time-stamping authority: each signature is time-stamped and the reply attached as "
    "dev.sigstore.cosign/rfc3161timestamp (cosign's --timestamp-server-url).",
)
# --format notation / notation-cose (cli/sign_notation.py)
@click.option(
    "--cert",
    "notation_cert",
    type=click.Path(dir_okay=False),
    help="notation: PEM certificate chain of --key, leaf first, root last (carried as x5c).",
)
@click.option("--expiry", metavar="DURATION", help="notation: signature expiry after signing (24h, 30m, 7d).")
@click.option(
    "-m",
    "--user-metadata",
    "user_metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="notation: signed annotation of the target descriptor, repeatable.",
)
@click.option(
    "--signing-scheme",
    type=click.Choice(["notary.x509", "notary.x509.signingAuthority"]),
    default="notary.x509",
    show_default=True,
    help="notation: signing scheme.",
)
@click.option(
    "--timestamp-root",
    type=click.Path(dir_okay=False),
    help="notation: PEM root certificate(s) the --timestamp-url TSA's token must chain to.",
)
@click.option(
    "--plugin", metavar="NAME", help="notation: sign with notation's plugin notation-NAME (not --key)."
)
@click.option("--id", "plugin_key_id", metavar="KEY", help="notation: the key id --plugin signs with.")
@click.option(
    "--plugin-config",
    multiple=True,
    metavar="KEY=VALUE",
    help="notation: configuration for --plugin, repeatable.",
)
@click.option(
    "--plugin-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="notation: seconds each plugin command may take.",
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
@remote_signer_options
def sign_cmd(
    image: str,
    key_path: str | None,
    sign_format: str,
    gpg_key: str | None,
    gnupg_home: str | None,
    registries_d: str | None,
    password_file: str | None,
    annotations: tuple[str, ...],
    certificate: str | None,
    certificate_chain: str | None,
    recursive: bool,
    identity: str | None,
    output_signature: str | None,
    output_payload: str | None,
    referrers_mode: str,
    timestamp_url: str | None,
    notation_cert: str | None,
    expiry: str | None,
    user_metadata: tuple[str, ...],
    signing_scheme: str,
    timestamp_root: str | None,
    plugin: str | None,
    plugin_key_id: str | None,
    plugin_config: tuple[str, ...],
    plugin_timeout: float,
    output: str,
    registry_options: RegistryOptions,
    remote_signer: RemoteSignerOptions,
) -> None:
    """Sign IMAGE in cosign's format: resolve it to a digest, sign cosign's simple-signing payload and
    append the signature as a layer of the `sha256-<hex>.sig` manifest (existing signatures are kept).

    \b
    Examples:
      sigscope sign 127.0.0.1:5000/team/web:2.0 --key cosign.key --insecure
      SIGSCOPE_PASSWORD=… sigscope sign registry.example.com/app:1.0 --key cosign.key -a env=prod
      sigscope sign oci:./layout:v1 --key cosign.key --recursive
      sigscope sign reg.example.com/app:1.0 --key 'pkcs11:token=ci;object=release?module-path=/usr/lib/p11.so'
      sigscope sign 127.0.0.1:5000/team/web:2.0 --insecure --format notation --key leaf.key --cert leaf.crt
    """
    notation_flags = {
        "--cert": notation_cert,
        "--expiry": expiry,
        "-m": user_metadata or None,
        "--timestamp-root": timestamp_root,
        "--signing-scheme": None if signing_scheme == "notary.x509" else signing_scheme,
        "--plugin": plugin,
        "--id": plugin_key_id,
        "--plugin-config": plugin_config or None,
    }
    if sign_format in ("notation", "notation-cose"):
        from sigscope.cli.sign_notation import PluginRequest, run_notation_signing

        plugin_request = None
        if plugin is not None or plugin_key_id is not None or plugin_config:
            if plugin is None or plugin_key_id is None:
                raise UsageError("--plugin and --id go together")
            _refuse({"--key": key_path, "--cert": notation_cert}, "cannot be used with --plugin")
            plugin_request = PluginRequest(plugin, plugin_key_id, plugin_config, plugin_timeout)
        elif key_path is None:
            raise UsageError(f"--format {sign_format} needs --key (and --cert)")
        cosign_only = {
            "-a": annotations or None,
            "--certificate": certificate,
            "--recursive": recursive or None,
            "--sign-container-identity": identity,
            "--output-signature": output_signature,
            "--output-payload": output_payload,
            "--registry-referrers-mode": None if referrers_mode == REFERRERS_LEGACY else referrers_mode,
            "--gpg-key": gpg_key,
            "--gnupg-home": gnupg_home,
            "--registries.d": registries_d,
        }
        _refuse(cosign_only, f"cannot be used with --format {sign_format}")
        run_notation_signing(
            image,
            sign_format=sign_format,
            signer=load_signer(key_path, password_file, remote_signer) if key_path else None,
            plugin=plugin_request,
            cert_path=notation_cert,
            chain_path=certificate_chain,
            expiry=expiry,
            user_metadata=user_metadata,
            signing_scheme=signing_scheme,
            timestamp_url=timestamp_url,
            timestamp_root=timestamp_root,
            output=output,
            registry_options=registry_options,
        )
        return
    _refuse(notation_flags, "go with --format notation or notation-cose")
    claims = parse_annotations(annotations)
    if sign_format == "simple-signing":
        from sigscope.cli.sign_simple import run_simple_signing

        cosign_only = {
            "--key": key_path,
            "--certificate": certificate,
            "--certificate-chain": certificate_chain,
            "--recursive": recursive or None,
            "--timestamp-url": timestamp_url,
            "--registry-referrers-mode": None if referrers_mode == REFERRERS_LEGACY else referrers_mode,
        }
        _refuse(cosign_only, "cannot be used with --format simple-signing")
        run_simple_signing(
            image,
            gpg_key=gpg_key,
            gnupg_home=gnupg_home,
            registries_d=registries_d,
            annotations=claims,
            identity=identity,
            output_payload=output_payload,
            output_signature=output_signature,
            output=output,
            registry_options=registry_options,
        )
        return
    if key_path is None:
        raise UsageError("sign needs --key (or --format simple-signing with --gpg-key)")
    if gpg_key is not None or gnupg_home is not None or registries_d is not None:
        raise UsageError("--gpg-key, --gnupg-home and --registries.d go with --format simple-signing")
    if certificate_chain is not None and certificate is None:
        raise UsageError("--certificate-chain needs --certificate")
    if timestamp_url is not None:
        from sigscope.sources.tsa import check_url

        check_url(timestamp_url)
        if referrers_mode != REFERRERS_LEGACY:
            raise UsageError("--timestamp-url is supported with --registry-referrers-mode legacy only")
    signer = load_signer(key_path, password_file, remote_signer)
    cert_text: str | None = None
    chain_text: str | None = None
    if certificate is not None:
        cert_text = _certificate_pem(certificate, "--certificate")
        check_certificate(cert_text.encode(), signer.public_key())
        if certificate_chain is not None:
            chain_text = _certificate_pem(certificate_chain, "--certificate-chain")
    options = SignOptions(
        annotations=claims,
        certificate=cert_text,
        chain=chain_text,
        recursive=recursive,
        identity=identity,
        referrers_mode=referrers_mode,
        timestamp_url=timestamp_url,
        timestamp_timeout=registry_options.timeout,
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
        if result.referrer:
            click.echo(printable(f"{result.digest}  signed"))
            click.echo(printable(f"  bundle referrer: {where}@{result.manifest_digest}"))
            continue
        state = "signed" if result.appended else "already signed (identical signature kept)"
        click.echo(printable(f"{result.digest}  {state}"))
        click.echo(
            printable(
                f"  signature: {where}:{result.tag} ({result.layers} layer{'s' * (result.layers != 1)})"
            )
        )
        if result.timestamp is not None:
            click.echo(printable(f"  timestamp: {result.timestamp.isoformat()} (RFC 3161)"))
