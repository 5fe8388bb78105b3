"""``meshgate call`` and ``meshgate list``: grpcurl and dubbogo-cli in the gateway.

A call goes the way a gateway request goes after decoding: the target is
compiled into a cluster reference (a one-endpoint static cluster, or the mesh
core's ``xds:///`` resolution), the invoker runs it on the protocol client the
gateway itself uses, and the JSON codecs of the transcoder turn the request
and reply into protobuf and back. Nothing here speaks a protocol by itself.

Exit status: the gRPC status code of the call (0 when OK), 2 for a mistake on
the command line (bad target, unknown method, malformed JSON) found before
anything was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from gateway.cli_target import Target, TargetError, parse_method, parse_target
from gateway.errors import GRPC_CODE_NAMES, Code, GatewayError
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from gateway.upstream.call import Call, DubboOptions, Metadata, Reply, ReplyStream

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake on the command line, found before anything was sent."""


# --- running a call ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call printed, and the status it ended with."""

    code: int
    initial: Metadata = ()
    trailing: Sequence[tuple[str, str]] | Metadata = ()
    message: str = ""
    details: Sequence[Any] = ()


def run_call(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_call(args, sys.stdout, sys.stderr))
    except UsageError as exc:
        print(f"meshgate call: {exc}", file=sys.stderr)
        return USAGE_ERROR


def run_list(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_list(args, sys.stdout))
    except UsageError as exc:
        print(f"meshgate list: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except GatewayError as exc:
        print(f"meshgate list: {exc.message}", file=sys.stderr)
        return int(exc.grpc_code)


async def _call(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target = _target(args.target)
    service, method_name = _method(args.method)
    metadata = _metadata(args.header)
    dubbo = DubboOptions(
        args.group or target.group,
        args.service_version or target.version,
        parameter_types=_types(args.types),
    )
    async with _Connection(target, args.bootstrap) as connection:
        schemas = _files_given(args)
        uses_json = target.scheme == "dubbo" or (target.scheme == "tri" and not schemas.given)
        text = _read_request(args.request)
        if uses_json:
            call = Call(service, method_name, [_json_arguments(text)], metadata, dubbo=dubbo)
            outcome = await connection.unary_json(call, args.timeout, out)
        else:
            pool = await connection.descriptors(schemas, service)
            method = _find_method(pool, service, method_name)
            request_codec, reply_codec = _codecs(pool, method)
            messages = _request_messages(request_codec, method, text)
            call = Call(
                service,
                method_name,
                messages,
                metadata,
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
                dubbo=dubbo,
            )
            outcome = await connection.call(call, reply_codec, args.timeout, out)
    _report(outcome, args.verbose, err)
    return outcome.code


def _report(outcome: Outcome, verbose: bool, err: TextIO) -> None:
    name = GRPC_CODE_NAMES.get(outcome.code, str(outcome.code)).upper()
    if verbose:
        for key, value in outcome.initial:
            print(f"< {key}: {_printable(value)}", file=err)
        print(f"status: {name} ({outcome.code})", file=err)
        for key, value in outcome.trailing:
            print(f"trailer {key}: {_printable(value)}", file=err)
    if outcome.code != Code.OK:
        print(f"ERROR: {name} ({outcome.code}): {outcome.message}", file=err)
        if outcome.details:
            print(json.dumps(list(outcome.details), indent=2), file=err)


def _printable(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.hex()


class _Connection:
    """The cluster reference, mesh core and protocol clients of one command."""

    def __init__(self, target: Target, bootstrap: Path | None) -> None:
        from gateway.router import Upstreams

        self.target = target
        self._bootstrap = bootstrap
        self.upstreams = Upstreams()

    async def __aenter__(self) -> _Connection:
        if self.target.scheme == "xds":
            self.upstreams.mesh = await _start_mesh(self.target, self._bootstrap)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.upstreams.clients.close()
        if self.upstreams.mesh is not None:
            await self.upstreams.mesh.stop()

    def plan(self, call: Call) -> Any:
        from gateway.config import ClusterConfig, EndpointConfig
        from gateway.upstream.clusters import StaticCluster, StaticClusterRef, XdsClusterRef
        from mesh.hashing import RequestAttributes

        ref: Any
        if self.target.scheme == "xds":
            ref = XdsClusterRef(self.target.address)
        else:
            config = ClusterConfig(
                name=self.target.address,
                protocol=self.target.protocol,  # type: ignore[arg-type]
                endpoints=[EndpointConfig(address=self.target.address)],
            )
            ref = StaticClusterRef(StaticCluster(config))
        headers = {k: v for k, v in call.metadata if isinstance(v, str)}
        return ref.select(call, headers, RequestAttributes(None, b""), self.upstreams.mesh)

    async def descriptors(self, files: DescriptorFiles, service: str) -> DescriptorPool:
        from gateway.descriptors import build_pool

        if files.given:
            return build_pool(_read_files(files))
        return build_pool([await self.reflect(service)])

    async def reflect(self, service: str) -> descriptor_pb2.FileDescriptorSet:
        from gateway.reflection import ReflectionError, fetch_descriptor_set

        address = self.plan(Call(service, "ServerReflectionInfo", [b""])).first.address
        try:
            return await asyncio.to_thread(fetch_descriptor_set, [address], 5.0)
        except ReflectionError as exc:
            raise UsageError(
                f"{exc}; give the schemas with --proto or --descriptor-set instead"
            ) from None

    async def call(
        self, call: Call, reply_codec: MessageCodec, timeout: float, out: TextIO
    ) -> Outcome:
        from gateway.upstream.registry import upstream_name

        name = upstream_name(self.target.protocol, "proto")
        assert name is not None
        upstream = self.upstreams.clients.get(name)
        invoker = self.upstreams.invoker
        try:
            plan = self.plan(call)
            if call.server_streaming:
                stream = await invoker.stream(plan, upstream, call, timeout)
                return await _print_stream(stream, reply_codec, out)
            reply = await invoker.unary(plan, upstream, call, timeout)
        except GatewayError as exc:
            return _failed(exc)
        _print_json(reply_codec.to_dict(reply_codec.parse_bytes(reply.body)), out)
        return Outcome(Code.OK, reply.initial_metadata, reply.trailing_metadata)

    async def unary_json(self, call: Call, timeout: float, out: TextIO) -> Outcome:
        from gateway.upstream.registry import upstream_name

        name = upstream_name(self.target.protocol, "json")
        assert name is not None
        upstream = self.upstreams.clients.get(name)
        try:
            reply: Reply = await self.upstreams.invoker.unary(
                self.plan(call), upstream, call, timeout
            )
        except GatewayError as exc:
            return _failed(exc)
        _print_json(orjson.loads(reply.body) if reply.body.strip() else None, out)
        return Outcome(Code.OK, reply.initial_metadata, reply.trailing_metadata)


def _failed(exc: GatewayError) -> Outcome:
    return Outcome(int(exc.grpc_code), (), exc.headers, exc.message, exc.details)


async def _print_stream(stream: ReplyStream, codec: MessageCodec, out: TextIO) -> Outcome:
    """One JSON object per line as each message arrives (NDJSON)."""
    try:
        async for body in stream.messages:
            out.write(orjson.dumps(codec.to_dict(codec.parse_bytes(body))).decode() + "\n")
            out.flush()
    except GatewayError as exc:
        return Outcome(int(exc.grpc_code), stream.initial_metadata, exc.headers, exc.message)
    return Outcome(Code.OK, stream.initial_metadata)


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    out.flush()


async def _start_mesh(target: Target, bootstrap: Path | None) -> Any:
    from gateway.config.model import MeshConfig, XdsConfig
    from gateway.upstream.mesh import MeshClient
    from mesh.errors import MeshError

    try:
        mesh = MeshClient(MeshConfig(xds=XdsConfig(bootstrap=bootstrap)))
    except (MeshError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read the xDS bootstrap: {exc}") from None
    await mesh.start({target.address})
    return mesh


# --- the request ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescriptorFiles:
    protos: Sequence[Path]
    include: Sequence[Path]
    sets: Sequence[Path]

    @property
    def given(self) -> bool:
        return bool(self.protos or self.sets)


def _files_given(args: argparse.Namespace) -> DescriptorFiles:
    return DescriptorFiles(args.proto, args.import_path, args.descriptor_set)


def _read_files(files: DescriptorFiles) -> list[descriptor_pb2.FileDescriptorSet]:
    from gateway.descriptors import DescriptorError, compile_proto, read_descriptor_set

    try:
        sets = [read_descriptor_set(path) for path in files.sets]
        sets += [compile_proto(proto, files.include) for proto in files.protos]
    except DescriptorError as exc:
        raise UsageError(str(exc)) from None
    return sets


def _target(text: str) -> Target:
    try:
        return parse_target(text)
    except TargetError as exc:
        raise UsageError(str(exc)) from None


def _method(text: str) -> tuple[str, str]:
    try:
        return parse_method(text)
    except TargetError as exc:
        raise UsageError(str(exc)) from None


def _metadata(headers: Sequence[str]) -> Metadata:
    pairs: list[tuple[str, str | bytes]] = []
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"header {header!r}: expected NAME:VALUE")
        pairs.append((name.strip().lower(), value.strip()))
    return tuple(pairs)


def _types(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _read_request(text: str) -> str:
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]}: {exc.strerror}") from None
    return text


def _json_values(text: str) -> list[Any]:
    """Every JSON value in ``text``: one document, or several one after another."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return values
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise UsageError(f"malformed JSON request: {exc}") from None
        values.append(value)


def _json_arguments(text: str) -> bytes:
    values = _json_values(text)
    if len(values) != 1:
        raise UsageError("a Dubbo call takes one JSON document (an array of arguments)")
    return orjson.dumps(values[0])


def _request_messages(codec: MessageCodec, method: MethodDescriptor, text: str) -> list[bytes]:
    values = _json_values(text) or [{}]
    if method.client_streaming:
        if len(values) == 1 and isinstance(values[0], list):
            values = values[0]
    elif len(values) != 1:
        raise UsageError(f"{method.full_name} takes one request message, got {len(values)}")
    messages: list[bytes] = []
    for value in values:
        message = codec.new()
        try:
            codec.merge_dict(message, value)
        except GatewayError as exc:
            raise UsageError(f"request: {exc.message}") from None
        messages.append(message.SerializeToString())
    return messages


def _find_method(pool: DescriptorPool, service: str, method: str) -> MethodDescriptor:
    try:
        found = pool.FindServiceByName(service)
    except KeyError:
        raise UsageError(f"unknown service {service!r}: not in the descriptors") from None
    by_name = found.methods_by_name.get(method)
    if by_name is None:
        known = ", ".join(m.name for m in found.methods)
        raise UsageError(f"{service} has no method {method!r} (it has: {known})")
    return by_name


def _codecs(pool: DescriptorPool, method: MethodDescriptor) -> tuple[MessageCodec, MessageCodec]:
    from google.protobuf import message_factory

    options = PrintOptions()

    def codec(descriptor: Any) -> MessageCodec:
        return MessageCodec(message_factory.GetMessageClass(descriptor), pool, options=options)

    return codec(method.input_type), codec(method.output_type)


# --- listing -------------------------------------------------------------------


async def _list(args: argparse.Namespace, out: TextIO) -> int:
    from gateway.descriptors import all_services, build_pool

    target = _target(args.target)
    if target.scheme == "dubbo":
        raise UsageError("dubbo2 has no server reflection; list a gRPC or Triple target")
    async with _Connection(target, args.bootstrap) as connection:
        files = _files_given(args)
        if files.given:
            sets = _read_files(files)
        else:
            sets = [await connection.reflect(args.service or "grpc.reflection")]
    pool = build_pool(sets)
    services = [s for s in all_services(pool, sets) if not _is_infrastructure(s.full_name)]
    if args.service:
        services = [s for s in services if s.full_name == args.service]
        if not services:
            raise UsageError(f"no service {args.service!r} at {args.target}")
    listing = [_describe_service(s) for s in services]
    if args.json:
        _print_json(listing, out)
    else:
        out.write(_listing_text(listing))
    return 0


def _is_infrastructure(name: str) -> bool:
    return name.startswith(("grpc.reflection.", "grpc.health.", "grpc.channelz."))


def _describe_service(service: ServiceDescriptor) -> dict[str, Any]:
    from gateway.transcode.http_rule import rules_for_method

    methods = []
    for method in service.methods:
        bindings = [f"{b.http_method} {b.template}" for b in rules_for_method(method)]
        methods.append(
            {
                "name": method.name,
                "input": method.input_type.full_name,
                "output": method.output_type.full_name,
                "client_streaming": method.client_streaming,
                "server_streaming": method.server_streaming,
                "http": bindings,
                "auto_mapped": f"POST /{service.full_name}/{method.name}",
            }
        )
    return {"service": service.full_name, "methods": methods}


def _listing_text(listing: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    for service in listing:
        lines.append(service["service"])
        for m in service["methods"]:
            request = ("stream " if m["client_streaming"] else "") + m["input"]
            reply = ("stream " if m["server_streaming"] else "") + m["output"]
            lines.append(f"  rpc {m['name']}({request}) returns ({reply})")
            lines.extend(f"    {binding}" for binding in m["http"])
            lines.append(f"    {m['auto_mapped']}  (auto_mapping)")
    return "\n".join(lines) + "\n"
