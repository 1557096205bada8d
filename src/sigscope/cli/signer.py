"""`sigscope signer`: serve keys to signing clients (`serve`), check the service's audit log
(`audit-verify`), make bearer tokens (`token`) and install the Notation plugin (`install-notation-plugin`)."""

from __future__ import annotations

import json
import secrets

import click

from sigscope.cli.key import password_file_option, read_password
from sigscope.cli.options import role
from sigscope.errors import EXIT_FAILED, UsageError
from sigscope.report.escape import printable


@click.group("signer")
def signer_group() -> None:
    """A signing service that holds keys and signs digests, and the Notation plugin that speaks for it."""


@signer_group.command("serve")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="NAME=KEYSPEC",
    help="Serve KEYSPEC as NAME, repeatable: a private key file, or a pkcs11: URI (PIN: pin-source=file:).",
)
@click.option(
    "--cert",
    "certs",
    multiple=True,
    metavar="NAME=CHAIN.pem",
    help="PEM certificate chain (leaf first) handed out with key NAME, repeatable. A token key's own "
    "certificate leads without it; CHAIN may then hold intermediates…root.",
)
@password_file_option
@click.option(
    "--tls-cert", required=True, type=click.Path(dir_okay=False, exists=True), help="Server certificate."
)
@click.option("--tls-key", required=True, type=click.Path(dir_okay=False, exists=True), help="Its key.")
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, exists=True),
    help="Accept clients whose certificate chains to this CA (mutual TLS).",
)
@click.option(
    "--tokens",
    type=click.Path(dir_okay=False, exists=True),
    help="Accept bearer tokens: a file of `SHA256-HEX NAME` lines (`sigscope signer token`).",
)
@click.option(
    "--access",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML/JSON: key name → identities allowed (token:NAME, subject:DN, san:VALUE, *). "
    "Without it every authenticated client may use every key.",
)
@click.option("--rate", metavar="N/s", help="Requests per second allowed per client (429 beyond).")
@click.option(
    "--audit-log", type=click.Path(dir_okay=False), help="Append a hash-chained JSON line per request here."
)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8443, show_default=True, help="0: any free port."
)
def serve_cmd(
    keys: tuple[str, ...],
    certs: tuple[str, ...],
    password_file: str | None,
    tls_cert: str,
    tls_key: str,
    client_ca: str | None,
    tokens: str | None,
    access: str | None,
    rate: str | None,
    audit_log: str | None,
    address: str,
    port: int,
) -> None:
    """Serve signing keys over HTTPS: GET /v1/keys/NAME (public key, chain), POST /v1/keys/NAME/sign
    ({digest, algorithm} → signature). Clients authenticate with a certificate (--client-ca) or a bearer
    token (--tokens); one of them is required.

    \b
    Examples:
      sigscope signer serve --key release=release.key --tls-cert srv.crt --tls-key srv.key \\
          --client-ca clients-ca.pem --access access.yaml --rate 50/s --audit-log audit.jsonl
      sigscope sign reg.example.com/app:1.0 --key remote+https://signer:8443/release \\
          --signer-ca srv-ca.pem --signer-cert ci.crt --signer-key ci.key
    """
    from sigscope.keys.files import load_certificates_file, load_private_key_file
    from sigscope.keys.signer import SigningKey
    from sigscope.signerd.access import Access, RateLimiter, Tokens, parse_rate
    from sigscope.signerd.app import ServiceConfig
    from sigscope.signerd.audit import AuditLog
    from sigscope.signerd.serve import run
    from sigscope.signerd.served import open_served_key, split_pair

    if client_ca is None and tokens is None:
        raise UsageError("serve needs --client-ca or --tokens: the service never signs for anonymous clients")
    chains = dict(split_pair(item, "--cert") for item in certs)
    pairs = [split_pair(item, "--key") for item in keys]
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise UsageError("--key names a key twice")
    unknown = set(chains) - set(names)
    if unknown:
        raise UsageError(f"--cert {sorted(unknown)[0]}=… names no --key")

    def load_key(path: str) -> SigningKey:
        return load_private_key_file(
            path,
            lambda: read_password(password_file, new=False, purpose=f"private key {path}"),
            role("--key"),
        )

    served = {
        name: open_served_key(
            name,
            spec,
            load_key,
            load_certificates_file(chains[name], role("--cert")) if name in chains else (),
        )
        for name, spec in pairs
    }
    config = ServiceConfig(
        keys=served,
        tokens=Tokens.load(tokens) if tokens else None,
        access=Access.load(access, names) if access else Access(),
        audit=AuditLog(audit_log) if audit_log else None,
        rate=RateLimiter(parse_rate(rate)) if rate else None,
    )
    run(config, tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca, address=address, port=port)


@signer_group.command("audit-verify")
@click.argument("log", type=click.Path(dir_okay=False, exists=True))
@click.option("--head", metavar="SHA256", help="The last line's hash recorded elsewhere: must match.")
@click.option("-o", "--output", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True)
def audit_verify_cmd(log: str, head: str | None, output: str) -> None:
    """Check LOG's hash chain: exit 0 when intact, 1 naming the first broken line (edited, deleted,
    reordered, cut short). With --head, also that nothing was dropped from or changed at the end."""
    from pathlib import Path

    from sigscope.signerd.audit import verify

    try:
        data = Path(log).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read audit log {log}: {exc.strerror}") from None
    result = verify(data)
    line, problem = result.broken_line, result.problem
    if result.ok and head is not None and head.removeprefix("sha256:") != result.head:
        line, problem = result.lines, f"the last line's hash is sha256:{result.head}, not {head}"
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "ok": problem is None,
                    "lines": result.lines,
                    "head": f"sha256:{result.head}",
                    "brokenLine": line,
                    "problem": problem,
                }
            )
        )
    elif problem is None:
        click.echo(f"{log}: intact, {result.lines} line(s), head sha256:{result.head}")
    else:
        click.echo(printable(f"{log}: broken at line {line}: {problem}"))
    if problem is not None:
        raise SystemExit(EXIT_FAILED)


@signer_group.command("token")
@click.argument("name")
def token_cmd(name: str) -> None:
    """Make a bearer token for client NAME: the token goes to stdout (give it to the client), the line for
    the --tokens file to stderr."""
    from sigscope.signerd.access import token_digest

    if not name or any(c.isspace() for c in name) or len(name) > 128:
        raise UsageError("NAME must be 1-128 characters without spaces")
    token = secrets.token_urlsafe(32)
    click.echo(token)
    click.echo(f"{token_digest(token)} {name}", err=True)


@signer_group.command("install-notation-plugin")
@click.option(
    "--plugin-dir",
    type=click.Path(file_okay=False),
    help="notation's plugin directory (default: $XDG_CONFIG_HOME/notation/plugins).",
)
def install_notation_plugin_cmd(plugin_dir: str | None) -> None:
    """Write `notation-sigscope` into notation's plugin directory (PLUGINS/sigscope/notation-sigscope), so
    that `notation sign --plugin sigscope --id KEY` signs with any sigscope key."""
    from sigscope.notation_plugin.install import install

    click.echo(printable(str(install(plugin_dir))))
