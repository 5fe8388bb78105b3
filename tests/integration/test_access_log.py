"""The access log and request IDs of a real gateway process, in front of the
tests' own grpcio backend: each line parsed and checked field by field."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.support.errors import error_body
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
STREAM = "/meshgate.test.v1.EchoService/ServerStream"
WAIT = 15.0


def config(echo_set: Path, live: str, dead: str, **extra: Any) -> dict[str, Any]:
    auto = {"auto_mapping": True}
    return {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        # One endpoint dead: the first try on it is retried on the other.
                        "name": "pair",
                        "match": {"prefix": "/", "headers": [{"name": "x-pool", "exact": "pair"}]},
                        "transcode": auto,
                        "cluster": "pair",
                        "timeout": "5s",
                        "retry": {"attempts": 2, "on": ["unavailable"]},
                    },
                    {"name": "rpc", "match": {"prefix": "/"}, "transcode": auto, "cluster": "echo"},
                ],
            }
        ],
        "clusters": [
            {"name": "echo", "endpoints": [{"address": live}]},
            {
                "name": "pair",
                "lb": "round_robin",
                "endpoints": [{"address": dead}, {"address": live}],
            },
        ],
        **extra,
    }


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for(found: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not seen within {timeout}s")
        time.sleep(0.05)


def json_line(path: Path, request_id: str) -> dict[str, Any]:
    """The access log line of the request with this ID (waiting for the flush)."""

    def find() -> dict[str, Any] | None:
        for line in read_lines(path):
            entry: dict[str, Any] = orjson.loads(line)
            if entry["request_id"] == request_id:
                return entry
        return None

    found: dict[str, Any] = wait_for(find)
    return found


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def logged(
    echo_set: Path, backend_port: int, dead_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, Path]]:
    tmp = tmp_path_factory.mktemp("access")
    path = tmp / "access.log"
    cfg = config(
        echo_set,
        f"127.0.0.1:{backend_port}",
        f"127.0.0.1:{dead_port}",
        access_log={"path": str(path)},
    )
    with run_gateway(cfg, tmp) as gateway:
        yield gateway, path


def check_common(entry: dict[str, Any], request_id: str) -> None:
    assert entry["request_id"] == request_id
    assert entry["listener"] == "public"
    assert entry["protocol"] == "HTTP/1.1"
    assert entry["trace_id"] == ""
    assert entry["client"].startswith("127.0.0.1:")
    # ISO 8601 UTC with milliseconds, close to now.
    when = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(when.timestamp() - time.time()) < 300
    assert len(entry["time"]) == 24
    assert entry["duration_ms"] >= entry["upstream_duration_ms"] >= 0


def test_a_success_is_logged_field_by_field(
    logged: tuple[RunningGateway, Path], backend_port: int
) -> None:
    gateway, path = logged
    body = orjson.dumps({"message": "hello"})
    with gateway.client() as client:
        response = client.post(
            ECHO,
            content=body,
            headers={
                "content-type": "application/json",
                "user-agent": "obs-test/1.0",
                "x-request-id": "req-success-1",
            },
        )
    assert response.status_code == 200, response.text
    entry = json_line(path, "req-success-1")
    check_common(entry, "req-success-1")
    assert (entry["method"], entry["path"]) == ("POST", ECHO)
    assert (entry["route"], entry["cluster"]) == ("rpc", "echo")
    assert entry["endpoint"] == f"127.0.0.1:{backend_port}"
    assert entry["upstream_protocol"] == "grpc"
    assert (entry["status"], entry["grpc_status"], entry["retries"]) == (200, 0, 0)
    assert entry["bytes_received"] == len(body)
    assert entry["bytes_sent"] == len(response.content)
    assert entry["user_agent"] == "obs-test/1.0"
    assert entry["upstream_duration_ms"] > 0


def test_a_4xx_from_the_backend_and_one_from_the_gateway(
    logged: tuple[RunningGateway, Path], backend_port: int
) -> None:
    gateway, path = logged
    with gateway.client() as client:
        missing = client.post(
            ECHO,
            json={"failCode": 5, "failMessage": "no such thing"},
            headers={"x-request-id": "r404"},
        )
        bad = client.post(
            ECHO,
            content=b'{"message": ',
            headers={"content-type": "application/json", "x-request-id": "r400"},
        )
    assert (missing.status_code, bad.status_code) == (404, 400)
    assert error_body(missing) == {"code": 5, "message": "no such thing", "details": []}
    assert bad.json()["request_id"] == "r400"

    entry = json_line(path, "r404")
    check_common(entry, "r404")
    assert (entry["status"], entry["grpc_status"]) == (404, 5)
    assert entry["endpoint"] == f"127.0.0.1:{backend_port}"
    assert entry["bytes_sent"] == len(missing.content)

    refused = json_line(path, "r400")
    check_common(refused, "r400")
    # Refused before any upstream call: the route is known, no endpoint, no gRPC status.
    assert (refused["status"], refused["grpc_status"]) == (400, None)
    assert (refused["route"], refused["endpoint"], refused["retries"]) == ("rpc", "", 0)
    assert refused["upstream_duration_ms"] == 0


def test_a_retry_names_the_endpoint_that_answered(
    logged: tuple[RunningGateway, Path], backend_port: int, dead_port: int
) -> None:
    gateway, path = logged
    live = f"127.0.0.1:{backend_port}"
    ids = [f"retry-{i}" for i in range(4)]
    with gateway.client() as client:
        for request_id in ids:
            response = client.post(
                ECHO, json={"message": "r"}, headers={"x-pool": "pair", "x-request-id": request_id}
            )
            assert response.status_code == 200, response.text
    entries = [json_line(path, request_id) for request_id in ids]
    assert all(e["endpoint"] == live and e["status"] == 200 for e in entries), entries
    assert all((e["route"], e["cluster"]) == ("pair", "pair") for e in entries), entries
    # Round robin starts one of the first two on the dead endpoint: retried to the live one.
    retried = [e for e in entries if e["retries"] == 1]
    assert retried, entries
    assert retried[0]["grpc_status"] == 0
    assert all(e["retries"] in (0, 1) for e in entries)


def test_a_server_stream_is_logged_when_it_ends(
    logged: tuple[RunningGateway, Path], backend_port: int
) -> None:
    gateway, path = logged
    with gateway.client() as client:
        response = client.post(
            STREAM, json={"message": "s", "tags": ["a", "b", "c"]}, headers={"x-request-id": "st1"}
        )
    assert response.status_code == 200
    assert len(response.json()) == 3
    entry = json_line(path, "st1")
    check_common(entry, "st1")
    assert (entry["path"], entry["status"], entry["grpc_status"]) == (STREAM, 200, 0)
    assert entry["endpoint"] == f"127.0.0.1:{backend_port}"
    assert entry["bytes_sent"] == len(response.content) > 0


# -- request IDs ----------------------------------------------------------------


def echoed_metadata(
    client: httpx.Client, headers: dict[bytes, bytes]
) -> tuple[httpx.Response, str]:
    response = client.post(ECHO, json={"echoMetadata": True}, headers=headers)
    assert response.status_code == 200, response.text
    return response, response.json()["metadata"]["x-request-id"]


def test_a_sane_request_id_is_kept_sent_upstream_and_returned(
    logged: tuple[RunningGateway, Path],
) -> None:
    gateway, path = logged
    with gateway.client() as client:
        response, seen = echoed_metadata(client, {b"x-request-id": b"Client-ID_0042"})
    assert seen == "Client-ID_0042"
    assert response.headers["x-request-id"] == "Client-ID_0042"
    assert json_line(path, "Client-ID_0042")["status"] == 200


@pytest.mark.parametrize(
    "sent",
    [None, "x" * 129, "has space", "caf\u00e9"],
    ids=["absent", "too-long", "space", "not-ascii"],
)
def test_a_request_id_is_made_when_absent_or_not_sane(
    logged: tuple[RunningGateway, Path], sent: str | None
) -> None:
    gateway, path = logged
    headers = {} if sent is None else {b"x-request-id": sent.encode()}
    with gateway.client() as client:
        response, seen = echoed_metadata(client, headers)
    made = response.headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0 and made != sent
    assert seen == made  # the backend got the same ID as metadata
    assert json_line(path, made)["status"] == 200


# -- format strings, filters, sampling, reopening ----------------------------------


def test_format_string_and_only_errors(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = {
        "path": str(path),
        "format": '%START_TIME% "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
        "%GRPC_STATUS% %GRPC_STATUS(NUMBER)% %BYTES_RECEIVED% %ROUTE_NAME% %UPSTREAM_CLUSTER% "
        "%UPSTREAM_HOST% %REQ(X-REQUEST-ID)% %REQ(USER-AGENT):5% %TRACE_ID% %% done\n",
        "only": "errors",
    }
    cfg = config(echo_set, f"127.0.0.1:{backend_port}", "127.0.0.1:1", access_log=access)
    with run_gateway(cfg, tmp_path) as gateway, gateway.client() as client:
        ok = client.post(ECHO, json={}, headers={"x-request-id": "fmt-ok"})
        failed = client.post(
            ECHO + "?q=1",
            content=b'{"failCode":7}',
            headers={"x-request-id": "fmt-fail", "user-agent": "curlish/8"},
        )
        assert (ok.status_code, failed.status_code) == (200, 403)
        line = wait_for(lambda: [x for x in read_lines(path) if "fmt-fail" in x])[0]
        time.sleep(0.5)  # a line for the success would have been flushed with it
        assert not [x for x in read_lines(path) if "fmt-ok" in x]
    stamp, rest = line.split(" ", 1)
    datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert rest == (
        f'"POST {ECHO}?q=1 HTTP/1.1" 403 PermissionDenied 7 14 rpc echo '
        f"127.0.0.1:{backend_port} fmt-fail curli - % done"
    )


def test_sampling_zero_writes_nothing(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    cfg = config(
        echo_set,
        f"127.0.0.1:{backend_port}",
        "127.0.0.1:1",
        access_log={"path": str(path), "sample": 0.0},
    )
    with run_gateway(cfg, tmp_path) as gateway, gateway.client() as client:
        for _ in range(20):
            assert client.post(ECHO, json={}).status_code == 200
            assert client.get("/nowhere").status_code == 404
        time.sleep(1.0)  # several flush intervals
        assert path.exists() and path.read_text() == ""


def test_sigusr1_reopens_after_a_rename_and_rotation_is_noticed(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    path = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    cfg = config(
        echo_set, f"127.0.0.1:{backend_port}", "127.0.0.1:1", access_log={"path": str(path)}
    )
    with run_gateway(cfg, tmp_path) as gateway, gateway.client() as client:
        client.post(ECHO, json={}, headers={"x-request-id": "before-rename"})
        json_line(path, "before-rename")
        path.rename(rotated)
        os.kill(gateway.process.proc.pid, signal.SIGUSR1)
        wait_for(path.exists)
        client.post(ECHO, json={}, headers={"x-request-id": "after-signal"})
        json_line(path, "after-signal")
        # Rotated again, without a signal: noticed within about a second (lines
        # written before that go to the renamed file, none is lost).
        second = tmp_path / "access.log.2"
        path.rename(second)
        sent: list[str] = []

        def reopened() -> bool:
            sent.append(f"after-rotation-{len(sent)}")
            client.post(ECHO, json={}, headers={"x-request-id": sent[-1]})
            time.sleep(0.1)
            return path.exists()

        wait_for(reopened)
        client.post(ECHO, json={}, headers={"x-request-id": "reopened"})
        json_line(path, "reopened")
        assert gateway.process.proc.poll() is None
    assert [orjson.loads(x)["request_id"] for x in read_lines(rotated)] == ["before-rename"]
    after = [orjson.loads(x)["request_id"] for x in read_lines(second) + read_lines(path)]
    assert after == ["after-signal", *sent, "reopened"]


def test_two_workers_append_whole_lines(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    cfg = config(
        echo_set,
        f"127.0.0.1:{backend_port}",
        "127.0.0.1:1",
        access_log={"path": str(path)},
        logging={"format": "json"},
    )
    count = 600

    def send(i: int) -> int:
        # A connection per request, so both workers take a share; user agents
        # of many lengths make lines of many lengths.
        with gateway.client() as client:
            return client.post(
                ECHO,
                json={},
                headers={"x-request-id": f"w-{i}", "user-agent": "u" * (i * 7 % 3000)},
            ).status_code

    with run_gateway(cfg, tmp_path, workers=2) as gateway:
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(send, range(count))) == {200}
        wait_for(lambda: len(read_lines(path)) >= count)
        # SIGUSR1 to the supervisor reaches every worker.
        path.rename(tmp_path / "access.log.1")
        os.kill(gateway.process.proc.pid, signal.SIGUSR1)
        wait_for(lambda: len(reopened_by(gateway.process.lines)) == 2)
        output = list(gateway.process.lines)
    entries = [orjson.loads(line) for line in read_lines(tmp_path / "access.log.1")]
    assert sorted(e["request_id"] for e in entries) == sorted(f"w-{i}" for i in range(count))
    assert all(len(e["user_agent"]) == int(e["request_id"][2:]) * 7 % 3000 for e in entries)
    # YAML logging.format json: every line the gateway printed is a JSON record.
    records = [orjson.loads(line) for line in output if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert len({r["pid"] for r in records}) >= 2  # both workers


def reopened_by(lines: list[str]) -> set[int]:
    """The pids that logged reopening the access log (JSON log lines)."""
    return {
        orjson.loads(line)["pid"]
        for line in list(lines)
        if "access log" in line and "reopened" in line
    }


def test_a_reload_moves_the_access_log(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    cfg = config(
        echo_set, f"127.0.0.1:{backend_port}", "127.0.0.1:1", access_log={"path": str(first)}
    )
    with run_gateway(cfg, tmp_path) as gateway, gateway.client() as client:
        client.post(ECHO, json={}, headers={"x-request-id": "before"})
        json_line(first, "before")
        cfg = yaml.safe_load(gateway.config_path.read_text())
        cfg["access_log"] = {"path": str(second), "format": "%REQUEST_ID% %RESPONSE_CODE%"}
        gateway.config_path.write_text(yaml.safe_dump(cfg))
        os.kill(gateway.process.proc.pid, signal.SIGHUP)
        sent: list[str] = []

        def moved() -> bool:
            sent.append(f"after-{len(sent)}")
            client.post(ECHO, json={}, headers={"x-request-id": sent[-1]})
            time.sleep(0.2)
            return bool(read_lines(second))

        wait_for(moved)

        def logged_ids() -> list[str]:
            in_first = [orjson.loads(line)["request_id"] for line in read_lines(first)]
            return in_first + [line.split()[0] for line in read_lines(second)]

        # The old log's last lines are flushed as it closes.
        wait_for(lambda: len(logged_ids()) >= len(sent) + 1)
    # Every request is in exactly one of the two, in its file's format.
    assert sorted(logged_ids()) == sorted(["before", *sent])
    assert orjson.loads(read_lines(first)[0])["request_id"] == "before"
    assert all(line.endswith(" 200") for line in read_lines(second))


def test_a_listener_may_have_its_own_access_log(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    shared, own = tmp_path / "shared.log", tmp_path / "own.log"
    cfg = config(
        echo_set, f"127.0.0.1:{backend_port}", "127.0.0.1:1", access_log={"path": str(shared)}
    )
    public = cfg["listeners"][0]
    cfg["listeners"] = [
        public,
        {
            **public,
            "name": "internal",
            "access_log": {"path": str(own), "format": "%LISTENER_NAME% %REQUEST_ID%"},
        },
        {**public, "name": "quiet", "access_log": {"path": str(own), "sample": 0.0}},
    ]
    with run_gateway(cfg, tmp_path) as gateway:
        written = yaml.safe_load(gateway.config_path.read_text())
        for listener in written["listeners"]:
            url = f"http://{listener['address']}{ECHO}"
            headers = {"x-request-id": f"via-{listener['name']}"}
            assert httpx.post(url, json={}, headers=headers, timeout=10).status_code == 200
        assert json_line(shared, "via-public")["listener"] == "public"
        wait_for(lambda: read_lines(own))
        time.sleep(0.5)  # a line from "quiet" would have been flushed with it
    assert read_lines(own) == ["internal via-internal"]
    assert [orjson.loads(x)["request_id"] for x in read_lines(shared)] == ["via-public"]
