"""`sigscope verify IMAGE`: does IMAGE carry enough signatures that the supplied keys vouch for?"""

from __future__ import annotations

import asyncio
import json
import sys

import click
from rich.table import Table

from sigscope.cli.options import OUTPUT_BASIC, TrustMaterial, registry_options, trust_options
from sigscope.cli.progress import stdout_console
from sigscope.errors import EXIT_FAILED, SigscopeError, UsageError
from sigscope.model import Signature
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import ImageReference
from sigscope.oci.store import open_image
from sigscope.scan.registry import ScanOptions, scan_image
from sigscope.sign import parse_annotations
from sigscope.trust.certs import utcnow
from sigscope.verify import Policy, Verdict, image_identity, verify


async def _discover(
    image: str, registry_options: RegistryOptions, scan: ScanOptions
) -> tuple[str, str, list[Signature]]:
    async with open_image(image, registry_options) as opened:
        parsed = opened.parsed
        registry, repo_name = (
            (parsed.registry, parsed.repository) if isinstance(parsed, ImageReference) else ("", "")
        )
        [result, *_] = await scan_image(
            opened.repository,
            opened.reference,
            source=registry or opened.display,
            repo_name=repo_name,
            registry=registry,
            options=scan,
        )
        if result.error:
            raise SigscopeError(result.error)
        return image_identity(parsed), result.digest, result.signatures


def _print_pretty(verdict: Verdict) -> None:
    console = stdout_console()
    console.print(f"[bold]{verdict.image}[/bold] {verdict.digest}")
    if verdict.signatures:
        table = Table(box=None, pad_edge=False)
        for column in ("Format", "Status", "Signer", "Result"):
            table.add_column(column)
        for judged in verdict.signatures:
            sig = judged.signature
            table.add_row(
                str(sig.format),
                str(sig.status),
                sig.signer.display_name if sig.signer is not None else "-",
                "ok" if judged.satisfied else judged.reason,
            )
        console.print(table)
    console.print(verdict.summary)
    for judged in verdict.signatures:
        if not judged.satisfied:
            click.echo(f"sigscope: verify: {judged.signature.location}: {judged.reason}", err=True)
    if not verdict.verified:
        click.echo(f"sigscope: verify: {verdict.image}: {verdict.reason}", err=True)


@click.command("verify")
@click.argument("image")
@click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Require this entry in the payload's optional section (repeatable).",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Signatures from this many distinct keys must satisfy the policy.",
)
@click.option(
    "--exact-reference",
    is_flag=True,
    help="The payload must name exactly IMAGE's tag or digest (matchExact), not just its repository.",
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@trust_options
@registry_options
def verify_cmd(
    image: str,
    annotations: tuple[str, ...],
    threshold: int,
    exact_reference: bool,
    output: str,
    trust: TrustMaterial,
    registry_options: RegistryOptions,
) -> None:
    """Verify IMAGE's cosign (.sig) and GPG simple signatures against trusted keys.

    A signature counts when it verifies under a supplied key (--key, or --gpg-keyring for simple
    signatures), its payload names IMAGE's digest and repository (exactly IMAGE with --exact-reference)
    and carries every -a annotation. IMAGE passes with --threshold signatures from distinct keys.
    Attestations, Sigstore bundles and Notary signatures are not considered. Exit 0 verified,
    1 not verified, 2 usage or operational error.

    \b
    Examples:
      sigscope verify 127.0.0.1:5000/team/api:1.4 --insecure --key cosign.pub
      sigscope verify oci:./layout:v1 --key a.pub --key b.pub --threshold 2 -a env=prod -o json
      sigscope verify reg.example.com/app:1.0 --gpg-keyring pub.gpg --registries.d ./registries.d
    """
    if trust.empty:
        raise UsageError("verify needs trust material: give --key and/or --gpg-keyring")
    policy = Policy(
        threshold=threshold, exact_reference=exact_reference, annotations=parse_annotations(annotations)
    )
    scan = ScanOptions(
        now=utcnow(),
        registries_d=trust.registries_d,
        keys=trust.keys,
        gpg_keyring=trust.gpg_keyring,
    )
    identity, digest, signatures = asyncio.run(_discover(image, registry_options, scan))
    verdict = verify(identity, digest, signatures, policy)
    if output == "json":
        click.echo(json.dumps(verdict.to_json(), indent=2))
        if not verdict.verified:
            click.echo(f"sigscope: verify: {verdict.image}: {verdict.reason}", err=True)
    else:
        _print_pretty(verdict)
    if not verdict.verified:
        sys.exit(EXIT_FAILED)
