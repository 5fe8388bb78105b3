"""A lean HTTP/1.1 client for tests that send many small requests.

httpx costs milliseconds of CPU per request, which on a shared 2-core machine
turns 10,000 requests into minutes. This client writes requests in batches on
a few keep-alive connections (HTTP/1.1 pipelining, which uvicorn and Envoy
both serve in order) and parses only what the tests need: status and body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    def encode(self, authority: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"host: {authority}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines.append(f"content-length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return Response(status, await reader.readexactly(int(headers["content-length"])))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        return Response(status, b"".join(chunks))
    return Response(status, b"")


async def _one_connection(
    host: str, port: int, requests: Sequence[Request], batch: int, timeout: float
) -> list[Response]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    authority = f"{host}:{port}"
    answers: list[Response] = []
    try:
        for start in range(0, len(requests), batch):
            chunk = requests[start : start + batch]
            writer.write(b"".join(r.encode(authority) for r in chunk))
            await writer.drain()
            for _ in chunk:
                answers.append(await asyncio.wait_for(_read_response(reader), timeout))
    finally:
        writer.close()
    return answers


async def send_all(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    connections: int = 4,
    batch: int = 32,
    timeout: float = 30.0,
) -> list[Response]:
    """Every request's response, in the order of ``requests``."""
    shares = [list(range(i, len(requests), connections)) for i in range(connections)]
    results = await asyncio.gather(
        *(
            _one_connection(host, port, [requests[i] for i in share], batch, timeout)
            for share in shares
            if share
        )
    )
    ordered: list[Response | None] = [None] * len(requests)
    for share, answers in zip((s for s in shares if s), results, strict=True):
        for index, answer in zip(share, answers, strict=True):
            ordered[index] = answer
    return [answer for answer in ordered if answer is not None]
