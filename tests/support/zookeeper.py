"""A real ZooKeeper server for the registry tests, from Maven Central's jars.

``build_zookeeper`` fetches org.apache.zookeeper:zookeeper and what its
server needs (tests/peers/zookeeper/pom.xml) into
``$MESHGATE_CACHE/peers/zookeeper-<hash>/``, keyed by a hash of the pom;
``make peers`` warms it. :class:`ZookeeperServer` runs it on a free loopback
port with its own data directory, and can stop and start again on the same
port and data (a registry outage; sessions survive a short one).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.peers import (
    MAVEN_TIMEOUT,
    PEERS_SOURCES,
    PeerStartError,
    _build_lock,
    _require,
    _run_build,
    peers_cache,
    source_hash,
)

POM_DIR = PEERS_SOURCES / "zookeeper"
READY_TIMEOUT = 60.0
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"


def build_zookeeper() -> Path:
    """The directory of the server's jars, fetched by Maven unless cached."""
    target = peers_cache() / f"zookeeper-{source_hash(POM_DIR)}"
    if (target / ".complete").exists():
        return target
    mvn = _require("mvn")
    _require("java")
    with _build_lock("zookeeper"):
        if (target / ".complete").exists():
            return target
        workdir = peers_cache() / "build-zookeeper"
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.copytree(POM_DIR, workdir)
        _run_build(
            [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={target}"],
            workdir,
            MAVEN_TIMEOUT,
        )
        (target / ".complete").touch()
        shutil.rmtree(workdir, ignore_errors=True)
    return target


class ZookeeperServer:
    """One standalone server on 127.0.0.1; ``stop``/``start`` keep port and data."""

    def __init__(self, workdir: Path) -> None:
        self.jars = build_zookeeper()
        self.java = _require("java")
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "zoo.cfg"
        self.log_path = workdir / "zookeeper.log"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "tickTime=500",
                    f"dataDir={workdir / 'data'}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=ruok,srvr",
                    "minSessionTimeout=1000",
                    "maxSessionTimeout=30000",
                ]
            )
            + "\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"zookeeper://{self.address}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.java, "-Xmx256m", "-cp", f"{self.jars}/*", MAIN, str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PeerStartError(f"zookeeper exited: {self.log_tail()}")
            if self._serving():
                return
            time.sleep(0.2)
        raise PeerStartError(f"zookeeper not serving after {READY_TIMEOUT}s: {self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _serving(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"srvr")
                return b"Mode:" in sock.recv(4096)
        except OSError:
            return False
