"""`sigscope scan registry`: every image in a registry (or layout) and every signature on it."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from sigscope.cli.options import (
    TrustMaterial,
    gpg_keyring_option,
    public_key_option,
    registry_options,
    trust_options,
)
from sigscope.cli.progress import stdout_console, tracker
from sigscope.cli.record import db_option, incremental_options
from sigscope.cli.sizes import size_callback
from sigscope.errors import EXIT_FAILED, UsageError
from sigscope.files.base import FileLimits
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import parse_layout, parse_registry_target
from sigscope.report.render import OUTPUTS, make_renderer
from sigscope.report.summary import FAIL_ON_CHOICES, REGISTRY_FAIL_ON, Summary
from sigscope.scan.registry import Progress, ScanOptions, scan_registry, scan_repository
from sigscope.trust.certs import utcnow

if TYPE_CHECKING:
    from sigscope.cli.record import ScanRecording


@click.group("scan")
def scan_group() -> None:
    """Discover and report signatures in bulk."""


async def _run(
    target: str,
    registry_options: RegistryOptions,
    options: ScanOptions,
    output: str,
    fail_on: set[str],
    recording: ScanRecording | None = None,
) -> int:
    console = stdout_console(output)
    is_layout = target.startswith("oci:")
    source = target if is_layout else parse_registry_target(target)[0]
    policy = options.policy is not None
    renderer = make_renderer(output, sys.stdout, console, source, policy=policy)
    summary = Summary(source, policy=policy)
    matched: set[str] = set()
    with tracker("Scanning", enabled=True) as bar:
        progress = Progress(bar.add_total, bar.advance)

        if is_layout:
            layout = OCILayout(parse_layout(target).path)
            results = scan_repository(
                layout, source=layout.display, repo_name="", registry="", options=options, progress=progress
            )
            async for result in results:
                summary.add(result)
                renderer.add(result)
                if recording is not None:
                    recording.add_image(result)
        else:
            registry, namespace = parse_registry_target(target)
            async with RegistryClient(registry, registry_options) as client:
                async for result in scan_registry(client, namespace, options, progress):
                    summary.add(result)
                    renderer.add(result)
                    if recording is not None:
                        recording.add_image(result)
    if recording is not None:
        recording.finish()
    renderer.finish(summary)
    if output not in ("pretty", "wide"):
        # Machine formats keep stdout clean; the one human line goes to stderr.
        click.echo(summary.line, err=True)
    matched = {f for f in fail_on if summary.findings.get(f)}
    if matched:
        click.echo(f"sigscope: --fail-on matched: {', '.join(sorted(matched))}", err=True)
        return EXIT_FAILED
    return 0


@scan_group.command("registry")
@click.argument("target", metavar="HOST[/NAMESPACE] | oci:PATH")
@click.option(
    "--repo", "repo_patterns", multiple=True, metavar="GLOB", help="Only repositories matching (repeatable)."
)
@click.option("--platforms", is_flag=True, help="Also report each platform manifest of a multi-arch index.")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="pretty", show_default=True)
@click.option(
    "--fail-on",
    type=click.Choice(REGISTRY_FAIL_ON),
    multiple=True,
    help="Exit 1 when any image matches (repeatable); 'denied' needs --policy.",
)
@click.option(
    "--policy",
    "policy_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Decide every image as admission would under this sigscope policy (docs/policy.md): the dry run. "
    "The policy names its own trust material: not with --key and the other trust flags.",
)
@trust_options
@registry_options
@db_option
@incremental_options
def scan_registry_cmd(
    target: str,
    repo_patterns: tuple[str, ...],
    platforms: bool,
    output: str,
    fail_on: tuple[str, ...],
    policy_file: str | None,
    trust: TrustMaterial,
    registry_options: RegistryOptions,
    db: str | None,
    full: bool,
    shard: str | None,
    run_group: str | None,
) -> None:
    """Report every signature on every image of a registry, in every format.

    Walks catalog → repositories → tags → digests concurrently and finds cosign .sig/.att/.sbom
    attachments, Sigstore bundles and Notary Project signatures (referrers API or the tag fallback)
    and GPG simple signatures (lookaside, with --registries.d). Without trust material each
    signature is unverified, integrity-ok or invalid, never "verified". A registry that keeps no
    catalog (olareg, many hosted ones) can still be scanned one repository at a time: HOST/REPO.

    \b
    Examples:
      sigscope scan registry 127.0.0.1:5000 --insecure
      sigscope scan registry reg.example.com/team --repo 'team/api*' -o json | jq '.registry.signatures[]'
      sigscope scan registry 127.0.0.1:5000 --insecure -o sarif --fail-on unsigned > scan.sarif
      sigscope scan registry oci:./layout -o wide
      sigscope scan registry 127.0.0.1:5000 --insecure --db default  # re-scans skip the unchanged
      sigscope scan registry reg:5000 --db postgresql://… --shard 0/4 --run-group nightly-1
      sigscope scan registry 127.0.0.1:5000 --insecure --policy policy.yaml --fail-on denied

    With --db (or SIGSCOPE_DB) every scan is remembered (docs/inventory.md), and an image whose signature
    set is unchanged since the last scan with the same trust material is not fetched or verified again
    (--full: everything is).

    With --policy every image gets the decision admission would make (docs/policy.md).
    """
    from sigscope.scan.shard import parse_shard

    policy = None
    if policy_file is not None:
        if not trust.empty or trust.registries_d is not None or trust.timestamps is not None:
            raise UsageError(
                "--policy decides with the trust material it names: drop --key and the other trust flags"
            )
        from sigscope.policy import load_policy

        policy = load_policy(policy_file)
    elif "denied" in fail_on:
        raise UsageError("--fail-on denied needs --policy FILE")
    shard_spec = parse_shard(shard) if shard is not None else None
    options = registry_scan_options(trust, registry_options, list(repo_patterns), platforms, shard_spec)
    options.policy = policy
    policy_version = policy.version if policy is not None else None
    recording = None
    if db:
        recording = _start_recording(db, "registry", target, shard_spec, run_group, policy_version)
        options.fingerprint = True
        if not full:
            from sigscope.store.reuse import StoreReuse

            options.reuse = StoreReuse(
                recording.inventory, recording.trust_fingerprint, policy_version, options.now
            )
    try:
        code = asyncio.run(_run(target, registry_options, options, output, set(fail_on), recording))
    except BaseException:
        if recording is not None:
            recording.abandon()
        raise
    if code:
        sys.exit(code)


def registry_scan_options(
    trust: TrustMaterial,
    registry_options: RegistryOptions,
    repo_patterns: list[str],
    platforms: bool,
    shard: tuple[int, int] | None = None,
) -> ScanOptions:
    """What `scan registry` (and `inventory listen`'s re-scans) scan with."""
    return ScanOptions(
        now=utcnow(),
        repo_patterns=repo_patterns,
        platforms=platforms,
        registries_d=trust.registries_d,
        lookaside_timeout=registry_options.timeout,
        repo_concurrency=max(1, min(32, registry_options.max_concurrency // 2)),
        keys=trust.keys,
        gpg_keyring=trust.gpg_keyring,
        certificates=trust.certificates,
        notation=trust.notation,
        timestamps=trust.timestamps,
        shard=shard,
    )


def _start_recording(
    db: str,
    kind: str,
    target: str,
    shard: tuple[int, int] | None = None,
    run_group: str | None = None,
    policy_version: str | None = None,
) -> ScanRecording:
    from sigscope.cli.record import ScanRecording

    if kind == "registry":
        source = target if target.startswith("oci:") else parse_registry_target(target)[0]
    else:
        source = target
    return ScanRecording.start(
        db,
        kind=kind,
        target=target,
        source=source,
        params=click.get_current_context().params,
        shard=shard,
        run_group=run_group,
        policy_version=policy_version,
    )


def _jobs(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """`auto` (None: decided by the CPUs and --verify) or a number of worker processes, 0 to 256."""
    text = value.strip().lower()
    if text == "auto":
        return None
    if text.isdigit() and int(text) <= 256:
        return int(text)
    raise click.BadParameter(f"{value!r} is not 'auto' or a number of processes from 0 to 256")


def _sigstore_root(
    path: str | None, identity: tuple[str | None, str | None, str | None, str | None]
) -> bytes | None:
    """--trusted-root's bytes (the worker processes rebuild the root from them), checked here with
    the identity policy keyless signers must meet: usage errors before anything is scanned."""
    from sigscope.cli.options import load_certificate_trust

    checked = load_certificate_trust(
        identity=identity[0],
        identity_regexp=identity[1],
        issuer=identity[2],
        issuer_regexp=identity[3],
        ca_roots=(),
        ca_intermediates=(),
        trusted_root=path,
        root_flags=("--trusted-root",),
    )
    return checked.sigstore.raw if checked is not None and checked.sigstore is not None else None


def _trust_store(ca_files: tuple[str, ...], trust_dirs: tuple[str, ...]) -> list[bytes]:
    """DER roots from --ca-file / --trust-store, else the system store (Debian's bundle)."""
    import ssl
    import warnings
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from sigscope.cli.options import role
    from sigscope.keys.files import load_certificates_file

    def read(path: Path, flag: str) -> list[bytes]:
        return [c.public_bytes(Encoding.DER) for c in load_certificates_file(str(path), role(flag), der=True)]

    roots: list[bytes] = []
    for name in ca_files:
        roots += read(Path(name), "--ca-file")
    for name in trust_dirs:
        directory = Path(name)
        for item in sorted(directory.iterdir()):
            if item.is_file() and item.suffix.lower() in (".pem", ".crt", ".cer", ".der"):
                roots += read(item, "--trust-store")
    if not ca_files and not trust_dirs:
        # The compiled-in system bundle, not $SSL_CERT_FILE: what is trusted must not change with the
        # environment a CI job happens to set.
        system = Path(ssl.get_default_verify_paths().openssl_cafile)
        if system.is_file():
            data = system.read_bytes()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a few system roots have negative serials
                roots += [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
    return roots


@scan_group.command("fs")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="pretty", show_default=True)
@click.option(
    "--verify", is_flag=True, help="Check every signature: digests, signature math, chain, timestamp."
)
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only files whose name or relative path matches."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files and directories that match.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links that lead to files inside the PATHs (loops are detected); "
    "links out of them are never followed.",
)
@click.option(
    "-j",
    "--jobs",
    metavar="N|auto",
    default="auto",
    callback=_jobs,
    show_default=True,
    help="Worker processes that parse, hash and verify signed files while this one walks "
    "(0: all in this process; auto: one per CPU, less one without --verify).",
)
@click.option(
    "--cache",
    "cache_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Remember results per file; unchanged files (inode, size, mtime) are not read again.",
)
@click.option(
    "--ca-file",
    "ca_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Trusted root certificates (PEM bundle or DER) for --verify, repeatable.",
)
@click.option(
    "--trust-store",
    "trust_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Directory of trusted root certificates (*.pem, *.crt, *.cer, *.der) for --verify.",
)
@public_key_option(
    "Trusted public key (PEM) for cosign sign-blob signatures and key-signed bundles, repeatable."
)
@gpg_keyring_option("Trusted OpenPGP public keys for detached .asc/.sig signatures, repeatable.")
@click.option(
    "--trusted-root",
    metavar="JSON",
    type=click.Path(dir_okay=False),
    help="Sigstore trusted_root.json: --verify checks keyless bundles offline (Fulcio, Rekor, CT).",
)
@click.option(
    "--certificate-identity", metavar="SAN", help="With --trusted-root: the SAN a keyless signer must have."
)
@click.option(
    "--certificate-identity-regexp",
    metavar="RE",
    help="As --certificate-identity, a regular expression searched in each SAN ('.*': any signer).",
)
@click.option(
    "--certificate-oidc-issuer", metavar="URL", help="With --trusted-root: the OIDC issuer (exact)."
)
@click.option(
    "--certificate-oidc-issuer-regexp", metavar="RE", help="With --trusted-root: the OIDC issuer (regexp)."
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES),
    multiple=True,
    help="Exit 1 when any file matches (repeatable); 'unsigned' means a signable file without a signature.",
)
@click.option(
    "--max-decompressed",
    callback=size_callback,
    default=str(FileLimits.max_decompressed),
    metavar="SIZE",
    help="Bytes an archive (JAR, APK) may inflate to in all; past it the file is an error row "
    "[default: 2GiB].",
)
@click.option(
    "--max-ratio",
    type=click.IntRange(min=1),
    default=FileLimits.max_ratio,
    show_default=True,
    help="How many times its stored size an archive entry may inflate to (past its first MiB).",
)
@click.option(
    "--max-in-memory",
    callback=size_callback,
    default=str(FileLimits.max_in_memory),
    metavar="SIZE",
    help="Largest file a check may hold whole in memory (Ed25519 sign-blob signatures) [default: 64MiB].",
)
@db_option
def scan_fs_cmd(
    paths: tuple[str, ...],
    output: str,
    verify: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    follow_symlinks: bool,
    jobs: int | None,
    cache_file: str | None,
    ca_files: tuple[str, ...],
    trust_dirs: tuple[str, ...],
    keys: tuple[str, ...],
    gpg_keyrings: tuple[str, ...],
    trusted_root: str | None,
    certificate_identity: str | None,
    certificate_identity_regexp: str | None,
    certificate_oidc_issuer: str | None,
    certificate_oidc_issuer_regexp: str | None,
    fail_on: tuple[str, ...],
    max_decompressed: int,
    max_ratio: int,
    max_in_memory: int,
    db: str | None,
) -> None:
    """Report every signed file under PATH...: Authenticode (PE, MSI, CAB), JAR, PowerShell, XML-DSig,
    detached OpenPGP (.asc/.sig), Sigstore bundles, cosign sign-blob pairs, and OCI layouts in the tree.

    Only the first 4 KiB of each file decide whether it may be signed; only those are parsed and hashed
    whole. Without --verify signatures are reported with their claimed identity;
    with it each is checked against the trust store (--ca-file / --trust-store, default the system
    store), --key and --gpg-keyring.

    \b
    Examples:
      sigscope scan fs ./dist
      sigscope scan fs /opt/app -o json | jq '.filesystem.signatures[] | {path, subjectname, countersigner}'
      sigscope scan fs . --include '*.jar' --include '*.exe' --verify --ca-file root.pem --fail-on invalid
      sigscope scan fs /srv/mirror --cache ~/.cache/sigscope-mirror.db -o ndjson --jobs 2

    Hostile files cost bounded work: an archive past --max-decompressed or --max-ratio, or a file
    past a size limit, is one error row naming the limit, and the scan goes on (docs/limits.md).
    """
    from pathlib import Path

    from sigscope.cli.options import load_keys
    from sigscope.files.cache import ScanCache
    from sigscope.report.files import FsSummary, make_fs_renderer
    from sigscope.scan.files import (
        Counter,
        FsScanOptions,
        FsStats,
        TrustSpec,
        auto_jobs,
        check_paths,
        scan_fs,
    )

    check_paths(paths)
    key_pems: list[bytes] = []
    load_keys(keys)  # usage errors naming the bad file, before anything is scanned
    for name in keys:
        key_pems.append(Path(name).read_bytes())
    keyring_blobs: list[bytes] = []
    if gpg_keyrings:
        from sigscope.cli.options import load_gpg_keyrings

        load_gpg_keyrings(gpg_keyrings)
        keyring_blobs = [Path(name).read_bytes() for name in gpg_keyrings]
    roots = _trust_store(ca_files, trust_dirs) if verify else []
    identity = (
        certificate_identity,
        certificate_identity_regexp,
        certificate_oidc_issuer,
        certificate_oidc_issuer_regexp,
    )
    root_bytes = _sigstore_root(trusted_root, identity)
    limits = FileLimits(max_decompressed=max_decompressed, max_ratio=max_ratio, max_in_memory=max_in_memory)
    spec = TrustSpec(
        roots=tuple(roots),
        keys=tuple(key_pems),
        keyrings=tuple(keyring_blobs),
        at=utcnow(),
        trusted_root=root_bytes if verify else None,
        trusted_root_name=trusted_root or "--trusted-root",
        identity=identity,
        limits=limits,
    )
    cache = None
    if cache_file is not None:
        import hashlib

        policy = "\0".join(v or "" for v in identity).encode()
        sigstore = [root_bytes, policy] if verify and root_bytes is not None else []
        material = hashlib.sha256(b"".join([*roots, *key_pems, *keyring_blobs, *sigstore])).hexdigest()
        # A limit hit or a link not followed is an answer too: other limits or links may change it.
        cache = ScanCache(Path(cache_file), f"verify={verify}:{follow_symlinks}:{limits}:{material}")
        if cache.discarded:
            click.echo(f"sigscope: --cache {cache_file}: made under other options, starting afresh", err=True)
    options = FsScanOptions(
        verify=verify,
        trust=spec,
        include=include,
        exclude=exclude,
        follow_symlinks=follow_symlinks,
        jobs=auto_jobs(verify) if jobs is None else jobs,
        cache=cache,
    )
    directories = ",".join(paths)
    console = stdout_console(output)
    renderer = make_fs_renderer(output, sys.stdout, console, directories, paths)
    stats = FsStats()
    summary = FsSummary(directories, stats=stats)
    recording = _start_recording(db, "fs", directories) if db else None
    try:
        with tracker("Scanning files", enabled=True) as bar:
            counter = Counter(bar.add_total, bar.advance)
            for result in scan_fs(paths, options, stats, counter):
                summary.add(result)
                renderer.add(result)
                if recording is not None:
                    recording.add_file(result, directories)
        if cache is not None:
            # Saved only after a complete scan: an interrupted one must not forget files it never reached.
            cache.save()
        if recording is not None:
            recording.finish()
            recording = None
    finally:
        if recording is not None:
            recording.abandon()
        if cache is not None:
            cache.close()
    renderer.finish(summary)
    if output not in ("pretty", "wide"):
        click.echo(summary.line, err=True)
    matched = {f for f in fail_on if summary.findings.get(f)}
    if matched:
        click.echo(f"sigscope: --fail-on matched: {', '.join(sorted(matched))}", err=True)
        sys.exit(EXIT_FAILED)


def _register_manifests() -> None:
    from sigscope.cli.manifests import scan_manifests_cmd

    scan_group.add_command(scan_manifests_cmd)


_register_manifests()
