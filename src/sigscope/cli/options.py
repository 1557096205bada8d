"""Flags shared by every command that talks to a registry."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sigscope.errors import UsageError
from sigscope.oci.client import RegistryOptions
from sigscope.oci.paging import DEFAULT_MAX_PAGES

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from sigscope.sources.lookaside import RegistriesD
    from sigscope.trust.identity import CertificateTrust
    from sigscope.trust.notation_policy import NotationTrust
    from sigscope.trust.pgp import Keyring
    from sigscope.trust.timestamp import TimestampTrust

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_BASIC = click.Choice(["pretty", "json"])

_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "kb": 1000,
    "mib": 1 << 20,
    "mb": 1000**2,
    "gib": 1 << 30,
    "gb": 1000**3,
}


def byte_size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A size such as 4MiB, 512KiB, 1GiB or 1048576 (bytes), as a click callback."""
    text = value.strip().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = text[len(number) :].lower()
    if not number.isdigit() or unit not in _UNITS or int(number) * _UNITS[unit] < 1:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 4MiB, 512KiB, 1GiB, or bytes)")
    return int(number) * _UNITS[unit]


def role(flag: str | None = None) -> str:
    """`--key for verify` (or `sigscope key public` for an argument): the slot a file was given to, as
    keys.files' messages name it. The library speaks of things; the flag and the verb are the CLI's."""
    ctx = click.get_current_context(silent=True)
    path = ctx.command_path if ctx is not None else "sigscope"
    if flag is None:
        return path
    verb = path.partition(" ")[2]
    return f"{flag} for {verb}" if verb else flag


def registry_options(func: F) -> F:
    """Add the registry connection flags; the command receives `registry_options: RegistryOptions`."""

    @click.option("--insecure", is_flag=True, help="Use plain HTTP for this registry (as sigscan).")
    @click.option("--skip-tls-verify", is_flag=True, help="Use TLS but do not verify the certificate.")
    @click.option(
        "--ca-file", type=click.Path(dir_okay=False), help="Trust only this CA bundle (PEM) for TLS."
    )
    @click.option(
        "-u", "--username", help="Registry user name (default: credentials from docker config.json)."
    )
    @click.option("-p", "--password", help="Registry password; prefer --password-stdin.")
    @click.option("--password-stdin", is_flag=True, help="Read the registry password from standard input.")
    @click.option(
        "--authfile",
        type=click.Path(dir_okay=False),
        help="Credentials file, docker config.json format (default: $REGISTRY_AUTH_FILE, docker config).",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        help="Deadline of each request to the registry, from connecting to the last byte of the body; "
        "bearer-token requests, GPG lookaside reads and (when signing) the timestamp request get the same. "
        "A request that runs out of time fails at once, without a retry.",
    )
    @click.option(
        "--max-concurrency",
        type=click.IntRange(min=1, max=512),
        default=32,
        show_default=True,
        help="Requests in flight per registry.",
    )
    @click.option(
        "--max-blob-size",
        callback=byte_size,
        default="4MiB",
        metavar="SIZE",
        show_default=True,
        help="Largest signature payload, envelope, bundle or config read into memory; a layer claiming more "
        "is an error for its image, not read. Raise it for large attestations (SBOMs).",
    )
    @click.option(
        "--max-pages",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PAGES,
        show_default=True,
        help="Pages read of one catalog, tag list or referrers listing; a listing that goes on is an error "
        "(as is one whose links repeat a page or add nothing).",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        max_blob_size: int,
        max_pages: int,
        insecure: bool,
        skip_tls_verify: bool,
        ca_file: str | None,
        username: str | None,
        password: str | None,
        password_stdin: bool,
        authfile: str | None,
        timeout: float,
        max_concurrency: int,
        **kwargs: Any,
    ) -> Any:
        if insecure and (skip_tls_verify or ca_file):
            raise UsageError("--insecure (plain HTTP) cannot be combined with --skip-tls-verify or --ca-file")
        if password_stdin:
            if password is not None:
                raise UsageError("--password and --password-stdin are mutually exclusive")
            password = sys.stdin.readline().rstrip("\r\n")
        if password is not None and username is None:
            raise UsageError("a password needs --username")
        if ca_file is not None:
            from sigscope.keys.files import load_certificates_file

            # Read here, so a wrong file is named in sigscope's words before any connection is tried.
            load_certificates_file(ca_file, role("--ca-file"))
        kwargs["registry_options"] = RegistryOptions(
            insecure=insecure,
            skip_tls_verify=skip_tls_verify,
            ca_file=ca_file,
            username=username,
            password=password,
            auth_files=[Path(authfile)] if authfile else None,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_blob_size=max_blob_size,
            max_pages=max_pages,
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class TrustMaterial:
    """What `--registries.d`, `--key` and `--gpg-keyring` name, read and checked once."""

    registries_d: RegistriesD | None
    keys: list[PublicKeyTypes]
    gpg_keyring: Keyring | None
    # --ca-roots / --trusted-root with the --certificate-* identity policy
    certificates: CertificateTrust | None = None
    # --notation-config / --trust-policy + --trust-store: notation's trust policy and trust store
    notation: NotationTrust | None = None
    # --timestamp-certificate-chain: TSA roots (RFC 3161); they vouch for times, never for signers
    timestamps: TimestampTrust | None = None

    @property
    def empty(self) -> bool:
        return (
            not self.keys and self.gpg_keyring is None and self.certificates is None and self.notation is None
        )


def load_keys(paths: tuple[str, ...]) -> list[PublicKeyTypes]:
    """Read `--key` files (PEM public keys); a bad one is a usage error naming the file (keys.files)."""
    from sigscope.keys.files import load_public_key_file

    return [load_public_key_file(path, role("--key")) for path in paths]


def load_gpg_keyrings(paths: tuple[str, ...]) -> Keyring | None:
    """Read `--gpg-keyring` files into one keyring; a bad file is a usage error naming it."""
    if not paths:
        return None
    from sigscope.keys.files import read_keyring_file
    from sigscope.trust.pgp import KeyringError, load_keyrings

    blobs = [read_keyring_file(path, role("--gpg-keyring")) for path in paths]
    try:
        keyring = load_keyrings(blobs)
    except KeyringError as exc:
        where = paths[exc.index] if exc.index is not None else ", ".join(paths)
        raise UsageError(f"keyring {where}: {exc.message}") from None
    for skipped in keyring.skipped:
        click.echo(f"sigscope: --gpg-keyring: left out {skipped}", err=True)
    return keyring


def _read_certificates(path: str, flag: str) -> list[Any]:
    from sigscope.keys.files import load_certificates_file

    return load_certificates_file(path, role(flag))


def load_certificate_trust(
    *,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    issuer_regexp: str | None,
    ca_roots: tuple[str, ...],
    ca_intermediates: tuple[str, ...],
    trusted_root: str | None,
    root_flags: tuple[str, ...] = ("--ca-roots", "--trusted-root"),
) -> CertificateTrust | None:
    """The certificate flags as one policy; like cosign, roots without an identity are refused.
    `root_flags` names the root flags the command has, for the usage errors."""
    from sigscope.trust.identity import CertificateTrust, IdentityPolicy, PolicyError

    anchors = bool(ca_roots or trusted_root)
    asked = any(v is not None for v in (identity, identity_regexp, issuer, issuer_regexp))
    if not anchors and not asked and not ca_intermediates:
        return None
    if not anchors:
        raise UsageError(f"--certificate-identity/--certificate-oidc-issuer need {' or '.join(root_flags)}")
    if identity is None and identity_regexp is None:
        one = len(root_flags) == 1
        raise UsageError(
            f"{'/'.join(root_flags)} need{'s' if one else ''} --certificate-identity or "
            "--certificate-identity-regexp (use --certificate-identity-regexp '.*' to accept any signer "
            f"under {'this root' if one else 'these roots'})"
        )
    try:
        policy = IdentityPolicy.build(identity, identity_regexp, issuer, issuer_regexp)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    roots = [c for path in ca_roots for c in _read_certificates(path, "--ca-roots")]
    intermediates = [c for path in ca_intermediates for c in _read_certificates(path, "--ca-intermediates")]
    sigstore = None
    if trusted_root is not None:
        from sigscope.keys.files import read_trusted_root_file
        from sigscope.trust.sigstore_offline import load_trusted_root

        sigstore = load_trusted_root(
            read_trusted_root_file(trusted_root, role("--trusted-root")), trusted_root
        )
    return CertificateTrust(
        policy=policy, roots=tuple(roots), intermediates=tuple(intermediates), sigstore=sigstore
    )


def certificate_options(func: F) -> F:
    """The cosign certificate flags; the command receives `certificates: CertificateTrust | None`."""

    @click.option(
        "--certificate-identity",
        metavar="SAN",
        help="Certificate signatures count only when a SAN (e-mail, URI, otherName) equals this.",
    )
    @click.option(
        "--certificate-identity-regexp",
        metavar="RE",
        help="As --certificate-identity, a regular expression searched in each SAN (unanchored, as cosign).",
    )
    @click.option("--certificate-oidc-issuer", metavar="URL", help="Required Fulcio OIDC issuer (exact).")
    @click.option(
        "--certificate-oidc-issuer-regexp",
        metavar="RE",
        help="Required Fulcio OIDC issuer (regexp, unanchored).",
    )
    @click.option(
        "--ca-roots",
        multiple=True,
        metavar="PEM",
        type=click.Path(dir_okay=False),
        help="Trusted root certificates (PEM bundle), repeatable: certificate signatures must chain to one.",
    )
    @click.option(
        "--ca-intermediates",
        multiple=True,
        metavar="PEM",
        type=click.Path(dir_okay=False),
        help="Intermediate certificates (PEM) besides those the signature carries, repeatable.",
    )
    @click.option(
        "--trusted-root",
        metavar="JSON",
        type=click.Path(dir_okay=False),
        help="Sigstore trusted_root.json: verify keyless signatures and bundles offline (Fulcio, Rekor, CT).",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        certificate_identity: str | None,
        certificate_identity_regexp: str | None,
        certificate_oidc_issuer: str | None,
        certificate_oidc_issuer_regexp: str | None,
        ca_roots: tuple[str, ...],
        ca_intermediates: tuple[str, ...],
        trusted_root: str | None,
        **kwargs: Any,
    ) -> Any:
        kwargs["certificates"] = load_certificate_trust(
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            ca_roots=ca_roots,
            ca_intermediates=ca_intermediates,
            trusted_root=trusted_root,
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def load_notation(config: str | None, policy: str | None, store: str | None) -> NotationTrust | None:
    """notation's trust policy and trust store; a bad one is a usage error naming the file and the problem."""
    if config is None and policy is None and store is None:
        return None
    if config is None and (policy is None or store is None):
        raise UsageError("--trust-policy and --trust-store go together (or give --notation-config DIR)")
    from sigscope.trust.notation_policy import TrustPolicyError, load_notation_trust
    from sigscope.trust.truststore import TrustStoreError

    try:
        trust = load_notation_trust(
            Path(config) if config else None, Path(policy) if policy else None, Path(store) if store else None
        )
    except (TrustPolicyError, TrustStoreError) as exc:
        raise UsageError(str(exc)) from None
    for warning in trust.store.warnings:
        click.echo(f"sigscope: notation trust store: {warning}", err=True)
    return trust


def notation_options(func: F) -> F:
    """`--notation-config`, `--trust-policy`, `--trust-store`; the command receives `notation`."""

    @click.option(
        "--notation-config",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="notation's config directory: DIR/trustpolicy.oci.json (or trustpolicy.json) and "
        "DIR/truststore/ judge Notary Project signatures (verified / untrusted).",
    )
    @click.option(
        "--trust-policy",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="notation trust policy file (with --trust-store; overrides --notation-config's).",
    )
    @click.option(
        "--trust-store",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="notation trust store directory, holding x509/{ca,signingAuthority,tsa}/NAME/.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        notation_config: str | None,
        trust_policy: str | None,
        trust_store: str | None,
        **kwargs: Any,
    ) -> Any:
        kwargs["notation"] = load_notation(notation_config, trust_policy, trust_store)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def load_timestamp_trust(path: str | None) -> TimestampTrust | None:
    """`--timestamp-certificate-chain`: the self-signed certificates are the TSA roots, the rest
    intermediates or the TSA's own certificate (cosign reads the file the same way)."""
    if path is None:
        return None
    from sigscope.trust.timestamp import TimestampTrust

    return TimestampTrust.from_chain(_read_certificates(path, "--timestamp-certificate-chain"))


def public_key_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """`--key` (trusted public key files, repeatable); the command receives `keys`."""
    return click.option(
        "--key", "keys", multiple=True, required=required, type=click.Path(dir_okay=False), help=help
    )


def gpg_keyring_option(help: str) -> Callable[[F], F]:
    """`--gpg-keyring` (trusted OpenPGP key files, repeatable); the command receives `gpg_keyrings`."""
    return click.option(
        "--gpg-keyring",
        "gpg_keyrings",
        multiple=True,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help=help,
    )


def trust_options(func: F) -> F:
    """Add `--registries.d`, `--key` and `--gpg-keyring`; the command receives `trust: TrustMaterial`."""

    @click.option(
        "--registries.d",
        "registries_d",
        type=click.Path(file_okay=False, exists=True),
        help="containers registries.d directory: GPG simple signatures are read from its lookaside.",
    )
    @public_key_option(
        "Trusted public key (PEM, cosign.pub), repeatable: cosign signatures it verifies become "
        "'verified', other cosign signatures 'untrusted'."
    )
    @gpg_keyring_option(
        "Trusted OpenPGP public keys (gpg --export, binary or armored), repeatable: GPG simple "
        "signatures they verify become 'verified', other simple signatures 'untrusted'."
    )
    @click.option(
        "--timestamp-certificate-chain",
        "timestamp_chain",
        metavar="PEM",
        type=click.Path(dir_okay=False),
        help="TSA certificate chain (PEM: root, optionally intermediates and the TSA certificate), as "
        "cosign's flag: RFC 3161 timestamps on cosign signatures are verified against it, and only a "
        "verified timestamp sets the signing time.",
    )
    @certificate_options
    @notation_options
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        registries_d: str | None,
        keys: tuple[str, ...],
        gpg_keyrings: tuple[str, ...],
        certificates: CertificateTrust | None,
        notation: NotationTrust | None,
        timestamp_chain: str | None,
        **kwargs: Any,
    ) -> Any:
        from sigscope.sources.lookaside import load_registries_d

        kwargs["trust"] = TrustMaterial(
            registries_d=load_registries_d(Path(registries_d)) if registries_d else None,
            keys=load_keys(keys),
            gpg_keyring=load_gpg_keyrings(gpg_keyrings),
            certificates=certificates,
            notation=notation,
            timestamps=load_timestamp_trust(timestamp_chain),
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
