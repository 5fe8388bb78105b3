"""Hessian 2.0 serialization as Dubbo speaks it, sans-IO.

The codec follows the Hessian 2.0 grammar with the choices of hessian-lite,
the fork Apache Dubbo ships: compact integer, long, double (including the
0x5f "thousandths" form), string, binary, date, list, map and object forms,
class definitions reused by index, type names reused by index, and
back-references (``Q``) for lists, maps and objects seen earlier in the same
stream. Strings count UTF-16 code units and encode each unit on its own, as
Java does, so a non-BMP character travels as a surrogate pair.

    encode(*values) -> bytes          one stream, deterministic
    decode(data) -> value             exactly one value
    decode_all(data) -> [values]      every value of one stream
    Hessian2Encoder / Hessian2Decoder for streams shared by several values

Decoded values are plain Python (None, bool, int, float, str, bytes, aware
UTC datetime, list, dict) plus the wrappers of ``hessian2_types`` where Java
type information has to survive: ``JavaLong``, ``JavaObject``, ``TypedList``,
``TypedMap``.
"""

from gateway.dubbo.errors import HessianError
from gateway.dubbo.hessian2_decode import Hessian2Decoder, decode, decode_all
from gateway.dubbo.hessian2_encode import Hessian2Encoder, encode
from gateway.dubbo.hessian2_json import exception_summary, from_jsonable, to_jsonable
from gateway.dubbo.hessian2_types import JavaLong, JavaObject, TypedList, TypedMap

__all__ = [
    "Hessian2Decoder",
    "Hessian2Encoder",
    "HessianError",
    "JavaLong",
    "JavaObject",
    "TypedList",
    "TypedMap",
    "decode",
    "decode_all",
    "encode",
    "exception_summary",
    "from_jsonable",
    "to_jsonable",
]
