"""The policy's `keyless` authority on real public-good Sigstore signatures (the shared vectors), never the
test bed's PKI, which has no CT log or Rekor.

- connaisseur's capture: a legacy cosign `.sig` signed with a Fulcio certificate (SAN
  philipp.belitz@securesystems.de, GitHub OAuth) and its Rekor SET, with the image manifest it signs;
- cosign's `oci-attestation.sigstore.json`: a keyless DSSE attestation bundle (SAN cody@soyland.com) about
  go-containerregistry's empty image, attached here as a cosign v3 bundle referrer (FORMATS §1.11) to that
  image, whose manifest and config are rebuilt byte for byte (the digest the statement names).

Both sit in OCI layouts made from the vectors' bytes; `trusted_root_pgi.json` (cosign's public-good root)
trusts them, and copies without the CT or Rekor keys must not. The certificates lived ten minutes in 2024:
they are judged at the time Rekor vouches for, so the clock given to the engine decides nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from testbed import vectors
from testbed.cli import run_sigscope

from sigscope.cli.discover import discover
from sigscope.formats import cosign
from sigscope.model import Descriptor, Signature
from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryOptions
from sigscope.oci.layout import OCILayout
from sigscope.policy import Decision, evaluate, load_policy
from sigscope.scan.registry import ScanOptions

pytestmark = pytest.mark.vectors

TESTIMAGE = (
    vectors.ROOT
    / "sse-secure-systems-connaisseur"
    / "test"
    / "testdata"
    / "cosign"
    / "securesystemsengineering"
) / "testimage"
COSIGN_DATA = vectors.ROOT / "sigstore-cosign" / "pkg" / "cosign" / "testdata"

PHILIPP = "philipp.belitz@securesystems.de"
CODY = "cody@soyland.com"
GITHUB = "https://github.com/login/oauth"
ATTESTED = "https://cosign.sigstore.dev/attestation/v1"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# go-containerregistry's empty.Image: the image the attestation's statement names (sha256:73211227…)
EMPTY_CONFIG = b'{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}'  # noqa: E501
EMPTY_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
SIGNED_DIGEST = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"

# Before the certificates, inside the ten minutes of connaisseur's (Rekor: 2024-05-30T15:18:17Z), long after.
CLOCKS = (
    datetime(2020, 1, 1, tzinfo=UTC),
    datetime(2024, 5, 30, 15, 20, tzinfo=UTC),
    datetime(2030, 1, 1, tzinfo=UTC),
)
IN_WINDOW = CLOCKS[1]


@dataclass(frozen=True)
class Image:
    ref: str
    digest: str
    signatures: list[Signature]


@dataclass(frozen=True)
class Bed:
    dir: Path
    images: dict[str, Image]


async def _signed_image(layout: OCILayout, tamper: bytes = b"", drop: str = "") -> str:
    """connaisseur's image and its `.sig` under tag v1. `tamper` flips the case of these bytes in the signed
    payload and `drop` removes one layer annotation; the `.sig` manifest is then re-made to name the
    result, as whoever pushes a forgery would."""
    image = await layout.put_manifest(
        (TESTIMAGE / "manifests" / "keyless.json").read_bytes(), DOCKER_MANIFEST, "v1"
    )
    tag = cosign.attachment_tag(image.digest, "sig")
    manifest_bytes = (TESTIMAGE / "manifests" / f"{tag}.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    [layer] = manifest["layers"]
    blob = (TESTIMAGE / "blobs" / f"{layer['digest']}.json").read_bytes()
    if tamper or drop:
        blob = blob.replace(tamper, tamper.swapcase()) if tamper else blob
        stored = await layout.put_blob(blob)
        layer.update(digest=stored.digest, size=stored.size)
        layer["annotations"].pop(drop, None)
        manifest_bytes = json.dumps(manifest).encode()
    await layout.put_blob(blob)
    await layout.put_manifest(manifest_bytes, mediatypes.OCI_MANIFEST, tag)
    return image.digest


async def _empty_image(layout: OCILayout) -> Descriptor:
    config = await layout.put_blob(EMPTY_CONFIG)
    manifest = {  # as Go serialises it: field order, no spaces
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.size, "digest": config.digest},
        "layers": [],
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return await layout.put_manifest(raw, DOCKER_MANIFEST, "v1")


async def _attach_bundle(layout: OCILayout, subject: Descriptor, bundle: bytes) -> None:
    """`bundle` as cosign v3 attaches it: a referrer whose one layer is the bundle (FORMATS §1.11)."""
    layer = await layout.put_blob(bundle)
    empty = await layout.put_blob(b"{}")
    referrer = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2},
        "layers": [{"mediaType": BUNDLE, "digest": layer.digest, "size": layer.size}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": ATTESTED,
        },
    }
    await layout.push_referrer(json.dumps(referrer).encode(), mediatypes.OCI_MANIFEST)


def _tampered_bundle(raw: bytes) -> bytes:
    bundle = json.loads(raw)
    statement = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement.replace(b"bar", b"baz")).decode()
    assert bundle != json.loads(raw)
    return json.dumps(bundle).encode()


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Bed:
    directory = tmp_path_factory.mktemp("keyless")
    vectors.require(TESTIMAGE)
    pgi = vectors.require(COSIGN_DATA / "trusted_root_pgi.json")
    attestation = vectors.require(COSIGN_DATA / "oci-attestation.sigstore.json").read_bytes()
    root = json.loads(pgi.read_bytes())
    (directory / "root.json").write_bytes(pgi.read_bytes())
    (directory / "no-ct.json").write_text(json.dumps({**root, "ctlogs": []}))
    (directory / "no-rekor.json").write_text(json.dumps({**root, "tlogs": []}))

    async def build() -> dict[str, Image]:
        layouts: dict[str, OCILayout] = {}

        def layout(name: str) -> OCILayout:
            layouts[name] = OCILayout(directory / name, create=True)
            return layouts[name]

        assert await _signed_image(layout("signed")) == SIGNED_DIGEST
        await _signed_image(layout("tampered"), tamper=b"rekor-test")
        await _signed_image(layout("no-rekor-entry"), drop=cosign.BUNDLE_ANNOTATION)
        empty = await _empty_image(layout("attested"))
        assert empty.digest == EMPTY_DIGEST
        await _attach_bundle(layouts["attested"], empty, attestation)
        await _attach_bundle(
            layout("att-tampered"), await _empty_image(layouts["att-tampered"]), _tampered_bundle(attestation)
        )
        # the same attestation on another image: its statement names the empty image, not this one
        other = layout("att-elsewhere")
        await _signed_image(other)
        await _attach_bundle(other, await other.resolve("v1"), attestation)
        found = {}
        for name in layouts:
            ref = f"oci:{directory / name}:v1"
            _, digest, signatures = await discover(ref, RegistryOptions(), ScanOptions(now=CLOCKS[2]))
            found[name] = Image(ref, digest, signatures)
        return found

    return Bed(directory, asyncio.run(build()))


def policy_file(bed: Bed, name: str, authorities: list[dict[str, Any]]) -> Path:
    document = {
        "apiVersion": "sigscope/v1",
        "kind": "Policy",
        "rules": [{"name": "r", "images": ["oci:**"], "authorities": authorities}],
    }
    path = bed.dir / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def keyless(identity: dict[str, str], root: str = "root.json", name: str = "ci") -> dict[str, Any]:
    return {"name": name, "keyless": {"trustedRoot": root, "identities": [identity]}}


def decide(bed: Bed, image: str, authorities: list[dict[str, Any]], now: datetime = CLOCKS[2]) -> Decision:
    found = bed.images[image]
    policy = load_policy(policy_file(bed, "p", authorities))
    return evaluate(policy, found.ref, found.digest, found.signatures, now)


def at_every_clock(bed: Bed, image: str, authorities: list[dict[str, Any]]) -> list[Decision]:
    return [decide(bed, image, authorities, now) for now in CLOCKS]


# ---------------------------------------------------------------- the keyless image signature


@pytest.mark.parametrize(
    "identity",
    [
        {"subject": PHILIPP, "issuer": GITHUB},
        {"subjectRegExp": "^philipp\\.belitz@securesystems\\.de$", "issuerRegExp": "^https://github\\.com/"},
        {"subjectRegExp": "philipp"},  # unanchored, as cosign
    ],
)
def test_right_identity_allows_at_any_clock(bed: Bed, identity: dict[str, str]) -> None:
    for decision in at_every_clock(bed, "signed", [keyless(identity)]):
        assert decision.decision == "allow", decision.reason
        [checks] = decision.authorities[0].checks
        assert "SET verified" in json.dumps(checks)  # the certificate was dated by Rekor, not the clock


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        ({"subject": "bob@gmail.com", "issuer": GITHUB}, "certificate identity mismatch"),
        ({"subject": PHILIPP.upper(), "issuer": GITHUB}, "certificate identity mismatch"),  # exact is exact
        ({"subjectRegExp": "^philipp$"}, "certificate identity mismatch"),
        ({"subject": PHILIPP, "issuer": "https://accounts.google.com"}, "certificate OIDC issuer mismatch"),
        ({"subject": PHILIPP, "issuer": GITHUB + "/"}, "certificate OIDC issuer mismatch"),
        ({"subject": PHILIPP, "issuerRegExp": "google"}, "certificate OIDC issuer mismatch"),
    ],
)
def test_wrong_identity_denies(bed: Bed, identity: dict[str, str], reason: str) -> None:
    for decision in at_every_clock(bed, "signed", [keyless(identity)]):
        assert decision.decision == "deny" and reason in decision.reason, decision.reason


def test_trusted_root_without_the_ct_or_rekor_key_denies(bed: Bed) -> None:
    good = {"subject": PHILIPP, "issuer": GITHUB}
    for decision in at_every_clock(bed, "signed", [keyless(good, "no-ct.json")]):
        assert decision.decision == "deny" and "certificate SCT does not verify" in decision.reason
    # Without the Rekor key the SET proves no time: inside the certificate's ten minutes the refused SET
    # is the reason, at any other clock the certificate's validity as well
    for now, decision in zip(
        CLOCKS, at_every_clock(bed, "signed", [keyless(good, "no-rekor.json")]), strict=True
    ):
        assert decision.decision == "deny", decision.reason
        [checks] = decision.authorities[0].checks
        assert "Did not find any Rekor keys" in json.dumps(checks)
        if now == IN_WINDOW:
            assert "transparency log entry does not verify" in decision.reason


def test_no_rekor_entry_denies_even_while_the_certificate_was_valid(bed: Bed) -> None:
    """A Fulcio signature stripped of its Rekor bundle: judged at a clock inside the certificate's validity,
    the chain, SCT and identity all hold, and still nothing was logged: cosign refuses it, so do we."""
    for decision in at_every_clock(bed, "no-rekor-entry", [keyless({"subject": PHILIPP, "issuer": GITHUB})]):
        assert decision.decision == "deny", decision.reason
    inside = decide(bed, "no-rekor-entry", [keyless({"subjectRegExp": "philipp"})], IN_WINDOW)
    assert "a Fulcio certificate needs its Rekor entry" in inside.reason


def test_tampered_payload_denies(bed: Bed) -> None:
    for decision in at_every_clock(bed, "tampered", [keyless({"subject": PHILIPP, "issuer": GITHUB})]):
        assert decision.decision == "deny", decision.reason
        assert decision.reason.endswith("(signature does not verify)"), decision.reason
        [judged] = decision.authorities[0].checks
        assert judged["status"] == "invalid"


# ---------------------------------------------------------------- the keyless attestation


def inline_signer(identity: dict[str, str]) -> dict[str, Any]:
    return {"keyless": {"trustedRoot": "root.json", "identities": [identity]}}


def attestation(by: list[Any]) -> dict[str, Any]:
    condition = {"path": "$.Data", "equals": '{"foo": "bar"}\n'}  # the vector's predicate
    return {"name": "att", "attestation": {"predicateType": ATTESTED, "by": by, "conditions": [condition]}}


def test_attestation_by_a_keyless_authority(bed: Bed) -> None:
    cody = {"subject": CODY, "issuer": GITHUB}
    named = [keyless(cody), attestation(["ci"])]
    for decision in at_every_clock(bed, "attested", named):
        assert decision.decision == "allow", decision.reason
        # ci signs nothing on the image; the attestation it signed satisfies `att`
        assert [a.satisfied for a in decision.authorities] == [False, True]
        assert f"{ATTESTED} attested by ci" in decision.reason
    # an inline signer: it satisfies only the attestation
    inline = [attestation([inline_signer({"subjectRegExp": "^cody@", "issuerRegExp": "github"})])]
    assert decide(bed, "attested", inline, IN_WINDOW).decision == "allow"
    assert decide(bed, "attested", inline).decision == "allow"
    wrong = decide(bed, "attested", [attestation([inline_signer({"subjectRegExp": "^philipp"})])])
    assert wrong.decision == "deny" and "(certificate-identity: no subject" in wrong.reason, wrong.reason


@pytest.mark.parametrize(
    ("image", "signer", "reason"),
    [
        ("attested", keyless({"subject": PHILIPP, "issuer": GITHUB}), "(certificate-identity: no subject"),
        (
            "attested",
            keyless({"subject": CODY, "issuer": "https://accounts.google.com"}),
            "(certificate-issuer: OIDC issuer",
        ),
        ("attested", keyless({"subject": CODY}, "no-ct.json"), "CTFE keys not found"),
        ("attested", keyless({"subject": CODY}, "no-rekor.json"), "no transparency log"),
        ("att-tampered", keyless({"subject": CODY}), "(signature: does not verify over the DSSE PAE"),
        ("att-elsewhere", keyless({"subject": CODY}), "(dsse-subject: no statement subject names"),
    ],
    ids=["wrong-subject", "wrong-issuer", "no-ct-key", "no-rekor-key", "tampered", "other-image"],
)
def test_attestation_denied(bed: Bed, image: str, signer: dict[str, Any], reason: str) -> None:
    decision = decide(bed, image, [signer, attestation(["ci"])])
    assert decision.decision == "deny", decision.reason
    assert reason in decision.authorities[1].reason, decision.authorities[1].reason


# ---------------------------------------------------------------- the CLI


def test_policy_test_cli(bed: Bed) -> None:
    """`sigscope policy test` on both layouts, through the real discovery and today's clock."""
    images = (bed.images["signed"].ref, bed.images["attested"].ref)

    def run(name: str, philipp: dict[str, str], cody: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
        path = policy_file(bed, name, [keyless(philipp), attestation([inline_signer(cody)])])
        done = run_sigscope("policy", "test", "--policy", str(path), *images, "-o", "json")
        return done.returncode, json.loads(done.stdout)["decisions"]

    code, decisions = run("cli-ok", {"subject": PHILIPP, "issuer": GITHUB}, {"subjectRegExp": "^cody@"})
    assert code == 0 and [d["decision"] for d in decisions] == ["allow", "allow"], decisions
    assert [d["digest"] for d in decisions] == [SIGNED_DIGEST, EMPTY_DIGEST]
    code, decisions = run(
        "cli-deny", {"subject": PHILIPP, "issuer": "https://accounts.google.com"}, {"subject": PHILIPP}
    )
    assert code == 1 and [d["decision"] for d in decisions] == ["deny", "deny"], decisions
