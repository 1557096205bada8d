"""`sigscope policy check|test|schema|import`: the policy document's face."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import ClassVar

import click
from rich.text import Text

from sigscope.cli.options import OUTPUT_BASIC, registry_options
from sigscope.cli.progress import stdout_console
from sigscope.errors import EXIT_ERROR, EXIT_FAILED, SigscopeError
from sigscope.oci.client import RegistryOptions
from sigscope.report.escape import printable


class _PolicyGroup(click.Group):
    """Verbs another module provides load only when they run (and the group works before they exist)."""

    lazy: ClassVar[dict[str, str]] = {"import": "sigscope.cli.policy_import:import_cmd"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = [name for name, target in self.lazy.items() if _importable(target)]
        return sorted({*super().list_commands(ctx), *available})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None or not _importable(target):
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


def _importable(target: str) -> bool:
    return importlib.util.find_spec(target.partition(":")[0]) is not None


@click.group("policy", cls=_PolicyGroup)
def policy_group() -> None:
    """One policy document for every face: which images must be signed by whom, and what must be attested.

    See docs/policy.md for the document; `policy schema` prints its JSON Schema.
    """


@policy_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check_cmd(file: str) -> None:
    """Validate FILE and the trust files it names: exit 0 when valid, 2 listing every problem (one a line,
    each naming its place in the document)."""
    from sigscope.policy import PolicyError, load_policy

    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for error in exc.errors:
            click.echo(printable(f"{file}: {error}"), err=True)
        sys.exit(EXIT_ERROR)
    rules = len(policy.rules)
    click.echo(printable(f"{file}: valid ({rules} rule{'s' * (rules != 1)}, version {policy.version})"))


@policy_group.command("schema")
def schema_cmd() -> None:
    """Print the policy document's JSON Schema (draft 2020-12)."""
    from sigscope.policy.schema import SCHEMA

    click.echo(json.dumps(SCHEMA, indent=2))


@policy_group.command("test")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option(
    "--policy", "policy_path", required=True, type=click.Path(dir_okay=False), help="The policy document."
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
def test_cmd(
    images: tuple[str, ...], policy_path: str, output: str, registry_options: RegistryOptions
) -> None:
    """Decide each IMAGE under the policy as admission would: allow, deny or warn, the rule, a one-line
    reason and each authority's result. Exempt, static and unmatched images are decided without contacting
    the registry. Exit 0 when every image is allowed (or warned), 1 when one is denied, 2 on usage or
    operational errors (an image that could not be read is reported and makes the exit code 2).

    \b
    Examples:
      sigscope policy test --policy policy.yaml 127.0.0.1:5000/prod/api:1.4 --insecure
      sigscope policy test --policy policy.yaml reg.example.com/prod/web:2 docker.io/library/redis:7 -o json
    """
    from sigscope.policy import load_policy
    from sigscope.policy.decide import decide
    from sigscope.policy.engine import Decision
    from sigscope.trust.certs import utcnow

    policy = load_policy(policy_path)
    for image in images:
        policy.match(
            image
        )  # an unparseable reference or an ambiguous match is a usage error, before any request
    now = utcnow()

    async def run() -> list[Decision | SigscopeError]:
        out: list[Decision | SigscopeError] = []
        for image in images:
            try:
                out.append(await decide(policy, image, registry_options, now=now))
            except SigscopeError as exc:
                out.append(exc)
        return out

    outcomes = asyncio.run(run())
    if output == "json":
        rows = [
            o.to_json() if isinstance(o, Decision) else {"image": image, "error": o.message}
            for image, o in zip(images, outcomes, strict=True)
        ]
        click.echo(
            json.dumps({"policy": policy_path, "policyVersion": policy.version, "decisions": rows}, indent=2)
        )
    else:
        _print(images, outcomes)
    if any(isinstance(o, SigscopeError) for o in outcomes):
        sys.exit(EXIT_ERROR)
    if any(isinstance(o, Decision) and not o.allowed for o in outcomes):
        sys.exit(EXIT_FAILED)


_STYLE = {"allow": "green", "warn": "yellow", "deny": "red"}


def _print(images: tuple[str, ...], outcomes: Sequence[object]) -> None:
    from sigscope.policy.engine import Decision

    console = stdout_console()
    counts: dict[str, int] = {}
    for image, outcome in zip(images, outcomes, strict=True):
        if not isinstance(outcome, Decision):
            assert isinstance(outcome, SigscopeError)
            counts["error"] = counts.get("error", 0) + 1
            console.print(Text.assemble(("error", "bold red"), "  ", printable(image)))
            console.print(f"  {printable(outcome.message)}", markup=False, highlight=False, soft_wrap=True)
            continue
        counts[outcome.decision] = counts.get(outcome.decision, 0) + 1
        style = _STYLE[outcome.decision]
        head = Text.assemble((outcome.decision, f"bold {style}"), "  ", (printable(image), "bold"))
        if outcome.digest:
            head.append(f" {printable(outcome.digest)}")
        console.print(head)
        console.print(f"  {printable(outcome.reason)}", markup=False, highlight=False, soft_wrap=True)
        for result in outcome.authorities:
            mark = "✓" if result.satisfied else "✗"
            line = f"  {mark} {result.name} ({result.kind}): {result.reason}"
            console.print(printable(line), markup=False, highlight=False, soft_wrap=True)
    order = ("allow", "warn", "deny", "error")
    words = {"allow": "allowed", "warn": "warned", "deny": "denied", "error": "not decided (error)"}
    summary = ", ".join(f"{counts[k]} {words[k]}" for k in order if counts.get(k))
    console.print(f"{len(images)} image{'s' * (len(images) != 1)}: {summary}", markup=False, highlight=False)
