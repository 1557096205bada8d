"""Entry point: one `sigscope` command with verbs, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys

import click

from sigscope import __version__
from sigscope.cli.inspect import inspect_cmd
from sigscope.cli.ls import ls_cmd
from sigscope.cli.scan import scan_group
from sigscope.errors import EXIT_ERROR, SigscopeError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="sigscope")
def cli() -> None:
    """See, verify and enforce who signed what: images in registries, OCI layouts and signed files.

    IMAGE is a registry reference (host/repo:tag, repo@sha256:…) or an OCI layout, oci:PATH[:TAG|@DIGEST].
    Exit codes: 0 ok, 1 a verification failed or --fail-on matched, 2 usage or operational error.
    """


cli.add_command(ls_cmd)
cli.add_command(inspect_cmd)
cli.add_command(scan_group)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure is one line on stderr and an exit code, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="sigscope", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("sigscope: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SigscopeError as exc:
        click.echo(f"sigscope: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("sigscope: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing left to say.
        os._exit(0)
    except Exception as exc:
        if os.environ.get("SIGSCOPE_DEBUG"):
            raise
        click.echo(
            f"sigscope: internal error: {type(exc).__name__}: {exc} (set SIGSCOPE_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
