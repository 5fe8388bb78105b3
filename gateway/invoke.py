"""Calling a cluster: pick an endpoint, apply deadline, retries and the in-flight cap.

Retries apply to unary and client-streaming calls, whose whole request is in
hand; a response stream is never retried once it has started.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

from gateway.clusters import StaticCluster
from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.retry import backoff_delay, retryable_codes
from gateway.snapshot import CompiledRoute, Snapshot
from gateway.transcode.bindings import MethodBinding
from gateway.upstream.grpc import GrpcUpstream, UnaryReply
from gateway.upstream.metadata import Metadata
from mesh.lb import NoEndpointError


class Invoker:
    def __init__(self, snapshot: Snapshot, grpc: GrpcUpstream, rng: random.Random) -> None:
        self._clusters = snapshot.clusters
        self._grpc = grpc
        self._rng = rng

    def _cluster(self, route: CompiledRoute) -> StaticCluster:
        cluster = self._clusters.get(route.cluster)
        if cluster is None:
            raise UpstreamUnavailable(f"cluster {route.cluster!r} is not available")
        return cluster

    def _address(self, cluster: StaticCluster) -> str:
        try:
            return cluster.picker.pick().address
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None

    async def unary(self, route: CompiledRoute, binding: MethodBinding, payloads: list[bytes],
                    metadata: Metadata, timeout: float | None) -> UnaryReply:
        cluster = self._cluster(route)
        policy = route.retry
        retries_left = policy.attempts if policy else 0
        codes = retryable_codes(policy) if policy else frozenset()
        deadline = time.monotonic() + timeout if timeout else None
        retry_number = 0
        while True:
            address = self._address(cluster)
            try_timeout = _remaining(deadline)
            if policy and policy.per_try_timeout:
                try_timeout = min(try_timeout or policy.per_try_timeout, policy.per_try_timeout)
            cluster.acquire()
            try:
                if binding.client_streaming:
                    return await self._grpc.client_stream(address, binding.path, payloads,
                                                          metadata, try_timeout)
                return await self._grpc.unary(address, binding.path, payloads[0], metadata,
                                              try_timeout)
            except GatewayError as error:
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if retries_left <= 0 or error.grpc_code not in codes or out_of_time:
                    raise
            finally:
                cluster.release()
            retries_left -= 1
            retry_number += 1
            assert policy is not None
            await asyncio.sleep(min(backoff_delay(policy, retry_number, self._rng),
                                    _remaining(deadline) or policy.max_backoff))

    async def stream(self, route: CompiledRoute, binding: MethodBinding, payloads: list[bytes],
                     metadata: Metadata, timeout: float | None
                     ) -> tuple[Metadata, AsyncIterator[bytes]]:
        cluster = self._cluster(route)
        address = self._address(cluster)
        cluster.acquire()
        try:
            initial, messages = await self._grpc.server_stream(
                address, binding.path, payloads, metadata, timeout,
                client_streaming=binding.client_streaming)
        except BaseException:
            cluster.release()
            raise

        async def counted() -> AsyncIterator[bytes]:
            try:
                async for message in messages:
                    yield message
            finally:
                cluster.release()

        return initial, counted()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.001)
