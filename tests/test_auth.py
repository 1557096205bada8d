"""Credentials are found where docker and podman put them, and never leak."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from sigscope.errors import AuthError, UsageError
from sigscope.oci.auth import (
    Credentials,
    TokenCache,
    find_credentials,
    parse_challenges,
    run_credential_helper,
)


def _write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data))
    return path


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_bearer_challenge_with_quoted_commas() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example.com/token"
    assert challenge.params["service"] == "registry.example.com"
    assert challenge.params["scope"] == "repository:a/b:pull,push"


def test_multiple_challenges_and_basic() -> None:
    challenges = parse_challenges('Basic realm="Registry Realm", Bearer realm="http://x/t",service=x')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == "Registry Realm"
    assert challenges[1].params["service"] == "x"


def test_auths_entry_base64(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "config.json", {"auths": {"https://reg.example:5000/v1/": {"auth": _b64("bob:s3:cret")}}}
    )
    creds = find_credentials("reg.example:5000", [config])
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "s3:cret")
    assert find_credentials("other.example", [config]) is None


def test_docker_hub_aliases(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "config.json", {"auths": {"https://index.docker.io/v1/": {"auth": _b64("u:p")}}}
    )
    creds = find_credentials("docker.io", [config])
    assert creds is not None and creds.username == "u"


def test_identity_token(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "config.json",
        {"auths": {"reg.example": {"auth": _b64("u:"), "identitytoken": "refresh-me"}}},
    )
    creds = find_credentials("reg.example", [config])
    assert creds is not None and creds.identity_token == "refresh-me"


def test_secrets_not_in_repr() -> None:
    creds = Credentials(username="alice", password="topsecret", identity_token="tok-123")
    assert "topsecret" not in repr(creds)
    assert "tok-123" not in repr(creds)


def test_malformed_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        find_credentials("reg.example", [bad])


def _helper(tmp_path: Path, body: str) -> None:
    script = tmp_path / "bin" / "docker-credential-testhelper"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def helper_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_credential_helper_protocol(helper_path: Path) -> None:
    # The helper reads the server URL on stdin and answers JSON, as docker-credential-* do.
    _helper(
        helper_path,
        'read server\n[ "$1" = get ] || exit 3\n'
        'if [ "$server" = "reg.example:5000" ]; then\n'
        '  printf \'{"ServerURL":"%s","Username":"carol","Secret":"pw"}\' "$server"\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n",
    )
    config = _write_config(helper_path / "config.json", {"credHelpers": {"reg.example:5000": "testhelper"}})
    creds = find_credentials("reg.example:5000", [config])
    assert creds is not None and (creds.username, creds.password) == ("carol", "pw")
    store = _write_config(helper_path / "store.json", {"credsStore": "testhelper"})
    assert find_credentials("unknown.example", [store]) is None


def test_credential_helper_identity_token(helper_path: Path) -> None:
    _helper(
        helper_path, 'read server\nprintf \'{"ServerURL":"x","Username":"<token>","Secret":"refresh"}\'\n'
    )
    creds = run_credential_helper("testhelper", "reg.example")
    assert creds is not None and creds.identity_token == "refresh" and creds.username is None


def test_credential_helper_failure_is_an_auth_error(helper_path: Path) -> None:
    _helper(helper_path, "read server\necho 'keychain locked' >&2\nexit 1\n")
    with pytest.raises(AuthError, match="keychain locked"):
        run_credential_helper("testhelper", "reg.example")
    with pytest.raises(AuthError, match="not on PATH"):
        run_credential_helper("nosuchhelper", "reg.example")


def test_token_cache_expiry() -> None:
    cache = TokenCache()
    cache.put("r", "s", ("repository:a:pull",), "t1", expires_in=300)
    assert cache.get("r", "s", ("repository:a:pull",)) == "t1"
    assert cache.get("r", "s", ("repository:b:pull",)) is None
    cache.put("r", "s", ("repository:c:pull",), "t2", expires_in=5)  # inside the refresh margin
    assert cache.get("r", "s", ("repository:c:pull",)) is None
