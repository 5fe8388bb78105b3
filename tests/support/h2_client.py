"""A small blocking HTTP/2 client over a socket, on the sans-IO ``h2`` library.

For what ordinary clients hide: several streams on one connection opened at
will, RST_STREAM sent by hand, a client that stops reading, the server's
SETTINGS and GOAWAY, and response trailers frame by frame::

    with H2Client.connect(("127.0.0.1", port)) as client:
        stream = client.request("POST", "/pkg.Service/Method", body=b"{}")
        result = client.wait(stream)
        result.status, result.headers, result.body, result.trailers
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import Frame

Fields = list[tuple[bytes, bytes]]


@dataclass
class StreamResult:
    headers: Fields = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields = field(default_factory=list)
    ended: bool = False
    reset: int | None = None
    # The response head alone ended the stream (Trailers-Only).
    head_ended: bool = False

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    def __init__(
        self, sock: socket.socket, authority: str, auto_ack: bool = True, window: int | None = None
    ) -> None:
        self.sock = sock
        self.authority = authority.encode()
        self.scheme = b"https" if isinstance(sock, ssl.SSLSocket) else b"http"
        # False: DATA is never acknowledged, the server's windows fill up.
        self.auto_ack = auto_ack
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if window is not None:
            # Let the server send this much ahead on every stream and the connection.
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.conn.initiate_connection()
        if window is not None:
            self.conn.increment_flow_control_window(window)
        self.streams: dict[int, StreamResult] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings_received = False
        self._flush()

    @classmethod
    @contextmanager
    def connect(
        cls,
        address: tuple[str, int],
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        auto_ack: bool = True,
        window: int | None = None,
    ) -> Iterator[H2Client]:
        sock = socket.create_connection(address, timeout=10)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server_hostname or address[0])
        client = cls(sock, f"{address[0]}:{address[1]}", auto_ack, window)
        try:
            yield client
        finally:
            sock.close()

    def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", self.authority),
            (b":path", path.encode()),
            *((k.encode(), v.encode()) for k, v in headers),
        ]
        self.conn.send_headers(stream_id, fields, end_stream=body is None)
        self.streams[stream_id] = StreamResult()
        if body is not None:
            self.send_body(stream_id, body, end_stream=True)
        self._flush()
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end_stream: bool) -> None:
        """Send in frames as the server's windows allow (reading to get more)."""
        view = memoryview(body)
        while True:
            room = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if room == 0 and view:
                self._flush()
                self.read_until(lambda: self.conn.local_flow_control_window(stream_id) > 0)
                continue
            chunk, view = view[:room], view[room:]
            self.conn.send_data(stream_id, bytes(chunk), end_stream=end_stream and not view)
            if not view:
                return

    def read_raw(self, timeout: float = 15.0) -> bytes:
        """Every byte until the server closes the connection, unparsed."""
        data = b""
        self.sock.settimeout(timeout)
        while piece := self.sock.recv(65536):
            data += piece
        return data

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self._flush()

    def wait(self, stream_id: int, timeout: float = 15.0) -> StreamResult:
        self.read_until(lambda: self.streams[stream_id].done, timeout)
        return self.streams[stream_id]

    def read_until(self, done: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the HTTP/2 server did not answer in time")
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self.conn.receive_data(data):
                self._on_event(event)
            self._flush()

    def _on_event(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", 0)
        result = self.streams.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived) and result is not None:
            result.headers = list(event.headers or [])
            result.head_ended = event.stream_ended is not None
        elif isinstance(event, h2.events.DataReceived) and result is not None:
            result.body += event.data or b""
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.TrailersReceived) and result is not None:
            result.trailers = list(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded) and result is not None:
            result.ended = True
        elif isinstance(event, h2.events.StreamReset) and result is not None:
            result.reset = int(event.error_code or 0)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)


def parse_frames(data: bytes) -> list[Frame]:
    """Whole frames in ``data`` (for what h2's client will not process, such as
    streams answered after a GOAWAY)."""
    out = []
    view = memoryview(data)
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        if len(view) < 9 + length:
            break
        frame.parse_body(view[9 : 9 + length])
        out.append(frame)
        view = view[9 + length :]
    return out
