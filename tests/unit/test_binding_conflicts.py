"""Two RPCs bound to one HTTP method and path template are a config error.

"The same binding" is the path matcher's own notion (``binding_key``): the same
HTTP method, and templates equal once variables are reduced to their patterns
(``/v1/items/{id}`` == ``/v1/items/{name}`` == ``/v1/items/*``), with the same
custom verb. Left alone such a pair makes the route ambiguous, and requests for
it 404, so the route table reports it naming both RPCs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from google.protobuf.descriptor_pool import DescriptorPool

from gateway.cli import main
from gateway.config import TranscodeConfig
from gateway.transcode.compile import Transcoding, compile_transcoding
from gateway.transcode.path_matcher import (
    DuplicateRouteError,
    MatcherOptions,
    PathMatcherBuilder,
    binding_key,
)
from tests.support.protos import compile_descriptor_set, load_pool

if TYPE_CHECKING:
    from gateway.config import ConfigIssue

# --- the path matcher: what counts as the same binding -----------------------------

SAME = [
    ("/v1/items/{id}", "/v1/items/{name}"),
    ("/v1/items/{id}", "/v1/items/*"),
    ("/v1/items/{id}", "/v1/items/{id=*}"),
    ("/v1/items/{id}:cancel", "/v1/items/{name}:cancel"),
    ("/v1/{a}/{b}", "/v1/{b}/{a}"),
    ("/v1/{name=shelves/*}/books", "/v1/shelves/{shelf}/books"),
    ("/v1/{path=**}", "/v1/**"),
    ("/v1/files/{path=**}:get", "/v1/files/{name=**}:get"),
    ("/v1/items", "/v1/items"),
    ("/", "/"),
]

DIFFERENT = [
    ("/v1/items/{id}", "/v1/items/{id}:cancel"),
    ("/v1/items/{id}:cancel", "/v1/items/{id}:restore"),
    ("/v1/items/{id}", "/v1/items/{id}/parts"),
    ("/v1/items/{id}", "/v1/items/{id=**}"),
    ("/v1/items/{id}", "/v1/items/latest"),
    ("/v1/items", "/v1/items/**"),
    ("/v1/items/{id}", "/v2/items/{id}"),
    ("/v1/{name=shelves/*}", "/v1/{name=books/*}"),
]


@pytest.mark.parametrize(("first", "second"), SAME)
def test_equal_after_dropping_variable_names_is_a_duplicate(first: str, second: str) -> None:
    assert binding_key("GET", first) == binding_key("GET", second)
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(
        MatcherOptions(fail_registration_on_duplicate=True)
    )
    builder.register("GET", first, "first")
    with pytest.raises(DuplicateRouteError) as caught:
        builder.register("GET", second, "second")
    assert caught.value.http_method == "GET"
    assert caught.value.template == second
    assert caught.value.existing_template == first
    assert builder.duplicates == [("GET", second)]


@pytest.mark.parametrize(("first", "second"), DIFFERENT)
def test_different_templates_coexist(first: str, second: str) -> None:
    assert binding_key("GET", first) != binding_key("GET", second)
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(
        MatcherOptions(fail_registration_on_duplicate=True)
    )
    builder.register("GET", first, "first")
    builder.register("GET", second, "second")
    assert builder.duplicates == []


def test_same_template_under_other_http_methods_is_not_a_duplicate() -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(
        MatcherOptions(fail_registration_on_duplicate=True)
    )
    for method in ("GET", "DELETE", "PATCH", "*"):
        builder.register(method, "/v1/items/{id}", method)
    assert builder.duplicates == []
    assert binding_key("GET", "/v1/items/{id}") != binding_key("*", "/v1/items/{id}")


@pytest.mark.parametrize("fail", [False, True])
def test_a_duplicate_never_replaces_the_first_and_leaves_the_route_unmatchable(fail: bool) -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(
        MatcherOptions(fail_registration_on_duplicate=fail)
    )
    builder.register("GET", "/v1/items/{id}", "first")
    for template in ("/v1/items/{name}", "/v1/items/{other}"):
        if fail:
            # Every later one is reported against the first, not the previous one.
            with pytest.raises(
                DuplicateRouteError, match=r"already registered as /v1/items/\{id\}$"
            ):
                builder.register("GET", template, template)
        else:
            builder.register("GET", template, template)
    assert builder.duplicates == [("GET", "/v1/items/{name}"), ("GET", "/v1/items/{other}")]
    assert builder.build().lookup("GET", "/v1/items/1") is None


def test_binding_key_reads_like_the_normalised_template() -> None:
    assert str(binding_key("GET", "/v1/{name=shelves/*}/books/{id}:undelete")) == (
        "GET /v1/shelves/*/books/*:undelete"
    )
    assert binding_key("POST", "/").pattern == "/"


# --- the route table: conflicts are issues naming both RPCs -------------------------

HEADER = """
syntax = "proto3";
package shop;
import "google/api/annotations.proto";
message Item { string id = 1; string name = 2; string shelf = 3; string sku = 4; }
"""

WHERE = ("listeners", 0, "routes", 0)


def _rpc(name: str, rule: str) -> str:
    return f"  rpc {name}(Item) returns (Item) {{ option (google.api.http) = {{ {rule} }}; }}\n"


def _proto(services: dict[str, list[str]]) -> str:
    text = HEADER
    for service, rpcs in services.items():
        text += f"service {service} {{\n{''.join(rpcs)}}}\n"
    return text


def _pool(tmp_path: Path, text: str) -> DescriptorPool:
    (tmp_path / "shop.proto").write_text(text)
    return load_pool(compile_descriptor_set("shop.proto", tmp_path / "shop.pb", root=tmp_path))


def _compile(
    tmp_path: Path, services: dict[str, list[str]], listed: list[str]
) -> tuple[Transcoding, list[str], list[tuple[str | int, ...]]]:
    pool = _pool(tmp_path, _proto(services))
    known = {f"shop.{name}": pool.FindServiceByName(f"shop.{name}") for name in services}
    issues: list[ConfigIssue] = []
    transcoding = compile_transcoding(TranscodeConfig(services=listed), pool, known, WHERE, issues)
    return transcoding, [issue.message for issue in issues], [issue.path for issue in issues]


def _target(transcoding: Transcoding, method: str, path: str) -> str | None:
    assert transcoding.rest is not None
    found = transcoding.rest.lookup(method, path)
    return None if found is None else found.payload.method.path


def test_two_rpcs_of_one_service_on_one_template(tmp_path: Path) -> None:
    _, messages, places = _compile(
        tmp_path,
        {
            "Shop": [
                _rpc("GetItem", 'get: "/v1/items/{id}"'),
                _rpc("FetchItem", 'get: "/v1/items/{name}"'),
            ]
        },
        ["shop.Shop"],
    )
    assert places == [(*WHERE, "transcode", "services", 0)]
    [message] = messages
    assert message.startswith("shop.Shop.FetchItem: GET /v1/items/{name} ")
    assert "shop.Shop.GetItem" in message
    assert "GET /v1/items/{id}" in message


def test_rpcs_of_two_listed_services_and_additional_bindings(tmp_path: Path) -> None:
    _, messages, places = _compile(
        tmp_path,
        {
            "Shop": [
                _rpc(
                    "ListItems",
                    'get: "/v1/items" additional_bindings { get: "/v1/shelves/{shelf}/items" }',
                )
            ],
            "Legacy": [_rpc("Shelf", 'get: "/v1/shelves/{name}/items"')],
        },
        ["shop.Shop", "shop.Legacy"],
    )
    assert places == [(*WHERE, "transcode", "services", 1)]
    [message] = messages
    assert "shop.Legacy.Shelf" in message
    assert "shop.Shop.ListItems" in message
    assert "GET /v1/shelves/{name}/items" in message
    assert "GET /v1/shelves/{shelf}/items" in message


def test_one_rpc_binding_a_template_twice(tmp_path: Path) -> None:
    _, messages, _ = _compile(
        tmp_path,
        {
            "Shop": [
                _rpc(
                    "GetItem",
                    'get: "/v1/items/{id}" additional_bindings { get: "/v1/items/{name}" }',
                ),
            ]
        },
        ["shop.Shop"],
    )
    [message] = messages
    assert message.startswith(
        "shop.Shop.GetItem: GET /v1/items/{name} is already bound by "
        "the same RPC (as GET /v1/items/{id})"
    )


def test_verbs_methods_and_deeper_paths_are_distinct_bindings(tmp_path: Path) -> None:
    transcoding, messages, _ = _compile(
        tmp_path,
        {
            "Shop": [
                _rpc("GetItem", 'get: "/v1/items/{id}"'),
                _rpc("CancelItem", 'post: "/v1/items/{id}:cancel" body: "*"'),
                _rpc("CancelAlias", 'get: "/v1/items/{name}:cancel"'),
                _rpc("DeleteItem", 'delete: "/v1/items/{id}"'),
                _rpc("GetLatest", 'get: "/v1/items/latest"'),
                _rpc("AnyItem", 'custom: { kind: "*" path: "/v1/items/{id}" }'),
            ]
        },
        ["shop.Shop"],
    )
    assert messages == []
    assert _target(transcoding, "GET", "/v1/items/7") == "/shop.Shop/GetItem"
    assert _target(transcoding, "POST", "/v1/items/7:cancel") == "/shop.Shop/CancelItem"
    assert _target(transcoding, "GET", "/v1/items/7:cancel") == "/shop.Shop/CancelAlias"
    assert _target(transcoding, "DELETE", "/v1/items/7") == "/shop.Shop/DeleteItem"
    assert _target(transcoding, "GET", "/v1/items/latest") == "/shop.Shop/GetLatest"
    assert _target(transcoding, "PUT", "/v1/items/7") == "/shop.Shop/AnyItem"


def test_a_service_listed_twice_does_not_clash_with_itself(tmp_path: Path) -> None:
    transcoding, messages, _ = _compile(
        tmp_path,
        {
            "Shop": [
                _rpc("GetItem", 'get: "/v1/items/{id}"'),
            ]
        },
        ["shop.Shop", "shop.Shop"],
    )
    assert messages == []
    assert _target(transcoding, "GET", "/v1/items/7") == "/shop.Shop/GetItem"


def test_the_same_template_on_two_routes_is_fine(tmp_path: Path) -> None:
    pool = _pool(
        tmp_path,
        _proto(
            {
                "Shop": [_rpc("GetItem", 'get: "/v1/items/{id}"')],
                "Legacy": [_rpc("Find", 'get: "/v1/items/{name}"')],
            }
        ),
    )
    known = {name: pool.FindServiceByName(name) for name in ("shop.Shop", "shop.Legacy")}
    issues: list[ConfigIssue] = []
    for j, name in enumerate(known):
        compile_transcoding(
            TranscodeConfig(services=[name]), pool, known, ("listeners", 0, "routes", j), issues
        )
    assert issues == []


# --- meshgate validate ---------------------------------------------------------------

CONFIG = """
descriptors:
  - proto: shop.proto
listeners:
  - name: public
    address: 127.0.0.1:8080
    routes:
      - match: {prefix: /}
        transcode: {services: [shop.Shop]}
        cluster: shop
clusters:
  - name: shop
    endpoints: [{address: "127.0.0.1:50051"}]
"""


def _validate(
    tmp_path: Path, rpcs: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    (tmp_path / "shop.proto").write_text(_proto({"Shop": rpcs}))
    config = tmp_path / "meshgate.yaml"
    config.write_text(CONFIG)
    code = main(["validate", "-c", str(config)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_validate_reports_the_conflict_with_both_rpcs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _validate(
        tmp_path,
        [
            _rpc("GetItem", 'get: "/v1/items/{id}"'),
            _rpc("FetchItem", 'get: "/v1/items/{name}"'),
        ],
        capsys,
    )
    assert code != 0
    assert "1 error(s)" in output
    assert "listeners[0].routes[0].transcode.services[0]" in output
    assert "shop.Shop.GetItem" in output
    assert "shop.Shop.FetchItem" in output
    assert "GET /v1/items/{name}" in output
    assert "Traceback" not in output


def test_validate_accepts_distinct_bindings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _validate(
        tmp_path,
        [
            _rpc("GetItem", 'get: "/v1/items/{id}"'),
            _rpc("CancelItem", 'get: "/v1/items/{name}:cancel"'),
        ],
        capsys,
    )
    assert code == 0, output
    assert "ok (1 listener(s)" in output
