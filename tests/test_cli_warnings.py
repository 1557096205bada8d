"""The CLI prints no third-party deprecation warnings: `scan fs` names DSA (old APK/JAR/OpenPGP signers) and
cryptography warns about that on every run, which a user can do nothing about."""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.cli import run_sigscope

FIXTURES = Path(__file__).parent / "fixtures" / "files"


@pytest.mark.parametrize("jobs", ["0", "2"])
def test_scan_fs_stderr_has_no_warnings(jobs: str) -> None:
    kinds = [str(FIXTURES / kind) for kind in ("apk", "jar", "authenticode")]
    result = run_sigscope(
        "scan", "fs", *kinds, "--verify", "--ca-file", str(FIXTURES / "pki" / "root.crt"), "--jobs", jobs,
        env={"PYTHONWARNINGS": "default"},  # shown even where a developer's settings would show them
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    # what remains is sigscope's own lines: one per invalid signature ("invalid: PATH ...")
    assert all(line.startswith("invalid: ") for line in result.stderr.splitlines()), result.stderr


def test_other_warnings_are_not_silenced() -> None:
    import warnings

    from sigscope.cli.main import quiet_library_deprecations

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_deprecations()
        from cryptography.utils import CryptographyDeprecationWarning

        warnings.warn("library going away", CryptographyDeprecationWarning, stacklevel=1)
        warnings.warn("ours", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["ours"]
