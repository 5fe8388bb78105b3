from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import (
    ConfigError,
    LoadedConfig,
    load_config_text,
    parse_address,
    parse_duration,
)
from gateway.snapshot import Snapshot, compile_snapshot
from gateway.sources import load_sources
from gateway.transcode.protobuf_kind import ProtobufTranscoding
from gateway.upstream.clusters import StaticClusterRef
from mesh.xds.cluster import HealthCheck

REPO = Path(__file__).resolve().parents[2]

GOOD = """
descriptors:
  - proto: demo/greeter.proto
    include: [demo]
listeners:
  - name: public
    address: 127.0.0.1:8080
    routes:
      - match: {prefix: /}
        transcode: {auto_mapping: true}
        cluster: greeter
        timeout: 250ms
clusters:
  - name: greeter
    endpoints: [{address: "127.0.0.1:50051", weight: 2}]
"""


def compile_loaded(loaded: LoadedConfig) -> Snapshot:
    return compile_snapshot(loaded, load_sources(loaded))


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_loaded(load_config_text(text, base_dir=REPO / "config"))
    return [str(i) for i in caught.value.issues]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("10us", 1e-5),
        (3, 3.0),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "fast", "-1s", "5 parsecs", True])
def test_bad_durations(text: object) -> None:
    if text == "5":
        assert parse_duration(text) == 5.0  # a bare number is seconds
        return
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["localhost", ":80", "host:http", "host:70000", 80])
def test_bad_addresses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_good_config_compiles() -> None:
    snapshot = compile_loaded(load_config_text(GOOD, base_dir=REPO / "config"))
    route = snapshot.listeners[0].routes.entries[0][1]
    assert route.timeout == 0.25
    assert isinstance(route.kind, ProtobufTranscoding)
    assert "/demo.greeter.v1.Greeter/SayHello" in route.kind.transcoding.methods
    assert snapshot.services == ("demo.greeter.v1.Greeter",)


def test_unknown_cluster_is_reported_with_its_place() -> None:
    assert issues_of(GOOD.replace("cluster: greeter", "cluster: shop2")) == [
        "listeners[0].routes[0].cluster (line 11): unknown cluster 'shop2'"
    ]


def test_unknown_keys_and_bad_values_are_all_listed() -> None:
    text = GOOD.replace("timeout: 250ms", "timeout: soon\n        retries: 3")
    assert issues_of(text) == [
        "listeners[0].routes[0].timeout (line 12): invalid duration 'soon': "
        "use a number with a unit, like 5s or 250ms",
        "listeners[0].routes[0].retries (line 13): unknown key",
    ]


def test_unknown_service_in_transcode() -> None:
    text = GOOD.replace("{auto_mapping: true}", "{services: [demo.greeter.v1.Nope]}")
    assert issues_of(text) == [
        "listeners[0].routes[0].transcode.services[0]: "
        "unknown service 'demo.greeter.v1.Nope': not in any descriptor"
    ]


def test_exactly_one_path_rule() -> None:
    text = GOOD.replace("{prefix: /}", "{prefix: /, path: /x}")
    assert issues_of(text) == [
        "listeners[0].routes[0].match (line 9): give exactly one of prefix, path or regex"
    ]


def test_bad_regex_is_a_config_error() -> None:
    text = GOOD.replace("{prefix: /}", "{regex: '/(unclosed'}")
    [issue] = issues_of(text)
    assert issue.startswith("listeners[0].routes[0].match (line 9): invalid regex '/(unclosed'")


def test_missing_proto_file() -> None:
    [issue] = issues_of(GOOD.replace("demo/greeter.proto", "demo/missing.proto"))
    assert issue.startswith("descriptors[0].proto: ")
    assert "missing.proto" in issue


def test_broken_proto_file(tmp_path: Path) -> None:
    (tmp_path / "broken.proto").write_text('syntax = "proto3"; message {')
    text = GOOD.replace("demo/greeter.proto", str(tmp_path / "broken.proto")).replace(
        "include: [demo]", f"include: [{tmp_path}]"
    )
    [issue] = issues_of(text)
    assert "protoc failed" in issue and "broken.proto:1" in issue


def test_duplicate_ports_and_clusters() -> None:
    text = (
        GOOD
        + """
  - name: greeter
    endpoints: [{address: "127.0.0.1:50052"}]
"""
    )
    text = text.replace("listeners:\n", "listeners:\n  - {name: other, address: 127.0.0.1:8080}\n")
    assert issues_of(text) == [
        "clusters (line 14): cluster name 'greeter' is used 2 times",
        "listeners[1].address (line 8): port 8080 is already used by 'other'",
    ]


def test_xds_cluster_needs_mesh_config() -> None:
    text = GOOD.replace("cluster: greeter", "cluster: xds:///shop.default.svc.cluster.local:50051")
    assert issues_of(text) == [
        "listeners[0].routes[0].cluster: an xds:/// cluster needs mesh.xds in the config"
    ]


def test_not_yaml() -> None:
    assert issues_of("listeners: [oops") == [
        "(top level) (line 1): not valid YAML: expected ',' or ']', but got '<stream end>'"
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_validate_command(tmp_path: Path) -> None:
    ok = run_cli("validate", "-c", "config/demo.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 listener(s)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (REPO / "config/demo.yaml").read_text().replace("cluster: greeter", "cluster: shop2")
    )
    result = run_cli("validate", "-c", str(bad))
    assert result.returncode == 1
    assert "listeners[0].routes[0].cluster" in result.stderr
    assert "unknown cluster 'shop2'" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_command_matches_the_committed_schema() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "admin",
        "descriptors",
        "listeners",
        "clusters",
        "mesh",
        "drain_timeout",
        "reload",
        "tracing",
        "logging",
        "access_log",
        "request_id",
    }
    committed = json.loads((REPO / "config" / "schema.json").read_text())
    assert committed == schema, "run `meshgate schema > config/schema.json`"


def test_example_configs_validate() -> None:
    for example in sorted((REPO / "config" / "examples").glob("*.yaml")):
        result = run_cli("validate", "-c", str(example))
        assert result.returncode == 0, f"{example.name}: {result.stderr}"


def test_yaml_12_booleans_keep_the_retry_on_key() -> None:
    retry_yaml = "retry: {attempts: 2, on: [unavailable, internal]}"
    text = GOOD.replace("timeout: 250ms", f"timeout: 250ms\n        {retry_yaml}")
    snapshot = compile_loaded(load_config_text(text, base_dir=REPO / "config"))
    cluster = snapshot.listeners[0].routes.entries[0][1].cluster
    assert isinstance(cluster, StaticClusterRef) and cluster.retry is not None
    assert cluster.retry.retry_on == {14, 13} and cluster.retry.max_attempts == 3
    with pytest.raises(ConfigError, match="flag"):
        load_config_text(
            GOOD.replace("auto_mapping: true", "auto_mapping: yes, flag: 1"),
            base_dir=REPO / "config",
        )


def test_a_grpc_listener_takes_passthrough_routes_only() -> None:
    text = GOOD.replace("address: 127.0.0.1:8080", "address: 127.0.0.1:8080\n    protocol: grpc")
    [issue] = issues_of(text)
    assert "a protocol: grpc listener's routes are gRPC passthrough" in issue
    passthrough = text.replace("transcode: {auto_mapping: true}", "grpc: {}")
    snapshot = compile_loaded(load_config_text(passthrough, base_dir=REPO / "config"))
    assert type(snapshot.listeners[0].routes.entries[0][1].kind).__name__ == "GrpcPassthrough"


RESILIENT = GOOD.replace(
    '    endpoints: [{address: "127.0.0.1:50051", weight: 2}]\n',
    """    endpoints: [{address: "127.0.0.1:50051"}, {address: "127.0.0.1:50052"}]
    health_check: {grpc: {service: demo}, interval: 2s, jitter: 100ms, timeout: 500ms,
                   unhealthy_threshold: 2, healthy_threshold: 1}
    outlier_detection: {consecutive_5xx: 3, interval: 1s, base_ejection_time: 10s,
                        max_ejection_percent: 50, enforcing_failure_percentage: 100}
    retry_budget: {budget_percent: 25, min_retry_concurrency: 4}
    panic_threshold: 30
""",
).replace(
    "        timeout: 250ms\n",
    "        timeout: 250ms\n        retry: {on: [connect-failure, reset, unavailable]}\n",
)


def test_cluster_resilience_policies_compile() -> None:
    snapshot = compile_loaded(load_config_text(RESILIENT, base_dir=REPO / "config"))
    cluster = snapshot.clusters["greeter"].cluster
    assert cluster.health_check is not None
    assert (cluster.health_check.kind, cluster.health_check.grpc_service) == ("grpc", "demo")
    assert (cluster.health_check.interval_s, cluster.health_check.timeout_s) == (2.0, 0.5)
    od = cluster.outlier_detection
    assert od is not None
    assert (od.consecutive_5xx, od.interval_s, od.base_ejection_time_s) == (3, 1.0, 10.0)
    assert (od.max_ejection_percent, od.enforcing_failure_percentage) == (50, 100)
    assert od.enforcing_consecutive_gateway_failure == 0  # Envoy's default
    assert cluster.retry_budget is not None and cluster.retry_budget.budget_percent == 25
    assert cluster.panic_threshold == 30
    route = snapshot.listeners[0].routes.entries[0][1]
    assert isinstance(route.cluster, StaticClusterRef) and route.cluster.retry is not None
    assert route.cluster.retry.retry_on_causes == {"connect_failure", "reset"}


def test_an_unchanged_cluster_keeps_its_health_across_a_reload() -> None:
    loaded = load_config_text(RESILIENT, base_dir=REPO / "config")
    first = compile_loaded(loaded)
    again = compile_snapshot(loaded, load_sources(loaded), previous=first)
    assert again.clusters["greeter"] is first.clusters["greeter"]
    changed = load_config_text(
        RESILIENT.replace("panic_threshold: 30", "panic_threshold: 40"), base_dir=REPO / "config"
    )
    other = compile_snapshot(changed, load_sources(changed), previous=first)
    assert other.clusters["greeter"] is not first.clusters["greeter"]


def test_health_check_needs_exactly_one_kind() -> None:
    text = RESILIENT.replace(
        "health_check: {grpc: {service: demo},", "health_check: {tcp: {}, http: {},"
    )
    assert any("exactly one of grpc, http or tcp" in issue for issue in issues_of(text))


def test_http_health_check_expected_statuses() -> None:
    def http_check(spec: str) -> HealthCheck:
        text = RESILIENT.replace("health_check: {grpc: {service: demo},", f"health_check: {spec},")
        snapshot = compile_loaded(load_config_text(text, base_dir=REPO / "config"))
        check = snapshot.clusters["greeter"].cluster.health_check
        assert check is not None
        return check

    envoy_default = http_check("{http: {path: /healthz}")
    assert [envoy_default.http_passes(s) for s in (200, 204)] == [True, False]
    any_2xx = http_check("{http: {expected_statuses: [{start: 200, end: 300}]}")
    assert [any_2xx.http_passes(s) for s in (200, 204, 300)] == [True, True, False]
    backwards = RESILIENT.replace(
        "health_check: {grpc: {service: demo},",
        "health_check: {http: {expected_statuses: [{start: 300, end: 200}]},",
    )
    assert any("end must be greater than start" in issue for issue in issues_of(backwards))
