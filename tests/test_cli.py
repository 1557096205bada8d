"""`sigscope ls` and `sigscope inspect` as a user runs them: real process, real registry, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from testbed import ALICE_PASSWORD, ALICE_USER, RegistryHandle
from testbed.cli import assert_clean_failure


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DOCKER_CONFIG": "/nonexistent-sigscope-test", **(env or {})}
    full_env.pop("SIGSCOPE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "sigscope", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=60,
    )


def test_ls_pretty_and_json(registry: RegistryHandle) -> None:
    pretty = run("ls", registry.host, "--insecure")
    assert pretty.returncode == 0, pretty.stderr
    assert "demo/alpine" in pretty.stdout and "demo/multi" in pretty.stdout
    data = json.loads(run("ls", registry.host, "--insecure", "-o", "json").stdout)
    assert data["registry"] == registry.host
    assert {"demo/alpine", "demo/multi"} <= {r["name"] for r in data["repositories"]}


def test_ls_tags_with_digests_in_a_namespace(registry: RegistryHandle) -> None:
    result = run("ls", f"{registry.host}/demo", "--tags", "--insecure", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["namespace"] == "demo"
    assert all(r["name"].startswith("demo/") for r in data["repositories"])
    tags = {(r["name"], t["tag"]): t for r in data["repositories"] for t in r["tags"]}
    assert tags[("demo/alpine", "1.0")]["digest"] == registry.images["demo/alpine:1.0"]
    assert tags[("demo/multi", "latest")]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    # The digest whole where the line has room for it, `sha256:` and 8 hex digits where not; never folded.
    digest = registry.images["demo/alpine:1.0"]
    roomy = run("ls", f"{registry.host}/demo", "--tags", "--insecure", env={"COLUMNS": "200"})
    assert digest in roomy.stdout
    narrow = run("ls", f"{registry.host}/demo", "--tags", "--insecure", env={"COLUMNS": "80"})
    assert digest not in narrow.stdout and f"{digest[:15]}…" in narrow.stdout
    assert max(cell_len(line) for line in narrow.stdout.splitlines()) <= 80
    # Manifest media types differ only at their end: the full type where it fits, else a short name, not a cut
    assert "application/vnd.oci.image.index.v1+json" in roomy.stdout
    assert (
        "oci index" in narrow.stdout
        and "oci manifest" in narrow.stdout
        and "application/" not in narrow.stdout
    )


def test_inspect_image_and_index(registry: RegistryHandle) -> None:
    result = run("inspect", f"{registry.host}/demo/alpine:1.0", "--insecure", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["digest"] == registry.images["demo/alpine:1.0"]
    assert data["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert data["config"]["architecture"] == "amd64" and data["layers"] == 1
    assert data["totalSize"] > data["size"]

    index = json.loads(run("inspect", f"{registry.host}/demo/multi", "--insecure", "-o", "json").stdout)
    assert index["digest"] == registry.images["demo/multi:latest"]
    assert sorted(p["platform"] for p in index["platforms"]) == ["linux/amd64", "linux/arm64"]

    pretty = run("inspect", f"{registry.host}/demo/multi:latest", "--insecure")
    assert "linux/arm64" in pretty.stdout and registry.images["demo/multi:latest"] in pretty.stdout


def test_inspect_raw_is_the_exact_manifest(registry: RegistryHandle) -> None:
    digest = registry.images["demo/alpine:1.0"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigscope",
            "inspect",
            f"{registry.host}/demo/alpine@{digest}",
            "--insecure",
            "--raw",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "sha256:" + hashlib.sha256(result.stdout).hexdigest() == digest


def test_inspect_and_ls_oci_layout(demo_layout: Path) -> None:
    result = run("inspect", f"oci:{demo_layout}:multi-latest", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["platforms"]) == 2
    listing = json.loads(run("ls", f"oci:{demo_layout}", "-o", "json").stdout)
    assert sorted(t["tag"] for t in listing["repositories"][0]["tags"]) == ["alpine-1.0", "multi-latest"]
    # Two images and no tag named: the user must choose, and is told how.
    assert_clean_failure(run("inspect", f"oci:{demo_layout}"), "name one with :TAG or @DIGEST")


def test_auth_flags(basic_registry: RegistryHandle) -> None:
    image = f"{basic_registry.host}/demo/alpine:1.0"
    ok = run(
        "inspect", image, "--insecure", "-u", ALICE_USER, "--password-stdin", stdin=ALICE_PASSWORD + "\n"
    )
    assert ok.returncode == 0, ok.stderr
    bad = run(
        "inspect", f"{basic_registry.host}/demo/alpine:1.0", "--insecure", "-u", ALICE_USER, "-p", "wrong"
    )
    assert_clean_failure(
        bad, f"authentication required (UNAUTHORIZED) for {basic_registry.host}/demo/alpine as 'alice'"
    )
    assert "wrong" not in bad.stderr
    anonymous = run("ls", basic_registry.host, "--insecure")
    assert_clean_failure(anonymous, "requires credentials")


def test_tls_flags(tls_registry: RegistryHandle) -> None:
    image = f"{tls_registry.host}/demo/alpine:1.0"
    assert run("inspect", image, "--ca-file", str(tls_registry.ca_file)).returncode == 0
    assert run("inspect", image, "--skip-tls-verify").returncode == 0
    assert_clean_failure(run("inspect", image), "TLS verification failed")
    assert_clean_failure(run("inspect", image, "--insecure", "--ca-file", "x"), "cannot be combined")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "Not A Reference"], "invalid reference"),
        (["inspect", "127.0.0.1:1/x:y", "--insecure"], "cannot connect to 127.0.0.1:1"),
        (["inspect", "oci:/nonexistent/layout:v1"], "does not exist"),
        (["ls", "127.0.0.1:1", "--insecure"], "cannot connect"),
        (
            ["inspect", "x", "--ca-file", "/nonexistent.pem"],
            "/nonexistent.pem: no such file (--ca-file for inspect",
        ),
        (["scan", "registry", "127.0.0.1:1", "--insecure"], "cannot connect to 127.0.0.1:1"),
        (["scan", "registry", "oci:/nonexistent/layout"], "does not exist"),
        (
            ["scan", "registry", "127.0.0.1:1", "--key", "/nonexistent.pub"],
            "/nonexistent.pub: no such file (--key for scan registry takes a public key)",
        ),
        (["scan", "registry", "127.0.0.1:1", "--key", "/etc/hostname"], "/etc/hostname: not PEM, but --key"),
        (["scan", "registry", "127.0.0.1:1", "--gpg-keyring", "/etc/hostname"], "/etc/hostname"),
        (["inspect", "oci:/nonexistent:v1", "--signatures"], "does not exist"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    assert_clean_failure(run(*args), message)


def test_unknown_image(registry: RegistryHandle) -> None:
    missing = f"manifest unknown (MANIFEST_UNKNOWN) for {registry.host}/demo/alpine:nope"
    assert_clean_failure(run("inspect", f"{registry.host}/demo/alpine:nope", "--insecure"), missing)
    assert_clean_failure(run("inspect", f"{registry.host}/no/such:1", "--insecure"), "(MANIFEST_UNKNOWN) for")


def test_usage_errors_exit_2() -> None:
    result = run("inspect")
    assert result.returncode == 2 and "Missing argument" in result.stderr
    assert run("--version").stdout.startswith("sigscope")
