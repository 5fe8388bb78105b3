"""``meshgate routes METHOD PATH`` over grpc-httpjson-transcoding's path-matcher cases.

Each case of tests/data/http_template_cases.json becomes a config: one service
whose methods carry the case's rules as google.api.http bindings, over a
FileDescriptorSet built here (a request message per rule with the fields its
template binds). The routes command must then name the rule the reference
matcher matched, with the same variable bindings. It runs in process (the
command's own function, output captured), plus one real ``meshgate routes``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from gateway.cli_routes import run_routes
from gateway.transcode.path_template import parse_template

REPO = Path(__file__).resolve().parents[2]
CASES = json.loads((REPO / "tests" / "data" / "http_template_cases.json").read_text())
SERVICE = "conformance.v1.Paths"
F = descriptor_pb2.FieldDescriptorProto


def runnable(case: dict[str, Any]) -> bool:
    """Cases the gateway can express as a config: a built path, no registrations
    expected to fail, no system query parameters (not configurable per rule)."""
    return (
        case["request"].get("path") is not None
        and not case.get("registration_failures")
        and not any(rule.get("system_query_params") for rule in case["rules"])
    )


PATH_CASES = [c for c in CASES["path_match_cases"] if runnable(c)]


def descriptor_set(case: dict[str, Any]) -> descriptor_pb2.FileDescriptorSet:
    file = descriptor_pb2.FileDescriptorProto(
        name="conformance.proto",
        package="conformance.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    service = file.service.add(name="Paths")
    reply = file.message_type.add(name="Reply")
    reply.field.add(name="ok", number=1, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    for i, rule in enumerate(case["rules"]):
        request = file.message_type.add(name=f"Request{i}")
        paths = [list(v.field_path) for v in parse_template(rule["template"]).variables]
        if rule["body_field_path"] not in ("", "*"):
            paths.append(rule["body_field_path"].split("."))
        for path in paths:
            _add_field_path(file, request, f"Request{i}", path)
        method = service.method.add(
            name=f"Rule{i}",
            input_type=f".conformance.v1.Request{i}",
            output_type=".conformance.v1.Reply",
        )
        http = http_pb2.HttpRule(body=rule["body_field_path"])
        setattr(http, rule["http_method"].lower(), rule["template"])
        method.options.Extensions[annotations_pb2.http].CopyFrom(http)
    dependency = descriptor_pb2.FileDescriptorProto()
    annotations_pb2.DESCRIPTOR.CopyToProto(dependency)
    http_file = descriptor_pb2.FileDescriptorProto()
    http_pb2.DESCRIPTOR.CopyToProto(http_file)
    descriptor_file = descriptor_pb2.FileDescriptorProto()
    descriptor_pb2.DESCRIPTOR.CopyToProto(descriptor_file)
    return descriptor_pb2.FileDescriptorSet(file=[descriptor_file, http_file, dependency, file])


def _add_field_path(
    file: descriptor_pb2.FileDescriptorProto,
    message: descriptor_pb2.DescriptorProto,
    type_name: str,
    path: list[str],
) -> None:
    """Fields for ``a.b.c``: messages for the leading parts, a string last."""
    name, rest = path[0], path[1:]
    existing = next((f for f in message.field if f.name == name), None)
    if not rest:
        if existing is None:
            message.field.add(
                name=name, number=len(message.field) + 1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL
            )
        return
    nested_name = f"{type_name}_{name}"
    nested = next((m for m in file.message_type if m.name == nested_name), None)
    if nested is None:
        nested = file.message_type.add(name=nested_name)
    if existing is None:
        message.field.add(
            name=name,
            number=len(message.field) + 1,
            type=F.TYPE_MESSAGE,
            type_name=f".conformance.v1.{nested_name}",
            label=F.LABEL_OPTIONAL,
        )
    _add_field_path(file, nested, nested_name, rest)


def write_config(case: dict[str, Any], directory: Path) -> Path:
    (directory / "conformance.pb").write_bytes(descriptor_set(case).SerializeToString())
    options = case["options"]
    config = {
        "descriptors": [{"file": "conformance.pb"}],
        "listeners": [
            {
                "name": "public",
                "address": "127.0.0.1:8080",
                "routes": [
                    {
                        "name": "conformance",
                        "match": {"prefix": "/"},
                        "transcode": {
                            "services": [SERVICE],
                            "url_unescape_spec": options["url_unescape_spec"].lower(),
                            "query_param_unescape_plus": options["query_param_unescape_plus"],
                            "match_unregistered_custom_verb": options[
                                "match_unregistered_custom_verb"
                            ],
                        },
                        "cluster": "backend",
                    }
                ],
            }
        ],
        "clusters": [{"name": "backend", "endpoints": [{"address": "127.0.0.1:50051"}]}],
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def request_target(case: dict[str, Any]) -> str:
    request = case["request"]
    path = request["path"].split("?", 1)[0]
    return f"{path}?{request['query']}" if request.get("query") else path


def routes_json(config: Path, method: str, target: str, capsys: Any) -> tuple[int, Any]:
    args = argparse.Namespace(
        config=config, listener=None, method=method, path=target, header=[], json=True
    )
    code = run_routes(args)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else captured.err


@pytest.mark.parametrize("case", PATH_CASES, ids=[c["id"] for c in PATH_CASES])
def test_routes_names_the_rule_the_reference_matcher_matched(
    case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(case, tmp_path)
    code, answer = routes_json(config, case["request"]["method"], request_target(case), capsys)
    if code == 1 and isinstance(answer, str):
        # Two rules with one binding key: the gateway refuses such a config (the
        # reference matcher, without fail_registration_on_duplicate, keeps the first).
        assert "can route to only one RPC" in answer, answer
        assert not case["options"]["fail_registration_on_duplicate"]
        return
    names = [rule["name"] for rule in case["rules"]]
    expected = case["expected_match"]
    if expected is None:
        assert answer.get("rpc") is None, answer
        return
    assert answer["rpc"] == f"{SERVICE}/Rule{names.index(expected)}", answer
    if "expected_bindings" in case:
        got = [(b["field"], b["value"]) for b in answer["bindings"]]
        want = [
            (".".join(b["field_path"]) if b["field_path"] else None, b["value"])
            for b in case["expected_bindings"]
        ]
        assert [v for _, v in got] == [v for _, v in want]
        assert all(w is None or g == w for (g, _), (w, _) in zip(got, want, strict=True))


def test_enough_cases_run() -> None:
    assert len(PATH_CASES) >= 100


def test_the_routes_command_itself(tmp_path: Path) -> None:
    case = next(c for c in PATH_CASES if c["id"] == "match-001")
    config = write_config(case, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "routes", "-c", str(config), "GET", "/", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rpc"] == f"{SERVICE}/Rule0"
