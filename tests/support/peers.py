"""Build, cache and start the real Dubbo peers of tests/peers (see tests/peers/README.md).

Builds are keyed by a hash of their sources and cached under
``${MESHGATE_CACHE:-~/.cache/meshgate}/peers``: a second run with unchanged sources rebuilds
nothing. Each peer starts on free loopback ports, is waited for until it prints ``READY`` (bounded)
and is killed when its context manager exits.

Run as a script (``python -m tests.support.peers``) to warm the cache; tests/peers/build.sh does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
PEERS_SOURCES = REPO / "tests" / "peers"
PROTO_DIR = PEERS_SOURCES / "proto"
GREETER_PROTO = PROTO_DIR / "greeter.proto"

# The newest apache-dubbo on PyPI is a pre-release; pin it so the venv is reproducible.
DUBBO_PYTHON_REQUIREMENT = "apache-dubbo==3.0.0b1"

JAVA_READY_TIMEOUT = 120.0
GO_READY_TIMEOUT = 60.0
PYTHON_READY_TIMEOUT = 60.0
MAVEN_TIMEOUT = 1800.0
GO_BUILD_TIMEOUT = 1200.0
# A client-mode run (--call) includes the JVM's and Dubbo's start on a loaded machine.
JAVA_CALL_TIMEOUT = 120.0
GO_CALL_TIMEOUT = 60.0


class PeerToolchainMissing(RuntimeError):
    """A tool needed to build or run a peer (java, mvn, go) is not installed."""


class PeerBuildError(RuntimeError):
    """A peer failed to build; the message carries the tail of the build output."""


class PeerStartError(RuntimeError):
    """A peer exited or stayed silent instead of printing READY."""


class PeerCallError(RuntimeError):
    """A peer's client mode failed itself (usage, crash, no JSON) rather than its call."""


def cache_dir() -> Path:
    root = os.environ.get("MESHGATE_CACHE") or str(Path.home() / ".cache" / "meshgate")
    return Path(root)


def peers_cache() -> Path:
    path = cache_dir() / "peers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise PeerToolchainMissing(f"{binary} not found on PATH")
    return path


def source_hash(*roots: Path, exclude_dirs: frozenset[str] = frozenset({"target"})) -> str:
    """A digest of every file under roots (names and contents), stable across checkouts."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(REPO)
            if exclude_dirs.intersection(relative.parts):
                continue
            digest.update(str(relative).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """Serialises builds of one peer across processes (build.sh and pytest, parallel runs)."""
    with open(peers_cache() / f".{name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run_build(
    command: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> None:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-40:])
        raise PeerBuildError(f"{' '.join(command)} failed ({result.returncode}):\n{tail}")


def build_java_peer() -> Path:
    """The fat jar of the Java Dubbo peer, built by Maven unless cached."""
    java_sources = PEERS_SOURCES / "java"
    jar = peers_cache() / f"java-peer-{source_hash(java_sources, PROTO_DIR)}.jar"
    if jar.exists():
        return jar
    mvn = _require("mvn")
    _require("java")
    with _build_lock("java"):
        if jar.exists():
            return jar
        # Build in a copy so Maven's target/ never lands in the work tree.
        workdir = peers_cache() / "build-java"
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.copytree(java_sources, workdir / "java", ignore=shutil.ignore_patterns("target"))
        shutil.copytree(PROTO_DIR, workdir / "proto")
        _run_build([mvn, "-q", "-B", "-DskipTests", "package"], workdir / "java", MAVEN_TIMEOUT)
        partial = jar.with_suffix(".partial")
        shutil.copyfile(workdir / "java" / "target" / "meshgate-java-peer.jar", partial)
        partial.rename(jar)
        shutil.rmtree(workdir, ignore_errors=True)
    return jar


def build_go_peer() -> Path:
    """The dubbo-go peer binary, built by `go build` unless cached."""
    go_sources = PEERS_SOURCES / "go"
    binary = peers_cache() / f"go-peer-{source_hash(go_sources)}"
    if binary.exists():
        return binary
    go = _require("go")
    with _build_lock("go"):
        if binary.exists():
            return binary
        partial = binary.with_suffix(".partial")
        _run_build([go, "build", "-o", str(partial), "."], go_sources, GO_BUILD_TIMEOUT)
        partial.rename(binary)
    return binary


def compile_greeter_stubs(destination: Path, grpc: bool = True) -> Path:
    """greeter_pb2 (and greeter_pb2_grpc) generated into destination with grpcio-tools."""
    from grpc_tools import protoc  # heavy import, only when stubs are needed

    destination.mkdir(parents=True, exist_ok=True)
    arguments = ["protoc", f"-I{PROTO_DIR}", f"--python_out={destination}"]
    if grpc:
        arguments.append(f"--grpc_python_out={destination}")
    if protoc.main([*arguments, str(GREETER_PROTO)]) != 0:
        raise PeerBuildError(f"grpc_tools.protoc failed on {GREETER_PROTO}")
    return destination


def python_peer_interpreter() -> Path:
    """The interpreter of a venv holding the Dubbo Python SDK, created once (idempotent).

    The SDK lives apart from .venv so its dependencies can never move protobuf or grpcio there;
    protobuf is pinned to the version of the running interpreter so generated code matches.
    """
    venv = cache_dir() / "venvs" / "dubbo-python"
    python = venv / "bin" / "python"
    import google.protobuf

    requirements = [DUBBO_PYTHON_REQUIREMENT, f"protobuf=={google.protobuf.__version__}"]
    marker = venv / ".meshgate-requirements"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(requirements):
        return python
    with _build_lock("dubbo-python-venv"):
        if not python.exists():
            _run_build([sys.executable, "-m", "venv", str(venv)], REPO, 300)
        _run_build([str(python), "-m", "pip", "install", "-q", *requirements], REPO, 600)
        marker.write_text("\n".join(requirements))
    return python


def python_peer_stubs() -> Path:
    """greeter_pb2 for the Python peer, cached by the proto's hash."""
    stubs = peers_cache() / f"python-stubs-{source_hash(PROTO_DIR)}"
    if not (stubs / "greeter_pb2.py").exists():
        with _build_lock("python-stubs"):
            if not (stubs / "greeter_pb2.py").exists():
                compile_greeter_stubs(stubs, grpc=False)
    return stubs


@dataclass(frozen=True)
class RunningPeer:
    """A started peer: where it listens and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    triple_port: int
    dubbo_port: int | None
    log_path: Path

    @property
    def triple_address(self) -> str:
        return f"127.0.0.1:{self.triple_port}"

    @property
    def triple_url(self) -> str:
        return f"http://127.0.0.1:{self.triple_port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_for_ready(peer: RunningPeer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = peer.log_path.read_text(errors="replace")
        if any(line.strip() == "READY" for line in text.splitlines()):
            return
        if peer.process.poll() is not None:
            raise PeerStartError(
                f"{peer.name} peer exited with {peer.process.returncode} before READY:\n"
                f"{peer.log_tail()}"
            )
        time.sleep(0.1)
    raise PeerStartError(f"{peer.name} peer not READY after {timeout}s:\n{peer.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def _run_peer(
    name: str,
    command: list[str],
    triple_port: int,
    dubbo_port: int | None,
    ready_timeout: float,
    env: dict[str, str] | None = None,
) -> Iterator[RunningPeer]:
    log_dir = peers_cache() / "logs"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / f"{name}-{triple_port}.log"
    # Output goes to a file, not a pipe: a chatty JVM can never block on a full pipe.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    peer = RunningPeer(name, process, triple_port, dubbo_port, log_path)
    try:
        _wait_for_ready(peer, ready_timeout)
        yield peer
    finally:
        _stop(process)


@dataclass(frozen=True)
class RegistryOptions:
    """Where a peer registers (see tests/peers/README.md, "Registries")."""

    address: str  # zookeeper://127.0.0.1:PORT
    mode: str = "all"  # interface | instance | all
    application: str | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "MESHGATE_REGISTRY": self.address,
            "MESHGATE_REGISTER_MODE": self.mode,
        }
        if self.application:
            env["MESHGATE_APPLICATION"] = self.application
        return env


def java_tls_options(cert: Path, key: Path, client_ca: Path | None = None) -> list[str]:
    """JVM options that make the Java peer serve Triple and dubbo2 over TLS.

    Dubbo 3.3 reads ``dubbo.ssl.*`` from system properties into its SslConfig;
    with a trust collection it requires client certificates (mTLS). Both ports
    then speak only TLS. No rebuild: the same jar serves plaintext without them.
    """
    options = [
        f"-Ddubbo.ssl.server-key-cert-chain-path={cert}",
        f"-Ddubbo.ssl.server-private-key-path={key}",
    ]
    if client_ca is not None:
        options.append(f"-Ddubbo.ssl.server-trust-cert-collection-path={client_ca}")
    return options


@contextlib.contextmanager
def java_peer(
    registry: RegistryOptions | None = None, jvm_options: Sequence[str] = ()
) -> Iterator[RunningPeer]:
    """The Java Dubbo 3.3 peer: Triple and dubbo2 on free ports."""
    jar = build_java_peer()
    java = _require("java")
    triple_port, dubbo_port = free_port(), free_port()
    # Dubbo never registers a 127.x address it picked or was given
    # (DUBBO_IP_TO_REGISTRY=127.0.0.1 is refused); with every interface ignored
    # it falls back to the local address of its connection to the loopback
    # registry, so the tests only ever call 127.0.0.1.
    registry_options = ["-Ddubbo.network.interface.ignored=.*"] if registry is not None else []
    command = [
        java,
        *jvm_options,
        *registry_options,
        "-jar",
        str(jar),
        "--triple-port",
        str(triple_port),
        "--dubbo-port",
        str(dubbo_port),
    ]
    env = registry.env() if registry is not None else None
    with _run_peer("java", command, triple_port, dubbo_port, JAVA_READY_TIMEOUT, env) as peer:
        yield peer


def go_tls_options(cert: Path, key: Path, client_ca: Path | None = None) -> list[str]:
    """Flags that make the Go peer serve TLS (mTLS with ``client_ca``).

    dubbo-go v3.3.2 applies the server's TLS option to Triple only: its getty
    (dubbo2) server logs "protocolConfig not found in URL attributes" and
    stays plaintext, so dubbo2 to the Go peer is not tested over TLS.
    """
    options = ["--tls-cert", str(cert), "--tls-key", str(key)]
    if client_ca is not None:
        options += ["--tls-ca", str(client_ca)]
    return options


@contextlib.contextmanager
def go_peer(
    registry: RegistryOptions | None = None, flags: Sequence[str] = ()
) -> Iterator[RunningPeer]:
    """The dubbo-go v3 peer: Triple and dubbo2 on free ports."""
    binary = build_go_peer()
    triple_port, dubbo_port = free_port(), free_port()
    command = [
        str(binary),
        "--triple-port",
        str(triple_port),
        "--dubbo-port",
        str(dubbo_port),
        *flags,
    ]
    env = registry.env() if registry is not None else None
    with _run_peer("go", command, triple_port, dubbo_port, GO_READY_TIMEOUT, env) as peer:
        yield peer


@contextlib.contextmanager
def python_peer() -> Iterator[RunningPeer]:
    """The Dubbo Python SDK peer: Triple (gRPC-compatible) on a free port."""
    python = python_peer_interpreter()
    stubs = python_peer_stubs()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stubs), str(REPO)])}
    command = [str(python), "-m", "tests.peers.python_dubbo.server", "--port", str(port)]
    with _run_peer("python", command, port, None, PYTHON_READY_TIMEOUT, env=env) as peer:
        yield peer


@contextlib.contextmanager
def peer_or_skip(name: str, options: Sequence[str] = ()) -> Iterator[RunningPeer]:
    """Start a peer by name for a pytest fixture; a missing toolchain skips (fails under CI).

    ``options`` are JVM options for the Java peer, command-line flags for the Go peer.
    """
    from tests.support.toolchain import missing

    starters: dict[str, Callable[[], contextlib.AbstractContextManager[RunningPeer]]] = {
        "java": lambda: java_peer(jvm_options=options),
        "go": lambda: go_peer(flags=options),
        "python": python_peer,
    }
    try:
        manager = starters[name]()
        peer = manager.__enter__()
    except PeerToolchainMissing as error:
        missing(f"{name} peer: {error}")
        raise AssertionError("unreachable") from error
    try:
        yield peer
    finally:
        manager.__exit__(None, None, None)


def _client_command(name: str) -> tuple[list[str], float]:
    if name == "java":
        jar = build_java_peer()
        # A one-shot JVM: C1 only and the serial collector start it about a quarter faster.
        options = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        return [_require("java"), *options, "-jar", str(jar)], JAVA_CALL_TIMEOUT
    if name == "go":
        return [str(build_go_peer())], GO_CALL_TIMEOUT
    raise ValueError(f"no client mode in the {name!r} peer (java or go)")


def call_with_peer_client(
    peer_name: str,
    address: str,
    *,
    group: str | None = None,
    version: str | None = None,
    method: str = "SayHello",
    name: str | None = None,
    millis: int | None = None,
    timeout_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Run the client mode of the java or go peer (``--call address``) once.

    Returns its JSON lines: one ``{"message", "served_by"}`` per reply, or one
    ``{"error": {"code", "message"}}`` with the gRPC status the client saw. Raises
    PeerToolchainMissing, or PeerCallError when the client itself fails.
    """
    command, timeout = _client_command(peer_name)
    command += ["--call", address, "--method", method]
    flags = {
        "--group": group,
        "--version": version,
        "--name": name,
        "--millis": millis,
        "--timeout-ms": timeout_ms,
    }
    command += [
        part for flag, value in flags.items() if value is not None for part in (flag, str(value))
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    stderr_tail = "\n".join(result.stderr.splitlines()[-30:])
    if result.returncode != 0:
        raise PeerCallError(f"{peer_name} client exited with {result.returncode}:\n{stderr_tail}")
    try:
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise PeerCallError(
            f"{peer_name} client printed something else than JSON lines ({error}):\n"
            f"{result.stdout}\n{stderr_tail}"
        ) from error
    if not lines:
        raise PeerCallError(f"{peer_name} client printed nothing:\n{stderr_tail}")
    return lines


def peer_call(peer_name: str, address: str, **options: Any) -> list[dict[str, Any]]:
    """call_with_peer_client for a test: a missing toolchain skips (fails under CI).

    ``options``: group, version, method, name (HelloRequest.name), millis, timeout_ms.
    """
    from tests.support.toolchain import missing

    try:
        return call_with_peer_client(peer_name, address, **options)
    except PeerToolchainMissing as error:
        missing(f"{peer_name} peer client: {error}")
        raise AssertionError("unreachable") from error


def main() -> None:
    """Warm the cache: build every peer whose toolchain is present."""
    from tests.support.zookeeper import build_zookeeper

    builds = (("java", build_java_peer), ("go", build_go_peer), ("zookeeper", build_zookeeper))
    for name, build in builds:
        started = time.monotonic()
        try:
            artifact = build()
        except PeerToolchainMissing as error:
            print(f"{name} peer: skipped ({error})")
            continue
        print(f"{name} peer: {artifact} ({time.monotonic() - started:.1f}s)")
    started = time.monotonic()
    print(f"python peer: {python_peer_interpreter()} ({time.monotonic() - started:.1f}s)")
    python_peer_stubs()


if __name__ == "__main__":
    main()
