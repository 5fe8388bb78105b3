"""W3C Trace Context parsing and the tracer's per-request decisions, sans-IO."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from pydantic import ValidationError

from gateway.config.model import GatewayConfig, TracingConfig
from gateway.exchange import Exchange
from gateway.tracing.context import (
    MAX_TRACESTATE_MEMBERS,
    TraceParent,
    format_traceparent,
    incoming,
    parse_traceparent,
    parse_tracestate,
    ratio_bound,
    sampled_by_ratio,
)
from gateway.tracing.tracer import Tracer
from gateway.upstream.call import Call, DubboOptions

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_a_version_00_traceparent_is_read() -> None:
    assert parse_traceparent(VALID) == TraceParent(TRACE, SPAN, 1)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == TraceParent(TRACE, SPAN, 0)
    assert not TraceParent(TRACE, SPAN, 0x02).sampled


@pytest.mark.parametrize(
    "value",
    [
        "",
        VALID[:-1],  # too short
        VALID + "0",  # version 00 is exactly 55 characters
        VALID + "-extra",  # not even with a dash: that is for future versions
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE[:-1]}g-{SPAN}-01",  # not hex
        f"00-{TRACE}-{SPAN[:-1]}x-01",
        f"00-{TRACE}-{SPAN}-0g",
        f"00_{TRACE}-{SPAN}-01",  # wrong separators
        f"00-{TRACE}_{SPAN}-01",
        f"00-{TRACE}-{SPAN}_01",
        f"00-{TRACE}0-{SPAN[1:]}-01",  # the right length, fields misplaced
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"0g-{TRACE}-{SPAN}-01",  # version not hex
        f"00-{TRACE}-{SPAN}-01".replace("-", " ", 1),
    ],
)
def test_an_invalid_traceparent_is_refused(value: str) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_is_read_as_far_as_version_00_goes() -> None:
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01") == TraceParent(TRACE, SPAN, 1)
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01-what-comes-next") == TraceParent(TRACE, SPAN, 1)
    # ...but what follows the flags must start with a dash, and the ids stay checked.
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01x") is None
    assert parse_traceparent(f"cc-{'0' * 32}-{SPAN}-01") is None
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}") is None


def test_what_is_sent_is_version_00() -> None:
    assert format_traceparent(TRACE, SPAN, 1) == VALID
    assert format_traceparent(TRACE, SPAN, 0) == f"00-{TRACE}-{SPAN}-00"


def test_tracestate_is_carried_unchanged_and_bounded() -> None:
    assert parse_tracestate(["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]) == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    # Several headers are one list; empty members go.
    assert parse_tracestate(["a=1,,b=2", "t@sys=x"]) == "a=1,b=2,t@sys=x"
    assert parse_tracestate([]) == ""
    # An invalid member, or more than 32, makes the whole header invalid.
    assert parse_tracestate(["a=1,B=2"]) == ""
    assert parse_tracestate(["a=1,b"]) == ""
    assert parse_tracestate(["a=1,b=x,y"]) == ""
    assert parse_tracestate(["a="]) == ""  # a value has at least one character
    assert parse_tracestate(["a=in side"]) == "a=in side"
    too_many = ",".join(f"k{i}=v" for i in range(MAX_TRACESTATE_MEMBERS + 1))
    assert parse_tracestate([too_many]) == ""
    exactly = ",".join(f"k{i}=v" for i in range(MAX_TRACESTATE_MEMBERS))
    assert parse_tracestate([exactly]) == exactly


def test_a_long_tracestate_loses_its_long_members_first_then_from_the_right() -> None:
    long_member = "long=" + "x" * 200
    short = [f"k{i}=" + "v" * 20 for i in range(20)]  # 20 x 23 characters + commas
    value = ",".join([short[0], long_member, *short[1:]])
    kept = parse_tracestate([value])
    assert len(kept) <= 512
    assert "long=" not in kept
    assert kept.split(",") == short[: len(kept.split(","))]
    assert kept.startswith(short[0])


def test_the_incoming_context_needs_exactly_one_valid_traceparent() -> None:
    found = incoming([("traceparent", VALID), ("tracestate", "a=1")])
    assert found.parent == TraceParent(TRACE, SPAN, 1)
    assert found.tracestate == "a=1"
    # Without a valid traceparent, tracestate is not looked at.
    assert incoming([("traceparent", "junk"), ("tracestate", "a=1")]).tracestate == ""
    assert incoming([("traceparent", VALID), ("traceparent", VALID)]).parent is None
    assert incoming([("tracestate", "a=1")]).parent is None


def test_ratio_sampling_follows_the_trace_id_low_half() -> None:
    assert sampled_by_ratio("f" * 32, ratio_bound(1.0))
    assert not sampled_by_ratio("0" * 31 + "1", ratio_bound(0.0))
    half = ratio_bound(0.5)
    assert sampled_by_ratio("f" * 16 + "7" + "f" * 15, half)
    assert not sampled_by_ratio("0" * 16 + "8" + "0" * 15, half)


def _call() -> Call:
    return Call(
        "pkg.Svc",
        "Do",
        [b""],
        (("traceparent", "from-client"), ("x-a", "1"), ("tracestate", "z=9")),
    )


def test_a_continued_trace_gives_each_attempt_its_own_span() -> None:
    tracer = Tracer(sampling=0.0)  # the caller's sampled flag wins over the ratio
    exchange = Exchange("public", "POST", "/pkg.Svc/Do")
    trace = tracer.begin(exchange, [("traceparent", VALID), ("tracestate", "a=1")])
    assert exchange.trace is trace and exchange.trace_id == TRACE
    first = trace.attempt_call(_call(), exchange.begin_attempt("10.0.0.1:1"))
    second = trace.attempt_call(_call(), exchange.begin_attempt("10.0.0.2:1"))
    sent = []
    for call in (first, second):
        metadata = dict(call.metadata)
        assert [k for k, _ in call.metadata].count("traceparent") == 1
        assert metadata["x-a"] == "1"
        assert metadata["tracestate"] == "a=1"
        parent = parse_traceparent(str(metadata["traceparent"]))
        assert parent is not None and parent.trace_id == TRACE and parent.sampled
        sent.append(parent.span_id)
    assert sent == [s.span_id for s in trace.client_spans]
    assert len(set(sent)) == 2 and SPAN not in sent and trace.span_id not in sent


def test_a_new_trace_is_sampled_by_the_ratio_and_drops_a_stray_tracestate() -> None:
    for ratio, sampled in ((1.0, True), (0.0, False)):
        exchange = Exchange("public", "POST", "/")
        trace = Tracer(sampling=ratio).begin(exchange, [("traceparent", "00-bad")])
        assert trace.parent is None and trace.sampled is sampled
        call = trace.attempt_call(_call(), exchange.begin_attempt("10.0.0.1:1"))
        metadata = dict(call.metadata)
        assert "tracestate" not in metadata
        parent = parse_traceparent(str(metadata["traceparent"]))
        assert parent is not None and parent.trace_id == exchange.trace_id
        assert parent.sampled is sampled


def _tracing_config(tracing: dict[str, object]) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {"listeners": [{"name": "l", "address": "127.0.0.1:1", "routes": []}], "tracing": tracing}
    )


def test_tracing_yaml_defaults_and_bounds() -> None:
    config = _tracing_config({"otlp": {"endpoint": "127.0.0.1:4317"}})
    assert config.tracing is not None and config.tracing.otlp is not None
    assert config.tracing.sampling == 1.0 and config.tracing.service_name == "meshgate"
    assert config.tracing.otlp.schedule_delay == 5.0
    assert _tracing_config({}).tracing == TracingConfig()  # propagation only
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        _tracing_config({"sampling": 1.5})


def test_otlp_without_the_otel_extra_is_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the extra were not installed: the import of the SDK fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(
        ValidationError, match=r"needs the otel extra \(pip install 'meshgate\[otel\]'\)"
    ):
        _tracing_config({"otlp": {"endpoint": "127.0.0.1:4317"}})
    # Propagation alone needs nothing more.
    assert _tracing_config({"sampling": 0.5}).tracing is not None


def test_an_attempt_call_keeps_every_other_field_of_the_call() -> None:
    # attempt_call copies the Call field by field (for speed): a new field must be added there.
    names = [f.name for f in dataclasses.fields(Call)]
    assert names == [
        "service",
        "method",
        "messages",
        "metadata",
        "client_streaming",
        "server_streaming",
        "dubbo",
        "max_reply_bytes",
    ], "Call changed: update RequestTrace.attempt_call"
    call = Call(
        "pkg.Svc",
        "Do",
        [b"a", b"b"],
        (("x-a", "1"),),
        client_streaming=True,
        server_streaming=True,
        dubbo=DubboOptions("g", "1.0", "app", ["int"]),
        max_reply_bytes=123,
    )
    exchange = Exchange("public", "POST", "/")
    sent = Tracer(1.0).begin(exchange, []).attempt_call(call, exchange.begin_attempt("h:1"))
    assert sent == dataclasses.replace(call, metadata=sent.metadata)
    assert sent.metadata[0] == ("x-a", "1") and sent.metadata[1][0] == "traceparent"
