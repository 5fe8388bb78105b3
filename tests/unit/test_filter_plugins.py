"""Third-party filters through the meshgate.filters entry-point group, with
the example package of tests/data/example_filter installed by the test setup."""

from __future__ import annotations

import pytest

from filters import FilterConfigError, available_filters, build_filter
from gateway.upstream.call import Call, Reply
from tests.support.example_filter import ensure_example_filter
from tests.support.in_process import InProcessGateway
from tests.support.toolchain import missing
from tests.unit.test_request_path import BOOKSTORE, TRANSCODE, config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", autouse=True)
def example_filter() -> None:
    reason = ensure_example_filter()
    if reason is not None:
        missing(reason)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_plugin_is_listed_beside_the_built_ins() -> None:
    names = available_filters()
    assert "stamp" in names and "jwt_auth" in names


def test_a_plugin_config_is_validated_like_a_built_in() -> None:
    with pytest.raises(FilterConfigError, match=r"'stamp'.*nope"):
        build_filter("stamp", {"nope": 1})


async def test_a_plugin_filter_runs_on_a_listener_and_per_route() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(b"")

    routes = TRANSCODE.replace(
        "max_request_bytes: 64",
        "max_request_bytes: 64\n        filters: [{name: stamp, config: {value: route}}]",
    )
    gateway = InProcessGateway(
        config(routes, filters="[{name: stamp, config: {header: x-stamp}}]"), handler
    )
    async with gateway.client() as client:
        response = await client.post(f"/{BOOKSTORE}/GetShelf", json={"shelf": "1"})
    assert response.status_code == 200
    assert response.headers["x-stamp"] == "route"
    (seen,) = gateway.calls
    assert ("x-stamp", "route") in seen.call.metadata


def test_a_plugin_cannot_take_a_built_in_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from importlib.metadata import EntryPoint

    import filters

    impostor = EntryPoint(name="jwt_auth", value="meshgate_example_filter", group="x")
    real = filters.entry_points  # type: ignore[attr-defined]

    def with_impostor(group: str) -> list[EntryPoint]:
        return [*real(group=group), impostor]

    monkeypatch.setattr(filters, "entry_points", with_impostor)
    filters.plugin_filters.cache_clear()
    try:
        assert "jwt_auth" not in filters.plugin_filters()
        assert "stamp" in filters.plugin_filters()
        assert filters.filter_factory("jwt_auth").__name__ == "filters.jwt_auth"  # type: ignore[attr-defined]
        assert "ignored: the name is a built-in filter" in caplog.text
    finally:
        filters.plugin_filters.cache_clear()
