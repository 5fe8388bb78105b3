"""The gateway's log settings, and the access log writer on real files."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.access_log.writer import LineWriter
from gateway.logs import JsonFormatter, LogSettings, configure, current_level, set_level
from gateway.upstream.health_events import report_health_event
from mesh.cluster_health import HealthEvent

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_every_module_logs_under_meshgate() -> None:
    """One name to filter on: a module logging under its bare __name__ would
    escape ``logging.getLogger("meshgate")`` settings."""
    offenders = [
        str(path.relative_to(REPO))
        for package in ("gateway", "mesh", "filters")
        for path in (REPO / package).rglob("*.py")
        if "getLogger(__name__)" in path.read_text()
    ]
    assert offenders == []


def test_set_level_applies_to_meshgate_uvicorn_and_grpc(restore_logging: None) -> None:
    configure(LogSettings("info", "text"))
    meshgate = logging.getLogger("meshgate.gateway.worker")
    grpc = logging.getLogger("grpc._cython.cygrpc")
    assert meshgate.isEnabledFor(logging.INFO) and not meshgate.isEnabledFor(logging.DEBUG)
    assert set_level("DEBUG") == "debug" and current_level() == "debug"
    assert meshgate.isEnabledFor(logging.DEBUG) and grpc.isEnabledFor(logging.DEBUG)
    assert set_level(logging.ERROR) == "error"
    assert not meshgate.isEnabledFor(logging.WARNING) and not grpc.isEnabledFor(logging.WARNING)
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        set_level("loud")
    assert current_level() == "error"


def test_configure_replaces_its_handler(restore_logging: None) -> None:
    configure(LogSettings("info", "text"))
    configure(LogSettings("warning", "json"))
    # pytest's own capture handlers aside, one handler: the JSON one.
    ours = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)


def test_the_command_line_wins_where_given() -> None:
    file = LogSettings("warning", "json")
    assert LogSettings("", "").over(file) == file
    assert LogSettings("debug", "").over(file) == LogSettings("debug", "json")


def test_json_records_carry_context_and_tracebacks() -> None:
    record = logging.LogRecord(
        "meshgate.health", logging.WARNING, "f.py", 1, "ejected %s", ("a",), None
    )
    record.cluster = "shop"
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["logger"] == "meshgate.health"
    assert entry["message"] == "ejected a" and entry["cluster"] == "shop"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("meshgate.x", logging.ERROR, "f.py", 1, "m", (), sys.exc_info())
    assert "RuntimeError: boom" in orjson.loads(JsonFormatter().format(failed))["exc"]


# -- the access log writer ----------------------------------------------------------


def test_writer_appends_whole_lines_and_flushes_on_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"kept\n")
    writer = LineWriter(str(path), capacity=100_000)
    lines = [f"{i} {'x' * (i % 300)}\n".encode() for i in range(5000)]
    for line in lines:
        writer.put(line)
    writer.close()
    assert path.read_bytes() == b"kept\n" + b"".join(lines)
    assert writer.dropped == 0


def test_writer_drops_and_counts_rather_than_wait(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = LineWriter(str(path), capacity=3)
    for i in range(1000):
        writer.put(f"{i}\n".encode())
    writer.close()
    written = path.read_text().splitlines()
    assert writer.dropped > 0 and len(written) + writer.dropped == 1000
    assert written == sorted(written, key=int)  # in order, whole


def test_writer_reopens_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = LineWriter(str(path))
    writer.put(b"one\n")
    wait = threading.Event()
    while path.stat().st_size == 0:
        wait.wait(0.02)
    path.rename(tmp_path / "access.log.1")
    writer.reopen()
    while not path.exists():
        wait.wait(0.02)
    writer.put(b"two\n")
    writer.close()
    assert (tmp_path / "access.log.1").read_bytes() == b"one\n"
    assert path.read_bytes() == b"two\n"


def test_writer_to_stdout_on_a_pipe() -> None:
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    saved = os.dup(1)
    os.dup2(write_end, 1)
    try:
        writer = LineWriter("stdout")
        lines = [f"{i} {'y' * 900}\n".encode() for i in range(50)]
        for line in lines:
            writer.put(line)
        writer.close()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(write_end)
    reader.join(5)
    os.close(read_end)
    assert bytes(received) == b"".join(lines)


def test_an_ejection_is_one_warning_with_its_context_as_json_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="meshgate.health"):
        report_health_event(HealthEvent("shop", "10.1.0.2:50051", "ejected", "consecutive_5xx", 30))
        report_health_event(HealthEvent("shop", "10.1.0.2:50051", "restored"))
    ejected, restored = caplog.records
    assert (ejected.levelno, restored.levelno) == (logging.WARNING, logging.INFO)
    entry = orjson.loads(JsonFormatter().format(ejected))
    assert (
        entry["message"]
        == "cluster shop: endpoint 10.1.0.2:50051 ejected (consecutive_5xx) for 30s"
    )
    assert (entry["cluster"], entry["endpoint"], entry["event"]) == (
        "shop",
        "10.1.0.2:50051",
        "ejected",
    )
