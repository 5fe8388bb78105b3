"""grpcio's own proxyless xDS client, as a reference for MeshCore's decisions.

Run in a subprocess with ``GRPC_XDS_BOOTSTRAP`` pointing at a bootstrap for
the tests' ADS server. Reads a JSON plan on stdin (a list of requests, each
``{"metadata": {...}, "count": N, "pause": SECONDS}``, pause optional), calls EchoService/Echo on
``xds:///TARGET`` and prints one JSON line per request:
``{"plan": i, "served_by": ..., "code": <grpc status code>}``::

    python -m tests.support.xds_reference_client --target shop.default.svc.cluster.local:50051

With ``--xds-creds`` the channel uses ``grpc.xds_channel_credentials``: the
clusters' UpstreamTlsContext (gRFC A29) and the bootstrap's certificate
providers decide TLS, as for meshgate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc
import grpc.experimental

from tests.support.protos import echo_descriptor_set, load_pool, message_class

METHOD = "/meshgate.test.v1.EchoService/Echo"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--xds-creds", action="store_true", help="TLS as the xDS clusters say")
    args = parser.parse_args()
    plan = json.loads(sys.stdin.read())
    pool = load_pool(echo_descriptor_set())
    request_cls = message_class(pool, "meshgate.test.v1.EchoRequest")
    reply_cls = message_class(pool, "meshgate.test.v1.EchoReply")
    target = f"xds:///{args.target}"
    channel = (
        grpc.secure_channel(
            target, grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
        )
        if args.xds_creds
        else grpc.insecure_channel(target)
    )
    with channel:
        echo = channel.unary_unary(
            METHOD,
            request_serializer=request_cls.SerializeToString,
            response_deserializer=reply_cls.FromString,
        )
        # The first call waits for the xDS chain to resolve.
        grpc.channel_ready_future(channel).result(timeout=args.timeout * 4)
        for index, step in enumerate(plan):
            metadata = tuple(step.get("metadata", {}).items())
            for _ in range(step.get("count", 1)):
                try:
                    reply = echo(
                        request_cls(message="ref"),
                        metadata=metadata,
                        timeout=args.timeout,
                        wait_for_ready=True,
                    )
                    line = {"plan": index, "served_by": reply.served_by, "code": 0}
                except grpc.RpcError as exc:
                    line = {"plan": index, "served_by": None, "code": exc.code().value[0]}
                print(json.dumps(line), flush=True)
                time.sleep(step.get("pause", 0))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
