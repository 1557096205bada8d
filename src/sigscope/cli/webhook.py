"""`sigscope webhook …`: the admission webhook's verbs. `manifests` renders what installs it (the objects
come from sigscope.admission.manifests); `serve` runs it (sigscope.cli.webhook_serve, imported only when run).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import ClassVar

import click

from sigscope.admission.manifests import (
    FAILURE_POLICIES,
    MAX_CONFIGMAP_BYTES,
    ManifestOptions,
    check_trust_path,
    failure_policy_for,
    render,
    to_yaml,
)
from sigscope.cli.main import LazyGroup
from sigscope.errors import EXIT_ERROR, SigscopeError, UsageError
from sigscope.report.escape import printable
from sigscope.sources.localfile import read_bounded
from sigscope.trust.certs import CertificateError, load_pem_chain


class WebhookGroup(LazyGroup):
    lazy: ClassVar[dict[str, str]] = {"serve": "sigscope.cli.webhook_serve:serve_cmd"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        # A verb whose module this installation lacks is not offered (its help would be an import error).
        present = {n for n, t in self.lazy.items() if importlib.util.find_spec(t.partition(":")[0])}
        return sorted({*click.Group.list_commands(self, ctx), *present})


@click.group("webhook", cls=WebhookGroup)
def webhook_group() -> None:
    """The Kubernetes admission webhook: render its manifests, or serve it."""


def _read(path: str, what: str) -> bytes:
    try:
        return read_bounded(path, MAX_CONFIGMAP_BYTES, what)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except SigscopeError as exc:  # too large, not a regular file
        raise UsageError(exc.message) from None


def _read_ca_bundle(path: str) -> bytes:
    pem = _read(path, "CA bundle")
    try:
        certificates = load_pem_chain(pem)
    except CertificateError as exc:
        raise UsageError(f"CA bundle {path}: {exc}") from None
    if not certificates:
        raise UsageError(f"CA bundle {path}: no PEM certificate found")
    return pem


def _check_policy(policy_path: str, mounted: set[str]) -> None:
    """The policy must load in the pod as it loads here: the real engine validates it (with the trust files
    beside it), and every file it names must be among the --trust-file files mounted with it. Every problem
    is listed, one a line, and the exit code is 2: a webhook whose policy does not load never starts, and a
    Fail webhook that never starts stops every pod in the cluster."""
    from sigscope.policy import PolicyError, load_policy

    problems: list[str] = []
    try:
        load_policy(policy_path)
    except PolicyError as exc:
        problems = list(exc.errors)
    else:
        problems = unmounted_references(Path(policy_path), mounted)
    if problems:
        for problem in problems:
            click.echo(printable(f"sigscope: error: {policy_path}: {problem}"), err=True)
        raise SystemExit(EXIT_ERROR)


def unmounted_references(policy_path: Path, mounted: set[str]) -> list[str]:
    """The trust files and directories the policy names that the ConfigMap would not carry."""
    from sigscope.policy.document import references
    from sigscope.policy.parse import read_document

    base = policy_path.resolve().parent
    document = read_document(policy_path.read_bytes())  # already loaded once: it parses
    problems = []
    for reference in references(document, base):
        try:
            relative = Path(os.path.normpath(reference.path)).relative_to(base).as_posix()
        except ValueError:
            problems.append(f"{reference.where}: {reference.path} is outside the policy's directory")
            continue
        if reference.directory:
            if not any(name.startswith(relative + "/") for name in mounted):
                problems.append(f"{reference.where}: no --trust-file below {relative}/")
        elif relative not in mounted:
            problems.append(f"{reference.where}: {relative} is not mounted: add --trust-file {relative}")
    return problems


@webhook_group.command("manifests")
@click.option("--namespace", default="sigscope", show_default=True, help="Namespace the webhook runs in.")
@click.option("--image", required=True, help="The sigscope container image the Deployment runs.")
@click.option("--replicas", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--failure-policy",
    type=click.Choice(FAILURE_POLICIES),
    help="What the API server does when the webhook cannot answer. Default: Fail, or Ignore when every "
    "rule of --policy only warns.",
)
@click.option("--timeout-seconds", type=click.IntRange(1, 30), default=10, show_default=True)
@click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False), help="Policy document for the ConfigMap."
)
@click.option(
    "--trust-file",
    "trust_files",
    multiple=True,
    help="A file the policy references (key, root, keyring), relative to the policy's directory; mounted "
    "beside it. Repeatable.",
)
@click.option(
    "--ca-bundle", type=click.Path(dir_okay=False), help="PEM CA that signed the webhook's certificate."
)
@click.option(
    "--exempt-namespace",
    "exempt_namespaces",
    multiple=True,
    help="Never send this namespace's objects to the webhook (besides kube-system and its own). Repeatable.",
)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def manifests_cmd(
    namespace: str,
    image: str,
    replicas: int,
    failure_policy: str | None,
    timeout_seconds: int,
    policy_path: str | None,
    trust_files: tuple[str, ...],
    ca_bundle: str | None,
    exempt_namespaces: tuple[str, ...],
    output: str,
) -> None:
    """Print the objects that install the webhook: Namespace, ServiceAccount, RBAC, the policy ConfigMap,
    Deployment, PodDisruptionBudget, Service, both webhook configurations and the SigscopePolicy CRD.

    The TLS Secret NAME-webhook-tls (tls.crt, tls.key) is not rendered: make it with cert-manager or
    `kubectl create secret tls`. Without --ca-bundle the webhook configurations ask cert-manager's CA
    injector for their caBundle (docs/kubernetes.md)."""
    policy = _read(policy_path, "policy") if policy_path else None
    files: dict[str, bytes] = {}
    if trust_files and policy_path is None:
        raise UsageError("--trust-file goes with --policy")
    base = Path(policy_path).parent if policy_path else Path()
    for relative in trust_files:
        name = relative.replace(os.sep, "/")
        check_trust_path(name)  # before reading: nothing outside the policy's directory is read
        files[name] = _read(str(base / relative), "trust file")
    if policy_path is not None:
        _check_policy(policy_path, set(files))
    options = ManifestOptions(
        namespace=namespace,
        image=image,
        replicas=replicas,
        failure_policy=failure_policy or failure_policy_for(policy),
        timeout_seconds=timeout_seconds,
        policy=policy,
        trust_files=files,
        ca_bundle=_read_ca_bundle(ca_bundle) if ca_bundle else None,
        exempt_namespaces=exempt_namespaces,
    )
    objects = render(options)
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        click.echo(to_yaml(objects), nl=False)
