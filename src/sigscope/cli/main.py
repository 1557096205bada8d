"""Entry point: one `sigscope` command with verbs, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import ClassVar

import click

from sigscope import __version__
from sigscope.errors import EXIT_ERROR, SigscopeError
from sigscope.report.escape import printable


class LazyGroup(click.Group):
    """Imports a verb's module only when that verb runs: `--version` and `--help` stay instant,
    and a scan does not pay for modules it never uses."""

    lazy: ClassVar[dict[str, str]] = {
        "ls": "sigscope.cli.ls:ls_cmd",
        "inspect": "sigscope.cli.inspect:inspect_cmd",
        "scan": "sigscope.cli.scan:scan_group",
        "key": "sigscope.cli.key:key_group",
        "sign": "sigscope.cli.sign:sign_cmd",
        "verify": "sigscope.cli.verify:verify_cmd",
        "attest": "sigscope.cli.attest:attest_cmd",
        "verify-attestation": "sigscope.cli.attest:verify_attestation_cmd",
        "cert": "sigscope.cli.cert:cert_group",
        # issue 17: push events into the inventory, and reports from its history
        "inventory": "sigscope.cli.inventory:inventory_group",
        "report": "sigscope.cli.report:report_group",
        "signer": "sigscope.cli.signer:signer_group",
        "webhook": "sigscope.cli.webhook:webhook_group",
        "policy": "sigscope.cli.policy:policy_group",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="sigscope")
def cli() -> None:
    """See, verify and enforce who signed what: images in registries, OCI layouts and signed files.

    IMAGE is a registry reference (host/repo:tag, repo@sha256:…) or an OCI layout, oci:PATH[:TAG|@DIGEST].
    Exit codes: 0 ok, 1 a verification failed or --fail-on matched, 2 usage or operational error.
    """


def quiet_library_deprecations() -> None:
    """cryptography warns when DSA (or another algorithm it plans to drop) is merely named, and sigscope names
    DSA to read old APK, JAR and OpenPGP signatures; those lines say nothing to a user. Only that category is
    silenced (and inherited by forked scan workers); other warnings still show."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure is one line on stderr and an exit code, never a traceback."""
    quiet_library_deprecations()
    try:
        code = cli.main(args=argv, prog_name="sigscope", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("sigscope: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SigscopeError as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        click.echo(printable(f"sigscope: error: {exc.message}{hint}"), err=True)
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
            printable(f"sigscope: internal error: {type(exc).__name__}: {exc}")
            + " (set SIGSCOPE_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
