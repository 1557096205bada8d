"""`sigscope scan manifests`: Kubernetes objects for sharded, scheduled scans into PostgreSQL.

Renders an Indexed Job (completions = parallelism = N; each pod's completion index becomes its
`--shard I/N`) and a CronJob running the same Job nightly. The database URL comes from a Secret into
SIGSCOPE_DB; the Job's name (the `job-name` label Kubernetes puts on its pods) becomes the run group, so
the N shards of one Job are one scan in the inventory.
"""

from __future__ import annotations

import re
from typing import Any

import click
import yaml

from sigscope import __version__
from sigscope.errors import UsageError
from sigscope.scan.shard import MAX_SHARDS

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")  # a DNS label short enough for Job pod names
_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
_CRON = re.compile(r"^\S+( \S+){4}$")


def _pod_spec(
    image: str, target: str, shards: int, scan_args: tuple[str, ...], secret: str, key: str
) -> dict[str, Any]:
    args = ["scan", "registry", target, "-o", "ndjson"]
    if shards > 1:
        args += ["--shard", f"$(SHARD_INDEX)/{shards}"]
    args += list(scan_args)
    return {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "scan",
                "image": image,
                "command": ["sigscope"],
                "args": args,
                "env": [
                    {"name": "SIGSCOPE_DB", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}},
                    {
                        "name": "SHARD_INDEX",
                        "valueFrom": {"fieldRef": {"fieldPath": _INDEX_FIELD}},
                    },
                    {
                        "name": "SIGSCOPE_RUN_GROUP",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
                    },
                    {"name": "HOME", "value": "/tmp"},
                ],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def render(
    *,
    name: str,
    namespace: str | None,
    image: str,
    target: str,
    shards: int,
    schedule: str,
    secret: str,
    secret_key: str,
    scan_args: tuple[str, ...],
    kinds: tuple[str, ...] = ("job", "cronjob"),
) -> str:
    if not _NAME.match(name):
        raise UsageError(f"--name {name!r}: lowercase letters, digits and '-', at most 52 characters")
    if not 1 <= shards <= MAX_SHARDS:
        raise UsageError(f"--shards {shards}: from 1 to {MAX_SHARDS}")
    if not _CRON.match(schedule.strip()):
        raise UsageError(f"--schedule {schedule!r}: a cron expression of five fields, e.g. '0 2 * * *'")
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": shards,
        # a retried pod keeps its index: the shard is scanned again, in the same run group
        "backoffLimit": 2 * shards,
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "metadata": {
                "labels": {"app.kubernetes.io/name": "sigscope", "app.kubernetes.io/component": "scan"}
            },
            "spec": _pod_spec(image, target, shards, scan_args, secret, secret_key),
        },
    }
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "sigscope"}}
    if namespace:
        metadata["namespace"] = namespace
    documents: list[dict[str, Any]] = []
    if "job" in kinds:
        documents.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec})
    if "cronjob" in kinds:
        documents.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {**metadata, "name": f"{name}-nightly"},
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"spec": job_spec},
                },
            }
        )
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


@click.command("manifests", context_settings={"ignore_unknown_options": True})
@click.argument("target", metavar="HOST[/NAMESPACE]")
@click.argument("scan_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- SCAN-ARGS...]")
@click.option("--shards", type=int, default=4, show_default=True, help="Workers (N): one shard each.")
@click.option(
    "--name",
    default="sigscope-scan",
    show_default=True,
    help="The Job's name (the CronJob's is NAME-nightly).",
)
@click.option("--namespace", help="Kubernetes namespace of both objects.")
@click.option(
    "--image", default=f"sigscope:{__version__}", show_default=True, help="Container image with sigscope."
)
@click.option("--schedule", default="0 2 * * *", show_default=True, help="The CronJob's schedule (cron).")
@click.option(
    "--db-secret", default="sigscope-db", show_default=True, help="Secret holding the PostgreSQL URL."
)
@click.option("--db-secret-key", default="url", show_default=True, help="Key of the URL in that Secret.")
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(["job", "cronjob"]),
    multiple=True,
    help="Only these objects (default: both).",
)
def scan_manifests_cmd(
    target: str,
    scan_args: tuple[str, ...],
    shards: int,
    name: str,
    namespace: str | None,
    image: str,
    schedule: str,
    db_secret: str,
    db_secret_key: str,
    kinds: tuple[str, ...],
) -> None:
    """Print Kubernetes manifests for a registry scan sharded over N pods into PostgreSQL: an Indexed Job
    (completions N, parallelism N; pod I runs `--shard I/N`) and a CronJob running it nightly.

    Arguments after `--` go to every `scan registry` (trust material, --repo, --insecure …).

    \b
    Examples:
      kubectl create secret generic sigscope-db --from-literal=url=postgresql://sigscope:…@db:5432/inventory
      sigscope scan manifests reg.example.com --shards 8 -- --key /trust/cosign.pub | kubectl apply -f -
    """
    click.echo(
        render(
            name=name,
            namespace=namespace,
            image=image,
            target=target,
            shards=shards,
            schedule=schedule,
            secret=db_secret,
            secret_key=db_secret_key,
            scan_args=scan_args,
            kinds=kinds or ("job", "cronjob"),
        ),
        nl=False,
    )
