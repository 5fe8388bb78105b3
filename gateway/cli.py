"""The ``meshgate`` command: run, validate, schema, demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from gateway.config import ConfigError, GatewayConfig


def _validate(path: Path) -> int:
    from gateway.sources import load_snapshot

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


def main(argv: list[str] | None = None) -> int:
    # A SIGHUP during start-up is a reload request, never a reason to exit.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="meshgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the listeners of a config file")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the ports (SO_REUSEPORT)"
    )
    validate = commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("-c", "--config", type=Path, required=True)
    commands.add_parser("schema", help="print the JSON Schema of the config file")
    demo = commands.add_parser("demo", help="start a demo backend and the gateway in front of it")
    demo.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    if args.command == "schema":
        print(json.dumps(GatewayConfig.model_json_schema(), indent=2))
        return 0
    if args.command == "validate":
        return _validate(args.config)
    if args.command == "run":
        from gateway.workers import serve

        return serve(args.config, args.workers)
    from gateway.demo import run_demo

    return run_demo(args.workers)


if __name__ == "__main__":
    sys.exit(main())
