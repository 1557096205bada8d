"""`sigscope verify IMAGE --containers-policy policy.json`: judge IMAGE as skopeo/podman would.

The face around sigscope.trust.containers_policy: read the policy and the files its chosen scope names,
discover the image's signatures (GPG simple signatures from the registries.d lookaside, cosign `.sig` layers),
evaluate, and print which scope and requirement decided and why.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from rich.text import Text

from sigscope.cli.discover import scan_opened
from sigscope.cli.progress import stdout_console
from sigscope.errors import EXIT_FAILED, EXIT_OK, UsageError
from sigscope.model import Signature
from sigscope.oci.client import RegistryOptions
from sigscope.oci.reference import ImageReference, parse_image
from sigscope.oci.store import open_image
from sigscope.report.cells import cell, printable
from sigscope.report.results import print_results
from sigscope.scan.registry import ScanOptions
from sigscope.sources.lookaside import RegistriesD, default_registries_d, load_registries_d
from sigscope.trust import containers_policy as cp
from sigscope.trust.certs import utcnow
from sigscope.trust.containers_subject import subject_for


def read_policy(path: str) -> cp.Policy:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read containers policy {path}: {exc.strerror or exc}") from None
    try:
        return cp.parse_policy(data)
    except cp.PolicyFormatError as exc:
        raise cp.PolicyFormatError(f"invalid policy in {path}: {exc.message}") from None


def read_files(paths: list[str]) -> dict[str, bytes | str]:
    """The files a scope names, or why each could not be read (the evaluator rejects with that reason)."""
    out: dict[str, bytes | str] = {}
    for path in paths:
        try:
            out[path] = Path(path).read_bytes()
        except OSError as exc:
            out[path] = str(exc.strerror or exc)
    return out


async def _resolve_and_discover(
    image: str,
    registry_options: RegistryOptions,
    scan: ScanOptions,
    want_signatures: bool,
) -> tuple[str, list[Signature]]:
    async with open_image(image, registry_options) as opened:
        if not want_signatures:
            descriptor = await opened.repository.resolve(opened.reference)
            return descriptor.digest, []
        result = await scan_opened(opened, scan)
        return result.digest, result.signatures


def _print(verdict: cp.PolicyVerdict, policy_path: str) -> None:
    console = stdout_console()
    subject = verdict.subject
    console.print(Text.assemble((printable(subject.display), "bold"), " ", printable(subject.digest)))
    console.print(cell(f"policy {policy_path}: {subject.transport} identity {subject.identity}"))
    console.print(cell(f"scope: {verdict.selection.source}"))
    print_results(
        console,
        ("#", "Result", "Requirement"),
        [
            (
                (str(r.index + 1), "accepted" if r.accepted else "rejected", r.requirement.describe()),
                None if r.accepted else r.reason,
            )
            for r in verdict.results
        ],
    )
    # The result line: whole (never folded), escaped, never read as markup, whatever the reason quotes.
    verdict_line = ("Accepted" if verdict.accepted else "Rejected") + f": {verdict.reason}"
    console.print(printable(verdict_line), markup=False, highlight=False, soft_wrap=True)


def run_containers_policy(
    image: str,
    policy_path: str,
    registries_d: RegistriesD | None,
    registry_options: RegistryOptions,
    output: str,
) -> int:
    """Evaluate and print; the exit code is 0 accepted, 1 rejected."""
    policy = read_policy(policy_path)
    parsed = parse_image(image)
    if isinstance(parsed, ImageReference) and parsed.tag is not None and parsed.digest is not None:
        raise UsageError("containers/image cannot evaluate a reference with both a tag and a digest; use one")
    config = registries_d if registries_d is not None else load_registries_d(default_registries_d())
    # The scope depends only on the reference; resolve it first to know whether signatures matter at all.
    probe = subject_for(parsed, "sha256:" + "0" * 64, config)
    selection = cp.select(policy, probe)
    now = utcnow()
    scan = ScanOptions(now=now, registries_d=config, lookaside_timeout=registry_options.timeout)
    digest, signatures = asyncio.run(
        _resolve_and_discover(image, registry_options, scan, selection.needs_signatures())
    )
    subject = subject_for(parsed, digest, config)
    verdict = cp.evaluate(selection, subject, signatures, read_files(selection.paths()), now)
    if output == "json":
        data = {"policy": policy_path, **verdict.to_json()}
        click.echo(json.dumps(data, indent=2))
    else:
        _print(verdict, policy_path)
    if not verdict.accepted:
        # The `Rejected: <reason>` line (or the JSON) on stdout is the result; stderr is for errors.
        return EXIT_FAILED
    return EXIT_OK
