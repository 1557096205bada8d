"""The webhook's pure parts: images of every pod-bearing kind, the pinning patch, AdmissionReview in/out."""

from __future__ import annotations

import base64
import json

import pytest
from testbed.admission import POD_SPEC_POINTER, admission_review, review_bytes, workload

from sigscope.admission.review import ReviewError, mutate_response, parse_review, validate_response
from sigscope.admission.verdict import CACHED, ON_ERROR, STALE, VERIFIED, Verdict
from sigscope.admission.workloads import ImageSite, WorkloadError, image_sites, pin_patch

V = "sha256:" + "a" * 64
DIGEST = "sha256:" + "b" * 64


@pytest.mark.parametrize("kind", sorted(POD_SPEC_POINTER))
def test_every_container_list_of_every_kind(kind: str) -> None:
    obj = workload(kind, ["app:1", "side:2"], init=["init:1"], ephemeral=["debug:1"])
    sites = image_sites(kind, obj)
    base = POD_SPEC_POINTER[kind]
    assert [(s.image, s.pointer, s.field) for s in sites] == [
        ("init:1", f"{base}/initContainers/0/image", "initContainers"),
        ("app:1", f"{base}/containers/0/image", "containers"),
        ("side:2", f"{base}/containers/1/image", "containers"),
        ("debug:1", f"{base}/ephemeralContainers/0/image", "ephemeralContainers"),
    ]


def test_other_kinds_and_old_ephemeral_subresource() -> None:
    assert image_sites("ConfigMap", {"data": {"image": "x"}}) == []
    old = {"kind": "EphemeralContainers", "ephemeralContainers": [{"name": "d", "image": "busybox:1"}]}
    assert [s.pointer for s in image_sites("EphemeralContainers", old)] == ["/ephemeralContainers/0/image"]


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"spec": {"containers": {"a": 1}}}, "/spec/containers is not a list"),
        ({"spec": {"containers": ["x"]}}, "/spec/containers/0 is not an object"),
        ({"spec": {"containers": [{"image": 7}]}}, "/spec/containers/0/image is not an image reference"),
        ({"spec": {"containers": [{"image": "x" * 2000}]}}, "is not an image reference"),
        ({"spec": "nope"}, "is not an object"),
        ({"spec": {"containers": [{"image": "a"}] * 300}}, "more than 256 containers"),
    ],
)
def test_hostile_objects_refused(obj: object, problem: str) -> None:
    with pytest.raises(WorkloadError, match=problem):
        image_sites("Pod", obj)


def test_pin_patch_pins_allowed_only_and_is_idempotent() -> None:
    sites = image_sites("Pod", workload("Pod", ["good:1", "bad:1", "pinned:1@" + DIGEST, "good:1"]))
    ops = pin_patch(sites, {"good:1": DIGEST, "bad:1": DIGEST}, allowed={"good:1", "pinned:1@" + DIGEST})
    assert ops == [
        {"op": "test", "path": "/spec/containers/0/image", "value": "good:1"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"good:1@{DIGEST}"},
        {"op": "test", "path": "/spec/containers/3/image", "value": "good:1"},
        {"op": "replace", "path": "/spec/containers/3/image", "value": f"good:1@{DIGEST}"},
    ]
    # Reinvoked on the patched object: nothing more to do.
    patched = [ImageSite(f"good:1@{DIGEST}", s.pointer, s.container, s.field) for s in sites]
    assert pin_patch(patched, {f"good:1@{DIGEST}": DIGEST}, {f"good:1@{DIGEST}"}) == []


def test_parse_review() -> None:
    body = review_bytes("Deployment", workload("Deployment", ["a:1", "b:2", "a:1"]), dry_run=True)
    request = parse_review(body)
    assert (request.uid, request.kind, request.group, request.namespace, request.user, request.dry_run) == (
        "0b8c9a4e-1",
        "Deployment",
        "apps",
        "team",
        "alice@example.com",
        True,
    )
    assert request.images == ["a:1", "b:2"]  # each image once
    assert len(request.sites) == 3
    # DELETE starts nothing; labels differing only in case are two Kubernetes labels, not ambiguous
    obj = workload("Pod", ["a:1"])
    obj["metadata"]["labels"] = {"App": "x", "app": "y"}
    assert parse_review(review_bytes("Pod", obj, operation="DELETE")).images == []
    assert parse_review(review_bytes("Pod", obj)).images == ["a:1"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}',
            "expected apiVersion",
        ),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "no request object"),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}', "uid"),
        (b'{"apiVersion":"admission.k8s.io/v1","apiVersion":"x","kind":"AdmissionReview"}', "duplicate key"),
        (b"[" * 100 + b"]" * 100, "deeper than"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_reviews_are_one_line(body: bytes, problem: str) -> None:
    with pytest.raises(ReviewError, match=problem) as info:
        parse_review(body)
    assert "\n" not in str(info.value)


def test_duplicate_image_key_in_a_container_refused() -> None:
    # Two readings of one container ("image" twice) would let us judge one image and the kubelet run another.
    body = review_bytes("Pod", workload("Pod", ["a:1"])).replace(
        b'"image": "a:1"', b'"image": "a:1", "image": "evil:1"'
    )
    with pytest.raises(ReviewError, match="duplicate key"):
        parse_review(body)


def _verdict(image: str, decision: str, source: str = VERIFIED, **kw: object) -> Verdict:
    return Verdict(
        image=image,
        digest=kw.pop("digest", DIGEST),
        decision=decision,
        rule=kw.pop("rule", "prod"),  # type: ignore[arg-type]
        reason=kw.pop("reason", "why"),
        policy_version=V,
        source=source,
        **kw,
    )  # type: ignore[arg-type]


def test_validate_denies_naming_image_rule_and_failed_checks() -> None:
    request = parse_review(review_bytes("Pod", workload("Pod", ["ok:1", "bad:1", "bad:2"])))
    verdicts = [
        _verdict("ok:1", "allow"),
        _verdict(
            "bad:1", "deny", reason="no authority satisfied", failed=("release-key: no signature verifies",)
        ),
        _verdict("bad:2", "deny", ON_ERROR, rule=None, reason="verification did not finish"),
    ]
    response = validate_response(request, verdicts, V)
    assert response["uid"] == request.uid and response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("sigscope denied 2 images of Pod team/w: ")
    assert "bad:1 (rule prod): no authority satisfied [failed: release-key: no signature verifies]" in message
    assert "bad:2: verification did not finish" in message and "ok:1" not in message
    assert response["auditAnnotations"] == {
        "decision": "deny",
        "policy-version": V,
        "denied-images": "bad:1, bad:2",
    }


def test_validate_warns_and_allows() -> None:
    request = parse_review(review_bytes("Pod", workload("Pod", ["w:1", "s:1"])))
    verdicts = [_verdict("w:1", "warn", reason="unsigned\x1b[31m"), _verdict("s:1", "allow", STALE, age=42.0)]
    response = validate_response(request, verdicts, V)
    assert response["allowed"] is True and "status" not in response
    assert response["warnings"][0] == "sigscope: w:1 (rule prod): unsigned\\x1b[31m"  # escaped
    assert "last verdict (42s old)" in response["warnings"][1]
    assert response["auditAnnotations"]["decision"] == "warn"
    assert response["auditAnnotations"]["stale-verdicts"] == "s:1"


def test_dry_run_answered_the_same() -> None:
    obj = workload("Pod", ["bad:1"])
    verdicts = [_verdict("bad:1", "deny", CACHED)]
    wet = validate_response(parse_review(review_bytes("Pod", obj)), verdicts, V)
    dry = validate_response(parse_review(review_bytes("Pod", obj, dry_run=True)), verdicts, V)
    assert wet == dry


def test_mutate_response_carries_base64_json_patch() -> None:
    request = parse_review(review_bytes("Pod", workload("Pod", ["a:1"])))
    ops = pin_patch(list(request.sites), {"a:1": DIGEST}, {"a:1"})
    response = mutate_response(request, [_verdict("a:1", "allow")], ops, V)
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == ops
    assert "patch" not in mutate_response(request, [], [], V)


def test_review_builder_matches_api_server_shape() -> None:
    # The builder the tests use carries what the API server sends (guards the tests themselves).
    review = admission_review("CronJob", workload("CronJob", ["a:1"]))
    assert review["request"]["kind"] == {"group": "batch", "version": "v1", "kind": "CronJob"}
