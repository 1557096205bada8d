"""The scan-order fast paths (bench/verify.py) give exactly what the general code gives.

cosign's key-only layer is built without the general parser's error collection, JSON is read with the
decoder's scanner alone, verify() judges with a one-pass index of the checks, and discovery fetches a
blob shared by several layers once. Each is compared here against the general path on good and bad
input, so a shortcut can never produce a record (or a verdict) of its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed import build_layout

from sigscope.formats import cosign
from sigscope.keys import FileSigner, generate, public_pem
from sigscope.model import Descriptor, Signature, Status
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import parse_layout
from sigscope.scan.registry import ScanOptions, scan_image
from sigscope.sign import (
    OCI_CONFIG,
    SIMPLESIGNING_MEDIA_TYPE,
    SignOptions,
    assemble_manifest,
    build_payload,
    docker_identity,
    layer_annotations,
)
from sigscope.trust import keys as trust_keys
from sigscope.trust.certs import utcnow
from sigscope.trust.keys import apply_keys, load_public_key
from sigscope.verify import Policy, image_identity, verify

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
NOW = utcnow()


@pytest.fixture(autouse=True)
def cold() -> Iterator[None]:
    cosign.clear_caches()
    trust_keys.clear_caches()
    yield
    cosign.clear_caches()
    trust_keys.clear_caches()


def general(desc: Descriptor, blob: bytes, subject: str) -> Signature:
    """The general parser, as every layer took it before the key-only fast path."""
    sig = Signature(
        format=cosign.SignatureFormat.COSIGN, subject_digest=subject, location="t", media_type=desc.media_type
    )
    return cosign._guarded(sig, lambda deferred: cosign._parse_signature(sig, desc, blob, NOW, deferred), "s")


def layer(blob: bytes, annotation: str | None) -> Descriptor:
    annotations = {} if annotation is None else {cosign.SIGNATURE_ANNOTATION: annotation}
    return Descriptor(SIMPLESIGNING_MEDIA_TYPE, "sha256:" + "00" * 32, len(blob), annotations)


def same(a: Signature, b: Signature) -> None:
    assert a.to_json() == b.to_json()
    assert a.evidence == b.evidence and a.status is b.status and a.error == b.error


GOOD = build_payload("registry.test/app", DIGEST, {"k": "v"})
SIGNATURE = base64.b64encode(b"0D" + b"\x01" * 68).decode()


@pytest.mark.parametrize(
    ("blob", "annotation", "subject"),
    [
        (GOOD, SIGNATURE, DIGEST),  # the common layer
        (GOOD, SIGNATURE, OTHER),  # names another image
        (GOOD, SIGNATURE, ""),  # no subject digest to compare
        (GOOD, " " + SIGNATURE + "\n", DIGEST),  # whitespace in the annotation
        (GOOD, "", DIGEST),  # empty annotation
        (GOOD, "   ", DIGEST),
        (GOOD, None, DIGEST),  # no annotation
        (GOOD, "not base64!", DIGEST),
        (b" " + GOOD + b"\n", SIGNATURE, DIGEST),  # whitespace around the JSON
        (GOOD + b"x", SIGNATURE, DIGEST),  # trailing data
        (b"\xef\xbb\xbf" + GOOD, SIGNATURE, DIGEST),  # a BOM
        (b'{"critical": 1}', SIGNATURE, DIGEST),
        (b'{"critical": {"type": "other"}}', SIGNATURE, DIGEST),
        (b'{"critical":', SIGNATURE, DIGEST),
        (b"\xff", SIGNATURE, DIGEST),
        (b"[]", SIGNATURE, DIGEST),
        (
            json.dumps(
                {
                    "critical": {
                        "identity": {"docker-reference": "r"},
                        "image": {"docker-manifest-digest": DIGEST},
                        "type": "atomic container signature",
                    },
                    "optional": "x" * (cosign._MEMO_PAYLOAD_MAX + 1),
                }
            ).encode(),
            SIGNATURE,
            DIGEST,
        ),  # too large to remember, and `optional` not an object
    ],
)
def test_key_only_fast_path_matches_the_general_parser(
    blob: bytes, annotation: str | None, subject: str
) -> None:
    desc = layer(blob, annotation)
    for _ in range(2):  # cold, then with the payload remembered
        fast = cosign.parse_signature_layer(desc, blob, subject_digest=subject, location="t", now=NOW)
        same(fast, general(desc, blob, subject))


def test_fast_parse_then_key_then_verdict_matches_the_general_path() -> None:
    signer = FileSigner(generate("ecdsa-p256"))
    key = load_public_key(public_pem(signer.private_key))
    stranger = load_public_key(public_pem(FileSigner(generate("ecdsa-p256")).private_key))
    desc = layer(GOOD, base64.b64encode(signer.sign(GOOD)).decode())
    for keys, status in (([key], Status.VERIFIED), ([stranger], Status.UNTRUSTED)):
        trust_keys.clear_caches()
        fast = apply_keys(
            cosign.parse_signature_layer(desc, GOOD, subject_digest=DIGEST, location="t", now=NOW), keys
        )
        trust_keys.clear_caches()
        slow = apply_keys(general(desc, GOOD, DIGEST), keys)
        same(fast, slow)
        assert fast.status is status
        verdicts = [verify("registry.test/app:v1", DIGEST, [s], Policy()) for s in (fast, slow)]
        assert verdicts[0].to_json() == verdicts[1].to_json()
        assert verdicts[0].verified is (status is Status.VERIFIED)
    # A policy requiring annotations still reads them, and a missing one still fails.
    sig = apply_keys(
        cosign.parse_signature_layer(desc, GOOD, subject_digest=DIGEST, location="t", now=NOW), [key]
    )
    assert verify("registry.test/app", DIGEST, [sig], Policy(annotations={"k": "v"})).verified
    failed = verify("registry.test/app", DIGEST, [sig], Policy(annotations={"k": "w"}))
    assert not failed.verified and failed.signatures[0].reason == "annotation mismatch"
    assert not verify("registry.test/other", DIGEST, [sig], Policy()).verified


def scan_layout(store: OCILayout, keys: list[Any]) -> list[Signature]:
    """scan_image on the layout's `v1` with `keys`, as `sigscope verify oci:DIR:v1 --key ...` runs it."""

    async def run() -> list[Signature]:
        [result] = await scan_image(
            store,
            "v1",
            source=f"oci:{store.path}",
            repo_name="",
            registry="",
            options=ScanOptions(now=NOW, keys=keys),
        )
        return result.signatures

    return asyncio.run(run())


class CountingLayout(OCILayout):
    """The real layout, counting blob reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[str] = []

    async def get_blob(self, digest: str, *, max_size: int | None = None) -> bytes:
        self.reads.append(digest)
        return await super().get_blob(digest, max_size=max_size)


def test_layers_sharing_a_blob_read_it_once(tmp_path: Path) -> None:
    # cosign without annotations: several signatures (here by two keys) over one payload blob, plus one
    # layer whose payload was replaced on disk (a digest failure must stay that layer's own).
    build_layout(tmp_path, "v1", seed="fast")
    signers = [FileSigner(generate("ecdsa-p256")) for _ in range(2)]
    keys = [load_public_key(public_pem(s.private_key)) for s in signers]

    async def build() -> tuple[str, str]:
        store = OCILayout(tmp_path)
        digest = (await store.resolve("v1")).digest
        body = build_payload(docker_identity(parse_layout(f"oci:{tmp_path}:v1")), digest, {})
        blob = await store.put_blob(body, SIMPLESIGNING_MEDIA_TYPE)
        bad = await store.put_blob(body + b" ", SIMPLESIGNING_MEDIA_TYPE)
        layers = [
            {
                "mediaType": SIMPLESIGNING_MEDIA_TYPE,
                "size": blob.size,
                "digest": blob.digest,
                "annotations": layer_annotations(signers[n % 2].sign(body), SignOptions()),
            }
            for n in range(4)
        ]
        layers.append({**layers[0], "digest": bad.digest, "size": bad.size})
        manifest, config, media_type = assemble_manifest({}, layers)
        await store.put_blob(config, OCI_CONFIG)
        await store.put_manifest(manifest, media_type, cosign.attachment_tag(digest, "sig"))
        return digest, bad.digest

    digest, bad = asyncio.run(build())
    # Corrupt the odd blob: its bytes no longer match its name.
    algorithm, encoded = bad.split(":")
    (tmp_path / "blobs" / algorithm / encoded).write_bytes(b"tampered")
    store = CountingLayout(tmp_path)
    signatures = scan_layout(store, keys)
    layer_reads = [d for d in store.reads if d != digest]
    assert sorted(layer_reads) == sorted({*layer_reads}) and len(layer_reads) == 2
    assert [s.status for s in signatures] == [Status.VERIFIED] * 4 + [Status.INVALID]
    assert signatures[4].error is not None and "layer 5" in signatures[4].location
    verdict = verify(
        image_identity(parse_layout(f"oci:{tmp_path}:v1")), digest, signatures, Policy(threshold=2)
    )
    assert verdict.verified and len(verdict.keys) == 2


def test_verifying_ahead_on_threads_gives_the_sequential_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scan_image verifies many `.sig` layers ahead on threads (trust/keys.verify_ahead) and apply_keys
    then finds them remembered: every record must be what one thread alone makes, a signature no key
    verified must still fail, and the layers come back in the manifest's order (2 before 10)."""
    from sigscope.scan import registry

    build_layout(tmp_path, "v1", seed="ahead")
    supplied = [FileSigner(generate("ecdsa-p256")) for _ in range(2)]
    stranger = FileSigner(generate("ecdsa-p256"))
    keys = [load_public_key(public_pem(s.private_key)) for s in supplied]
    count = trust_keys.PARALLEL_MIN + 16

    async def build() -> str:
        store = OCILayout(tmp_path)
        digest = (await store.resolve("v1")).digest
        identity = docker_identity(parse_layout(f"oci:{tmp_path}:v1"))
        layers = []
        for n in range(count):
            body = build_payload(identity, OTHER if n % 9 == 4 else digest, {"n": str(n)})
            signer = stranger if n % 7 == 3 else supplied[n % 2]
            signed = build_payload(identity, digest, {"n": "swapped"}) if n % 11 == 5 else body
            blob = await store.put_blob(body, SIMPLESIGNING_MEDIA_TYPE)
            layers.append(
                {
                    "mediaType": SIMPLESIGNING_MEDIA_TYPE,
                    "size": blob.size,
                    "digest": blob.digest,
                    "annotations": layer_annotations(signer.sign(signed), SignOptions()),
                }
            )
        manifest, config, media_type = assemble_manifest({}, layers)
        await store.put_blob(config, OCI_CONFIG)
        await store.put_manifest(manifest, media_type, cosign.attachment_tag(digest, "sig"))
        return digest

    digest = asyncio.run(build())
    ahead: list[int] = []
    real = trust_keys.verify_ahead

    def counting(signatures: list[Signature], keys: list[object], threads: int) -> int:
        verified = real(signatures, keys, threads)  # type: ignore[arg-type]
        ahead.append(verified)
        return verified

    monkeypatch.setattr(trust_keys, "verify_ahead", counting)

    def scan(threads: int) -> list[Signature]:
        monkeypatch.setattr(registry, "verify_threads", lambda: threads)
        cosign.clear_caches()
        trust_keys.clear_caches()
        return scan_layout(OCILayout(tmp_path), keys)

    alone = scan(1)
    assert ahead == [0]
    threaded = scan(2)
    assert [s.to_json() for s in threaded] == [s.to_json() for s in alone]
    expected = []
    for n in range(count):
        if n % 9 == 4:
            expected.append(Status.INVALID)  # signs another image's digest
        elif n % 7 == 3 or n % 11 == 5:
            expected.append(Status.UNTRUSTED)  # a stranger's key, or a signature over another payload
        else:
            expected.append(Status.VERIFIED)
    assert [s.status for s in threaded] == expected
    # invalid ones are not worth verifying, and no signature a key did not verify is remembered
    assert ahead[1] == expected.count(Status.VERIFIED)
    failed = threaded[3]
    assert any(c.name == "trusted-key" and "not signed by any" in c.detail for c in failed.checks)
    assert [s.location.rsplit(" ", 1)[1] for s in threaded] == [str(n + 1) for n in range(count)]
    verdict = verify(
        image_identity(parse_layout(f"oci:{tmp_path}:v1")), digest, threaded, Policy(threshold=2)
    )
    assert verdict.verified and len(verdict.keys) == 2
