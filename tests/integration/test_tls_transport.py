"""The TLS transport under the protocol clients, on loopback sockets, against
asyncio TLS servers of the test: bytes relayed intact both ways (megabytes,
so backpressure is exercised), a refused SAN closing the connection with the
reason kept, and the two clients grpcio does not carry: Triple's HTTP/JSON
mode (httpx) and dubbo2 (asyncio streams, the project's frame codec)."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.dubbo.protocol import FrameDecoder, Request, Response, encode_response
from gateway.errors import UpstreamUnavailable
from gateway.tls.transport import TlsTransports
from gateway.upstream.dubbo import DubboUpstream
from gateway.upstream.generic import GenericCall
from gateway.upstream.triple_json import TripleJsonUpstream
from mesh.security import UpstreamTls, exact_names
from tests.support.certs import CertificateAuthority

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SHOP = "spiffe://cluster.local/ns/default/sa/shop"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("transport-certs")
    ca = CertificateAuthority()
    ca.write(d)
    ca.issue(uris=[SHOP]).write(d, "server")
    ca.issue(uris=["spiffe://cluster.local/ns/edge/sa/meshgate"]).write(d, "client")
    return d


def security(certs: Path, san: str = SHOP) -> UpstreamTls:
    return UpstreamTls(
        ca_file=str(certs / "ca.pem"),
        cert_file=str(certs / "client.pem"),
        key_file=str(certs / "client.key"),
        subject_alt_names=exact_names([san]),
    )


@asynccontextmanager
async def tls_server(certs: Path, handler: Handler, alpn: list[str]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.pem"))
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # mTLS: the transport must present the client cert
    if alpn:
        context.set_alpn_protocols(alpn)
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_megabytes_cross_the_transport_intact_both_ways(certs: Path) -> None:
    payload = os.urandom(4 * 1024 * 1024)
    transports = TlsTransports()
    async with tls_server(certs, echo, []) as address:
        path = await transports.socket_path(address, security(certs), ())
        reader, writer = await asyncio.open_unix_connection(path)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sending = asyncio.create_task(send())
        received = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        await sending
        writer.close()
    await transports.close()
    assert received == payload
    assert not Path(path).exists()  # the worker's socket directory is removed


async def test_a_refused_san_closes_the_connection_and_says_why(certs: Path) -> None:
    transports = TlsTransports()
    wrong = security(certs, san="spiffe://cluster.local/ns/default/sa/other")
    async with tls_server(certs, echo, []) as address:
        path = await transports.socket_path(address, wrong, ())
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"secret request")
        try:
            closed = await asyncio.wait_for(reader.read(), 10) == b""
        except ConnectionResetError:
            closed = True
        assert closed
        writer.close()
        failure = transports.failure(address, wrong, ())
    await transports.close()
    assert failure is not None and failure.startswith("peer identity rejected"), failure
    assert SHOP in failure


async def test_triple_json_mode_over_tls(certs: Path) -> None:
    seen: dict[str, object] = {}

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        seen["body"] = await reader.readexactly(length)
        seen["request_line"] = head.split(b"\r\n")[0].decode()
        seen["alpn"] = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        body = b'"hello over tls"'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    transports = TlsTransports()
    upstream = TripleJsonUpstream(tls=transports)
    async with tls_server(certs, http, ["http/1.1"]) as address:
        call = GenericCall("org.example.Greeter", "greet", b'["ada"]', timeout=10)
        reply = await upstream.call(address, call, security(certs))
    await upstream.close()
    await transports.close()
    assert reply.body == b'"hello over tls"'
    assert seen["body"] == b'["ada"]'
    assert seen["request_line"] == "POST /org.example.Greeter/greet HTTP/1.1"
    assert seen["alpn"] == "http/1.1"


async def test_dubbo2_over_tls(certs: Path) -> None:
    async def provider(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.receive_data(data)
            while (frame := decoder.next_frame()) is not None:
                if isinstance(frame, Request):
                    writer.write(encode_response(Response(frame.request_id, value="hi ada")))
        writer.close()

    transports = TlsTransports()
    upstream = DubboUpstream(tls=transports)
    async with tls_server(certs, provider, []) as address:
        call = GenericCall(
            "org.example.Greeter",
            "greet",
            b'["ada"]',
            parameter_types=["java.lang.String"],
            timeout=10,
        )
        reply = await upstream.call(address, call, security(certs))
        wrong = security(certs, san="spiffe://cluster.local/ns/default/sa/other")
        with pytest.raises(UpstreamUnavailable, match="peer identity rejected"):
            await upstream.call(address, call, wrong)
    await upstream.close()
    await transports.close()
    assert reply.body == b'"hi ada"'


async def test_unreadable_files_close_the_connection_and_say_why(
    certs: Path, tmp_path: Path
) -> None:
    transports = TlsTransports()
    missing = UpstreamTls(ca_file=str(tmp_path / "gone.pem"), subject_alt_names=exact_names([SHOP]))
    async with tls_server(certs, echo, []) as address:
        path = await transports.socket_path(address, missing, ())
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            closed = await asyncio.wait_for(reader.read(), 10) == b""
        except ConnectionResetError:
            closed = True
        writer.close()
        failure = transports.failure(address, missing, ())
    await transports.close()
    assert closed
    assert failure is not None and failure.startswith("TLS files cannot be loaded"), failure
