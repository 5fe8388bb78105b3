"""An in-memory asyncio transport for driving a server protocol without a
socket (uvicorn's own protocol tests do the same): it keeps every write."""

from __future__ import annotations

from typing import Any

PORT = 8080


class MemoryTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []  # each write on its own, to count them
        self.closed = False

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", PORT), "peername": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.writes.append(b"".join(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass
