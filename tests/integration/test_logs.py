"""The gateway's own log lines from a real process: level and format from the
YAML and from the command line (which wins), uvicorn's lines in the same format."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.processes import python_module

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"


def config(echo_set: Path, backend_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "name": "rpc",
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                    }
                ],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}],
        **extra,
    }


def provoke_uvicorn_warning(gateway: RunningGateway) -> None:
    """A WebSocket upgrade, which the gateway's uvicorn refuses with a warning of its own."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            sock.recv(4096)


def wait_for_output(gateway: RunningGateway, text: str, timeout: float = 10.0) -> None:
    assert gateway.logged(text, timeout), gateway.process.output


def test_command_line_wins_json_everywhere(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    cfg = config(
        echo_set,
        backend_port,
        logging={"level": "error", "format": "text"},
        access_log={"path": "stdout"},
    )
    args = ["--log-level", "info", "--log-format", "json"]
    with run_gateway(cfg, tmp_path, args=args) as gateway:
        with gateway.client() as client:
            response = client.post(ECHO, json={}, headers={"x-request-id": "cli-json"})
        assert response.status_code == 200
        provoke_uvicorn_warning(gateway)
        wait_for_output(gateway, "Unsupported upgrade request")
        wait_for_output(gateway, "cli-json")
        lines = [line for line in gateway.process.lines if line.strip()]
    parsed = [orjson.loads(line) for line in lines]  # every line is JSON
    records = [p for p in parsed if "logger" in p]
    access = [p for p in parsed if "request_id" in p and "logger" not in p]
    (echo,) = [a for a in access if a["request_id"] == "cli-json"]
    assert (echo["path"], echo["status"]) == (ECHO, 200)
    # --log-level info beat the file's error: the worker's start-up lines are there.
    started = [r for r in records if r["logger"] == "meshgate.gateway.worker"]
    assert any(r["level"] == "info" and "listener public on" in r["message"] for r in started)
    uvicorn = [r for r in records if r["logger"].startswith("uvicorn")]
    assert uvicorn and uvicorn[0]["level"] == "warning", records
    assert all(r["logger"].startswith(("meshgate.", "uvicorn", "grpc")) for r in records), records


def test_level_and_format_from_the_file(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    cfg = config(echo_set, backend_port, logging={"level": "warning", "format": "text"})
    with run_gateway(cfg, tmp_path) as gateway:
        provoke_uvicorn_warning(gateway)
        wait_for_output(gateway, "Unsupported upgrade request")
        time.sleep(0.2)
        lines = [line for line in gateway.process.lines if line.strip()]
    # Text: "<date> <time> LEVEL logger: message"; nothing below WARNING.
    assert any(" WARNING uvicorn.error: Unsupported upgrade request" in line for line in lines)
    assert not [line for line in lines if " INFO " in line], lines
    assert not any(line.startswith("{") for line in lines)


def test_a_config_error_is_an_error_record(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    cfg = config(echo_set, backend_port, access_log={"format": "%REQ(:PATH)% %NOPE%"})
    cfg["admin"] = {"address": "127.0.0.1:1"}
    cfg["listeners"][0]["address"] = "127.0.0.1:2"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run(
        python_module("gateway", "run", "-c", str(path), "--log-format", "json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (record,) = [orjson.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert (record["level"], record["logger"]) == ("error", "meshgate.gateway.workers")
    assert "invalid config" in record["message"]
    assert "access_log.format" in record["message"]
    assert "unknown operator %NOPE% at character 13" in record["message"]
