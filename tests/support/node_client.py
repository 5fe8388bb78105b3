"""The Connect-ES Node client (tests/support/node_rpc_client), installed with npm
into the cache once per package.json, and run against a gateway."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.peers import cache_dir, source_hash
from tests.support.toolchain import missing

SOURCES = Path(__file__).resolve().parent / "node_rpc_client"


def node_client_dir() -> Path:
    """The client with its node_modules; skips (fails under CI) without node and npm."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            missing(f"{tool} not found on PATH (the Connect-ES client runs under Node)")
    target = cache_dir() / f"node-rpc-client-{source_hash(SOURCES)}"
    if (target / "node_modules" / "@connectrpc" / "connect-node").is_dir():
        return target
    target.mkdir(parents=True, exist_ok=True)
    # One install at a time across test processes.
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "node_modules" / "@connectrpc" / "connect-node").is_dir():
            return target
        for name in ("package.json", "client.mjs"):
            shutil.copy(SOURCES / name, target / name)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=target,
            check=True,
            timeout=600,
            capture_output=True,
        )
    return target


def run_node_client(
    descriptor_set: Path, base_url: str, protocol: str, http_version: str
) -> dict[str, Any]:
    directory = node_client_dir()
    done = subprocess.run(
        ["node", "client.mjs", str(descriptor_set), base_url, protocol, http_version],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
