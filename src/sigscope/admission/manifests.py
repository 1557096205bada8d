"""The Kubernetes objects that install the admission webhook (`sigscope webhook manifests`).

Pure: options in, a list of plain objects out (`render`), and those as multi-document YAML (`to_yaml`).
charts/sigscope renders the same objects with Helm; tests/test_kube_manifests.py holds the two side by side.

Choices a reader might question:
- The namespaceSelector excludes only kube-system, the webhook's own namespace and namespaces named with
  `exempt_namespaces`, never the policy's own exemptions: the policy is reloaded without touching the
  webhook configuration, and a namespace the policy stops exempting must not stay unchecked.
- Both webhook configurations take one failurePolicy. "Fail" is what enforcing means: an image is never
  admitted unchecked (nor left unpinned) because the webhook was down.
- Without a CA bundle the configurations carry cert-manager's `inject-ca-from` annotation and no
  caBundle; cert-manager's CA injector fills it from the Certificate named there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sigscope.errors import UsageError

GROUP = "sigscope.dev"
CRD_KIND = "SigscopePolicy"
CRD_PLURAL = "sigscopepolicies"
POLICY_KEY = "policy.yaml"
POLICY_DIR = "/etc/sigscope/policy"
TLS_DIR = "/etc/sigscope/tls"
PORT = 8443
FAILURE_POLICIES = ("Fail", "Ignore")
# ConfigMaps (like every object) are stored in etcd whole; the API server refuses more than about 1 MiB.
MAX_CONFIGMAP_BYTES = 900 * 1024
VALIDATE_PATH = "/validate"
MUTATE_PATH = "/mutate"

# Every kind that carries a pod template (issue 15), by API group.
WEBHOOK_RESOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "pods/ephemeralcontainers", "replicationcontrollers")),
    ("apps", ("deployments", "replicasets", "statefulsets", "daemonsets")),
    ("batch", ("jobs", "cronjobs")),
)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_REL_PATH_PART = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ManifestOptions:
    """What `webhook manifests` renders. `policy` and `trust_files` are file contents (paths relative to the
    policy's directory); `ca_bundle` is PEM."""

    namespace: str
    image: str
    name: str = "sigscope"
    replicas: int = 2
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    policy: bytes | None = None
    trust_files: Mapping[str, bytes] = field(default_factory=dict)
    ca_bundle: bytes | None = None
    exempt_namespaces: tuple[str, ...] = ()


def check_options(options: ManifestOptions) -> None:
    """UsageError for what the API server would refuse, or what would install a webhook that cannot work."""
    for what, value in (("namespace", options.namespace), ("name", options.name)):
        if not _DNS_LABEL.fullmatch(value) or len(value) > 40:
            raise UsageError(f"{what} {value!r} is not a DNS label (a-z, 0-9, '-', at most 40 characters)")
    for exempt in options.exempt_namespaces:
        if not _DNS_LABEL.fullmatch(exempt):
            raise UsageError(f"exempt namespace {exempt!r} is not a namespace name")
    if not options.image or any(c.isspace() or not c.isprintable() for c in options.image):
        raise UsageError("the image must be a reference without spaces or control characters")
    if options.replicas < 1:
        raise UsageError("replicas must be at least 1")
    if options.failure_policy not in FAILURE_POLICIES:
        raise UsageError(f"failure policy must be one of {', '.join(FAILURE_POLICIES)}")
    if not 1 <= options.timeout_seconds <= 30:
        raise UsageError("timeoutSeconds must be between 1 and 30 (the API server's bounds)")
    if options.trust_files and options.policy is None:
        raise UsageError("trust files go with a policy (--policy)")
    for path in options.trust_files:
        check_trust_path(path)
    size = len(options.policy or b"") + sum(len(v) for v in options.trust_files.values())
    if size > MAX_CONFIGMAP_BYTES:
        raise UsageError(
            f"the policy and its files are {size} bytes; a ConfigMap holds {MAX_CONFIGMAP_BYTES}"
        )


def check_trust_path(path: str) -> None:
    """A trust file is named by a plain relative path below the policy's directory (it is mounted there)."""
    parts = path.split("/")
    if not all(_REL_PATH_PART.fullmatch(p) and p not in {".", ".."} for p in parts) or path == POLICY_KEY:
        raise UsageError(f"trust file {path!r} must be a relative path below the policy's directory")


def failure_policy_for(policy: bytes | None) -> str:
    """The failurePolicy a policy document implies: Ignore when every rule only warns (`mode: warn`), else
    Fail. Anything unreadable counts as enforcing: the safe side."""
    if policy is None:
        return "Fail"
    try:
        document = yaml.safe_load(policy)
    except yaml.YAMLError:
        return "Fail"
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, list) or not rules:
        return "Fail"
    warn_only = all(isinstance(r, dict) and r.get("mode") == "warn" and "static" not in r for r in rules)
    return "Ignore" if warn_only else "Fail"


def config_key(path: str) -> str:
    """The ConfigMap key of a trust file: keys cannot hold '/', so a digest of the path names it (the chart
    uses the same rule: `sha256sum | trunc 16`)."""
    return "f-" + hashlib.sha256(path.encode()).hexdigest()[:16]


def render(options: ManifestOptions) -> list[dict[str, Any]]:
    """Every object, in an order `kubectl apply -f` can create them in (webhook configurations last)."""
    check_options(options)
    objects = [custom_resource_definition(), namespace(options), service_account(options)]
    objects += rbac(options)
    if options.policy is not None:
        objects.append(policy_config_map(options))
    objects += [
        service(options),
        deployment(options),
        disruption_budget(options),
        webhook_configuration(options, mutating=False),
        webhook_configuration(options, mutating=True),
    ]
    return objects


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True, width=1000)


# ------------------------------------------------------------------ the objects


def webhook_name(options: ManifestOptions) -> str:
    return f"{options.name}-webhook"


def policy_config_map_name(options: ManifestOptions) -> str:
    return f"{options.name}-policy"


def tls_secret_name(options: ManifestOptions) -> str:
    return f"{options.name}-webhook-tls"


def labels(options: ManifestOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": options.name, "app.kubernetes.io/component": "webhook"}


def _meta(options: ManifestOptions, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = options.namespace
    meta["labels"] = labels(options)
    return meta


def custom_resource_definition() -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "description": (
            "A sigscope policy document (apiVersion sigscope/v1, kind Policy: `sigscope policy schema`)."
        ),
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{CRD_PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": CRD_KIND,
                "listKind": f"{CRD_KIND}List",
                "plural": CRD_PLURAL,
                "singular": CRD_KIND.lower(),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


def namespace(options: ManifestOptions) -> dict[str, Any]:
    # The webhook's pods meet the "restricted" Pod Security Standard; the label makes the API server hold
    # them (and anything else started there) to it.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": options.namespace,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def service_account(options: ManifestOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(options, webhook_name(options))}


def rbac(options: ManifestOptions) -> list[dict[str, Any]]:
    """Read access to SigscopePolicy objects (the policy can come from one), nothing else."""
    name = webhook_name(options)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(options, name, namespaced=False),
        "rules": [{"apiGroups": [GROUP], "resources": [CRD_PLURAL], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(options, name, namespaced=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": options.namespace}],
    }
    return [role, binding]


def policy_config_map(options: ManifestOptions) -> dict[str, Any]:
    assert options.policy is not None
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, content in [(POLICY_KEY, options.policy)] + [
        (config_key(path), content) for path, content in sorted(options.trust_files.items())
    ]:
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(options, policy_config_map_name(options)),
        "data": data,
    }
    if binary:
        config_map["binaryData"] = binary
    return config_map


def _policy_volume(options: ManifestOptions) -> dict[str, Any]:
    source: dict[str, Any] = {"name": policy_config_map_name(options)}
    if options.policy is not None and options.trust_files:
        # A mounted directory (not subPath), so the kubelet's updates reach the file the server reloads.
        source["items"] = [{"key": POLICY_KEY, "path": POLICY_KEY}] + [
            {"key": config_key(path), "path": path} for path in sorted(options.trust_files)
        ]
    return {"name": "policy", "configMap": source}


def deployment(options: ManifestOptions) -> dict[str, Any]:
    selector = labels(options)
    probe = {"scheme": "HTTPS", "port": "https"}
    container = {
        "name": "webhook",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sigscope"],
        "args": [
            "webhook",
            "serve",
            "--policy",
            f"{POLICY_DIR}/{POLICY_KEY}",
            "--tls-cert",
            f"{TLS_DIR}/tls.crt",
            "--tls-key",
            f"{TLS_DIR}/tls.key",
            # The server listens on loopback unless told otherwise: in a pod, the Service reaches it on
            # the pod's address.
            "--address",
            "0.0.0.0",
            "--port",
            str(PORT),
        ],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **probe},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # No CPU limit: throttling lands on admission latency, which the API server's timeout bounds.
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "policy", "mountPath": POLICY_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec = {
        "serviceAccountName": webhook_name(options),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {
            "podAntiAffinity": {
                # Preferred, not required: a one-node cluster still runs every replica.
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": selector},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "containers": [container],
        "volumes": [
            _policy_volume(options),
            {"name": "tls", "secret": {"secretName": tls_secret_name(options)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options, webhook_name(options)),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": pod_spec},
        },
    }


def disruption_budget(options: ManifestOptions) -> dict[str, Any]:
    # One replica must stay up through a drain; with a single replica that would block drains forever.
    budget: dict[str, Any] = {"minAvailable": 1} if options.replicas > 1 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(options, webhook_name(options)),
        "spec": {**budget, "selector": {"matchLabels": labels(options)}},
    }


def service(options: ManifestOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(options, webhook_name(options)),
        "spec": {
            "selector": labels(options),
            "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
        },
    }


def webhook_rules() -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "resources": list(resources),
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
        for group, resources in WEBHOOK_RESOURCES
    ]


def excluded_namespaces(options: ManifestOptions) -> list[str]:
    return sorted({"kube-system", options.namespace, *options.exempt_namespaces})


def webhook_configuration(options: ManifestOptions, *, mutating: bool) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {
            "name": webhook_name(options),
            "namespace": options.namespace,
            "path": MUTATE_PATH if mutating else VALIDATE_PATH,
            "port": 443,
        }
    }
    metadata = _meta(options, webhook_name(options), namespaced=False)
    if options.ca_bundle is not None:
        client["caBundle"] = base64.b64encode(options.ca_bundle).decode()
    else:
        metadata["annotations"] = {
            "cert-manager.io/inject-ca-from": f"{options.namespace}/{webhook_name(options)}"
        }
    hook: dict[str, Any] = {
        "name": f"{'mutate' if mutating else 'validate'}.{GROUP}",
        "admissionReviewVersions": ["v1"],
        "clientConfig": client,
        "rules": webhook_rules(),
        "failurePolicy": options.failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": options.timeout_seconds,
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": excluded_namespaces(options),
                }
            ]
        },
    }
    if mutating:
        # Another webhook may add containers after sigscope pinned the first ones: pin those too.
        hook["reinvocationPolicy"] = "IfNeeded"
    kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "webhooks": [hook],
    }
