"""The RPC front door: gRPC passthrough, gRPC-Web and Connect on one route kind.

Sans-IO protocol pieces (``frames``, ``grpc_web``, ``connect``, ``status``,
``protocols``) beside the route kind (``passthrough``) that runs them over
an ASGI request and the gRPC upstream. See docs/grpc-front.md.
"""
