"""--timeout bounds each request end to end: silent, trickling and endless servers fail in time, once.

The servers are in-process fault injectors (tests/testbed/slowserver.py); the client is the real command
line. Times are upper bounds for the fault only: `--timeout 2` must be over well within 8 s (interpreter
start-up on a shared 2-core machine included), where the per-read timeout took 14 s or never ended.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from testbed import RegistryHandle
from testbed.cli import assert_clean_failure, run_sigscope
from testbed.slowserver import SlowServer

from sigscope.errors import DeadlineError
from sigscope.sources import lookaside
from sigscope.sources.tsa import TSAUnreachable, fetch_timestamp

TIMEOUT = "2"
BOUND = 8.0  # seconds: --timeout 2 plus start-up and a generous slack
MESSAGES = {
    "silent": "no response within 2s",
    "trickle-headers": "no response within 2s",  # the headers never complete
    "trickle-body": "response body not complete within 2s",
}


def _target(command: str, host: str) -> str:
    return host if command == "ls" else f"{host}/demo/app:1.0"


def timed(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = run_sigscope(*args, timeout=60)
    return result, time.monotonic() - start


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    path = tmp_path / "cosign.pub"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def _args(command: str, host: str, public_key: Path) -> list[str]:
    """`command` against `host` with --timeout 2; verify gets a key so that it reaches the registry."""
    args = [command, _target(command, host), "--insecure", "--timeout", TIMEOUT]
    return [*args, "--key", str(public_key)] if command == "verify" else args


@pytest.mark.parametrize("mode", sorted(MESSAGES))
@pytest.mark.parametrize("command", ["ls", "inspect", "verify"])
def test_registry_that_stalls_fails_within_the_timeout(command: str, mode: str, public_key: Path) -> None:
    with SlowServer(mode) as server:
        result, elapsed = timed(*_args(command, server.host, public_key))
        requests = list(server.requests)
    assert_clean_failure(result, f"{server.host}: {MESSAGES[mode]} (")
    assert elapsed < BOUND, elapsed
    # A request that ran out of time is not tried again: that is what made --timeout 3 take 19 s.
    assert requests and len(set(requests)) == len(requests), requests
    method, path, _ = requests[-1].split(" ")
    assert result.stderr.rstrip().endswith(f"({method} {path.split('?')[0]})"), result.stderr


@pytest.mark.parametrize("mode", sorted(MESSAGES))
def test_token_service_that_stalls_fails_within_the_timeout(mode: str) -> None:
    with SlowServer(mode) as token, SlowServer("challenge", realm=f"{token.url}/token") as registry:
        result, elapsed = timed("ls", registry.host, "--insecure", "--timeout", TIMEOUT)
        token_requests = list(token.requests)
    assert_clean_failure(result, f"token service {token.host}: {MESSAGES[mode]} (GET /token)")
    assert elapsed < BOUND, elapsed
    assert len(token_requests) == 1, token_requests


def test_endless_token_body_is_cut_at_the_size_limit() -> None:
    """A token service streaming for ever: refused at the 1 MiB limit, long before the default 30 s
    deadline, having taken in no more than the limit plus what the socket buffers hold."""
    with SlowServer("endless-body") as token, SlowServer("challenge", realm=f"{token.url}/token") as registry:
        result, elapsed = timed("inspect", f"{registry.host}/demo/app:1.0", "--insecure")
        sent = token.body_bytes_sent
    assert_clean_failure(result, f"token service {token.host}: the token response exceeds the 1048576-byte")
    assert elapsed < BOUND, elapsed
    assert sent < 32 << 20, sent


def _run_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run sigscope with stderr on a pseudo-terminal (stdout a pipe); what the terminal showed."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("SIGSCOPE_DEBUG", "NO_COLOR", "TERM")}
    env.update(TERM="xterm-256color", DOCKER_CONFIG="/nonexistent-sigscope-test")
    process = subprocess.Popen(
        [sys.executable, "-m", "sigscope", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    shown = b""
    try:
        while chunk := _read(master):
            shown += chunk
    finally:
        os.close(master)
        code = process.wait(timeout=60)
        assert process.stdout is not None
        assert process.stdout.read() == b""
        process.stdout.close()
    return code, shown.decode(errors="replace")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed its end
        return b""


@pytest.fixture
def trickling() -> Iterator[SlowServer]:
    with SlowServer("trickle-body") as server:
        yield server


@pytest.mark.parametrize("command", ["ls", "inspect", "verify"])
def test_spinner_on_a_terminal_while_waiting(command: str, trickling: SlowServer, public_key: Path) -> None:
    code, shown = _run_on_a_terminal(*_args(command, trickling.host, public_key))
    assert code == 2
    verb = {"ls": "Listing", "inspect": "Inspecting", "verify": "Verifying"}[command]
    # Redrawn while the request waits, then wiped before the one error line.
    assert shown.count(f"{verb} {_target(command, trickling.host)}") >= 2, shown
    last = shown.rstrip().splitlines()[-1]
    assert f"sigscope: error: {trickling.host}: {MESSAGES['trickle-body']} (GET /v2/" in last, shown
    assert "Traceback" not in shown


async def test_lookaside_request_has_a_deadline() -> None:
    with SlowServer("trickle-body") as server:
        start = time.monotonic()
        with pytest.raises(DeadlineError, match=f"{server.host}: response body not complete within 1s"):
            await lookaside.read_signatures(server.url, "demo/app", "sha256:" + "a" * 64, timeout=1)
        assert time.monotonic() - start < 5


@pytest.mark.parametrize("mode", ["silent", "trickle-headers"])
async def test_tsa_request_has_a_deadline(mode: str) -> None:
    with SlowServer(mode) as server:
        start = time.monotonic()
        with pytest.raises(TSAUnreachable, match=f"TSA {server.host}: no response within 1s \\(POST /tsa\\)"):
            await fetch_timestamp(f"{server.url}/tsa", b"signature", timeout=1)
        assert time.monotonic() - start < 5


def test_scan_takes_its_timeout_to_the_lookaside(registry: RegistryHandle, tmp_path: Path) -> None:
    """--timeout bounds the GPG lookaside's requests as it does the registry's: a silent lookaside is one
    error on the image within the timeout, not the fixed 30 s it had."""
    with SlowServer("silent") as server:
        registries_d = tmp_path / "registries.d"
        registries_d.mkdir()
        (registries_d / "lookaside.yaml").write_text(
            f"docker:\n  {registry.host}:\n    lookaside: {server.url}\n"
        )
        start = time.monotonic()
        result = run_sigscope(
            "scan", "registry", registry.host, "--insecure", "--repo", "demo/alpine",
            "--registries.d", str(registries_d), "--timeout", "1", "-o", "json",
        )  # fmt: skip
        elapsed = time.monotonic() - start
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    [entry] = [
        s for s in json.loads(result.stdout)["registry"]["signatures"] if s["format"] == "simple-signing"
    ]
    assert f"{server.host}: no response within 1s" in json.dumps(entry), entry
    assert elapsed < 15, elapsed
