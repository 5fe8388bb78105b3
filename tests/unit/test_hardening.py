"""What the gateway keeps to itself: backend addresses out of error bodies,
hop-by-hop and internal headers out of gRPC metadata, the admin endpoint on
loopback, secrets out of /config_dump."""

from __future__ import annotations

import json
import logging

import grpc
import grpc.aio
import pytest
from pydantic import ValidationError

from gateway.config import AdminConfig
from gateway.errors import UpstreamUnavailable, error_response
from gateway.redact import REDACTED, redact
from gateway.upstream.call import Call, Reply
from gateway.upstream.grpc import upstream_error
from gateway.upstream.metadata import request_metadata
from tests.support.in_process import InProcessGateway
from tests.unit.test_request_path import BOOKSTORE, TRANSCODE, config

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_unavailable_body_hides_the_address_and_the_log_keeps_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = UpstreamUnavailable("ipv4:10.0.3.7:50062: Failed to connect to remote host")
    with caplog.at_level(logging.WARNING, logger="meshgate.gateway.errors"):
        response = error_response(error)
    assert response.status == 503
    assert response.body == b'{"code":14,"message":"upstream unavailable","details":[]}'
    assert "10.0.3.7:50062" in caplog.text


async def test_unavailable_through_the_router_hides_the_address() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise UpstreamUnavailable(f"ipv4:{address}: Failed to connect")

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        response = await client.post(f"/{BOOKSTORE}/GetShelf", json={"shelf": "1"})
    assert response.status_code == 503
    assert "127.0.0.1" not in response.text and "700" not in response.text


def test_hop_by_hop_headers_and_those_connection_names_are_not_metadata() -> None:
    metadata = request_metadata(
        [
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]
    )
    assert metadata == (("x-kept", "yes"),)


async def test_internal_headers_are_removed_on_arrival() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(b"")

    extra = "    internal_headers: [x-internal-*, x-user-id]\n"
    yaml_text = config(TRANSCODE).replace("    filters: []\n", "    filters: []\n" + extra)
    gateway = InProcessGateway(yaml_text, handler)
    async with gateway.client() as client:
        await client.post(
            f"/{BOOKSTORE}/GetShelf",
            json={"shelf": "1"},
            headers={"x-internal-role": "admin", "x-user-id": "0", "x-other": "kept"},
        )
    names = {name for name, _ in gateway.calls[0].call.metadata}
    assert "x-other" in names
    assert not names & {"x-internal-role", "x-user-id"}


@pytest.mark.parametrize("address", ["127.0.0.1:9901", "[::1]:9901", "localhost:9901"])
def test_admin_on_loopback_is_fine(address: str) -> None:
    assert AdminConfig(address=address).address == address


def test_admin_elsewhere_needs_allow_remote() -> None:
    with pytest.raises(ValidationError, match="allow_remote"):
        AdminConfig(address="0.0.0.0:9901")
    assert AdminConfig(address="0.0.0.0:9901", allow_remote=True).allow_remote


def test_redact_hides_credentials_and_keeps_references() -> None:
    dumped = {
        "filters": [
            {"name": "api_key", "config": {"keys_file": "/etc/keys", "keys_env": "KEYS"}},
            {"name": "headers", "config": {"request": {"set": {"authorization": "Bearer t0k"}}}},
            {"name": "custom", "config": {"client_secret": "s3cr3t", "hmac_token": "x"}},
            {"name": "rate_limit", "config": {"key": "header:x-api-key"}},
            {"name": "jwt_auth", "config": {"url": "https://user:pw@id.test/jwks"}},
        ]
    }
    out = redact(dumped)["filters"]
    assert out[0]["config"] == {"keys_file": "/etc/keys", "keys_env": "KEYS"}
    assert out[1]["config"]["request"]["set"]["authorization"] == REDACTED
    assert out[2]["config"] == {"client_secret": REDACTED, "hmac_token": REDACTED}
    assert out[3]["config"] == {"key": "header:x-api-key"}
    assert out[4]["config"]["url"] == f"https://user:{REDACTED}@id.test/jwks"


class _FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, None, None, details)


@pytest.mark.parametrize(
    ("details", "shown"),
    [
        (
            "failed to connect to all addresses; last error: UNKNOWN: "
            "ipv4:10.0.3.7:50062: Failed to connect to remote host: Connection refused",
            "upstream unavailable",
        ),
        ("Socket closed", "upstream unavailable"),
        ("maintenance until 10:00", "maintenance until 10:00"),
    ],
)
def test_grpc_transport_failures_are_hidden_backend_statuses_are_not(
    details: str, shown: str
) -> None:
    error = upstream_error(_FakeRpcError(details))
    assert json.loads(error_response(error).body)["message"] == shown
