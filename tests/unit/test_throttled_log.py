"""Unexpected-error tracebacks: once per kind per interval; messages bounded."""

from __future__ import annotations

import logging

import pytest

from gateway.errors import MAX_MESSAGE_CHARS, GatewayError
from gateway.throttled_log import ThrottledLog


def fail(kind: type[Exception]) -> Exception:
    try:
        raise kind("boom")
    except Exception as exc:
        return exc


def test_a_kind_is_logged_once_per_interval_and_repeats_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("t"), interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR):
        assert throttled.report(fail(ValueError), "serving A")
        assert not throttled.report(fail(ValueError), "serving A")
        assert not throttled.report(fail(ValueError), "serving B")
        assert throttled.report(fail(KeyError), "serving A")  # another kind
        now[0] = 61.0
        assert throttled.report(fail(ValueError), "serving A")
    records = [r for r in caplog.records if r.name == "t"]
    assert len(records) == 3
    assert all(r.exc_info for r in records)
    assert "2 more like it" in records[-1].getMessage()


def test_error_messages_are_bounded() -> None:
    error = GatewayError("x" * 100_000)
    assert len(error.message) <= MAX_MESSAGE_CHARS
    assert error.message.endswith("(100000 chars)")
    assert len(error.body()) < MAX_MESSAGE_CHARS + 100
