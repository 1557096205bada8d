"""`sigscope webhook serve`: the admission webhook over HTTPS (uvicorn, one process, asyncio)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sigscope.admission.cache import Ttls
from sigscope.admission.engine import Decide, LoadPolicy
from sigscope.admission.verifier import Settings
from sigscope.cli.options import byte_size, registry_options, role
from sigscope.errors import UsageError
from sigscope.oci.client import RegistryOptions
from sigscope.serve.server import Listening, config, listen_options

if TYPE_CHECKING:
    from sigscope.admission.app import WebhookApp
    from sigscope.admission.crd import CrdPolicySource


def _registry_host(value: str, flag: str) -> str:
    host = value.strip()
    if not host or "/" in host or problem_in_host(host):
        raise UsageError(f"{flag} {value!r}: expected HOST or HOST:PORT, as image references name registries")
    return host


def problem_in_host(host: str) -> bool:
    # A registry host as a reference names it: parse `HOST/x:y` and see that the host came back whole.
    from sigscope.oci.reference import parse_reference

    try:
        return parse_reference(f"{host}/x:y").registry != host
    except UsageError:
        return True


def _registry_cas(values: tuple[str, ...]) -> dict[str, str]:
    from sigscope.keys.files import load_certificates_file

    found: dict[str, str] = {}
    for value in values:
        host, eq, path = value.partition("=")
        if not eq or not path:
            raise UsageError(f"--registry-ca {value!r}: expected HOST[:PORT]=PEM")
        host = _registry_host(host, "--registry-ca")
        load_certificates_file(path, role("--registry-ca"))  # a wrong file is named before serving
        found[host] = path
    return found


def _policy_source(
    policy_file: str | None, policy_object: str | None, trust_dir: str, kubeconfig: str | None
) -> CrdPolicySource | None:
    """The SigscopePolicy source (its first version fetched and written), or None for --policy."""
    if (policy_file is None) == (policy_object is None):
        raise UsageError("give one of --policy FILE or --policy-from-crd NAME")
    if policy_object is None:
        if kubeconfig:
            raise UsageError("--kubeconfig goes with --policy-from-crd")
        return None
    from sigscope.admission.crd import ApiServer, CrdPolicySource

    api = ApiServer.from_kubeconfig(Path(kubeconfig)) if kubeconfig else ApiServer.in_cluster()
    source = CrdPolicySource(api, policy_object, Path(trust_dir))
    source.fetch()
    return source


def _log_setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sigscope webhook: %(levelname)s %(message)s"))
    logger = logging.getLogger("sigscope.webhook")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


@click.command("serve")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Policy file (apiVersion sigscope/v1, kind Policy); reloaded when it or a file beside it changes.",
)
@click.option(
    "--policy-from-crd",
    "policy_object",
    metavar="NAME",
    help="Take the policy from SigscopePolicy NAME, watched through the API server (instead of --policy).",
)
@click.option(
    "--trust-dir",
    type=click.Path(file_okay=False),
    default="/etc/sigscope/policy",
    show_default=True,
    help="With --policy-from-crd: where the trust files the policy names (relative paths) are.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="With --policy-from-crd: the API server and token (default: the pod's service account).",
)
@click.option(
    "--tls-cert",
    required=True,
    type=click.Path(dir_okay=False),
    help="Serving certificate (PEM); reloaded when it changes.",
)
@click.option("--tls-key", required=True, type=click.Path(dir_okay=False), help="Its private key (PEM).")
@listen_options(port=8443, address_help="Address to listen on (0.0.0.0 in a pod).")
@click.option(
    "--insecure-registry",
    "insecure_registries",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Plain HTTP for this registry, repeatable.",
)
@click.option(
    "--registry-ca",
    "registry_cas",
    multiple=True,
    metavar="HOST=PEM",
    help="Trust only this CA bundle for this registry's TLS, repeatable.",
)
@click.option(
    "--cache",
    "cache_url",
    metavar="redis://…",
    help="Share verdicts between replicas through Redis (each replica keeps its in-process cache in front).",
)
@click.option(
    "--allow-ttl",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long an allow (or warn) verdict is reused.",
)
@click.option(
    "--deny-ttl",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a deny verdict is reused.",
)
@click.option(
    "--tag-ttl",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a tag → digest resolution is reused.",
)
@click.option(
    "--max-staleness",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="While a registry cannot be reached, serve the last verdict for a digest "
    "up to this long past its TTL (0: never; the rule's onError decides).",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.1, max=30),
    default=8.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest a review waits for verification; a review whose ?timeout= is "
    "shorter gets 80% of that. Past it, the rule's onError (or a stale verdict) answers.",
)
@click.option(
    "--cache-size",
    callback=byte_size,
    default="64MiB",
    show_default=True,
    metavar="SIZE",
    help="Bytes of verdicts held in process (least recently used go first).",
)
@click.option(
    "--max-body",
    callback=byte_size,
    default="4MiB",
    show_default=True,
    metavar="SIZE",
    help="Largest AdmissionReview accepted.",
)
@click.option(
    "--max-containers",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Most containers in one object.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Append one JSON line per decision here (default: standard output).",
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the policy and TLS files are checked for changes (0: never).",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@registry_options
def serve_cmd(
    policy_file: str | None,
    policy_object: str | None,
    trust_dir: str,
    kubeconfig: str | None,
    tls_cert: str,
    tls_key: str,
    address: str,
    port: int,
    insecure_registries: tuple[str, ...],
    registry_cas: tuple[str, ...],
    cache_url: str | None,
    allow_ttl: float,
    deny_ttl: float,
    tag_ttl: float,
    max_staleness: float,
    deadline: float,
    cache_size: int,
    max_body: int,
    max_containers: int,
    audit_log: str | None,
    reload_interval: float,
    log_level: str,
    registry_options: RegistryOptions,
) -> None:
    """Serve the admission webhook: POST /validate and /mutate (AdmissionReview admission.k8s.io/v1),
    GET /healthz, /readyz, /metrics, over HTTPS."""
    options = dataclasses.replace(
        registry_options,
        insecure_registries=frozenset(_registry_host(h, "--insecure-registry") for h in insecure_registries),
        registry_ca_files=_registry_cas(registry_cas),
    )
    _log_setup(log_level)
    source = _policy_source(policy_file, policy_object, trust_dir, kubeconfig)
    server, sock, app = build_server(
        policy_file=source.path if source else Path(policy_file or ""),
        tls_cert=Path(tls_cert),
        tls_key=Path(tls_key),
        address=address,
        port=port,
        options=options,
        cache_url=cache_url,
        settings=Settings(
            ttls=Ttls(allow=allow_ttl, deny=deny_ttl, tag=tag_ttl, stale=max_staleness),
            cache_bytes=cache_size,
            deadline=deadline,
        ),
        max_body=max_body,
        max_containers=max_containers,
        audit_log=audit_log,
        reload_interval=reload_interval,
    )
    if source is not None:
        app.background.append(source.run)
        app.watched.append(source.check_trust_dir)
    served = Listening(server, sock)
    policy = app.holder.policy
    served.run(
        f"sigscope webhook: serving on https://{served.origin} (policy {policy.version if policy else '?'})"
    )


def build_server(
    *,
    policy_file: Path,
    tls_cert: Path,
    tls_key: Path,
    address: str,
    port: int,
    options: RegistryOptions,
    cache_url: str | None,
    settings: Settings,
    max_body: int,
    max_containers: int,
    audit_log: str | None,
    reload_interval: float,
    engine: tuple[LoadPolicy, Decide] | None = None,
) -> tuple[Any, socket.socket, WebhookApp]:
    """The uvicorn server, its listening socket and the app, everything loaded and checked. `engine` is
    the policy engine's (load_policy, decide), sigscope.policy's unless given."""
    import ssl

    from sigscope.admission.app import Limits, WebhookApp
    from sigscope.admission.audit import AuditLog
    from sigscope.admission.engine import policy_engine
    from sigscope.admission.metrics import Metrics
    from sigscope.admission.reload import PolicyHolder, TlsFiles
    from sigscope.admission.shared import SharedVerdicts
    from sigscope.admission.verifier import Verifier

    loader, decide = engine or policy_engine()
    metrics = Metrics()
    holder = PolicyHolder(policy_file, loader, metrics)
    holder.load()  # PolicyError (one line per problem, exit 2) before anything listens
    shared = SharedVerdicts(cache_url, settings.ttls) if cache_url else None
    verifier = Verifier(decide, options, metrics, settings, shared=shared)
    try:
        audit = AuditLog(audit_log)
    except OSError as exc:
        raise UsageError(f"--audit-log {audit_log}: {exc.strerror or exc}") from None
    app = WebhookApp(
        holder,
        verifier,
        metrics,
        audit,
        Limits(max_body=max_body, max_containers=max_containers, reload_interval=reload_interval),
    )
    uv_config = config(app, ssl_certfile=str(tls_cert), ssl_keyfile=str(tls_key), timeout_graceful_shutdown=5)
    try:
        uv_config.load()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert {tls_cert} / --tls-key {tls_key}: {exc}") from None
    assert uv_config.ssl is not None
    uv_config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    app.watched.append(TlsFiles(uv_config.ssl, tls_cert, tls_key, metrics).check)
    served = Listening.on(uv_config, address, port)
    return served.server, served.sock, app
