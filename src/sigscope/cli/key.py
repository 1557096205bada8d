"""`sigscope key`: make, import and look at cosign key pairs (`cosign.key` / `cosign.pub`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from sigscope.cli.options import OUTPUT_BASIC, role
from sigscope.errors import UsageError

PASSWORD_ENV = ("SIGSCOPE_PASSWORD", "COSIGN_PASSWORD")

password_file_option = click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="Read the key password from this file (first line). Otherwise $SIGSCOPE_PASSWORD, then "
    "$COSIGN_PASSWORD, then a prompt on a terminal.",
)


def read_password(password_file: str | None, *, new: bool, purpose: str) -> bytes:
    """The key password: --password-file, $SIGSCOPE_PASSWORD, $COSIGN_PASSWORD, or a hidden prompt
    (confirmed when `new`) on a terminal; otherwise a usage error saying how to give one."""
    if password_file is not None:
        try:
            raw = Path(password_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read password file {password_file}: {exc.strerror}") from None
        return raw.split(b"\n", 1)[0].removesuffix(b"\r")
    for name in PASSWORD_ENV:
        if name in os.environ:
            return os.environ[name].encode()
    if sys.stdin.isatty():
        value = click.prompt(
            f"Enter password for {purpose}",
            hide_input=True,
            confirmation_prompt="Enter password again" if new else False,
            default="",
            show_default=False,
            err=True,
        )
        return str(value).encode()
    raise UsageError(
        f"a password is needed for {purpose}: use --password-file FILE, set SIGSCOPE_PASSWORD "
        "(or COSIGN_PASSWORD; empty is allowed), or run on a terminal to be prompted"
    )


def _load(path: str, password_file: str | None) -> Any:
    """Load a private key file (decrypting with a password from the usual sources if needed)."""
    from sigscope.keys.files import load_private_key_file

    return load_private_key_file(
        path,
        lambda: read_password(password_file, new=False, purpose=f"private key {path}"),
        role(),
    )


def _write_pair(prefix: str, key: Any, password_file: str | None, force: bool) -> None:
    from sigscope.keys import KeyFileExistsError, key_pair_paths, write_key_pair
    from sigscope.keys.cosign_keys import exists_message

    private_path, public_path = key_pair_paths(prefix)
    if not force:
        # Check before prompting, so nobody types a password twice for nothing.
        existing = [str(p) for p in (private_path, public_path) if p.exists() or p.is_symlink()]
        if existing:
            raise KeyFileExistsError(exists_message(existing))
    password = read_password(password_file, new=True, purpose=f"new private key {private_path}")
    written = write_key_pair(prefix, key, password, force=force)
    click.echo(f"Private key written to {written[0]}", err=True)
    click.echo(f"Public key written to {written[1]}", err=True)


@click.group("key")
def key_group() -> None:
    """Make, import and inspect cosign key pairs (PREFIX.key encrypted, PREFIX.pub).

    Passwords come from --password-file, $SIGSCOPE_PASSWORD, $COSIGN_PASSWORD, or a prompt on a terminal.
    """


@key_group.command("generate")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["ecdsa-p256", "ecdsa-p384", "rsa-3072", "rsa-4096", "ed25519"]),
    default="ecdsa-p256",
    show_default=True,
    help="Key algorithm.",
)
@click.option("--output-prefix", default="cosign", show_default=True, help="Write PREFIX.key and PREFIX.pub.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@password_file_option
def generate_cmd(kind: str, output_prefix: str, force: bool, password_file: str | None) -> None:
    """Generate a key pair in cosign's format.

    \b
    Examples:
      sigscope key generate
      SIGSCOPE_PASSWORD=… sigscope key generate --type ed25519 --output-prefix release
    """
    from sigscope.keys import generate

    _write_pair(output_prefix, generate(kind), password_file, force)


@key_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--output-prefix", default="import-cosign", show_default=True, help="Write PREFIX.key and PREFIX.pub."
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@password_file_option
def import_cmd(file: str, output_prefix: str, force: bool, password_file: str | None) -> None:
    """Encrypt a plain PEM private key (PKCS#8, SEC1 EC or PKCS#1 RSA) into cosign's format."""
    from sigscope.errors import KeyFileError
    from sigscope.keys.files import PRIVATE_KEY, describe, load_private_key_file, read_file

    if describe(read_file(file, PRIVATE_KEY)) == "an encrypted private key":
        raise KeyFileError(file, "an encrypted private key", expected="a plain PEM private key", role=role())
    key = load_private_key_file(file, role=role())
    _write_pair(output_prefix, key, password_file, force)


@key_group.command("public")
@click.argument("file", type=click.Path(dir_okay=False))
@password_file_option
def public_cmd(file: str, password_file: str | None) -> None:
    """Print the PEM PUBLIC KEY of a private key file (decrypting it if needed)."""
    from sigscope.keys import public_pem

    click.echo(public_pem(_load(file, password_file)).decode(), nl=False)


def _inspect(file: str, password_file: str | None) -> dict[str, Any]:
    from sigscope.errors import KeyFileError
    from sigscope.keys import KeyFormatError, algorithm_name, read_pem
    from sigscope.keys.cosign_keys import envelope_kdf
    from sigscope.keys.files import PUBLIC_KEY, describe, load_public_key_file, read_file
    from sigscope.trust import certs

    data = read_file(file, "a key")
    out: dict[str, Any] = {"file": file}
    if describe(data) == PUBLIC_KEY:
        public: Any = load_public_key_file(file, role())
        out.update({"kind": "public", "format": "pkix", "encrypted": False})
    else:
        if "private key" not in describe(data):
            raise KeyFileError(file, describe(data), expected="a public or private key", role=role())
        try:
            pem = read_pem(data)
            out.update({"kind": "private", "format": pem.format, "pemType": pem.label})
            out["encrypted"] = pem.encrypted
            if pem.encrypted:
                out["kdf"] = envelope_kdf(pem.body).to_json()
                out["cipher"] = "nacl/secretbox"
        except KeyFormatError as exc:
            raise KeyFileError(file, exc.message) from None
        public = _load(file, password_file).public_key()
    out.update(certs.public_key_info(public).to_json())
    try:
        out["algorithm"] = algorithm_name(public)
    except KeyFormatError as exc:
        out["algorithm"] = None
        out["problem"] = exc.message
    return out


@key_group.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
@password_file_option
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
def inspect_cmd(file: str, password_file: str | None, output: str) -> None:
    """Show a key file's type, size, curve and SHA-256 SPKI fingerprint (as `scan --key` reports it).

    Works on cosign private keys (needs the password), plain PEM private keys and PEM public keys.
    """
    info = _inspect(file, password_file)
    if output == "json":
        click.echo(json.dumps(info, indent=2))
        return
    labels = {
        "file": "File",
        "kind": "Kind",
        "format": "Format",
        "pemType": "PEM type",
        "encrypted": "Encrypted",
        "keyType": "Key type",
        "keySize": "Key size",
        "curve": "Curve",
        "algorithm": "Algorithm",
        "sha256": "Fingerprint",
        "problem": "Problem",
    }
    for field, label in labels.items():
        if field not in info or info[field] is None:
            continue
        value = info[field]
        if field == "encrypted":
            value = "yes" if value else "no"
            if info.get("kdf"):
                kdf = info["kdf"]
                value += f" (scrypt N={kdf['N']} r={kdf['r']} p={kdf['p']}, {info['cipher']})"
        elif field == "sha256":
            value = f"sha256:{value}"
        click.echo(f"{label + ':':<13}{value}")
