"""Installs the example third-party filter (tests/data/example_filter) into
the running venv, so the meshgate.filters entry point is tested as users
meet it: a separately installed distribution.

Idempotent: a venv that has it already is left alone. The install uses the
venv's own setuptools when it has one (no download), else pip's isolated build.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from filters import ENTRY_POINT_GROUP, plugin_filters

PACKAGE = Path(__file__).resolve().parents[1] / "data" / "example_filter"
NAME = "stamp"


def installed() -> bool:
    return any(e.name == NAME for e in entry_points(group=ENTRY_POINT_GROUP))


def ensure_example_filter() -> str | None:
    """None once the example filter is installed, else why it could not be."""
    if not installed():
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(PACKAGE)]
        if importlib.util.find_spec("setuptools") is not None:
            command.insert(-1, "--no-build-isolation")
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"pip install {PACKAGE} failed: {done.stderr[-2000:]}"
        importlib.invalidate_caches()
    plugin_filters.cache_clear()
    return None if installed() else "the example filter's entry point is not visible"
