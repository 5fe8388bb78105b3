"""Between decoded Hessian values and JSON-able data.

``to_jsonable`` shapes a Dubbo result for an HTTP response; ``from_jsonable``
turns a JSON request into Java-typed arguments, reading a map with a ``class``
key as an instance of that class, the convention of Dubbo's generic invocation
(``PojoUtils``). ``exception_summary`` renders a serialized Java ``Throwable``
the way ``Throwable.toString()`` does.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.dubbo.errors import HessianError
from gateway.dubbo.hessian2_types import JavaObject, TypedList, TypedMap

DateStyle = Literal["iso", "millis"]

DEFAULT_MAX_NODES = 10_000_000
# Number classes hessian-lite writes as an object with one string field.
_DECIMAL_CLASSES = frozenset({"java.math.BigDecimal", "java.math.BigInteger"})


def to_jsonable(
    value: Any,
    *,
    class_key: str | None = None,
    dates: DateStyle = "iso",
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Any:
    """A copy of ``value`` made of dict, list, str, int, float, bool and None.

    Objects become the dict of their fields, with their Java class under
    ``class_key`` when one is given; dates become ISO-8601 UTC strings (or
    epoch millis); bytes become base64. A back-reference that would close a
    cycle (a Java exception's ``cause`` often points to itself) becomes None.
    Shared references are copied out; ``max_nodes`` bounds the copy, so a small
    stream of nested back-references cannot expand into an enormous document.
    """
    return _Jsonifier(class_key, dates, max_nodes).convert(value)


class _Jsonifier:
    def __init__(self, class_key: str | None, dates: DateStyle, max_nodes: int) -> None:
        self._class_key = class_key
        self._dates = dates
        self._open: set[int] = set()
        self._budget = max_nodes

    def convert(self, value: Any) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise HessianError("value expands to more JSON nodes than allowed")
        if value is None or isinstance(value, bool | str | float):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, datetime):
            return self._date(value)
        if id(value) in self._open:
            return None
        self._open.add(id(value))
        try:
            return self._container(value)
        finally:
            self._open.discard(id(value))

    def _container(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [self.convert(item) for item in value]
        if isinstance(value, TypedList):
            return [self.convert(item) for item in value.items]
        if isinstance(value, dict):
            return self._map(value)
        if isinstance(value, TypedMap):
            return self._map(value.entries)
        if isinstance(value, JavaObject):
            return self._object(value)
        raise TypeError(f"cannot convert a {type(value).__name__} to JSON")

    def _map(self, entries: dict[Any, Any]) -> dict[str, Any]:
        return {self._key(key): self.convert(item) for key, item in entries.items()}

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            return "true" if key else "false"
        if key is None:
            return "null"
        converted = self.convert(key)
        return converted if isinstance(converted, str) else str(converted)

    def _object(self, obj: JavaObject) -> Any:
        if obj.class_name in _DECIMAL_CLASSES and isinstance(obj.fields.get("value"), str):
            return obj.fields["value"]
        result: dict[str, Any] = {}
        if self._class_key is not None:
            result[self._class_key] = obj.class_name
        for name, item in obj.fields.items():
            result[name] = self.convert(item)
        return result

    def _date(self, value: datetime) -> Any:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if self._dates == "millis":
            delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
            return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_jsonable(value: Any, *, class_key: str = "class") -> Any:
    """Java-typed arguments from JSON: a map with a string ``class_key`` is an object."""
    if isinstance(value, list):
        return [from_jsonable(item, class_key=class_key) for item in value]
    if isinstance(value, dict):
        class_name = value.get(class_key)
        fields = {
            key: from_jsonable(item, class_key=class_key)
            for key, item in value.items()
            if not (key == class_key and isinstance(class_name, str))
        }
        if isinstance(class_name, str):
            return JavaObject(class_name, fields)
        return fields
    return value


def exception_summary(value: Any) -> str:
    """``"java.lang.IllegalStateException: boom"`` for a serialized Throwable.

    hessian-lite writes a Throwable as an object whose ``detailMessage`` field
    holds the message; anything else is rendered with ``repr``.
    """
    if not isinstance(value, JavaObject):
        return repr(value)
    message = value.fields.get("detailMessage")
    if isinstance(message, str):
        return f"{value.class_name}: {message}"
    return value.class_name
