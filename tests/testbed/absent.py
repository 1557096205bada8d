"""What a test does when something it needs from the machine is absent: a peer program, a fixture built by
the set-up, the shared vectors. Locally it is skipped with one line saying what to install; under
``CI=true`` it fails, because there an absence means the run does not test what it claims to
(scripts/setup.sh installs every peer, and CI runs it)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the running test for want of ``reason``, or fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
    pytest.skip(reason)
