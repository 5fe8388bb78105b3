"""Skip-or-fail for tests that need an outside toolchain.

On a developer's laptop a missing toolchain skips the test with the reason;
under CI (``CI=true``) the same absence is a failure, so a missing install
step can never hide behind a green run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip the calling test, or fail it under CI."""
    if under_ci():
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, hint: str = "") -> str:
    """Return the path of ``name`` on PATH, or skip/fail the test."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH{': ' + hint if hint else ''}")
        raise AssertionError("unreachable")
    return path
