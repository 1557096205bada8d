"""`sigscope sign --format simple-signing`: GPG simple signatures in a lookaside, checked by gpg, by stock
skopeo 1.9.3's `signedBy` policy and by sigscope itself; and failures that must be one clear line.

Every test pushes its own repository (`gpgsign/...`) so other tests' images stay unsigned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testbed import (
    GpgHome,
    RegistryHandle,
    build_layout,
    gpg_policy,
    layout_digest,
    lookaside_signatures,
    push_layout,
    skopeo_verify,
    stock_skopeo,
    vectors,
    write_registries_d,
)

from sigscope.formats import simplesigning as ss
from sigscope.keys.gpg import GpgError, GpgSigner
from sigscope.sign_simple import build_atomic_payload

VECTORS = vectors.ROOT / "containers-image" / "signature"
OTHER_KEY = VECTORS / "fixtures" / "public-key-2.gpg"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SIGSCOPE_DEBUG", "GNUPGHOME")}
    base["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sigscope", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def push(registry: RegistryHandle, tmp_path: Path, repo: str, tag: str = "1.0") -> str:
    layout = tmp_path / f"layout-{repo.replace('/', '-')}"
    build_layout(layout, "v1", seed=f"sigscope/gpgsign/{repo}")
    push_layout(layout, "v1", registry.host, repo, tag)
    return layout_digest(layout, "v1")


def sign_args(gpg: GpgHome, registries_d: Path, *extra: str) -> list[str]:
    return [
        "--insecure",
        "--format",
        "simple-signing",
        "--gpg-key",
        gpg.fingerprint,
        "--gnupg-home",
        str(gpg.home),
        "--registries.d",
        str(registries_d),
        *extra,
    ]


@pytest.fixture
def store(registry: RegistryHandle, tmp_path: Path) -> tuple[Path, Path]:
    """(registries.d, lookaside dir) for the test registry: lookaside and lookaside-staging both file://."""
    lookaside = tmp_path / "lookaside"
    registries_d = write_registries_d(
        tmp_path / "registries.d", host=registry.host, lookaside_dir=lookaside, sigstore_attachments=False
    )
    return registries_d, lookaside


# ---------------------------------------------------------------- the pure parts


def test_payload_is_containers_image_shape() -> None:
    digest = "sha256:" + "ab" * 32
    payload = build_atomic_payload(
        "127.0.0.1:5000/a/b:1.0", digest, timestamp=1458239713, optional={"env": "p"}
    )
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/a/b:1.0"},'
        b'"image":{"docker-manifest-digest":"sha256:'
        + b"ab"
        * 32
        + b'"},"type":"atomic container signature"},'
        b'"optional":{"creator":"sigscope 0.1.0","env":"p","timestamp":1458239713}}'
    )
    parsed = ss.parse_payload(payload)  # containers/image's strict rules
    assert parsed["optional"]["timestamp"] == 1458239713


def test_reserved_annotations_are_refused() -> None:
    from sigscope.errors import UsageError

    with pytest.raises(UsageError, match="reserved"):
        build_atomic_payload("a.io/b:1", "sha256:" + "0" * 64, timestamp=1, optional={"creator": "me"})


def test_signer_makes_a_signed_message(gpg_home: GpgHome) -> None:
    signer = GpgSigner(gpg_home.fingerprint, home=gpg_home.home)
    assert signer.key.fingerprint == gpg_home.fingerprint
    blob = signer.sign(b'{"hello":"world"}')
    assert ss.looks_like_simple_signing(blob)
    message = ss.parse_message(blob)
    assert message.literal == b'{"hello":"world"}'
    assert signer.export_public()


def test_signer_refuses_unknown_key(gpg_home: GpgHome) -> None:
    with pytest.raises(GpgError, match="no secret key"):
        GpgSigner("0123456789ABCDEF0123456789ABCDEF01234567", home=gpg_home.home)


# ---------------------------------------------------------------- against a registry and skopeo


def test_sign_and_stock_skopeo_accepts(
    registry: RegistryHandle, gpg_home: GpgHome, store: tuple[Path, Path], tmp_path: Path
) -> None:
    registries_d, lookaside = store
    repo = "gpgsign/accepted"
    digest = push(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}:1.0"
    result = run("sign", image, *sign_args(gpg_home, registries_d, "-a", "env=prod", "-o", "json"))
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["digest"] == digest and out["key"] == gpg_home.fingerprint
    [sig] = lookaside_signatures(lookaside, repo, digest)
    assert out["signature"] == f"file://{sig}"  # c/image's own spelling: `@` and `=` unescaped
    assert f"VALIDSIG {gpg_home.fingerprint}" in gpg_home.verify(sig)
    payload = json.loads(gpg_home.decrypt(sig))
    assert payload["critical"] == {
        "identity": {"docker-reference": image},
        "image": {"docker-manifest-digest": digest},
        "type": "atomic container signature",
    }
    assert payload["optional"]["env"] == "prod" and isinstance(payload["optional"]["timestamp"], int)

    public = gpg_home.export_public(tmp_path / "signer.gpg")
    skopeo = stock_skopeo()
    ok = skopeo_verify(skopeo, gpg_policy(public), registries_d, image, tmp_path)
    assert ok.returncode == 0, ok.stderr
    by_digest = skopeo_verify(
        skopeo, gpg_policy(public), registries_d, f"{registry.host}/{repo}@{digest}", tmp_path
    )
    assert by_digest.returncode == 0, by_digest.stderr
    wrong = skopeo_verify(skopeo, gpg_policy(vectors.require(OTHER_KEY)), registries_d, image, tmp_path)
    assert wrong.returncode != 0
    # sigscope's own --gpg-keyring verification agrees
    mine = run(
        "verify", image, "--insecure", "--gpg-keyring", str(public), "--registries.d", str(registries_d)
    )
    assert mine.returncode == 0, mine.stderr


def test_signing_again_never_overwrites(
    registry: RegistryHandle, gpg_home: GpgHome, store: tuple[Path, Path], tmp_path: Path
) -> None:
    registries_d, lookaside = store
    repo = "gpgsign/twice"
    digest = push(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}:1.0"
    result = run("sign", image, *sign_args(gpg_home, registries_d))
    assert result.returncode == 0, result.stderr
    [first] = lookaside_signatures(lookaside, repo, digest)
    original = first.read_bytes()
    result = run("sign", image, *sign_args(gpg_home, registries_d))
    assert result.returncode == 0, result.stderr
    # Two signatures made within one second may be byte-identical (RSA PKCS#1 v1.5 is deterministic and
    # both timestamps have one-second resolution): what matters is a new file, the old one untouched.
    again, second = lookaside_signatures(lookaside, repo, digest)
    assert again == first and first.read_bytes() == original
    assert second.name == "signature-2" and second.read_bytes()
    assert "signature-2" in result.stdout
    public = gpg_home.export_public(tmp_path / "signer.gpg")
    ok = skopeo_verify(stock_skopeo(), gpg_policy(public), registries_d, image, tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_sign_by_digest_signs_digest_identity(
    registry: RegistryHandle, gpg_home: GpgHome, store: tuple[Path, Path], tmp_path: Path
) -> None:
    registries_d, lookaside = store
    repo = "gpgsign/bydigest"
    digest = push(registry, tmp_path, repo)
    image = f"{registry.host}/{repo}@{digest}"
    result = run("sign", image, *sign_args(gpg_home, registries_d))
    assert result.returncode == 0, result.stderr
    [sig] = lookaside_signatures(lookaside, repo, digest)
    assert json.loads(gpg_home.decrypt(sig))["critical"]["identity"]["docker-reference"] == image
    public = gpg_home.export_public(tmp_path / "signer.gpg")
    skopeo = stock_skopeo()
    assert skopeo_verify(skopeo, gpg_policy(public), registries_d, image, tmp_path).returncode == 0
    # a digest identity never satisfies matchRepoDigestOrExact for a tag
    tagged = skopeo_verify(skopeo, gpg_policy(public), registries_d, f"{registry.host}/{repo}:1.0", tmp_path)
    assert tagged.returncode != 0


# ---------------------------------------------------------------- failures: one line, exit 2


def test_missing_key_is_a_clear_error(
    registry: RegistryHandle, gpg_home: GpgHome, store: tuple[Path, Path], tmp_path: Path
) -> None:
    registries_d, lookaside = store
    repo = "gpgsign/nokey"
    digest = push(registry, tmp_path, repo)
    args = sign_args(gpg_home, registries_d)
    args[args.index(gpg_home.fingerprint)] = "F" * 40
    line = one_line_error(run("sign", f"{registry.host}/{repo}:1.0", *args))
    assert "no secret key" in line
    assert lookaside_signatures(lookaside, repo, digest) == []


def test_missing_gnupg_home(registry: RegistryHandle, gpg_home: GpgHome, store: tuple[Path, Path]) -> None:
    args = sign_args(gpg_home, store[0])
    args[args.index(str(gpg_home.home))] = "/nonexistent/gnupg"
    assert "not a directory" in one_line_error(run("sign", f"{registry.host}/demo/alpine:1.0", *args))


def test_oci_layout_is_refused(gpg_home: GpgHome, store: tuple[Path, Path], tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_layout(layout, "v1", seed="sigscope/gpgsign/layout")
    args = sign_args(gpg_home, store[0])[1:]  # no --insecure needed for a layout
    line = one_line_error(run("sign", f"oci:{layout}:v1", *args))
    assert "oci: layouts" in line


def test_http_lookaside_is_read_only(registry: RegistryHandle, gpg_home: GpgHome, tmp_path: Path) -> None:
    registries_d = tmp_path / "registries.d"
    registries_d.mkdir()
    (registries_d / "http.yaml").write_text(
        f"docker:\n  {registry.host}:\n    lookaside: http://127.0.0.1:1/sigstore\n"
    )
    line = one_line_error(run("sign", f"{registry.host}/demo/alpine:1.0", *sign_args(gpg_home, registries_d)))
    assert "cannot be written" in line and "lookaside-staging" in line


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--format", "simple-signing"], "--gpg-key"),
        (["--format", "simple-signing", "--gpg-key", "X", "--key", "k.key"], "--key"),
        (["--gpg-key", "X"], "--format simple-signing"),
        ([], "--key"),
    ],
)
def test_flag_combinations(registry: RegistryHandle, extra: list[str], needle: str) -> None:
    line = one_line_error(run("sign", f"{registry.host}/demo/alpine:1.0", "--insecure", *extra))
    assert needle in line
