"""What ``meshgate call`` and ``list`` are pointed at, parsed from the command line.

Sans-IO: a target string in, a :class:`Target` out, or :class:`TargetError`
with what is wrong. The schemes follow the clients users know: grpcurl's
``host:port``, gRPC's ``xds:///host:port``, and Dubbo URLs (``tri://`` for
Triple, ``dubbo://`` for dubbo2) with ``group`` and ``version`` as query
parameters, as in a Dubbo registry URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from gateway.config.model import parse_address

Scheme = Literal["grpc", "xds", "tri", "dubbo"]
# The cluster protocol each scheme reaches its backend with.
PROTOCOLS: dict[Scheme, str] = {"grpc": "grpc", "xds": "grpc", "tri": "triple", "dubbo": "dubbo"}


class TargetError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    scheme: Scheme
    address: str
    """host:port of the backend, or for ``xds`` the mesh target HOST:PORT."""
    group: str | None = None
    version: str | None = None

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.scheme]


def parse_target(text: str) -> Target:
    """``host:port``, ``grpc://host:port``, ``xds:///host:port``,
    ``tri://host:port?group=g&version=1.0``, ``dubbo://host:port?version=1.0``."""
    if "://" not in text:
        return Target("grpc", _address(text, text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "xds":
        # xds:///host:port: the authority is empty, the target is the path.
        if parts.netloc:
            raise TargetError(f"{text!r}: xds targets have no authority, write xds:///HOST:PORT")
        return Target("xds", _address(parts.path.lstrip("/"), text))
    if scheme not in ("grpc", "tri", "dubbo"):
        raise TargetError(
            f"{text!r}: unknown scheme {parts.scheme!r} (use host:port, xds:///, tri:// or dubbo://)"
        )
    if parts.path not in ("", "/"):
        raise TargetError(f"{text!r}: a target has no path; name the method separately")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"group", "version"})
    if unknown:
        raise TargetError(f"{text!r}: unknown parameters {unknown} (known: group, version)")
    return Target(
        scheme,  # type: ignore[arg-type]  # checked against the Scheme values above
        _address(parts.netloc, text),
        group=query.get("group", [None])[-1],
        version=query.get("version", [None])[-1],
    )


def _address(value: str, text: str) -> str:
    try:
        return parse_address(value)
    except ValueError:
        raise TargetError(f"{text!r}: expected host:port, got {value!r}") from None


def parse_method(text: str) -> tuple[str, str]:
    """``pkg.Service/Method`` (or grpcurl's ``pkg.Service.Method``) to (service, method)."""
    service, slash, method = text.lstrip("/").rpartition("/")
    if not slash:
        service, dot, method = text.rpartition(".")
        if not dot:
            raise TargetError(f"{text!r}: expected pkg.Service/Method")
    if not service or not method:
        raise TargetError(f"{text!r}: expected pkg.Service/Method")
    return service, method
