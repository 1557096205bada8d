"""AdmissionReview (admission.k8s.io/v1) in, AdmissionReview out (pure).

The request is read strictly (formats/gojson: one reading, no duplicate keys, bounded depth) and only
what the webhook needs is kept. The answer echoes the request's uid, as the API server requires; a denial
is `allowed: false` with status 403 and a message naming each denied image, its rule and what failed;
`warn` verdicts allow with `warnings`; `auditAnnotations` carry the decision and the policy version.
A dryRun request is answered the same way: the webhook has no side effects to skip.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sigscope.admission.verdict import Verdict
from sigscope.admission.workloads import DEFAULT_MAX_CONTAINERS, ImageSite, WorkloadError, image_sites
from sigscope.errors import MalformedJSONError, SigscopeError
from sigscope.formats import gojson
from sigscope.report.escape import printable

API_VERSION = "admission.k8s.io/v1"
# Objects beneath these members are Kubernetes objects: Go decodes them case-sensitively since 1.23, so
# labels such as "App" and "app" are two keys, not an ambiguity.
_OBJECT_MEMBERS = frozenset({"object", "oldObject", "options"})
MAX_UID = 128
MAX_MESSAGE = 4096
MAX_WARNING = 256  # the API server shortens longer warnings anyway
MAX_WARNINGS = 32


class ReviewError(SigscopeError):
    """A request that is not an AdmissionReview we can answer: one line, HTTP 400."""


@dataclass(frozen=True)
class ReviewRequest:
    uid: str
    kind: str  # request.kind.kind (Pod, Deployment, ...)
    group: str
    resource: str
    sub_resource: str
    namespace: str
    name: str
    operation: str
    user: str
    dry_run: bool
    sites: tuple[ImageSite, ...]

    @property
    def images(self) -> list[str]:
        """Each image once, in the order first seen."""
        return list(dict.fromkeys(site.image for site in self.sites))


def _string(parent: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = parent.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ReviewError(f"{where}.{key} is not a {'non-empty ' if required else ''}string")
    return value


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReviewError(f"{where}.{key} is not an object")
    return value


def parse_review(body: bytes, *, max_containers: int = DEFAULT_MAX_CONTAINERS) -> ReviewRequest:
    """The request of an AdmissionReview; ReviewError naming the first thing wrong with it."""
    try:
        data = gojson.read(body, "AdmissionReview", maps=_OBJECT_MEMBERS)
    except MalformedJSONError as exc:
        raise ReviewError(str(exc)) from None
    if not isinstance(data, dict):
        raise ReviewError("AdmissionReview is not a JSON object")
    if data.get("apiVersion") != API_VERSION or data.get("kind") != "AdmissionReview":
        got = f"{data.get('apiVersion')!s:.64} {data.get('kind')!s:.64}"
        raise ReviewError(f"expected apiVersion {API_VERSION}, kind AdmissionReview; got {printable(got)}")
    request = data.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request object")
    uid = _string(request, "uid", "request", required=True)
    if len(uid) > MAX_UID or not uid.isprintable():
        raise ReviewError(f"request.uid is not a uid (at most {MAX_UID} printable characters)")
    kind = _object(request, "kind", "request")
    kind_name = _string(kind, "kind", "request.kind", required=True)
    user_info = _object(request, "userInfo", "request")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise ReviewError("request.dryRun is not a boolean")
    operation = _string(request, "operation", "request")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError("request.object is not an object")
    try:
        # DELETE and CONNECT start nothing: no images to judge, whatever the object says.
        sites = (
            []
            if operation in ("DELETE", "CONNECT")
            else image_sites(kind_name, obj, max_containers=max_containers)
        )
    except WorkloadError as exc:
        raise ReviewError(f"request.object: {exc}") from None
    return ReviewRequest(
        uid=uid,
        kind=kind_name,
        group=_string(kind, "group", "request.kind"),
        resource=_string(_object(request, "resource", "request"), "resource", "request.resource"),
        sub_resource=_string(request, "subResource", "request"),
        namespace=_string(request, "namespace", "request"),
        name=_string(request, "name", "request"),
        operation=operation,
        user=_string(user_info, "username", "request.userInfo"),
        dry_run=dry_run,
        sites=tuple(sites),
    )


def _clip(text: str, limit: int) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _named(verdict: Verdict) -> str:
    """`IMAGE (rule R): reason`, without the engine's own `rule R: ` before the reason (the rule is named)."""
    if not verdict.rule:
        return f"{verdict.image}: {verdict.reason}"
    reason = verdict.reason.removeprefix(f"rule {verdict.rule}: ")
    return f"{verdict.image} (rule {verdict.rule}): {reason}"


def denial_line(verdict: Verdict) -> str:
    """`IMAGE (rule R): reason [failed: a: why; b: why]`; a failed check the reason already spells out is
    not repeated."""
    failed = [check for check in verdict.failed if check not in verdict.reason]
    return _named(verdict) + (f" [failed: {'; '.join(failed)}]" if failed else "")


def overall(verdicts: list[Verdict]) -> str:
    if any(not v.allowed for v in verdicts):
        return "deny"
    if any(v.decision == "warn" for v in verdicts):
        return "warn"
    return "allow"


def _annotations(verdicts: list[Verdict], policy_version: str) -> dict[str, str]:
    notes = {"decision": overall(verdicts), "policy-version": policy_version}
    denied = [v.image for v in verdicts if not v.allowed]
    if denied:
        notes["denied-images"] = _clip(", ".join(denied), 1024)
    stale = [v.image for v in verdicts if v.source == "stale"]
    if stale:
        notes["stale-verdicts"] = _clip(", ".join(stale), 1024)
    return notes


def validate_response(request: ReviewRequest, verdicts: list[Verdict], policy_version: str) -> dict[str, Any]:
    """The `response` of a validating review for `verdicts` (one per distinct image)."""
    response: dict[str, Any] = {
        "uid": request.uid,
        "allowed": overall(verdicts) != "deny",
        "auditAnnotations": _annotations(verdicts, policy_version),
    }
    denied = [v for v in verdicts if not v.allowed]
    if denied:
        what = f"{request.kind} {request.namespace}/{request.name}".rstrip("/")
        lines = "; ".join(denial_line(v) for v in denied)
        message = f"sigscope denied {len(denied)} image{'s' if len(denied) > 1 else ''} of {what}: {lines}"
        response["status"] = {"code": 403, "reason": "Forbidden", "message": _clip(message, MAX_MESSAGE)}
    warnings = [_clip(f"sigscope: {_named(v)}", MAX_WARNING) for v in verdicts if v.decision == "warn"]
    warnings += [
        _clip(
            f"sigscope: {v.image}: verification did not finish, last verdict ({v.age:.0f}s old) served",
            MAX_WARNING,
        )
        for v in verdicts
        if v.source == "stale"
    ]
    if warnings:
        response["warnings"] = warnings[:MAX_WARNINGS]
    return response


def mutate_response(
    request: ReviewRequest, verdicts: list[Verdict], patch: list[dict[str, Any]], policy_version: str
) -> dict[str, Any]:
    """The `response` of a mutating review: always allowed (validation denies), with the pinning patch."""
    response: dict[str, Any] = {
        "uid": request.uid,
        "allowed": True,
        "auditAnnotations": {
            "pinned": str(sum(1 for op in patch if op["op"] == "replace")),
            "policy-version": policy_version,
        },
    }
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    return response


def review(response: dict[str, Any]) -> bytes:
    """The AdmissionReview envelope around `response`, as bytes."""
    envelope = {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
    return json.dumps(envelope, separators=(",", ":")).encode()
