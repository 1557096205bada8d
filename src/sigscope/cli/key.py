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
from sigscope.report.escape import printable

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


def prompt_pin() -> str | None:
    """A token PIN typed on a terminal (hidden), or None off a terminal: the PKCS#11 layer then says how
    to give one. Never echoed, never logged."""
    if not sys.stdin.isatty():
        return None
    return str(click.prompt("Enter PKCS#11 token PIN", hide_input=True, err=True))


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


FILE_KINDS = ("ecdsa-p256", "ecdsa-p384", "rsa-3072", "rsa-4096", "ed25519")
# The token kinds' names (keys/pkcs11.py), and the file kinds' names for the same keys.
TOKEN_ALIASES = {"ecdsa-p256": "ec-p256", "ecdsa-p384": "ec-p384"}


@key_group.command("generate")
@click.option(
    "--type",
    "kind",
    type=click.Choice([*FILE_KINDS, "ec-p256", "ec-p384", "rsa-2048"]),
    help="Key algorithm (default ecdsa-p256). With --pkcs11: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096.",
)
@click.option("--output-prefix", help="Write PREFIX.key and PREFIX.pub (default: cosign). Not with --pkcs11.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option(
    "--pkcs11",
    "pkcs11_uri",
    metavar="URI",
    help="Generate ON the token this PKCS#11 URI names (object= is the new key's label, id= its id, else a "
    "random one): sensitive, never extractable; nothing is written to disk.",
)
@password_file_option
def generate_cmd(
    kind: str | None,
    output_prefix: str | None,
    force: bool,
    pkcs11_uri: str | None,
    password_file: str | None,
) -> None:
    """Generate a key pair in cosign's format, or on a PKCS#11 token with --pkcs11.

    \b
    Examples:
      sigscope key generate
      SIGSCOPE_PASSWORD=… sigscope key generate --type ed25519 --output-prefix release
      sigscope key generate --type ec-p384 \\
          --pkcs11 'pkcs11:token=ci;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=pin'
    """
    if pkcs11_uri is not None:
        if output_prefix is not None or force or password_file is not None:
            raise UsageError("--output-prefix, --force and --password-file are for key files, not --pkcs11")
        _generate_on_token(pkcs11_uri, TOKEN_ALIASES.get(kind or "", kind or "ec-p256"))
        return
    from sigscope.keys import generate

    kind = {v: k for k, v in TOKEN_ALIASES.items()}.get(kind or "", kind or "ecdsa-p256")
    if kind not in FILE_KINDS:
        raise UsageError(
            f"--type {kind} is made on a token only (--pkcs11); key files: {', '.join(FILE_KINDS)}"
        )
    _write_pair(output_prefix or "cosign", generate(kind), password_file, force)


def _generate_on_token(uri: str, kind: str) -> None:
    from sigscope.keys.pkcs11 import generate_on_token
    from sigscope.keys.pkcs11_uri import SCHEME

    parsed, token, key_id = generate_on_token(uri, kind, prompt_pin)
    click.echo(
        printable(f"Generated {kind} key {parsed.object} (id {key_id.hex()}) on PKCS#11 token {token.label}"),
        err=True,
    )
    # Printed for `--key`: the id pins the new key even if another gets the same label later.
    selector = f"token={parsed.token};" if parsed.token else ""
    escaped_id = "".join(f"%{b:02x}" for b in key_id)
    click.echo(printable(f"  {SCHEME}{selector}object={parsed.object};id={escaped_id}"), err=True)


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
@click.argument("key", metavar="KEY")
@password_file_option
@click.option(
    "--output-file", type=click.Path(dir_okay=False), help="Write the PEM public key here, not to stdout."
)
@click.option(
    "--certificate-file",
    type=click.Path(dir_okay=False),
    help="PKCS#11: write the certificate the token keeps beside the key (PEM) here.",
)
def public_cmd(
    key: str, password_file: str | None, output_file: str | None, certificate_file: str | None
) -> None:
    """Print the PEM PUBLIC KEY of a private key file (decrypting it if needed) or of a key on a PKCS#11
    token (KEY is a pkcs11: URI; no PIN needed when the token keeps the public key as a public object).

    \b
    Examples:
      sigscope key public cosign.key > cosign.pub
      sigscope key public 'pkcs11:token=ci;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so' \\
          --output-file release.pub --certificate-file release.crt
    """
    from cryptography.hazmat.primitives import serialization

    from sigscope.keys.pkcs11_uri import is_pkcs11_uri

    certificate = None
    if is_pkcs11_uri(key):
        if password_file is not None:
            raise UsageError(
                "--password-file is for key files; a token's PIN comes from the URI's pin-source"
            )
        from sigscope.keys.pkcs11 import public_material

        public, certificate = public_material(key, prompt_pin)
    else:
        if certificate_file is not None:
            raise UsageError("--certificate-file is for keys on a PKCS#11 token")
        public = _load(key, password_file).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _emit(pem, output_file, "public key")
    if certificate is not None:
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        if certificate_file is not None:
            _emit(cert_pem, certificate_file, "certificate")
        else:
            click.echo(
                "sigscope: the token keeps a certificate for this key (--certificate-file FILE)", err=True
            )
    elif certificate_file is not None:
        raise UsageError("the token keeps no certificate beside this key")


def _emit(data: bytes, path: str | None, what: str) -> None:
    if path is None:
        click.echo(data.decode(), nl=False)
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from None


@key_group.command("list")
@click.option(
    "--pkcs11-module",
    "module",
    required=True,
    metavar="PATH",
    help="PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.",
)
@click.option("--token", "token_label", metavar="LABEL", help="Only the token with this label.")
@click.option(
    "--pin-source",
    type=click.Path(dir_okay=False),
    help="File whose first line is the user PIN (else $SIGSCOPE_PKCS11_PIN). Without a PIN, tokens that need "
    "a login show their public keys only.",
)
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
def list_cmd(module: str, token_label: str | None, pin_source: str | None, output: str) -> None:
    """List the tokens of a PKCS#11 module and the keys on them: label, id, type, size, and whether a
    certificate sits beside the key.

    \b
    Examples:
      sigscope key list --pkcs11-module /usr/lib/softhsm/libsofthsm2.so
      sigscope key list --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --token ci --pin-source pin -o json
    """
    from sigscope.keys.pkcs11 import list_tokens

    found = list_tokens(module, token_label, pin_source)
    if output == "json":
        tokens = [{**info.to_json(), "keys": [k.to_json() for k in keys]} for info, keys in found]
        click.echo(json.dumps({"module": module, "tokens": tokens}, indent=2))
        return
    if not found:
        click.echo(printable(f"{module}: no token present"))
    for info, keys in found:
        state = [] if info.initialized else ["not initialized"]
        state += ["PIN locked"] if info.pin_locked else []
        suffix = f"  [{', '.join(state)}]" if state else ""
        click.echo(
            printable(
                f"Token {info.label or '(no label)'}  slot {info.slot_id}, {info.manufacturer} {info.model}, "
                f"serial {info.serial or '-'}{suffix}"
            )
        )
        if not info.initialized:
            continue
        if not keys:
            click.echo("  (no keys)")
            continue
        rows = [("LABEL", "ID", "TYPE", "SIZE", "PRIVATE", "CERTIFICATE")]
        for k in keys:
            kind = f"{k.key_type} {k.curve}" if k.curve else k.key_type
            rows.append(
                (k.label, k.id.hex() or "-", kind, str(k.size or "-"), _yes(k.private), _yes(k.certificate))
            )
        widths = [max(len(printable(r[i])) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            click.echo(
                "  " + "  ".join(printable(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


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
