"""`sigscope webhook serve` refuses what it cannot serve with one line (exit 2) before it listens."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from testbed import make_tls_files

from sigscope.cli.webhook_serve import serve_cmd
from sigscope.errors import SigscopeError

POLICY = """apiVersion: sigscope/v1
kind: Policy
rules:
  - name: everything
    images: ["**"]
    static: allow
"""


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    _, cert, key = make_tls_files(tmp_path_factory.mktemp("tls"))
    return cert, key


def _refusal(*args: str) -> SigscopeError:
    result = CliRunner().invoke(serve_cmd, list(args))
    assert isinstance(result.exception, SigscopeError), (result.output, result.exception)
    assert result.exception.exit_code == 2 and "\n" not in str(result.exception)
    return result.exception


def test_refusals(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    cert, key = tls
    good = tmp_path / "policy.yaml"
    good.write_text(POLICY)
    broken = tmp_path / "broken.yaml"
    broken.write_text(POLICY.replace("static: allow", "static: maybe"))
    base = ["--tls-cert", str(cert), "--tls-key", str(key), "--port", "0", "--reload-interval", "0"]

    assert "rules[0].static" in str(_refusal("--policy", str(broken), *base))
    assert "no such file" in str(_refusal("--policy", str(tmp_path / "none.yaml"), *base))
    assert "expected HOST[:PORT]=PEM" in str(
        _refusal("--policy", str(good), *base, "--registry-ca", "nohost")
    )
    assert "missing.pem" in str(
        _refusal("--policy", str(good), *base, "--registry-ca", f"r.example={tmp_path}/missing.pem")
    )
    assert "expected HOST or HOST:PORT" in str(
        _refusal("--policy", str(good), *base, "--insecure-registry", "a/b")
    )
    assert "expected redis://" in str(_refusal("--policy", str(good), *base, "--cache", "http://127.0.0.1:1"))
    wrong_key = ["--tls-cert", str(cert), "--tls-key", str(cert), "--port", "0"]
    assert "--tls-cert" in str(_refusal("--policy", str(good), *wrong_key))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["--policy", str(good), "--tls-cert", str(cert), "--tls-key", str(key), "--port", port]
        assert f"cannot listen on 127.0.0.1:{port}" in str(_refusal(*args))


def test_it_listens_before_it_says_so(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    # A client that connects the moment the start line appears is queued, not refused (the bench's clients
    # and the kube tests register the webhook right then).
    from testbed.admission import start_webhook_process, stop_webhook_process

    cert, key = tls
    (tmp_path / "policy.yaml").write_text(POLICY)
    args = ["--policy", str(tmp_path / "policy.yaml"), "--tls-cert", str(cert), "--tls-key", str(key)]
    process, url = start_webhook_process([*args, "--port", "0"], tmp_path / "webhook.log", poll=0.001)
    try:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10):
            pass  # ConnectionRefusedError before the fix
    finally:
        stop_webhook_process(process)
