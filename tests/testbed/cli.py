"""Running the real `sigscope` command line, as a user would, in a hermetic environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Left out of the child's environment: a developer's own settings must not change what a test sees.
SCRUBBED = ("SIGSCOPE_DEBUG", "SIGSCOPE_PASSWORD", "COSIGN_PASSWORD", "SIGSCOPE_DB", "SIGSCOPE_RUN_GROUP")


def run_sigscope(
    *args: str,
    password: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m sigscope ARGS` with no docker config, no terminal on stdin and, when given, the key
    password in $SIGSCOPE_PASSWORD; `env` adds or overrides variables."""
    environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environment["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    if password is not None:
        environment["SIGSCOPE_PASSWORD"] = password
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sigscope", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], pattern: str, code: int = 2) -> None:
    """Exit `code` with one line on stderr that contains `pattern`, and no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert pattern in lines[0], lines[0]
