"""A bounds-checked cursor over Hessian bytes: the decoder's lowest layer.

Every read checks the length first, so truncated input raises ``HessianError``
naming the offset where the bytes ran out; nothing here ever waits for more.
Strings are read as Java writes them: a count of UTF-16 code units, each unit
encoded on its own in UTF-8 (so a surrogate pair is two 3-byte sequences).
"""

from __future__ import annotations

import re

from gateway.dubbo.errors import HessianError

_SURROGATE = re.compile("[\ud800-\udfff]")


def join_surrogates(text: str) -> str:
    # Java sends a non-BMP character as two separately encoded surrogates; pair
    # them back into one code point. A lone surrogate survives as itself.
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


class ByteReader:
    """Reads from an immutable copy of ``data``, starting at ``offset``."""

    def __init__(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self._data = bytes(data)
        self._pos = offset

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return max(0, len(self._data) - self._pos)

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def _unexpected(self, tag: int, wanted: str) -> HessianError:
        return HessianError(
            f"unexpected byte 0x{tag:02x} at offset {self._pos - 1}, expected {wanted}"
        )

    def _byte(self) -> int:
        if self._pos >= len(self._data):
            raise HessianError(f"truncated input: need 1 byte at offset {self._pos}")
        tag = self._data[self._pos]
        self._pos += 1
        return tag

    def _take(self, count: int) -> bytes:
        end = self._pos + count
        if end > len(self._data):
            raise HessianError(
                f"truncated input: need {count} bytes at offset {self._pos}, "
                f"have {len(self._data) - self._pos}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def _u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def _units(self, count: int) -> str:
        """``count`` UTF-16 code units of Java's per-unit UTF-8, as a str."""
        data, start = self._data, self._pos
        end = start + count
        if end <= len(data) and data[start:end].isascii():
            self._pos = end
            return data[start:end].decode("ascii")
        pos, units = start, 0
        while units < count:
            if pos >= len(data):
                raise HessianError(
                    f"truncated string: need {count - units} more characters at offset {pos}"
                )
            lead = data[pos]
            if lead < 0x80:
                pos, units = pos + 1, units + 1
            elif lead & 0xE0 == 0xC0:
                pos, units = pos + 2, units + 1
            elif lead & 0xF0 == 0xE0:
                pos, units = pos + 3, units + 1
            elif lead & 0xF8 == 0xF0:
                # Standard 4-byte UTF-8 (some non-Java peers send it): two UTF-16 units.
                pos, units = pos + 4, units + 2
            else:
                raise HessianError(f"invalid UTF-8 lead byte 0x{lead:02x} at offset {pos}")
        if units != count:
            raise HessianError(f"string length {count} splits a 4-byte character at offset {start}")
        if pos > len(data):
            raise HessianError(
                f"truncated string at offset {start}: "
                f"needs {pos - start} bytes, have {len(data) - start}"
            )
        self._pos = pos
        try:
            return data[start:pos].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise HessianError(f"invalid UTF-8 in string at offset {start + exc.start}") from exc

    def _peek(self) -> int:
        if self._pos >= len(self._data):
            raise HessianError(f"truncated input: list or map never ends, offset {self._pos}")
        return self._data[self._pos]
