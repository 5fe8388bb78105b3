"""The Apache Dubbo Python SDK as a Triple consumer: calls Greeter at an address
(meshgate's, in the tests) and prints each reply as a JSON line.

Run like the server, with the dubbo-python venv's interpreter and greeter_pb2
on PYTHONPATH:

    python -m tests.peers.python_dubbo.client --address 127.0.0.1:PORT --name ada
"""

from __future__ import annotations

import argparse
import json

import dubbo
from dubbo.configs import ReferenceConfig

import greeter_pb2  # generated at test time by tests/support/peers.py

SERVICE_NAME = "meshgate.interop.v1.Greeter"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--name", default="dubbo")
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)
    client = dubbo.Client(ReferenceConfig("tri", SERVICE_NAME, host, int(port)))
    say_hello = client.unary(
        method_name="SayHello",
        request_serializer=greeter_pb2.HelloRequest.SerializeToString,
        response_deserializer=greeter_pb2.HelloReply.FromString,
    )
    reply = say_hello(greeter_pb2.HelloRequest(name=args.name))
    print(json.dumps({"message": reply.message, "served_by": reply.served_by}), flush=True)
    stream = client.server_stream(
        method_name="SayHelloStream",
        request_serializer=greeter_pb2.HelloRequest.SerializeToString,
        response_deserializer=greeter_pb2.HelloReply.FromString,
    )
    for item in stream(greeter_pb2.HelloRequest(name=args.name)):
        print(json.dumps({"message": item.message, "served_by": item.served_by}), flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
