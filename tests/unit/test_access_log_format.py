"""The access log's formats, sans-IO: Envoy-style format strings and the JSON line."""

from __future__ import annotations

import calendar
import time

import orjson
import pytest
from pydantic import ValidationError

from gateway.access_log.format import ENVOY_DEFAULT, FormatError, compile_format, status_range
from gateway.access_log.observer import AccessLog, access_log_settings
from gateway.access_log.record import UtcTimes, json_line
from gateway.config.observability import AccessLogConfig
from gateway.exchange import Attempt, Exchange

# 2026-12-02T13:28:10.123Z
WALL = calendar.timegm((2026, 12, 2, 13, 28, 10, 0, 0, 0)) + 0.1235  # milliseconds truncate


def exchange(**fields: object) -> Exchange:
    done = Exchange(
        "public",
        "POST",
        "/pkg.Svc/Call",
        wall_time=WALL,
        request_id="rid-1",
        http_version="1.1",
        client=("10.0.0.7", 40123),
        request_headers=[
            ("host", "api.example.com"),
            ("user-agent", "curl/8.5"),
            ("x-request-id", "rid-1"),
            ("x-forwarded-for", "1.2.3.4"),
        ],
        query_string=b"a=1&b=2",
        response_headers=[("content-type", "application/json"), ("x-served-by", "v1")],
        route="rpc",
        cluster="shop",
        upstream="grpc",
        status=200,
        grpc_status=0,
        seconds=0.0425,
        bytes_received=17,
        bytes_sent=230,
    )
    done.attempts = [
        Attempt("10.1.0.1:50051", 0.0, 0.010, 14),
        Attempt("10.1.0.2:50051", 0.0, 0.020, 0),
    ]
    for name, value in fields.items():
        setattr(done, name, value)
    return done


def render(text: str, **fields: object) -> str:
    return compile_format(text)(exchange(**fields))


def test_envoy_default_format() -> None:
    assert render(ENVOY_DEFAULT) == (
        '[2026-12-02T13:28:10.123Z] "POST /pkg.Svc/Call?a=1&b=2 HTTP/1.1" 200 - 17 230 42 - '
        '"1.2.3.4" "curl/8.5" "rid-1" "api.example.com" "10.1.0.2:50051"'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%RESPONSE_CODE%", "200"),
        ("%DURATION%", "42"),
        ("%UPSTREAM_DURATION%", "30"),
        ("%BYTES_RECEIVED%/%BYTES_SENT%", "17/230"),
        ("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME%", "10.1.0.2:50051 shop rpc"),
        ("%UPSTREAM_PROTOCOL% %PROTOCOL%", "grpc HTTP/1.1"),
        ("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "2"),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.0.7:40123"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.7"),
        ("%REQ(:METHOD)% %REQ(:PATH)%", "POST /pkg.Svc/Call?a=1&b=2"),
        ("%REQ_WITHOUT_QUERY(:PATH)%", "/pkg.Svc/Call"),
        ("%REQ(:AUTHORITY)%", "api.example.com"),
        ("%REQ(User-Agent)%", "curl/8.5"),
        ("%REQ(USER-AGENT):4%", "curl"),
        ("%REQ(X-MISSING?USER-AGENT)%", "curl/8.5"),
        ("%REQ(X-MISSING)%", "-"),
        ("%RESP(X-SERVED-BY)%", "v1"),
        ("%REQUEST_ID% %TRACE_ID% %LISTENER_NAME%", "rid-1 - public"),
        ("%GRPC_STATUS%", "Ok"),
        ("%GRPC_STATUS(SNAKE_STRING)%", "OK"),
        ("%GRPC_STATUS(NUMBER)%", "0"),
        ("%START_TIME%", "2026-12-02T13:28:10.123Z"),
        ("%START_TIME(%Y/%m/%d)%", "2026/12/02"),
        ("100%% done %RESPONSE_FLAGS%", "100% done -"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_operators(text: str, expected: str) -> None:
    assert render(text) == expected


def test_grpc_status_names_and_absence() -> None:
    assert render("%GRPC_STATUS%", grpc_status=7) == "PermissionDenied"
    assert render("%GRPC_STATUS(SNAKE_STRING)%", grpc_status=14) == "UNAVAILABLE"
    assert render("%GRPC_STATUS% %GRPC_STATUS(NUMBER)%", grpc_status=None) == "- -"


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({"status": 499}, "DC"),
        ({"status": 404, "route": ""}, "NR"),
        ({"status": 503, "attempts": []}, "UH"),
        ({"status": 503}, "UF"),
        ({"status": 504}, "UT"),
        ({"status": 404}, "-"),
    ],
)
def test_response_flags(fields: dict[str, object], flags: str) -> None:
    assert render("%RESPONSE_FLAGS%", **fields) == flags


def test_control_characters_cannot_forge_lines() -> None:
    line = render("%REQ(:PATH)%\t%RESPONSE_CODE%", path="/a\nfake 200\r", query_string=b"")
    assert line == "/a?fake 200?\t200"


def test_a_trailing_newline_is_the_writers_business() -> None:
    assert render("%RESPONSE_CODE%\n") == "200"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("%NOPE%", "unknown operator %NOPE% at character 0"),
        ("a %BYTES% b", "unknown operator %BYTES%"),
        ("%REQ%", "needs an argument"),
        ("%REQ()%", "need a header name"),
        ("%DURATION(X)%", "takes no argument"),
        ("%REQ(:BOGUS)%", "unknown pseudo-header"),
        ("%RESP(:PATH)%", "unknown pseudo-header"),
        ("%GRPC_STATUS(WORDS)%", "CAMEL_STRING, SNAKE_STRING or NUMBER"),
        ("%REQ(X", "no closing ')'"),
        ("%DURATION", "not closed by '%'"),
        ("%REQ(X):%", "needs a length"),
        ("50% off", "lone '%'"),
    ],
)
def test_bad_formats_are_refused_at_load(text: str, problem: str) -> None:
    with pytest.raises(FormatError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        compile_format(text)


def test_the_config_refuses_a_bad_format_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="unknown operator %NOPE%"):
        AccessLogConfig(format="%NOPE%")
    with pytest.raises(ValidationError, match="status range like 500-599"):
        AccessLogConfig(only="sometimes")
    with pytest.raises(ValidationError):
        AccessLogConfig(sample=1.5)
    assert AccessLogConfig(format=ENVOY_DEFAULT, only="500-599").only == "500-599"


@pytest.mark.parametrize(
    ("only", "bounds"),
    [
        ("all", (0, 999)),
        ("errors", (400, 999)),
        ("server_errors", (500, 999)),
        ("400-499", (400, 499)),
    ],
)
def test_status_filters(only: str, bounds: tuple[int, int]) -> None:
    assert status_range(only) == bounds


@pytest.mark.parametrize("only", ["500-400", "5xx", "-", "0-99", ""])
def test_bad_status_filters(only: str) -> None:
    with pytest.raises(FormatError):
        status_range(only)


def test_the_json_line() -> None:
    line = json_line(exchange(), UtcTimes())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {
        "time": "2026-12-02T13:28:10.123Z",
        "listener": "public",
        "method": "POST",
        "path": "/pkg.Svc/Call",
        "protocol": "HTTP/1.1",
        "route": "rpc",
        "cluster": "shop",
        "endpoint": "10.1.0.2:50051",
        "upstream_protocol": "grpc",
        "status": 200,
        "grpc_status": 0,
        "bytes_received": 17,
        "bytes_sent": 230,
        "duration_ms": 42.5,
        "upstream_duration_ms": 30.0,
        "retries": 1,
        "request_id": "rid-1",
        "trace_id": "",
        "client": "10.0.0.7:40123",
        "user_agent": "curl/8.5",
    }


def test_json_line_of_a_request_that_never_reached_an_upstream() -> None:
    entry = orjson.loads(
        json_line(
            exchange(attempts=[], grpc_status=None, status=404, route="", client=("::1", 5)),
            UtcTimes(),
        )
    )
    assert (entry["endpoint"], entry["grpc_status"], entry["retries"]) == ("", None, 0)
    assert (entry["upstream_duration_ms"], entry["client"]) == (0, "[::1]:5")


def test_times_are_cached_per_second_but_exact() -> None:
    times = UtcTimes()
    assert times(WALL) == "2026-12-02T13:28:10.123Z"
    assert times(WALL + 0.5) == "2026-12-02T13:28:10.623Z"
    assert times(WALL + 1) == "2026-12-02T13:28:11.123Z"
    assert times(0.0) == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(0))


class Collecting:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put(self, line: bytes) -> None:
        self.lines.append(line)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


def observer(rng: float = 0.0, **config: object) -> tuple[AccessLog, Collecting]:
    sink = Collecting()
    log = AccessLog(AccessLogConfig.model_validate(config), sink, rng=lambda: rng)
    return log, sink


def test_observer_filters_by_status() -> None:
    log, sink = observer(only="errors", format="%RESPONSE_CODE%")
    for status in (200, 302, 404, 503):
        log(exchange(status=status))
    assert sink.lines == [b"404\n", b"503\n"]


def test_observer_samples() -> None:
    kept, kept_sink = observer(rng=0.49, sample=0.5)
    dropped, dropped_sink = observer(rng=0.5, sample=0.5)
    none, none_sink = observer(rng=0.0, sample=0.0)
    for log in (kept, dropped, none):
        log(exchange())
    assert (len(kept_sink.lines), dropped_sink.lines, none_sink.lines) == (1, [], [])


def test_no_access_log_configured_means_no_observer() -> None:
    own = AccessLogConfig(format="%REQUEST_ID%")
    assert access_log_settings(None, {"public": None}) is None
    assert access_log_settings(None, {"public": None, "internal": own}) == (
        None,
        {"internal": own},
    )
