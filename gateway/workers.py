"""Running the gateway: one worker process, or a supervisor and N of them.

Each worker binds every listener and the admin address itself with
SO_REUSEPORT, so the kernel spreads connections over the workers and a dead
worker takes none of the others' sockets with it (gateway.worker runs one).
The supervisor restarts a worker that dies, forwards SIGHUP (reload) and
SIGTERM/SIGINT (drain), and shares a state directory with the workers so
that ``/ready`` gives the same answer from any of them (gateway.readiness).

SIGHUP never kills: it is ignored from the first line of ``serve`` until a
worker's own handler takes over (and a worker remembers one that arrives
during its start-up, applying it once ready).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from gateway.admin_views import STARTED_ENV
from gateway.app import GatewayApp
from gateway.config import ConfigError, split_address
from gateway.health_share import SHARED_DIR_ENV, HealthShare
from gateway.listeners import bind
from gateway.logs import LogSettings, configure
from gateway.metrics import MULTIPROC_ENV
from gateway.readiness import DRAINING_MARK, STATE_DIR_ENV, Readiness
from gateway.sources import load_snapshot, refresh_reflection
from gateway.worker import Worker, listener_tls

log = logging.getLogger(f"meshgate.{__name__}")

__all__ = ["bind", "build_app", "listener_tls", "run_worker", "serve"]

# Beyond drain_timeout, how long the supervisor waits for a worker to exit.
EXIT_GRACE = 5.0


def build_app(config_path: Path) -> GatewayApp:
    """The app on the file's snapshot, with admin and, for reflection sources,
    the on-demand refresh (for runners other than gateway.worker)."""
    from gateway.admin import build_admin

    snapshot = load_snapshot(config_path)
    return GatewayApp(
        snapshot,
        admin_port=split_address(snapshot.config.admin.address)[1],
        admin=build_admin,
        refresh=refresh_reflection,
        health_share=HealthShare.from_environment(),
    )


# Signals that must not kill a process before its loop handles them: SIGHUP
# (reload) and SIGUSR1 (reopen the access log), whose default is to exit.
DEFERRED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)


def ignore_deferred_signals() -> None:
    for signum in DEFERRED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def run_worker(
    config_path: Path,
    reuse_port: bool,
    index: int = 0,
    count: int = 1,
    log_overrides: LogSettings | None = None,
    log_settings: LogSettings | None = None,
) -> int:
    """One worker: load, bind, serve until told to stop; returns the exit code.

    ``log_settings``: the log as the supervisor resolved it, until the worker
    has read the file; ``log_overrides``: the command line's, which win."""
    # Until the worker's loop takes SIGHUP over, a reload request must not kill.
    ignore_deferred_signals()
    configure(log_settings or LogSettings())
    state_dir = os.environ.get(STATE_DIR_ENV)
    readiness = Readiness(Path(state_dir) if state_dir else None, index, count)
    worker = Worker(config_path, reuse_port, readiness, log_overrides)
    return uvloop.run(worker.run())


def _worker_process(
    config_path: Path, index: int, count: int, overrides: LogSettings, settings: LogSettings
) -> None:
    sys.exit(run_worker(config_path, True, index, count, overrides, settings))


def serve(config_path: Path, workers: int, log_overrides: LogSettings | None = None) -> int:
    """Serve until stopped; returns the process exit code.

    ``log_overrides``: --log-level and --log-format ("" where not given),
    which win over the file's ``logging:``."""
    ignore_deferred_signals()
    overrides = log_overrides or LogSettings("", "")
    # Until the file is read, the command line's settings: a config error is
    # logged in the format asked for.
    configure(overrides.over(LogSettings()))
    try:
        snapshot = load_snapshot(config_path)
        listener_tls(snapshot)
    except ConfigError as exc:
        log.error("%s: invalid config\n%s", config_path, exc)
        return 1
    except (OSError, ssl.SSLError) as exc:
        log.error("%s: a listener's TLS files cannot be loaded: %s", config_path, exc)
        return 1
    file = snapshot.config.logging
    settings = overrides.over(LogSettings(file.level, file.format))
    configure(settings)
    if workers <= 1:
        return run_worker(config_path, False, log_overrides=overrides, log_settings=settings)
    return _supervise(config_path, workers, snapshot.config.drain_timeout, overrides, settings)


def _supervise(
    config_path: Path,
    workers: int,
    drain_timeout: float,
    overrides: LogSettings,
    settings: LogSettings,
) -> int:
    # Workers share their counters (gateway.metrics) and readiness through these.
    metrics_dir = tempfile.mkdtemp(prefix="meshgate-metrics-")
    os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
    state_dir = Path(tempfile.mkdtemp(prefix="meshgate-state-"))
    os.environ[STARTED_ENV] = str(time.time())  # the gateway's start, for /version
    os.environ[STATE_DIR_ENV] = str(state_dir)
    # Workers elect one of them to run the active health checks (gateway.health_share).
    shared_dir = tempfile.mkdtemp(prefix="meshgate-shared-")
    os.environ.setdefault(SHARED_DIR_ENV, shared_dir)
    context = multiprocessing.get_context("spawn")
    children: list[multiprocessing.process.BaseProcess] = []
    stopping = False

    def start(index: int) -> multiprocessing.process.BaseProcess:
        (state_dir / f"worker-{index}.json").unlink(missing_ok=True)
        child = context.Process(
            target=_worker_process,
            args=(config_path, index, workers, overrides, settings),
            daemon=False,
        )
        # The child inherits an ignored SIGHUP and SIGUSR1 through exec, so a
        # reload or reopen sent while it starts up cannot kill it.
        handlers = [signal.signal(s, signal.SIG_IGN) for s in DEFERRED_SIGNALS]
        try:
            child.start()
        finally:
            for signum, handler in zip(DEFERRED_SIGNALS, handlers, strict=True):
                signal.signal(signum, handler)
        return child

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        (state_dir / DRAINING_MARK).touch()
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    def forward(signum: int, frame: object) -> None:
        # SIGHUP (reload) and SIGUSR1 (reopen the access log) are each worker's.
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for signum in DEFERRED_SIGNALS:
        signal.signal(signum, forward)
    children.extend(start(i) for i in range(workers))
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            if not child.is_alive() and not stopping:
                log.warning("worker %s exited with %s; starting another", child.pid, child.exitcode)
                children[i] = start(i)
    deadline = time.monotonic() + drain_timeout + EXIT_GRACE
    for child in children:
        child.join(timeout=max(deadline - time.monotonic(), 0.1))
        if child.is_alive():
            child.kill()
    shutil.rmtree(shared_dir, ignore_errors=True)
    return 0
