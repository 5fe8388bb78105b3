"""``meshgate openapi -c FILE``: the document a listener would serve, offline."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.config import ConfigError
from gateway.openapi.document import openapi_document


def run_openapi(args: argparse.Namespace) -> int:
    from gateway.sources import load_snapshot

    try:
        snapshot = load_snapshot(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid config\n{exc}", file=sys.stderr)
        return 1
    try:
        document = openapi_document(snapshot, args.listener, server_url=args.server)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0
