"""Tracing through a real meshgate process: W3C traceparent as grpcio backends
receive it, and the spans the gateway exports to an OTLP receiver of the
tests' own (tests/support/otlp_receiver.py).

The echo backend answers with the metadata it received (``echo_metadata``),
so each test reads the ``traceparent`` the backend saw, and checks it
against the exported spans: the backend's parent must be the client span
of the attempt that reached it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.tracing.context import TraceParent, parse_traceparent
from tests.support.dubbo2_relay import dubbo2_relay
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.peers import peer_or_skip
from tests.support.processes import echo_backend
from tests.support.protos import load_pool, message_class

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR = 2  # Status.StatusCode
# Spans leave in batches this often: the tests wait for them, never sleep.
FAST_EXPORT = "100ms"


def routes() -> list[dict[str, Any]]:
    return [
        {
            "name": "echo-retried",
            "match": {"prefix": "/", "headers": [{"name": "x-retry", "present": True}]},
            "transcode": {"auto_mapping": True},
            "cluster": "echo",
            "timeout": "5s",
            "retry": {"attempts": 2, "on": ["unavailable"]},
        },
        {
            "name": "echo",
            "match": {"prefix": "/"},
            "transcode": {"auto_mapping": True},
            "cluster": "echo",
            "timeout": "5s",
        },
    ]


def gateway_config(
    echo_set: Path, endpoints: list[str], tracing: dict[str, Any] | None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [{"name": "public", "routes": routes()}],
        "clusters": [
            {
                "name": "echo",
                "endpoints": [{"address": a} for a in endpoints],
                # A backend told to fail stays in rotation: the retry test needs it.
                "outlier_detection": {"consecutive_5xx": 0, "consecutive_gateway_failure": 0},
            }
        ],
    }
    if tracing is not None:
        config["tracing"] = tracing
    return config


class Backends:
    def __init__(self, stack: ExitStack, tmp: Path) -> None:
        self.ports = {name: free_port() for name in ("a", "b")}
        self.controls = {name: tmp / f"{name}.control" for name in self.ports}
        for name, port in self.ports.items():
            stack.enter_context(echo_backend(port, name, control=self.controls[name]))

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def addresses(self) -> list[str]:
        return [self.address(n) for n in self.ports]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    with ExitStack() as stack:
        yield Backends(stack, tmp_path_factory.mktemp("tracing-backends"))


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def traced(
    echo_set: Path,
    backends: Backends,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    tracing = {
        "otlp": {"endpoint": receiver.endpoint, "schedule_delay": FAST_EXPORT},
        "sampling": 1.0,
        "service_name": "meshgate-under-test",
    }
    config = gateway_config(echo_set, backends.addresses, tracing)
    with run_gateway(config, tmp_path_factory.mktemp("traced")) as gateway:
        yield gateway


def echo(
    gateway: RunningGateway, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    with gateway.client() as client:
        reply = client.post(
            ECHO, json={"message": "hi", "echoMetadata": True, **body}, headers=headers
        )
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def received_parent(reply: dict[str, Any]) -> TraceParent:
    """The traceparent the backend was sent (exactly one)."""
    value = reply["metadata"].get("traceparent", "")
    assert "," not in value, f"the backend got more than one traceparent: {value}"
    parent = parse_traceparent(value)
    assert parent is not None, f"the backend got no valid traceparent: {value!r}"
    return parent


def spans_of(receiver: OtlpReceiver, trace_id: str, clients: int) -> list[ReceivedSpan]:
    def enough(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return (
            sum(s.kind == SERVER for s in mine) == 1
            and sum(s.kind == CLIENT for s in mine) >= clients
        )

    receiver.wait_for(enough)
    return receiver.trace(trace_id)


def one(spans: list[ReceivedSpan], kind: int) -> ReceivedSpan:
    found = [s for s in spans if s.kind == kind]
    assert len(found) == 1, found
    return found[0]


def test_an_incoming_trace_is_continued(
    traced: RunningGateway, receiver: OtlpReceiver, backends: Backends
) -> None:
    headers = {
        "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01",
        "tracestate": "rojo=00f067aa,congo=t61",
    }
    reply = echo(traced, headers)
    sent = received_parent(reply)
    assert sent.trace_id == TRACE and sent.sampled
    assert sent.span_id != CALLER_SPAN
    # tracestate is the caller's, passed on untouched.
    assert reply["metadata"]["tracestate"] == "rojo=00f067aa,congo=t61"

    spans = spans_of(receiver, TRACE, clients=1)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.parent_span_id == CALLER_SPAN
    assert client.parent_span_id == server.span_id
    assert client.span_id == sent.span_id  # the backend's parent is the exported client span
    assert server.name == "echo"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == ECHO
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["meshgate.route"] == "echo"
    assert server.attributes["meshgate.cluster"] == "echo"
    assert server.attributes["server.port"] == int(traced.url.rsplit(":", 1)[1])
    assert server.attributes["client.address"] == "127.0.0.1"
    assert server.resource["service.name"] == "meshgate-under-test"
    served = backends.address(reply["servedBy"])
    assert f"{client.attributes['server.address']}:{client.attributes['server.port']}" == served
    assert client.name == "meshgate.test.v1.EchoService/Echo"
    assert client.attributes["rpc.system"] == "grpc"
    assert client.attributes["rpc.service"] == "meshgate.test.v1.EchoService"
    assert client.attributes["rpc.method"] == "Echo"
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert client.attributes["meshgate.cluster"] == "echo"
    # The attempt ran inside the request.
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns


def test_a_request_without_traceparent_starts_a_trace(
    traced: RunningGateway, receiver: OtlpReceiver, backends: Backends
) -> None:
    reply = echo(traced, {"tracestate": "orphan=1"})
    sent = received_parent(reply)
    assert sent.sampled  # sampling: 1.0
    assert sent.trace_id != TRACE
    assert "tracestate" not in reply["metadata"]  # no valid traceparent: dropped
    spans = spans_of(receiver, sent.trace_id, clients=1)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.parent_span_id == ""
    assert client.parent_span_id == server.span_id
    assert client.span_id == sent.span_id
    served = backends.address(reply["servedBy"])
    assert f"{client.attributes['server.address']}:{client.attributes['server.port']}" == served


def test_a_retry_is_two_client_spans(
    traced: RunningGateway, receiver: OtlpReceiver, backends: Backends
) -> None:
    backends.controls["a"].write_text("unavailable")
    try:
        # Round robin: of two requests, one starts on "a" and is retried on "b".
        replies = {}
        for _ in range(2):
            reply = echo(traced, {"x-retry": "1"})
            replies[received_parent(reply).trace_id] = reply
    finally:
        backends.controls["a"].write_text("")

    def clients_of(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
        return [s for s in spans if s.trace_id == trace_id and s.kind == CLIENT]

    # A trace's spans may come in more than one batch: wait for the retried one whole.
    found = receiver.wait_for(lambda spans: any(len(clients_of(spans, t)) == 2 for t in replies))
    trace_id = next(t for t in replies if len(clients_of(found, t)) == 2)
    reply, sent = replies[trace_id], received_parent(replies[trace_id])
    spans = spans_of(receiver, trace_id, clients=2)
    clients = clients_of(spans, trace_id)
    first, second = sorted(clients, key=lambda s: s.start_ns)
    assert first.span_id != second.span_id
    server = one(spans, SERVER)
    assert first.parent_span_id == second.parent_span_id == server.span_id
    assert server.name == "echo-retried"

    def endpoint(span: ReceivedSpan) -> str:
        return f"{span.attributes['server.address']}:{span.attributes['server.port']}"

    assert endpoint(first) == backends.address("a")
    assert endpoint(second) == backends.address("b")
    assert first.attributes["rpc.grpc.status_code"] == 14  # UNAVAILABLE
    assert first.status_code == ERROR
    assert second.attributes["rpc.grpc.status_code"] == 0
    # The backend that answered saw the second attempt's span as its parent.
    assert reply["servedBy"] == "b"
    assert sent.span_id == second.span_id
    assert first.end_ns <= second.start_ns


def test_sampling_zero_exports_nothing_but_still_propagates(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    with otlp_receiver() as receiver:
        tracing = {
            "otlp": {"endpoint": receiver.endpoint, "schedule_delay": FAST_EXPORT},
            "sampling": 0.0,
        }
        config = gateway_config(echo_set, backends.addresses, tracing)
        with run_gateway(config, tmp_path) as gateway:
            fresh = received_parent(echo(gateway))
            assert not fresh.sampled
            unsampled = received_parent(
                echo(gateway, {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-00"})
            )
            assert unsampled.trace_id == TRACE and not unsampled.sampled
            assert unsampled.span_id != CALLER_SPAN
            # A caller's sampled flag wins over the ratio: this one is exported,
            # and once it is, anything queued before it would have been too.
            marker = "5" * 32
            echo(gateway, {"traceparent": f"00-{marker}-{CALLER_SPAN}-01"})
            spans = receiver.wait_for(lambda spans: any(s.trace_id == marker for s in spans))
            assert {s.trace_id for s in spans} == {marker}


def test_propagation_only_without_an_exporter(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    config = gateway_config(echo_set, backends.addresses, {"sampling": 1.0})
    with run_gateway(config, tmp_path) as gateway:
        sent = received_parent(echo(gateway, {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}))
        assert sent.trace_id == TRACE and sent.span_id != CALLER_SPAN and sent.sampled
        started = received_parent(echo(gateway))
        assert started.trace_id != TRACE and started.sampled


def test_without_tracing_traceparent_is_an_ordinary_header(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    config = gateway_config(echo_set, backends.addresses, None)
    with run_gateway(config, tmp_path) as gateway:
        value = f"00-{TRACE}-{CALLER_SPAN}-01"
        reply = echo(gateway, {"traceparent": value})
        assert reply["metadata"]["traceparent"] == value
        assert "traceparent" not in echo(gateway)["metadata"]


def test_a_missing_collector_costs_no_request(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    """Spans for a collector that is not there wait in the exporter's queue and are
    dropped; requests are served as usual."""
    tracing = {
        "otlp": {"endpoint": f"127.0.0.1:{free_port()}", "schedule_delay": FAST_EXPORT},
        "sampling": 1.0,
    }
    config = gateway_config(echo_set, backends.addresses, tracing)
    with run_gateway(config, tmp_path) as gateway:
        for _ in range(20):
            received_parent(echo(gateway))
        with httpx.Client(timeout=5.0) as client:
            assert client.get(f"{gateway.admin_url}/ready").status_code == 200


# --- dubbo2: traceparent as an attachment ---------------------------------------------------

USERS = "org.apache.dubbo.meshgate.UserService"


@pytest.mark.parametrize("peer_name", ["go", "java"])
def test_a_dubbo2_call_carries_traceparent_as_an_attachment(
    peer_name: str, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """The real Dubbo peers behind a relay that records the frames meshgate sends."""
    with peer_or_skip(peer_name) as peer:
        assert peer.dubbo_port is not None
        with dubbo2_relay(f"127.0.0.1:{peer.dubbo_port}") as relay:
            config = {
                "listeners": [
                    {
                        "name": "public",
                        "routes": [
                            {
                                "name": "users",
                                "match": {"prefix": "/dubbo/"},
                                "dubbo": {"parameter_types": {"echo": ["java.lang.String"]}},
                                "cluster": "users",
                                "timeout": "30s",
                            }
                        ],
                    }
                ],
                "clusters": [
                    {
                        "name": "users",
                        "protocol": "dubbo",
                        "group": "g1",
                        "version": "1.0.0",
                        "endpoints": [{"address": relay.address}],
                    }
                ],
                "tracing": {
                    "otlp": {"endpoint": receiver.endpoint, "schedule_delay": FAST_EXPORT},
                },
            }
            trace_id = ("d2" if peer_name == "go" else "d3") * 16
            with run_gateway(config, tmp_path) as gateway, gateway.client(timeout=30.0) as client:
                reply = client.post(
                    f"/dubbo/{USERS}/echo",
                    json=["traced"],
                    headers={
                        "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01",
                        "tracestate": "congo=t61",
                    },
                )
            assert reply.status_code == 200, reply.text
            (request,) = relay.invocations("echo")
            attachments = request.invocation.attachments
            sent = parse_traceparent(str(attachments.get("traceparent")))
            assert sent is not None, attachments
            assert sent.trace_id == trace_id and sent.sampled
            assert attachments.get("tracestate") == "congo=t61"
            if peer_name == "go":
                # dubbo-go returns every attachment it read with the result.
                response = relay.response_to(request)
                assert response is not None
                assert response.attachments.get("traceparent") == attachments["traceparent"]

    spans = spans_of(receiver, trace_id, clients=1)
    server, span = one(spans, SERVER), one(spans, CLIENT)
    assert span.span_id == sent.span_id  # the provider's parent is the exported client span
    assert span.parent_span_id == server.span_id
    assert server.parent_span_id == CALLER_SPAN
    assert span.attributes["rpc.system"] == "apache_dubbo"
    assert span.attributes["rpc.service"] == USERS
    assert span.attributes["rpc.method"] == "echo"
    assert span.attributes["server.port"] == int(relay.address.rsplit(":", 1)[1])


def test_a_response_stream_is_traced(
    traced: RunningGateway, receiver: OtlpReceiver, backends: Backends
) -> None:
    headers = {"traceparent": f"00-{'7' * 32}-{CALLER_SPAN}-01"}
    with traced.client() as client:
        reply = client.post(
            "/meshgate.test.v1.EchoService/ServerStream",
            json={"message": "s", "echoMetadata": True, "tags": ["a", "b"]},
            headers=headers,
        )
    assert reply.status_code == 200, reply.text
    messages = reply.json()
    assert len(messages) == 2
    sent = received_parent(messages[0])
    assert sent.trace_id == "7" * 32
    spans = spans_of(receiver, sent.trace_id, clients=1)
    server, span = one(spans, SERVER), one(spans, CLIENT)
    assert span.span_id == sent.span_id and span.parent_span_id == server.span_id
    assert span.attributes["rpc.method"] == "ServerStream"
    assert span.attributes["rpc.grpc.status_code"] == 0


def test_a_reload_turns_tracing_on(echo_set: Path, backends: Backends, tmp_path: Path) -> None:
    config = gateway_config(echo_set, backends.addresses, None)
    config["reload"] = {"debounce": "100ms"}
    with run_gateway(config, tmp_path) as gateway:
        assert "traceparent" not in echo(gateway)["metadata"]
        written = yaml.safe_load(gateway.config_path.read_text())
        written["tracing"] = {"sampling": 0.0}
        gateway.config_path.write_text(yaml.safe_dump(written))
        deadline = time.monotonic() + 30
        while "traceparent" not in (metadata := echo(gateway)["metadata"]):
            assert time.monotonic() < deadline, "the reload did not turn tracing on"
            time.sleep(0.2)
        started = parse_traceparent(metadata["traceparent"])
        assert started is not None and not started.sampled


def test_a_passthrough_call_is_traced(
    echo_set: Path, backends: Backends, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """gRPC-Web onto the gRPC passthrough kind: the attempt sends its own span id."""
    pool = load_pool(echo_set)
    request = message_class(pool, "meshgate.test.v1.EchoRequest")(message="w", echo_metadata=True)
    payload = request.SerializeToString()
    trace = "0af7651916cd43dd8448eb211c80319c"
    config = gateway_config(echo_set, [backends.address("a")], None)
    config["listeners"][0]["routes"] = [
        {"name": "web", "match": {"prefix": "/"}, "grpc": {}, "cluster": "echo"}
    ]
    config["tracing"] = {
        "otlp": {"endpoint": receiver.endpoint, "schedule_delay": FAST_EXPORT},
        "sampling": 1.0,
    }
    with run_gateway(config, tmp_path) as gateway, gateway.client() as client:
        answer = client.post(
            ECHO,
            content=b"\x00" + len(payload).to_bytes(4, "big") + payload,
            headers={
                "content-type": "application/grpc-web+proto",
                "traceparent": f"00-{trace}-{CALLER_SPAN}-01",
            },
        )
    assert answer.status_code == 200
    length = int.from_bytes(answer.content[1:5], "big")
    reply = message_class(pool, "meshgate.test.v1.EchoReply").FromString(
        answer.content[5 : 5 + length]
    )
    sent = parse_traceparent(reply.metadata["traceparent"])
    assert sent is not None and sent.trace_id == trace
    spans = spans_of(receiver, trace, clients=1)
    server, client_span = one(spans, SERVER), one(spans, CLIENT)
    assert server.parent_span_id == CALLER_SPAN
    assert client_span.span_id == sent.span_id and client_span.parent_span_id == server.span_id
    assert server.attributes["meshgate.route"] == "web"
