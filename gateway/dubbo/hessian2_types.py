"""Python shapes for the Java values Hessian 2.0 carries.

Plain Python values cover most of Hessian: ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``datetime``, ``list`` and ``dict``. Where the
Java type must survive a round trip through Python, a small wrapper keeps it:

- ``JavaLong``: an ``int`` that was (or must be) a Java ``long``; a plain
  ``int`` is written as a Java ``int`` when it fits in 32 bits.
- ``JavaObject``: an instance of a Java class, its fields in declaration order.
- ``TypedList`` / ``TypedMap``: a list or map that named its Java type
  (``[int``, ``[string``, ``java.util.LinkedList``, ``java.util.TreeMap`` ...).

The wrappers are mutable on purpose: the decoder builds a container before its
children so that back-references (``Q``), including cycles, resolve to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class JavaLong(int):
    """An ``int`` that is a Java ``long`` on the wire, whatever its magnitude."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JavaLong({int(self)})"


@dataclass(eq=True, repr=True)
class JavaObject:
    """An instance of ``class_name``; ``fields`` keeps the Java field order."""

    class_name: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True, repr=True)
class TypedList:
    """A list that carries its Java type: an array (``[int``) or a collection class."""

    type_name: str
    items: list[Any] = field(default_factory=list)


@dataclass(eq=True, repr=True)
class TypedMap:
    """A map that carries its Java type, e.g. ``java.util.TreeMap``."""

    type_name: str
    entries: dict[Any, Any] = field(default_factory=dict)
