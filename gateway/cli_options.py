"""The options of ``meshgate call`` and ``meshgate list``, apart from their
code so that ``meshgate --help`` loads no grpc or protobuf."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_TIMEOUT = 10.0


def add_descriptor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "schemas", "where the protobuf descriptors come from (default: server reflection)"
    )
    group.add_argument(
        "--proto",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a .proto file, compiled with grpcio-tools' protoc (repeatable)",
    )
    group.add_argument(
        "-I",
        "--import-path",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="an import directory for --proto (repeatable; default: the proto's directory)",
    )
    group.add_argument(
        "--descriptor-set",
        "--protoset",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a FileDescriptorSet (protoc --include_imports --descriptor_set_out) (repeatable)",
    )


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="host:port (gRPC), xds:///HOST:PORT (through the mesh core), "
        "tri://host:port (Dubbo Triple) or dubbo://host:port (dubbo2); Dubbo targets "
        "take ?group=G&version=V",
    )
    parser.add_argument(
        "--bootstrap",
        type=Path,
        metavar="FILE",
        help="gRPC xDS bootstrap for xds:/// targets (default: $GRPC_XDS_BOOTSTRAP)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="deadline"
    )


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "method", metavar="METHOD", help="pkg.Service/Method (or a Dubbo interface/method)"
    )
    parser.add_argument(
        "request",
        nargs="?",
        default="{}",
        metavar="JSON",
        help="the request as proto3 JSON, @FILE to read it from a file, or - for stdin; "
        "a client stream is a JSON array or one object per line; Dubbo calls without a "
        "schema take a JSON array of arguments (default: {})",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="request metadata (repeatable)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the status, response headers and trailers (to stderr)",
    )
    parser.add_argument(
        "--group", help="Dubbo service group of the provider (overrides the target's ?group=)"
    )
    parser.add_argument(
        "--version",
        dest="service_version",
        metavar="VERSION",
        help="Dubbo service version of the provider (overrides the target's ?version=)",
    )
    parser.add_argument(
        "--types",
        metavar="TYPE[,TYPE...]",
        help="Java parameter types for a dubbo:// call (e.g. long or java.lang.String,int)",
    )
    add_descriptor_arguments(parser)


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "service", nargs="?", metavar="SERVICE", help="list only this service's methods"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_descriptor_arguments(parser)
