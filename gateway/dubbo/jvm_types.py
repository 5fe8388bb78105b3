"""JVM type descriptors, the way a dubbo2 request names its parameter types.

A request carries the parameter types of the method it calls as one string of
concatenated JVM descriptors, as Dubbo's ``ReflectUtils.getDesc`` builds it:
``(String, int, long[])`` travels as ``Ljava/lang/String;I[J``. Users and
config files name Java types the way Java source does (``java.lang.String``,
``int``, ``long[]``), or by their ``Class.getName()`` (``[J``,
``[Ljava.lang.String;``); both forms are accepted here.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.dubbo.errors import DubboProtocolError

# Java primitive type names and their JVM descriptor codes (JVMS 4.3.2).
PRIMITIVE_CODES = {
    "boolean": "Z",
    "byte": "B",
    "char": "C",
    "short": "S",
    "int": "I",
    "long": "J",
    "float": "F",
    "double": "D",
    "void": "V",
}
_PRIMITIVE_NAMES = {code: name for name, code in PRIMITIVE_CODES.items()}


def descriptor_of(java_type: str) -> str:
    """The descriptor of one type: ``"java.lang.String"`` -> ``"Ljava/lang/String;"``."""
    name = java_type.strip()
    if not name:
        raise DubboProtocolError("an empty Java type name has no descriptor")
    if name.endswith("[]"):
        return "[" + descriptor_of(name[:-2])
    if name.startswith("["):
        # Class.getName() of an array is already a descriptor, with dots.
        descriptor = name.replace(".", "/")
        if split_descriptors(descriptor) != [descriptor]:
            raise DubboProtocolError(f"malformed Java array type name {java_type!r}")
        return descriptor
    primitive = PRIMITIVE_CODES.get(name)
    if primitive is not None:
        return primitive
    if any(ch in name for ch in ";[]/ ") or name.startswith(".") or name.endswith("."):
        raise DubboProtocolError(f"malformed Java type name {java_type!r}")
    return "L" + name.replace(".", "/") + ";"


def descriptor_for(java_types: Sequence[str]) -> str:
    """The parameter-type string of a request: descriptors of every type, concatenated."""
    return "".join(descriptor_of(name) for name in java_types)


def split_descriptors(descriptors: str) -> list[str]:
    """Split a parameter-type string into one descriptor per parameter."""
    result: list[str] = []
    pos = 0
    while pos < len(descriptors):
        start = pos
        while pos < len(descriptors) and descriptors[pos] == "[":
            pos += 1
        if pos >= len(descriptors):
            raise DubboProtocolError(f"descriptor {descriptors!r} ends inside an array type")
        code = descriptors[pos]
        if code == "L":
            end = descriptors.find(";", pos)
            if end < 0 or end == pos + 1:
                raise DubboProtocolError(
                    f"descriptor {descriptors!r}: class type at {pos} has no name or no ';'"
                )
            pos = end + 1
        elif code in _PRIMITIVE_NAMES and code != "V":
            pos += 1
        else:
            raise DubboProtocolError(
                f"descriptor {descriptors!r}: unexpected {code!r} at position {pos}"
            )
        result.append(descriptors[start:pos])
    return result


def java_type_name(descriptor: str) -> str:
    """The source-style name of one descriptor: ``"[J"`` -> ``"long[]"``."""
    dimensions = len(descriptor) - len(descriptor.lstrip("["))
    element = descriptor[dimensions:]
    if element.startswith("L") and element.endswith(";"):
        base = element[1:-1].replace("/", ".")
    elif element in _PRIMITIVE_NAMES:
        base = _PRIMITIVE_NAMES[element]
    else:
        raise DubboProtocolError(f"malformed descriptor {descriptor!r}")
    return base + "[]" * dimensions
