"""A real redis-server on loopback for the tests, from Debian's package.

tests/support/install_redis.sh unpacks Debian's redis-server into the cache on
first use (it is also run by ``make peers``); the server is started on a free
loopback port with no persistence, so a restart starts from an empty store.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.net import free_port, wait_for_port
from tests.support.processes import REPO, Process
from tests.support.toolchain import missing

INSTALL_SCRIPT = REPO / "tests" / "support" / "install_redis.sh"
INSTALL_TIMEOUT_SECONDS = 300
# install_redis.sh exits with these when apt cannot provide the package.
NO_APT_EXIT_CODES = {3, 4}


def redis_binary() -> Path:
    """The cached redis-server wrapper, installed on first use; skip/fail without apt.

    ``MESHGATE_REDIS_SERVER`` points at a redis-server installed some other way.
    """
    override = os.environ.get("MESHGATE_REDIS_SERVER")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode in NO_APT_EXIT_CODES:
        missing(f"redis-server from Debian's packages: {result.stderr.strip()[-500:]}")
    if result.returncode != 0:
        raise RuntimeError(f"installing redis failed ({result.returncode}):\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


class RedisServer:
    """One redis-server on a fixed loopback port that can be killed and started again."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = Process(
            [
                str(self.binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ]
        )
        self.process.wait_for_line("Ready to accept connections", timeout=15.0)
        wait_for_port(self.port)

    def kill(self) -> None:
        """Stop it the hard way, as a crash would."""
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.proc.pid, signal.SIGKILL)
            self.process.stop()
            self.process = None


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
