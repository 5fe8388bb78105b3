"""Running ``meshgate`` commands in the test process, output captured.

The same ``gateway.cli.main`` a user's ``meshgate`` runs, without an
interpreter start-up per command; the tests that need a real process (signals,
the installed entry point) start one themselves.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from gateway.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def meshgate(*args: str, stdin: str | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = saved
    return Result(code, out.getvalue(), err.getvalue())
