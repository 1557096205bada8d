"""RFC 3161 timestamps on cosign signatures: `sign --timestamp-url`, and discovery / verification with
`--timestamp-certificate-chain`, against the loopback TSA (openssl ts) and, for the registry path, Debian's
docker-registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from testbed import RegistryHandle, build_layout, cosign_sig_tag, fetch_manifest, push_layout, refused_port
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.pki import PKI
from testbed.tsa import TSAServer

from sigscope.formats import cosign
from sigscope.keys import generate, write_key_pair
from sigscope.keys.signer import FileSigner
from sigscope.model import Descriptor, Outcome, Status
from sigscope.sign import build_payload
from sigscope.sources.tsa import fetch_timestamp
from sigscope.trust import timestamp as ts
from sigscope.trust.certs import load_pem_chain
from sigscope.trust.identity import verified_time

PASSWORD = "timestamp-test-pw"
TIMESTAMP = "dev.sigstore.cosign/rfc3161timestamp"
SIGNATURE = "dev.cosignproject.cosign/signature"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_sigscope(*args, password=PASSWORD)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    assert_clean_failure(result, pattern, code)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_key_pair(tmp_path_factory.mktemp("ts-keys") / "signer", generate("ecdsa-p256"), PASSWORD)


@pytest.fixture(scope="module")
def other_chain(tsa_pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TSA chain file whose root did not issue the TSA's certificate."""
    path = tmp_path_factory.mktemp("other-chain") / "other.pem"
    path.write_bytes(tsa_pki["other-root"].cert_path.read_bytes())
    return path


def signature_entries(target: str, *extra: str) -> list[dict[str, Any]]:
    result = run("inspect", target, "--signatures", "-o", "json", *extra)
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, Any]] = json.loads(result.stdout)["signatures"]
    return entries


def checks_of(entry: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in entry["checks"]}


def layout_sig_layers(layout: Path, digest: str) -> list[dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    tag = cosign_sig_tag(digest)
    [entry] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    blob = layout / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]
    layers: list[dict[str, Any]] = json.loads(blob.read_bytes())["layers"]
    return layers


@pytest.fixture
def signed_layout(tmp_path: Path, keys: tuple[Path, Path], tsa: TSAServer) -> tuple[Path, str]:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="sigscope/timestamp/layout")
    result = run(
        "sign", f"oci:{layout}:v1", "--key", str(keys[0]), "--timestamp-url", tsa.url
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "timestamp: " in result.stdout
    return layout, digest


# ---------------------------------------------------------------- signing


def test_sign_attaches_cosigns_annotation(
    signed_layout: tuple[Path, str], tsa: TSAServer, tmp_path: Path
) -> None:
    layout, digest = signed_layout
    [layer] = layout_sig_layers(layout, digest)
    annotations = layer["annotations"]
    assert list(annotations) == sorted(annotations)  # a Go map, serialised sorted
    text = annotations[TIMESTAMP]
    document = json.loads(text)
    assert list(document) == ["SignedRFC3161Timestamp"] and text == json.dumps(
        document, separators=(",", ":")
    )
    response = base64.b64decode(document["SignedRFC3161Timestamp"], validate=True)
    signature = base64.b64decode(annotations[SIGNATURE])
    # openssl itself agrees: the reply is a timestamp over the raw signature bytes by a TSA under the root
    (tmp_path / "sig.raw").write_bytes(signature)
    (tmp_path / "resp.tsr").write_bytes(response)
    verify = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "resp.tsr", "-data", "sig.raw", "-CAfile", str(tsa.root_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and "Verification: OK" in verify.stdout, verify.stderr
    # and not over the payload (cosign stamps the signature, not what it signs)
    payload = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
    wrong = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "resp.tsr", "-data", str(payload), "-CAfile", str(tsa.root_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0


def test_sign_with_unreachable_tsa_fails_cleanly(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="sigscope/timestamp/unreachable")
    dead = f"http://127.0.0.1:{refused_port()}/"
    result = run("sign", f"oci:{layout}:v1", "--key", str(keys[0]), "--timestamp-url", dead,
                 "--sign-container-identity", "r.example/a")  # fmt: skip
    one_line_error(result, 2, "cannot connect to TSA")
    index = json.loads((layout / "index.json").read_text())
    assert not any(
        m.get("annotations", {}).get("org.opencontainers.image.ref.name") == cosign_sig_tag(digest)
        for m in index["manifests"]
    ), "no signature may be written when its timestamp could not be obtained"


def test_sign_with_tsa_http_error(tmp_path: Path, keys: tuple[Path, Path], tsa: TSAServer) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/timestamp/http-error")
    result = run("sign", f"oci:{layout}:v1", "--key", str(keys[0]), "--timestamp-url", tsa.url + "nope",
                 "--sign-container-identity", "r.example/a")  # fmt: skip
    one_line_error(result, 2, "HTTP 404")


def test_sign_timestamp_url_usage_errors(tmp_path: Path, keys: tuple[Path, Path], tsa: TSAServer) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/timestamp/usage")
    target = f"oci:{layout}:v1"
    one_line_error(
        run("sign", target, "--key", str(keys[0]), "--timestamp-url", "ftp://x/"), 2, "not an http"
    )
    one_line_error(
        run("sign", target, "--key", str(keys[0]), "--timestamp-url", tsa.url, "--registry-referrers-mode",
            "oci-1-1"),
        2,
        "legacy only",
    )  # fmt: skip


# ---------------------------------------------------------------- discovery and verification


def test_without_tsa_roots_the_time_is_only_claimed(signed_layout: tuple[Path, str]) -> None:
    layout, _ = signed_layout
    [entry] = signature_entries(f"oci:{layout}:v1")
    assert entry["timestamped"] is False and "signingTime" not in entry
    claim = entry["claims"]["timestamp"]
    assert claim["verified"] is False and claim["tsa"].startswith("CN=sigscope Test TSA")
    assert abs(datetime.fromisoformat(claim["time"]) - datetime.now(UTC)).total_seconds() < 600
    check = checks_of(entry)["timestamp"]
    assert check["outcome"] == "skipped" and "--timestamp-certificate-chain" in check["detail"]
    assert entry["status"] == "unverified"  # key-only signature, no --key


def test_with_tsa_roots_the_time_is_verified(signed_layout: tuple[Path, str], tsa: TSAServer) -> None:
    layout, _ = signed_layout
    [entry] = signature_entries(f"oci:{layout}:v1", "--timestamp-certificate-chain", str(tsa.chain_path))
    check = checks_of(entry)["timestamp"]
    assert check["outcome"] == "passed", check
    assert entry["timestamped"] is True
    claim = entry["claims"]["timestamp"]
    assert claim["verified"] is True and entry["signingTime"] == claim["time"]
    assert claim["tsaCertificate"]["subject"].startswith("CN=sigscope Test TSA")
    assert entry["claims"]["signingTimeSource"].startswith("RFC 3161 timestamp by CN=sigscope Test TSA")
    assert entry["status"] != "invalid"


def test_root_only_chain_file_and_key(
    signed_layout: tuple[Path, str], tsa: TSAServer, keys: tuple[Path, Path]
) -> None:
    """cosign's chain file may hold just the root; the token carries the TSA's certificate."""
    layout, _ = signed_layout
    target = f"oci:{layout}:v1"
    [entry] = signature_entries(
        target, "--timestamp-certificate-chain", str(tsa.root_path), "--key", str(keys[1])
    )
    assert checks_of(entry)["timestamp"]["outcome"] == "passed"
    assert entry["status"] == "verified"
    result = run("verify", target, "--key", str(keys[1]), "--timestamp-certificate-chain", str(tsa.root_path))
    assert result.returncode == 0, result.stderr


def test_untrusted_tsa_makes_the_signature_invalid(
    signed_layout: tuple[Path, str], other_chain: Path, keys: tuple[Path, Path]
) -> None:
    layout, _ = signed_layout
    target = f"oci:{layout}:v1"
    [entry] = signature_entries(
        target, "--timestamp-certificate-chain", str(other_chain), "--key", str(keys[1])
    )
    check = checks_of(entry)["timestamp"]
    assert check["outcome"] == "failed" and "timestamp-chain" in check["detail"]
    assert entry["status"] == "invalid" and entry["timestamped"] is False and "signingTime" not in entry
    result = run("verify", target, "--key", str(keys[1]), "--timestamp-certificate-chain", str(other_chain))
    assert result.returncode == 1, result
    assert "timestamp" in result.stdout and "Traceback" not in result.stderr
    # the same signature verifies under the key when no TSA trust is asked for
    assert run("verify", target, "--key", str(keys[1])).returncode == 0


def test_bad_chain_file_is_a_usage_error(signed_layout: tuple[Path, str], tmp_path: Path) -> None:
    layout, _ = signed_layout
    (tmp_path / "empty.pem").write_text("nothing here\n")
    result = run(
        "inspect",
        f"oci:{layout}:v1",
        "--signatures",
        "--timestamp-certificate-chain",
        str(tmp_path / "empty.pem"),
    )
    one_line_error(result, 2, "--timestamp-certificate-chain")


def test_scan_registry_with_timestamps(
    registry: RegistryHandle, tsa: TSAServer, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = "timestamp/app"
    layout = tmp_path / "layout"
    digest = build_layout(layout, "v1", seed="sigscope/timestamp/registry")
    push_layout(layout, "v1", registry.host, repo, "1.0")
    signed = run(
        "sign", f"{registry.host}/{repo}:1.0", "--insecure", "--key", str(keys[0]), "--timestamp-url", tsa.url
    )
    assert signed.returncode == 0, signed.stderr
    manifest = fetch_manifest(registry.host, repo, cosign_sig_tag(digest))
    assert manifest is not None and TIMESTAMP in manifest["layers"][0]["annotations"]
    result = run(
        "scan", "registry", registry.host, "--insecure", "--repo", repo, "-o", "json",
        "--timestamp-certificate-chain", str(tsa.chain_path), "--key", str(keys[1]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [entry] = [s for s in json.loads(result.stdout)["registry"]["signatures"] if s["digest"] == digest]
    assert entry["status"] == "verified" and entry["timestamped"] is True and entry["signingTime"]


# ---------------------------------------------------------------- the pure path: forged timestamps


def _layer(payload: bytes, annotations: dict[str, str]) -> Descriptor:
    return Descriptor(
        media_type=cosign.SIMPLESIGNING_MEDIA_TYPE,
        digest="sha256:" + hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        annotations=annotations,
    )


async def _signed_layer(
    tsa: TSAServer, *, stamp_over: bytes | None = None
) -> tuple[Descriptor, bytes, bytes]:
    digest = "sha256:" + "cd" * 32
    payload = build_payload("registry.example/team/app", digest)
    signer = FileSigner(generate("ecdsa-p256"))
    signature = signer.sign(payload)
    stamp = await fetch_timestamp(tsa.url, signature if stamp_over is None else stamp_over)
    annotations = {
        SIGNATURE: base64.b64encode(signature).decode(),
        TIMESTAMP: cosign.timestamp_annotation(stamp.response),
    }
    return _layer(payload, annotations), payload, signature


def _parse(layer: Descriptor, payload: bytes) -> Any:
    return cosign.parse_signature_layer(
        layer, payload, subject_digest="sha256:" + "cd" * 32, location="test", now=datetime.now(UTC)
    )


async def test_timestamp_over_other_bytes_is_invalid_without_roots(tsa: TSAServer) -> None:
    layer, payload, _ = await _signed_layer(tsa, stamp_over=b"some other signature")
    sig = _parse(layer, payload)
    check = next(c for c in sig.checks if c.name == "timestamp")
    assert check.outcome is Outcome.FAILED and "timestamp-imprint" in check.detail
    assert sig.status is Status.INVALID and not sig.timestamped


async def test_payload_is_not_what_cosign_stamps(tsa: TSAServer) -> None:
    digest = "sha256:" + "cd" * 32
    layer, payload, _ = await _signed_layer(
        tsa, stamp_over=build_payload("registry.example/team/app", digest)
    )
    assert _parse(layer, payload).status is Status.INVALID


GARBAGE_TOKEN = base64.b64encode(b"garbage").decode()


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"SignedRFC3161Timestamp":"%%%"}',
        '{"other":"x"}',
        '{"SignedRFC3161Timestamp":"' + GARBAGE_TOKEN + '"}',
    ],
)
async def test_malformed_annotation_is_a_failed_check(tsa: TSAServer, value: str) -> None:
    layer, payload, _ = await _signed_layer(tsa)
    broken = _layer(payload, {**layer.annotations, TIMESTAMP: value})
    sig = _parse(broken, payload)
    assert [c.name for c in sig.failed_checks] == ["timestamp"]
    assert sig.status is Status.INVALID


async def test_verified_timestamp_is_the_verified_time(tsa: TSAServer) -> None:
    """What the certificate-validity checks rely on: only a verified token gives a signing time."""
    layer, payload, _ = await _signed_layer(tsa)
    sig = _parse(layer, payload)
    assert verified_time(sig)[0] is None and sig.signing_time is None
    roots = ts.TimestampTrust.from_chain(load_pem_chain(tsa.chain_path.read_bytes()))
    sig = ts.apply_timestamp_trust(sig, roots, datetime.now(UTC))
    when, source = verified_time(sig)
    assert when is not None and when == sig.signing_time and "RFC 3161" in source
    assert sig.claims["timestamp"]["time"] == when.isoformat()


async def test_attestation_timestamp_covers_the_layer_blob(tsa: TSAServer) -> None:
    envelope = json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(b"{}").decode(),
            "signatures": [],
        }
    ).encode()
    good = await fetch_timestamp(tsa.url, envelope)
    descriptor = Descriptor(
        media_type=cosign.DSSE_MEDIA_TYPE,
        digest="sha256:" + hashlib.sha256(envelope).hexdigest(),
        size=len(envelope),
        annotations={SIGNATURE: "", TIMESTAMP: cosign.timestamp_annotation(good.response)},
    )
    sig = cosign.parse_attestation_layer(
        descriptor, envelope, subject_digest="sha256:" + "cd" * 32, location="t", now=datetime.now(UTC)
    )
    check = next(c for c in sig.checks if c.name == "timestamp")
    assert check.outcome is Outcome.SKIPPED, check  # consistent: over the envelope blob
    bad = await fetch_timestamp(tsa.url, b"not the envelope")
    descriptor = Descriptor(
        media_type=cosign.DSSE_MEDIA_TYPE,
        digest=descriptor.digest,
        size=descriptor.size,
        annotations={SIGNATURE: "", TIMESTAMP: cosign.timestamp_annotation(bad.response)},
    )
    sig = cosign.parse_attestation_layer(
        descriptor, envelope, subject_digest="sha256:" + "cd" * 32, location="t", now=datetime.now(UTC)
    )
    assert next(c for c in sig.checks if c.name == "timestamp").outcome is Outcome.FAILED
