"""``meshgate call``, ``list``, ``routes`` and ``run`` against real processes.

The backend is the tests' grpcio echo server (with server reflection). Most
commands run in process through ``gateway.cli.main`` with their output
captured (the same code a user's ``meshgate`` runs, without paying the
interpreter start-up for each); one call and ``run`` run as child processes,
as a user runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cli import meshgate
from tests.support.net import free_port
from tests.support.processes import REPO, Process

pytestmark = pytest.mark.integration

ECHO = "meshgate.test.v1.EchoService/Echo"
STREAM = "meshgate.test.v1.EchoService/ServerStream"
ECHO_PROTO = REPO / "tests" / "protos" / "meshgate" / "test" / "v1" / "echo.proto"
DEMO_CONFIG = str(REPO / "config" / "demo.yaml")


def test_the_command_as_a_process(backend_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "call", f"127.0.0.1:{backend_port}", ECHO, "{}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["servedBy"] == "primary"


def test_call_prints_the_reply_as_json(backend_port: int) -> None:
    result = meshgate("call", f"127.0.0.1:{backend_port}", ECHO, '{"message": "hi", "big": "9"}')
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["request"]["message"] == "hi"
    assert reply["request"]["big"] == "9"  # int64 as a string: proto3 JSON
    assert reply["servedBy"] == "primary"


def test_call_with_schemas_from_a_proto_file_or_a_descriptor_set(
    backend_port: int, echo_set: Path
) -> None:
    target = f"127.0.0.1:{backend_port}"
    proto_root = REPO / "tests" / "protos"
    by_proto = meshgate(
        "call", "--proto", str(ECHO_PROTO), "-I", str(proto_root), target, ECHO, '{"message": "p"}'
    )
    assert by_proto.returncode == 0, by_proto.stderr
    assert json.loads(by_proto.stdout)["request"]["message"] == "p"
    by_set = meshgate("call", "--descriptor-set", str(echo_set), target, ECHO, '{"message": "s"}')
    assert by_set.returncode == 0, by_set.stderr
    assert json.loads(by_set.stdout)["request"]["message"] == "s"


def test_call_reads_the_request_from_a_file_or_stdin(backend_port: int, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"message": "from a file"}')
    target = f"127.0.0.1:{backend_port}"
    from_file = meshgate("call", target, ECHO, f"@{request}")
    assert json.loads(from_file.stdout)["request"]["message"] == "from a file"
    from_stdin = meshgate("call", target, ECHO, "-", stdin='{"message": "from stdin"}')
    assert json.loads(from_stdin.stdout)["request"]["message"] == "from stdin"


def test_verbose_shows_status_headers_and_trailers(backend_port: int) -> None:
    request = {"message": "v", "replyHeaders": {"x-h": "1"}, "replyTrailers": {"x-t": "2"}}
    result = meshgate(
        "call", "-v", "-H", "x-asked: yes", f"127.0.0.1:{backend_port}", ECHO, json.dumps(request)
    )
    assert result.returncode == 0, result.stderr
    assert "< x-h: 1" in result.stderr
    assert "status: OK (0)" in result.stderr
    assert "trailer x-t: 2" in result.stderr


def test_the_exit_status_is_the_grpc_status(backend_port: int) -> None:
    request = {"failCode": 5, "failMessage": "no such shelf", "failWithDetails": True}
    result = meshgate("call", "-v", f"127.0.0.1:{backend_port}", ECHO, json.dumps(request))
    assert result.returncode == 5
    assert result.stdout == ""
    assert "ERROR: NOT_FOUND (5): no such shelf" in result.stderr
    assert "google.rpc.BadRequest" in result.stderr  # the status details, decoded


def test_a_server_stream_is_printed_as_ndjson(backend_port: int) -> None:
    result = meshgate("call", f"127.0.0.1:{backend_port}", STREAM, '{"message": "s"}')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["request"]["message"] for line in lines] == ["s#0", "s#1", "s#2"]


def test_a_stream_that_fails_ends_with_its_status(backend_port: int) -> None:
    request = {"message": "s", "failCode": 8}
    result = meshgate("call", f"127.0.0.1:{backend_port}", STREAM, json.dumps(request))
    assert result.returncode == 8
    assert len(result.stdout.splitlines()) == 3
    assert "RESOURCE_EXHAUSTED" in result.stderr


def test_mistakes_on_the_command_line_exit_2_before_calling(backend_port: int) -> None:
    target = f"127.0.0.1:{backend_port}"
    cases = {
        ("call", target, ECHO, "{not json"): "malformed JSON",
        ("call", target, ECHO, '{"nope": 1}'): "nope",
        ("call", target, "meshgate.test.v1.EchoService/Nope", "{}"): "has no method 'Nope'",
        ("call", target, "no.Such/Method", "{}"): "unknown service",
        ("call", "localhost", ECHO, "{}"): "expected host:port",
    }
    for args, message in cases.items():
        result = meshgate(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_an_unreachable_backend_is_unavailable() -> None:
    result = meshgate(
        "call", "--timeout", "2", "--proto", str(ECHO_PROTO), "-I", str(REPO / "tests" / "protos"),
        f"127.0.0.1:{free_port()}", ECHO, "{}",
    )  # fmt: skip
    assert result.returncode == 14, result.stderr
    assert "UNAVAILABLE" in result.stderr


def test_list_shows_services_methods_and_http_bindings(backend_port: int) -> None:
    result = meshgate("list", f"127.0.0.1:{backend_port}")
    assert result.returncode == 0, result.stderr
    assert "meshgate.test.v1.EchoService" in result.stdout
    assert (
        "rpc ServerStream(meshgate.test.v1.EchoRequest) returns "
        "(stream meshgate.test.v1.EchoReply)" in result.stdout
    )
    assert "POST /meshgate.test.v1.EchoService/Echo" in result.stdout
    assert "grpc.reflection" not in result.stdout
    one = meshgate("list", "--json", f"127.0.0.1:{backend_port}", "meshgate.test.v1.EchoService")
    [service] = json.loads(one.stdout)
    assert [m["name"] for m in service["methods"]] == ["Echo", "Ping", "ServerStream"]
    missing = meshgate("list", f"127.0.0.1:{backend_port}", "no.Such")
    assert missing.returncode == 2


def test_list_shows_the_http_bindings_of_a_proto() -> None:
    result = meshgate(
        "list", "--proto", str(REPO / "config" / "demo" / "greeter.proto"), "127.0.0.1:1"
    )
    assert result.returncode == 0, result.stderr
    assert "GET /v1/greet/{name}" in result.stdout
    assert "POST /v1/greet" in result.stdout


def test_routes_prints_the_table_and_explains_a_request() -> None:
    table = meshgate("routes", "-c", DEMO_CONFIG)
    assert table.returncode == 0, table.stderr
    assert "listener public on 127.0.0.1:8080" in table.stdout
    assert "GET /v1/greet/{name}" in table.stdout
    hit = meshgate("routes", "-c", DEMO_CONFIG, "GET", "/v1/greet/ada?times=2", "--json")
    assert hit.returncode == 0, hit.stderr
    answer = json.loads(hit.stdout)
    assert answer["route"] == "rpc"
    assert answer["rpc"] == "demo.greeter.v1.Greeter/SayHello"
    assert answer["cluster"] == "greeter"
    assert answer["bindings"] == [
        {"field": "name", "value": "ada"},
        {"field": "times", "value": "2"},
    ]
    miss = meshgate("routes", "-c", DEMO_CONFIG, "DELETE", "/v1/greet/ada")
    assert miss.returncode == 0  # the route matches (prefix /), no binding does
    assert "no binding does" in miss.stdout


def test_run_check_only_loads_and_exits() -> None:
    ok = meshgate("run", "--check-only", "-c", DEMO_CONFIG)
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 listener(s)" in ok.stdout


def test_run_stops_quietly_on_ctrl_c(tmp_path: Path, backend_port: int) -> None:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["descriptors"] = [{"reflection": {"cluster": "greeter"}}]
    config["listeners"][0]["routes"][0]["transcode"] = {"auto_mapping": True}
    config["listeners"][0]["address"] = f"127.0.0.1:{free_port()}"
    config["admin"]["address"] = f"127.0.0.1:{free_port()}"
    config["clusters"][0]["endpoints"] = [{"address": f"127.0.0.1:{backend_port}"}]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = Process([sys.executable, "-m", "gateway", "run", "-c", str(path)])
    try:
        process.wait_for_line("admin on", timeout=30)
        os.killpg(process.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        process.proc.wait(timeout=15)
    finally:
        process.stop()
    assert "Traceback" not in process.output
    assert "KeyboardInterrupt" not in process.output
