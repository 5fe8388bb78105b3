from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.protos import echo_descriptor_set


@pytest.fixture(scope="session")
def echo_set() -> Path:
    """The echo service's FileDescriptorSet, compiled by protoc."""
    return echo_descriptor_set()


@pytest.fixture(scope="session")
def backend_port() -> Iterator[int]:
    """One echo backend shared by the whole session (it keeps no state)."""
    port = free_port()
    with echo_backend(port, name="primary"):
        yield port
