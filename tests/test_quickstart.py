"""The README's quick start, run as written: every `$ ` command of each code block that follows a
`<!-- quickstart -->` comment, in order, in one bash session, against a registry of its own.

The README's commands use `$REGISTRY` and `$IMAGE` (a plain-HTTP registry and an unsigned image in it, as
the demo's registry has); this test starts one and sets both. Commands run from a scratch directory holding a
copy of the signed-file fixtures the README scans (`tests/fixtures/files/...`, as from the repository's root).
A command that fails, or a block the README loses, fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import RegistryHandle, build_layout, push_layout, start_registry

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARK = "<!-- quickstart -->"
IMAGE = "plain/unsigned:1.0"


def quickstart_blocks(text: str) -> list[list[str]]:
    """The commands of each fenced block right after a MARK comment (blank lines between allowed): lines
    starting with `$ `, joined with their backslash continuations; other lines are output and ignored."""
    blocks: list[list[str]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        assert j < len(lines) and lines[j].startswith("```"), (
            f"README line {i + 1}: {MARK} not before a block"
        )
        commands: list[str] = []
        j += 1
        while not lines[j].startswith("```"):
            if lines[j].startswith("$ "):
                command = lines[j][2:]
                while command.endswith("\\"):
                    j += 1
                    command = command[:-1] + " " + lines[j].strip()
                commands.append(command)
            j += 1
        blocks.append(commands)
    return blocks


def test_the_readme_has_a_quickstart() -> None:
    blocks = quickstart_blocks(README.read_text())
    assert len(blocks) >= 2 and all(blocks), blocks
    words = {shlex.split(c)[1] for block in blocks for c in block if c.startswith("sigscope ")}
    # the everyday verbs, and the Notary walk-through from test certificate to verified
    assert {"ls", "inspect", "scan", "verify", "sign", "key", "cert"} <= words, words
    # what the test relies on: the registry and image come from the environment, not a hard-coded address
    every = " ".join(c for block in blocks for c in block)
    assert "$REGISTRY" in every and "$IMAGE" in every
    assert not re.search(r"127\.0\.0\.1:\d+", every)


@pytest.fixture
def quickstart_registry(registry_bin: str, tmp_path: Path) -> Iterator[RegistryHandle]:
    """A registry of the test's own (the quick start signs its image: the shared ones must stay unsigned)."""
    handle = start_registry(tmp_path / "registry")
    try:
        layout = tmp_path / "layout"
        build_layout(layout, "v1", seed="readme/quickstart")
        repo, _, tag = IMAGE.partition(":")
        push_layout(layout, "v1", handle.host, repo, tag)
        yield handle
    finally:
        handle.stop()


def test_quickstart_runs_as_written(quickstart_registry: RegistryHandle, tmp_path: Path) -> None:
    work = tmp_path / "work"
    fixtures = work / "tests" / "fixtures" / "files"
    for kind in ("jar", "pki"):
        shutil.copytree(ROOT / "tests" / "fixtures" / "files" / kind, fixtures / kind)
    commands = [c for block in quickstart_blocks(README.read_text()) for c in block]
    # `sigscope` is this interpreter's, whether or not the console script is on PATH
    script = "\n".join(
        [
            "set -euo pipefail",
            f'sigscope() {{ {shlex.quote(sys.executable)} -m sigscope "$@"; }}',
            *(f"echo {shlex.quote('$ ' + c)}\n{c}" for c in commands),
        ]
    )
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SIGSCOPE_DEBUG", "SIGSCOPE_PASSWORD", "COSIGN_PASSWORD", "REGISTRY_AUTH_FILE")
    }
    environment.update(
        REGISTRY=quickstart_registry.host,
        IMAGE=IMAGE,
        DOCKER_CONFIG=str(tmp_path / "no-docker-config"),
        HOME=str(tmp_path / "home"),
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    # the two verifications the quick start promises: the cosign key and the Notary trust policy
    assert result.stdout.count("Verified 1 of 1 signatures") >= 1, result.stdout
    assert "satisfy trust policy statement" in result.stdout, result.stdout
