"""`oci:PATH` layouts against hostile content (issue 12): an index.json too large to read, a FIFO where a blob
should be, thousands of tags, index.json naming a digest whose blob was replaced; and the air-gapped copy of
a registry-signed image, which binds by digest (verify --signed-identity names the repository)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from testbed import build_layout, layout_digest
from testbed.cli import run_sigscope as run
from testbed.hostile import run_measured, sparse
from testbed.pki import PKI

from sigscope.errors import IntegrityError, TooLargeError
from sigscope.keys import FileSigner, generate, load_private_key, write_key_pair
from sigscope.oci import layout as layout_module
from sigscope.oci.layout import OCILayout
from sigscope.sign_notation import NotationSignOptions, make_envelope, push_signature, resolve_target

REF_NAME = "org.opencontainers.image.ref.name"
PASSWORD = "layout-hostile"
RSS_CEILING_MIB = 200


def test_index_past_the_manifest_limit_is_refused_unread(tmp_path: Path) -> None:
    """A sparse 2 GiB index.json cost 4 GB RSS; now it is refused from its size, as the registry client
    refuses a manifest past DEFAULT_MAX_MANIFEST."""
    layout = tmp_path / "l"
    build_layout(layout, "v1", seed="hostile/big-index")
    sparse(layout / "index.json", 2 << 30)
    with pytest.raises(TooLargeError, match="over the 4194304-byte limit"):
        asyncio.run(OCILayout(layout).list_tags())
    measured = run_measured("scan", "registry", f"oci:{layout}", "-o", "json", tmp=tmp_path)
    assert "4194304-byte limit" in measured.stdout, measured.stdout
    assert "Traceback" not in measured.stderr
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib


def test_fifo_blob_is_an_error_not_a_hang(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    digest = build_layout(layout, "v1", seed="hostile/fifo-blob")
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.unlink()
    os.mkfifo(blob)
    inspected = run("inspect", f"oci:{layout}:v1", timeout=60)
    assert inspected.returncode == 2, inspected
    assert "not a regular file" in inspected.stderr and "Traceback" not in inspected.stderr
    scanned = run("scan", "registry", f"oci:{layout}", "-o", "json", timeout=60)
    assert "not a regular file" in scanned.stdout, scanned.stdout


def _many_tags(layout: Path, count: int) -> None:
    build_layout(layout, "v0", seed="hostile/tags")
    top = json.loads((layout / "index.json").read_text())
    entry = top["manifests"][0]
    top["manifests"] = [{**entry, "annotations": {REF_NAME: f"t{n}"}} for n in range(count)]
    (layout / "index.json").write_text(json.dumps(top))


def test_index_is_parsed_once_and_tags_resolve_by_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "l"
    _many_tags(layout, 2000)
    parses = 0
    real_loads = layout_module.gojson.read

    def counting(raw: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal parses
        if isinstance(raw, bytes) and b'"manifests"' in raw[:100]:  # index.json, not a manifest
            parses += 1
        return real_loads(raw, *args, **kwargs)

    monkeypatch.setattr(layout_module.gojson, "read", counting)
    opened = OCILayout(layout)

    async def resolve_all() -> set[str]:
        return {(await opened.resolve(f"t{n}")).digest for n in range(2000)}

    assert len(asyncio.run(resolve_all())) == 1
    assert parses == 1
    # a changed index.json is read again
    build_layout(layout, "other", seed="hostile/tags-other")
    assert asyncio.run(opened.resolve("other")).digest == layout_digest(layout, "other")
    assert parses == 2


def test_scan_of_thousands_of_tags_is_linear(tmp_path: Path) -> None:
    """4,000 tags took over 120 s (index.json re-read and re-parsed per tag and per referrer search)."""
    layout = tmp_path / "l"
    _many_tags(layout, 4000)
    measured = run_measured("scan", "registry", f"oci:{layout}", "-o", "json", tmp=tmp_path, timeout=90)
    assert measured.returncode == 0, measured.stderr
    assert len(json.loads(measured.stdout)["images"][0]["tags"]) == 4000


def test_resolved_digest_is_checked_against_the_manifest_bytes(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    digest = build_layout(layout, "v1", seed="hostile/replaced")
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        asyncio.run(OCILayout(layout).resolve("v1"))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        asyncio.run(OCILayout(layout).resolve(digest))


def test_notation_verify_checks_the_manifest_behind_index_json(tsa_pki: PKI, tmp_path: Path) -> None:
    """index.json names D, blob D's bytes were replaced: the Notary path used to verify the signature over D
    without reading D; now it fails as the cosign path does, with an integrity error."""
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="hostile/notation")
    entity = tsa_pki["ec-signer"]
    signer = FileSigner(load_private_key(entity.key_path.read_bytes()))
    options = NotationSignOptions(
        chain=(entity.cert, *entity.chain), expiry=timedelta(days=1), now=datetime.now(UTC)
    )

    async def sign() -> None:
        repository = OCILayout(layout)
        target = await resolve_target(repository, "v1")
        await push_signature(repository, target, await make_envelope(signer, target, options))

    asyncio.run(sign())
    config = tmp_path / "notation"
    store = config / "truststore" / "x509" / "ca" / "sigscope"
    store.mkdir(parents=True)
    (store / "root.crt").write_bytes(tsa_pki["root"].cert.public_bytes(serialization.Encoding.PEM))
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "all",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:sigscope"],
                "trustedIdentities": ["*"],
            }
        ],
    }
    (config / "trustpolicy.json").write_text(json.dumps(policy))
    verified = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert verified.returncode == 0, verified.stderr

    digest = layout_digest(layout, "v1")
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    replaced = run("verify", f"oci:{layout}:v1", "--notation-config", str(config))
    assert replaced.returncode == 2, replaced
    assert "digest mismatch" in replaced.stderr and "Traceback" not in replaced.stderr


# ---------------------------------------------------------------- an air-gapped copy of a registry image


@pytest.fixture(scope="module")
def signed_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A layout holding v1 and v2, v1 signed with cosign as `registry.example.com/team/app`, as a copy of
    a registry image and its signature would be."""
    base = tmp_path_factory.mktemp("signed-copy")
    layout = base / "layout"
    build_layout(layout, "v1", seed="hostile/copy-v1")
    build_layout(layout, "v2", seed="hostile/copy-v2")
    private, public = write_key_pair(base / "cosign", generate("ecdsa-p256"), PASSWORD)
    signed = run(
        "sign",
        f"oci:{layout}:v1",
        "--key",
        str(private),
        "--sign-container-identity",
        "registry.example.com/team/app",
        env={"SIGSCOPE_PASSWORD": PASSWORD},
    )
    assert signed.returncode == 0, signed.stderr
    return layout, public


def test_layout_copy_of_a_registry_signed_image_verifies(signed_copy: tuple[Path, Path]) -> None:
    layout, public = signed_copy
    result = run("verify", f"oci:{layout}:v1", "--key", str(public), "-o", "json")
    assert result.returncode == 0, result.stderr
    [judged] = json.loads(result.stdout)["signatures"]
    checks = {c["name"]: c["outcome"] for c in judged["checks"]}
    assert checks["payload-digest"] == "passed" and checks["reference"] == "skipped", checks


def test_signed_identity_checks_the_repository(signed_copy: tuple[Path, Path]) -> None:
    layout, public = signed_copy
    image = f"oci:{layout}:v1"
    same = run("verify", image, "--key", str(public), "--signed-identity", "registry.example.com/team/app")
    assert same.returncode == 0, same.stderr
    other = run("verify", image, "--key", str(public), "--signed-identity", "registry.example.com/team/other")
    assert other.returncode == 1, other
    assert "reference mismatch" in other.stdout
    exact = run("verify", image, "--key", str(public), "--exact-reference")
    assert exact.returncode == 1, exact
    bad = run("verify", image, "--key", str(public), "--signed-identity", "Not A Repo!")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad


def test_digest_still_binds_a_layout_copy(signed_copy: tuple[Path, Path], tmp_path: Path) -> None:
    """The signature of v1 placed as v2's: the payload names v1's digest, so v2 does not verify."""
    source, public = signed_copy
    layout = tmp_path / "layout"
    shutil.copytree(source, layout)
    v1, v2 = layout_digest(layout, "v1"), layout_digest(layout, "v2")
    top = json.loads((layout / "index.json").read_text())
    sig_tag = v1.replace(":", "-") + ".sig"
    [sig] = [m for m in top["manifests"] if m.get("annotations", {}).get(REF_NAME) == sig_tag]
    top["manifests"].append({**sig, "annotations": {REF_NAME: v2.replace(":", "-") + ".sig"}})
    (layout / "index.json").write_text(json.dumps(top))
    result = run("verify", f"oci:{layout}:v2", "--key", str(public))
    assert result.returncode == 1, result
    assert "payload names another digest" in result.stdout
