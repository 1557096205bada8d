"""`sigscope policy import FILE`: a policy-controller or Kyverno policy as a sigscope policy document.

The face around sigscope.policy.imports: reads the file (bounded), writes the document to stdout or
--output-file, and lists on stderr every field that has no equivalent (or, with --allow-partial, what was
dropped). Loaded lazily by the `policy` group as `sigscope.cli.policy_import:import_cmd`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sigscope.errors import UsageError, os_problem
from sigscope.policy.imports import MAX_POLICY_BYTES, ImportOptions, PolicyImportError, import_policy, render
from sigscope.report.escape import printable


def _read(path: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_POLICY_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {os_problem(exc)}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise UsageError(f"{path}: larger than {MAX_POLICY_BYTES // 1024} KiB, not a policy")
    return data


def _trusted_root(path: str | None, output_file: str | None) -> str | None:
    """The trustedRoot path as the document must say it: relative paths resolve against the policy file."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file (--trusted-root takes a Sigstore trusted_root.json)")
    if output_file is None or os.path.isabs(path):
        return path
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(output_file)))


def _say(kind: str, lines: list[str]) -> None:
    for line in lines:
        click.echo(printable(f"sigscope: {kind}: {line}"), err=True)


@click.command("import")
@click.argument("file", metavar="FILE")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--output-file", metavar="PATH", help="Write the document here instead of stdout.")
@click.option(
    "--trusted-root",
    metavar="FILE",
    help="Sigstore trusted_root.json for keyless authorities (the peers fetch theirs; a document names one).",
)
@click.option(
    "--no-match",
    type=click.Choice(["deny", "allow"]),
    default="deny",
    show_default=True,
    help="policy-controller's no-match-policy: what happens to images no policy matches (Kyverno: allow).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Drop every rule with a part that has no equivalent (each listed on stderr) instead of failing.",
)
def import_cmd(
    file: str,
    output: str,
    output_file: str | None,
    trusted_root: str | None,
    no_match: str,
    allow_partial: bool,
) -> None:
    """Print the sigscope policy equivalent to a policy-controller ClusterImagePolicy or a Kyverno
    ClusterPolicy with verifyImages (FILE: YAML or JSON, several documents allowed; `-` reads stdin).

    Every field with no sigscope equivalent is listed with its path, and the exit code is 2.

    \b
    Examples:
      sigscope policy import cip.yaml --trusted-root trusted_root.json --output-file policy.yaml
      kubectl get clusterpolicy verify-images -o yaml | sigscope policy import - -o json
    """
    options = ImportOptions(
        trusted_root=_trusted_root(trusted_root, output_file), no_match=no_match, allow_partial=allow_partial
    )
    try:
        result = import_policy(_read(file), options)
    except PolicyImportError as exc:
        _say("error", exc.errors)
        raise
    _say("warning", [f"dropped: {line}" for line in result.warnings])
    text = render(result.document, output)
    if output_file is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output_file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{output_file}: {os_problem(exc)}") from None
