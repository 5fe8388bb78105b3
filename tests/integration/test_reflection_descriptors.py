"""Descriptors from server reflection: no protos shipped to the gateway."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"


def reflection_config(port: int) -> dict[str, object]:
    return {
        "descriptors": [{"reflection": {"cluster": "echo"}}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                    }
                ],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{port}"}]}],
    }


def test_services_come_from_the_backend(backend_port: int, tmp_path: Path) -> None:
    with run_gateway(reflection_config(backend_port), tmp_path) as gw, gw.client() as client:
        response = client.post(ECHO, json={"message": "by reflection", "big": "7"})
        assert response.status_code == 200, response.text
        assert response.json()["request"] == {"message": "by reflection", "big": "7"}
        assert client.post("/meshgate.test.v1.EchoService/Nope", json={}).status_code == 404


def test_a_backend_started_later_is_learned_on_demand(tmp_path: Path) -> None:
    port = free_port()
    with run_gateway(reflection_config(port), tmp_path) as gw, gw.client() as client:
        # Nothing answers reflection at load: the service is unknown, not an error.
        assert client.post(ECHO, json={}).status_code == 404
        with echo_backend(port, name="late"):
            # The next unknown-service request fetches again (at most every 5 s).
            deadline = time.monotonic() + 15
            while True:
                response = client.post(ECHO, json={"message": "hi"})
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert response.status_code == 200, response.text
            assert response.json()["servedBy"] == "late"
