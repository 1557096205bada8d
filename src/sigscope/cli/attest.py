"""`sigscope attest` and `sigscope verify-attestation`: cosign in-toto attestations, written and checked."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from rich.text import Text

from sigscope.attest import (
    PREDICATE_TYPES,
    AttestationVerdict,
    AttestOptions,
    AttestResult,
    attest_image,
    build_predicate,
    predicate_type_for,
    verify_attestations,
)
from sigscope.cli.discover import discover
from sigscope.cli.key import password_file_option
from sigscope.cli.options import OUTPUT_BASIC, load_keys, public_key_option, registry_options
from sigscope.cli.progress import stdout_console
from sigscope.cli.remote_options import remote_signer_options
from sigscope.cli.sign import load_signer, private_key_option, referrers_mode_option
from sigscope.errors import EXIT_FAILED, UsageError
from sigscope.keys import Signer
from sigscope.keys.remote import RemoteSignerOptions
from sigscope.oci.client import RegistryOptions
from sigscope.oci.store import open_image
from sigscope.report.cells import printable
from sigscope.report.results import print_results
from sigscope.scan.registry import ScanOptions
from sigscope.sign import REFERRERS_LEGACY, docker_identity
from sigscope.trust.certs import utcnow

TYPE_HELP = f"Predicate type: {', '.join(PREDICATE_TYPES)} (cosign's names) or a predicate type URI."


async def _attest(
    image: str, registry_options: RegistryOptions, signer: Signer, options: AttestOptions
) -> tuple[str, AttestResult]:
    async with open_image(image, registry_options) as opened:
        subject = docker_identity(opened.parsed)
        result = await attest_image(opened.repository, opened.reference, subject, signer, options)
        return opened.repository.display, result


@click.command("attest")
@click.argument("image")
@click.option(
    "--predicate",
    "predicate_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="File holding the predicate (JSON; plain text for --type custom and spdx).",
)
@click.option("--type", "type_name", default="custom", show_default=True, help=TYPE_HELP)
@private_key_option(required=True)
@password_file_option
@referrers_mode_option(
    "legacy: a layer of the sha256-<hex>.att tag. oci-1-1: a Sigstore bundle v0.3 (DSSE) pushed as an "
    "OCI 1.1 referrer."
)
@click.option(
    "--replace", is_flag=True, help="Drop existing .att layers of the same predicate type (legacy mode)."
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
@remote_signer_options
def attest_cmd(
    image: str,
    predicate_path: str,
    type_name: str,
    key_path: str,
    password_file: str | None,
    referrers_mode: str,
    replace: bool,
    output: str,
    registry_options: RegistryOptions,
    remote_signer: RemoteSignerOptions,
) -> None:
    """Attest IMAGE: sign an in-toto statement (subject: IMAGE's repository and digest; the predicate from
    --predicate) in a DSSE envelope and attach it as cosign does — appended to the sha256-<hex>.att
    manifest, or as a Sigstore bundle referrer with --registry-referrers-mode oci-1-1.

    \b
    Examples:
      sigscope attest 127.0.0.1:5000/team/api:1.4 --insecure --key cosign.key \\
          --predicate provenance.json --type slsaprovenance1
      sigscope attest oci:./layout:v1 --key cosign.key --predicate vex.json --type openvex --replace
      sigscope attest reg.example.com/app:1.0 --key cosign.key --predicate sbom.spdx.json --type spdxjson \\
          --registry-referrers-mode oci-1-1
    """
    predicate_type = predicate_type_for(type_name)
    if replace and referrers_mode != REFERRERS_LEGACY:
        raise UsageError("--replace applies to the legacy .att tag only, not to oci-1-1 referrers")
    try:
        data = Path(predicate_path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read predicate {predicate_path}: {exc.strerror}") from None
    now = utcnow()
    predicate = build_predicate(type_name, data, now, source=f"predicate {predicate_path}")
    signer = load_signer(key_path, password_file, remote_signer)
    options = AttestOptions(
        predicate_type=predicate_type,
        predicate=predicate,
        now=now,
        replace=replace,
        referrers_mode=referrers_mode,
    )
    where, result = asyncio.run(_attest(image, registry_options, signer, options))
    if output == "json":
        click.echo(json.dumps({"image": image, "repository": where, "attested": result.to_json()}))
        return
    click.echo(printable(f"{result.digest}  attested ({predicate_type})"))
    if result.mode == REFERRERS_LEGACY:
        replaced = f", {result.replaced} replaced" if result.replaced else ""
        plural = "s" * (result.layers != 1)
        click.echo(
            printable(f"  attestation: {where}:{result.location} ({result.layers} layer{plural}{replaced})")
        )
    else:
        click.echo(printable(f"  bundle referrer: {where}@{result.manifest_digest}"))


def _print_pretty(verdict: AttestationVerdict) -> None:
    console = stdout_console()
    console.print(Text.assemble((printable(verdict.image), "bold"), " ", printable(verdict.digest)))
    if verdict.attestations:
        print_results(
            console,
            ("Format", "Predicate type", "Location"),
            [
                (
                    (
                        str(judged.signature.format),
                        str((judged.statement or {}).get("predicateType", "-")),
                        judged.signature.location,
                    ),
                    None if judged.satisfied else judged.reason,
                )
                for judged in verdict.attestations
            ],
        )
    console.print(verdict.summary, markup=False, soft_wrap=True)


@click.command("verify-attestation")
@click.argument("image")
@public_key_option("Trusted public key (PEM, cosign.pub), repeatable.", required=True)
@click.option("--type", "type_name", help="Require this predicate type. " + TYPE_HELP)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
def verify_attestation_cmd(
    image: str,
    keys: tuple[str, ...],
    type_name: str | None,
    output: str,
    registry_options: RegistryOptions,
) -> None:
    """Verify IMAGE's in-toto attestations (cosign .att layers and Sigstore bundle referrers) against
    trusted keys.

    An attestation counts when its DSSE signature (over the PAE) verifies under a supplied key, its
    payloadType is in-toto, a statement subject names IMAGE's digest, and its predicate type is --type when
    given. The result goes to standard output: a row per attestation (Result `ok` or why not) and one
    summary line, `Verified N of M attestations` or `Not verified: <reason>`; standard error carries only
    an error that kept the command from running. Exit 0 when at least one does, 1 when none does, 2 on
    usage or operational errors.

    \b
    Examples:
      sigscope verify-attestation 127.0.0.1:5000/team/api:1.4 --insecure --key cosign.pub
      sigscope verify-attestation oci:./layout:v1 --key cosign.pub --type slsaprovenance1 -o json
    """
    trusted: list[PublicKeyTypes] = load_keys(keys)
    predicate_type = predicate_type_for(type_name) if type_name is not None else None
    # No keys in the scan: the attestation checks below do their own, named, key verification.
    scan = ScanOptions(now=utcnow())
    identity, digest, signatures = asyncio.run(discover(image, registry_options, scan))
    verdict = verify_attestations(identity, digest, signatures, trusted, predicate_type)
    if output == "json":
        click.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        _print_pretty(verdict)
    if not verdict.verified:
        sys.exit(EXIT_FAILED)
