"""`sigscope ls`: repositories of a registry, and with --tags their tags and digests."""

from __future__ import annotations

import asyncio
import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sigscope.cli.options import OUTPUT_BASIC, registry_options
from sigscope.cli.progress import Tracker, stdout_console, tracker, waiting
from sigscope.errors import SigscopeError
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.layout import OCILayout
from sigscope.oci.paging import PaginationError
from sigscope.oci.reference import name_problem, parse_image, parse_registry_target
from sigscope.oci.store import Repository
from sigscope.report.cells import DigestCell, Fit, FullOrShort, cell


@dataclass
class TagEntry:
    tag: str
    digest: str | None = None
    media_type: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tag": self.tag, "digest": self.digest, "mediaType": self.media_type}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class RepoEntry:
    name: str
    tags: list[TagEntry] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.tags is not None:
            out["tags"] = [t.to_json() for t in self.tags]
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Listing:
    source: str
    namespace: str
    repositories: list[RepoEntry] = field(default_factory=list)
    error: str | None = None  # the catalog itself stopped early (its pages looped or did not end)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "registry": self.source,
            "namespace": self.namespace,
            "repositories": [r.to_json() for r in self.repositories],
        }
        if self.error:
            out["error"] = self.error
        return out


async def _fill_tags(repo: Repository, entry: RepoEntry, progress: Tracker, *, check_names: bool) -> None:
    # One repository's failure is data, not the end of the listing.
    try:
        names = sorted(await repo.list_tags())
    except SigscopeError as exc:
        entry.error = exc.message
        progress.advance()
        return
    entry.tags = [TagEntry(t) for t in names]
    progress.add_total(len(names))
    progress.advance()

    async def resolve(tag: TagEntry) -> None:
        if check_names and (problem := name_problem("tag", tag.tag)):
            # A tag becomes a URL path: one the grammar refuses is reported and never requested.
            tag.error = f"not a valid tag ({problem}); not requested"
            progress.advance()
            return
        try:
            descriptor = await repo.resolve(tag.tag)
            tag.digest, tag.media_type = descriptor.digest, descriptor.media_type
        except SigscopeError as exc:
            tag.error = exc.message
        progress.advance()

    await asyncio.gather(*(resolve(t) for t in entry.tags))


async def list_registry(
    registry: str, namespace: str, options: RegistryOptions, with_tags: bool, progress: Tracker
) -> Listing:
    listing = Listing(registry, namespace)
    prefix = namespace.rstrip("/") + "/"
    names: list[str] = []
    async with RegistryClient(registry, options) as client:
        try:
            async for page in client.catalog_pages():  # each name once
                names.extend(n for n in page if not namespace or n == namespace or n.startswith(prefix))
        except PaginationError as exc:
            listing.error = exc.message  # what the pages read named is still listed
        listing.repositories = [RepoEntry(n) for n in sorted(names)]
        for entry in listing.repositories:
            if problem := name_problem("repository", entry.name):
                entry.error = f"not a valid repository name ({problem}); not requested"
        if with_tags:
            valid = [r for r in listing.repositories if r.error is None]
            progress.add_total(len(valid))
            await asyncio.gather(
                *(_fill_tags(client.repository(r.name), r, progress, check_names=True) for r in valid)
            )
    return listing


async def list_layout(path: str, progress: Tracker) -> Listing:
    layout = OCILayout(path)
    entry = RepoEntry(layout.display)
    listing = Listing(layout.display, "", [entry])
    progress.add_total(1)
    await _fill_tags(layout, entry, progress, check_names=False)
    return listing


def _print_pretty(listing: Listing, with_tags: bool) -> None:
    """Names are cut in their middle and digests shortened rather than folded when the console is narrow."""
    console = stdout_console()
    if not with_tags:
        table = Table(
            title=cell(f"{len(listing.repositories)} repositories on {listing.source}"), title_justify="left"
        )
        table.add_column("Repository")
        for repo in listing.repositories:
            if repo.error:
                table.add_row(cell(f"{repo.name}  error: {repo.error}", style="red"))
            else:
                table.add_row(Fit(repo.name))
        console.print(table)
        _print_error(console, listing)
        return
    table = Table(title=cell(listing.source), title_justify="left")
    table.add_column("Repository")
    table.add_column("Tag")
    table.add_column("Digest")
    table.add_column("Media type")
    for repo in listing.repositories:
        if repo.error:
            table.add_row(Fit(repo.name), "", cell(f"error: {repo.error}", style="red"), "")
        for tag in repo.tags or []:
            if tag.error:
                table.add_row(Fit(repo.name), Fit(tag.tag), cell(f"error: {tag.error}", style="red"), "")
            else:
                media = FullOrShort(tag.media_type or "", mediatypes.short_name(tag.media_type or ""))
                table.add_row(Fit(repo.name), Fit(tag.tag), DigestCell(tag.digest or ""), media)
    console.print(table)
    _print_error(console, listing)


def _print_error(console: Console, listing: Listing) -> None:
    if listing.error:
        console.print(cell(f"error: {listing.error}", style="red"))


@click.command("ls")
@click.argument("target", metavar="REGISTRY[/NAMESPACE] | oci:PATH")
@click.option(
    "--tags", "with_tags", is_flag=True, help="Also list each repository's tags with their digests."
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@registry_options
def ls_cmd(target: str, with_tags: bool, output: str, registry_options: RegistryOptions) -> None:
    """List repositories of a registry (a catalog), or the tags of an OCI layout.

    \b
    Examples:
      sigscope ls 127.0.0.1:5000 --insecure
      sigscope ls registry.example.com/team --tags -o json
      sigscope ls oci:./layout
    """
    if target.startswith("oci:"):
        parsed = parse_image(target)
        with tracker("Resolving tags", enabled=True) as progress:
            listing = asyncio.run(list_layout(getattr(parsed, "path", target[4:]), progress))
        with_tags = True
    else:
        registry, namespace = parse_registry_target(target)
        # --tags counts on a bar; a bare catalog has nothing to count, only a wait to show.
        with (
            tracker("Listing tags", enabled=with_tags) as progress,
            nullcontext() if with_tags else waiting(f"Listing {registry}"),
        ):
            listing = asyncio.run(list_registry(registry, namespace, registry_options, with_tags, progress))
    if output == "json":
        click.echo(json.dumps(listing.to_json(), indent=2))
    else:
        _print_pretty(listing, with_tags)
