"""`sigscope scan registry`: every image in a registry (or layout) and every signature on it."""

from __future__ import annotations

import asyncio
import sys

import click

from sigscope.cli.options import TrustMaterial, registry_options, trust_options
from sigscope.cli.progress import stdout_console, tracker
from sigscope.errors import EXIT_FAILED
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import parse_layout, parse_registry_target
from sigscope.report.render import OUTPUTS, make_renderer
from sigscope.report.summary import FAIL_ON_CHOICES, Summary
from sigscope.scan.registry import Progress, ScanOptions, scan_registry, scan_repository
from sigscope.trust.certs import utcnow


@click.group("scan")
def scan_group() -> None:
    """Discover and report signatures in bulk."""


async def _run(
    target: str, registry_options: RegistryOptions, options: ScanOptions, output: str, fail_on: set[str]
) -> int:
    console = stdout_console(width=400 if output == "wide" else 240)
    is_layout = target.startswith("oci:")
    source = target if is_layout else parse_registry_target(target)[0]
    renderer = make_renderer(output, sys.stdout, console, source)
    summary = Summary(source)
    matched: set[str] = set()
    with tracker("Scanning", enabled=True) as bar:
        progress = Progress(bar.add_total, bar.advance)

        if is_layout:
            layout = OCILayout(parse_layout(target).path)
            results = scan_repository(
                layout, source=layout.display, repo_name="", registry="", options=options, progress=progress
            )
            async for result in results:
                summary.add(result)
                renderer.add(result)
        else:
            registry, namespace = parse_registry_target(target)
            async with RegistryClient(registry, registry_options) as client:
                async for result in scan_registry(client, namespace, options, progress):
                    summary.add(result)
                    renderer.add(result)
    renderer.finish(summary)
    if output not in ("pretty", "wide"):
        # Machine formats keep stdout clean; the one human line goes to stderr.
        click.echo(summary.line, err=True)
    matched = {f for f in fail_on if summary.findings.get(f)}
    if matched:
        click.echo(f"sigscope: --fail-on matched: {', '.join(sorted(matched))}", err=True)
        return EXIT_FAILED
    return 0


@scan_group.command("registry")
@click.argument("target", metavar="HOST[/NAMESPACE] | oci:PATH")
@click.option(
    "--repo", "repo_patterns", multiple=True, metavar="GLOB", help="Only repositories matching (repeatable)."
)
@click.option("--platforms", is_flag=True, help="Also report each platform manifest of a multi-arch index.")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="pretty", show_default=True)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES),
    multiple=True,
    help="Exit 1 when any image matches (repeatable).",
)
@trust_options
@registry_options
def scan_registry_cmd(
    target: str,
    repo_patterns: tuple[str, ...],
    platforms: bool,
    output: str,
    fail_on: tuple[str, ...],
    trust: TrustMaterial,
    registry_options: RegistryOptions,
) -> None:
    """Report every signature on every image of a registry, in every format.

    Walks catalog → repositories → tags → digests concurrently and finds cosign .sig/.att/.sbom
    attachments, Sigstore bundles and Notary Project signatures (referrers API or the tag fallback)
    and GPG simple signatures (lookaside, with --registries.d). Without trust material each
    signature is unverified, integrity-ok or invalid, never "verified".

    \b
    Examples:
      sigscope scan registry 127.0.0.1:5000 --insecure
      sigscope scan registry reg.example.com/team --repo 'team/api*' -o json | jq '.registry.signatures[]'
      sigscope scan registry 127.0.0.1:5000 --insecure -o sarif --fail-on unsigned > scan.sarif
      sigscope scan registry oci:./layout -o wide
    """
    options = ScanOptions(
        now=utcnow(),
        repo_patterns=list(repo_patterns),
        platforms=platforms,
        registries_d=trust.registries_d,
        repo_concurrency=max(1, min(32, registry_options.max_concurrency // 2)),
        keys=trust.keys,
        gpg_keyring=trust.gpg_keyring,
    )
    code = asyncio.run(_run(target, registry_options, options, output, set(fail_on)))
    if code:
        sys.exit(code)
