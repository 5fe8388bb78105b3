"""The ``meshgate`` command line: one parser, one handler per command.

Every command imports what it needs when it runs, so ``meshgate --help`` and
``meshgate --version`` answer without loading grpc or compiling anything.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

DESCRIPTION = """\
meshgate: a REST/JSON to gRPC and Dubbo gateway with a proxyless xDS mesh core.

Serve a YAML config with "run", check it with "validate", inspect what it
compiles to with "routes" and "openapi", and call or list backends directly
with "call" and "list". "meshgate COMMAND --help" tells more.
"""

EXAMPLES = """\
examples:
  meshgate demo                                   a demo backend plus the gateway
  meshgate run -c gateway.yaml --workers 4        serve a config
  meshgate validate -c gateway.yaml               check it, with every error's place
  meshgate routes -c gateway.yaml GET /v1/greet/world
  meshgate call 127.0.0.1:50051 demo.greeter.v1.Greeter/SayHello '{"name": "world"}'
  meshgate list 127.0.0.1:50051
  meshgate openapi -c gateway.yaml > openapi.json
"""

Handler = Callable[[argparse.Namespace], int]


def version() -> str:
    try:
        return metadata.version("meshgate")
    except metadata.PackageNotFoundError:  # running from a source tree, not installed
        return "unknown (not installed)"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows defaults where a flag has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.default not in (None, False, [], argparse.SUPPRESS)
            and "%(default)" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="the gateway's YAML config file",
    )


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        help="least severe level logged (default: the file's logging.level, or info)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or one JSON object each (default: the file's, or text)",
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + examples,
        formatter_class=_Formatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshgate", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=_Formatter
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"meshgate {version()}",
        help="print the version",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        commands,
        "run",
        "serve the listeners of a config file until Ctrl-C or SIGTERM (SIGHUP reloads)",
        "  meshgate run -c gateway.yaml\n"
        "  meshgate run -c gateway.yaml --workers 4\n"
        "  meshgate run -c gateway.yaml --check-only   load everything, then exit\n",
        _run,
    )
    _add_config(run)
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening ports (SO_REUSEPORT)",
    )
    _add_log_options(run)
    run.add_argument(
        "--check-only",
        action="store_true",
        help="load the config and its descriptors as run would, print a summary and exit",
    )

    validate = _command(
        commands,
        "validate",
        "check a config file and exit: 0 when valid, 1 with every error and its place",
        "  meshgate validate -c gateway.yaml\n",
        _validate,
    )
    _add_config(validate)

    _command(
        commands,
        "schema",
        "print the JSON Schema of the config file (what config/schema.json holds)",
        "  meshgate schema > config/schema.json\n",
        _schema,
    )

    demo = _command(
        commands,
        "demo",
        "start a demo gRPC backend and the gateway in front of it, until Ctrl-C",
        "  meshgate demo\n"
        "  meshgate demo --workers 2 --listen 127.0.0.1:8081 --admin 127.0.0.1:9902\n",
        _demo,
    )
    demo.add_argument(
        "--workers", type=int, default=1, metavar="N", help="gateway worker processes"
    )
    demo.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="the gateway's listener address (default: the demo config's, 127.0.0.1:8080)",
    )
    demo.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="the admin listener address (default: the demo config's, 127.0.0.1:9901)",
    )

    routes = _command(
        commands,
        "routes",
        "print the compiled route table, or which route and RPC a request would hit",
        "  meshgate routes -c gateway.yaml\n"
        "  meshgate routes -c gateway.yaml GET /v1/greet/world\n"
        "  meshgate routes -c gateway.yaml POST /demo.greeter.v1.Greeter/SayHello --json\n",
        _routes,
    )
    _add_config(routes)
    routes.add_argument("method", nargs="?", metavar="METHOD", help="HTTP method of the request")
    routes.add_argument("path", nargs="?", metavar="PATH", help="request path, with ?query")
    routes.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header, for routes that match on headers (repeatable)",
    )
    routes.add_argument(
        "--listener", metavar="NAME", help="the listener to look in (default: every one)"
    )
    routes.add_argument("--json", action="store_true", help="print JSON instead of text")

    openapi = _command(
        commands,
        "openapi",
        "print the OpenAPI 3.1 document of a config's transcoded routes",
        "  meshgate openapi -c gateway.yaml > openapi.json\n"
        "  meshgate openapi -c gateway.yaml --listener public\n",
        _openapi,
    )
    _add_config(openapi)
    openapi.add_argument(
        "--listener", metavar="NAME", help="the listener to describe (default: the first)"
    )
    openapi.add_argument(
        "--server",
        metavar="URL",
        help="the server URL written into the document (default: the listener's address)",
    )

    from gateway.cli_options import add_call_arguments, add_list_arguments

    call = _command(
        commands,
        "call",
        "call one RPC and print the reply as JSON (streams as one JSON object per line)",
        '  meshgate call 127.0.0.1:50051 demo.greeter.v1.Greeter/SayHello \'{"name": "w"}\'\n'
        "  meshgate call -v 127.0.0.1:50051 pkg.Svc/Method @request.json\n"
        "  meshgate call --proto greeter.proto -I protos 127.0.0.1:50051 pkg.Svc/Method '{}'\n"
        "  meshgate call --bootstrap xds.json xds:///greeter:50051 pkg.Svc/Method '{}'\n"
        "  meshgate call --descriptor-set api.pb --version 1.0.0 tri://127.0.0.1:50052 \\\n"
        '      org.example.Greeter/greet \'{"name": "w"}\'\n'
        "  meshgate call dubbo://127.0.0.1:20880 org.example.UserService/getUser '[42]' \\\n"
        "      --types long\n",
        _call,
    )
    add_call_arguments(call)

    listing = _command(
        commands,
        "list",
        "list the services and methods a backend serves by reflection, with HTTP bindings",
        "  meshgate list 127.0.0.1:50051\n"
        "  meshgate list 127.0.0.1:50051 demo.greeter.v1.Greeter\n"
        "  meshgate list --proto greeter.proto -I protos 127.0.0.1:50051\n",
        _list,
    )
    add_list_arguments(listing)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.check_only:
        return _validate(args)
    from gateway.logs import LogSettings
    from gateway.workers import serve

    overrides = LogSettings(args.log_level or "", args.log_format or "")
    return serve(args.config, args.workers, overrides)


def _validate(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.sources import load_snapshot

    path: Path = args.config
    try:
        snapshot = load_snapshot(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    routes = sum(len(lst.routes.entries) for lst in snapshot.listeners)
    print(
        f"{path}: ok ({len(snapshot.listeners)} listener(s), {routes} route(s), "
        f"{len(snapshot.clusters)} cluster(s), {len(snapshot.services)} service(s))"
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from gateway.config.schema import config_schema

    print(json.dumps(config_schema(), indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(args.workers, args.listen, args.admin)


def _routes(args: argparse.Namespace) -> int:
    from gateway.cli_routes import run_routes

    return run_routes(args)


def _openapi(args: argparse.Namespace) -> int:
    from gateway.openapi.command import run_openapi

    return run_openapi(args)


def _call(args: argparse.Namespace) -> int:
    from gateway.cli_call import run_call

    return run_call(args)


def _list(args: argparse.Namespace) -> int:
    from gateway.cli_call import run_list

    return run_list(args)


def main(argv: Sequence[str] | None = None) -> int:
    # A SIGHUP (reload) or SIGUSR1 (reopen the access log) during start-up is
    # never a reason to exit.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        # Ctrl-C is how a user stops `run` and `demo`: no traceback, the
        # conventional exit status of a process ended by SIGINT.
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
