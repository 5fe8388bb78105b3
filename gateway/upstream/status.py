"""google.rpc.Status details from ``grpc-status-details-bin``, as JSON."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.rpc import status_pb2


def status_details(
    trailing: Sequence[tuple[str, str | bytes]], pool: DescriptorPool | None = None
) -> list[Any]:
    """The ``details`` of the status in the trailers, each an Any in JSON form.

    A detail whose type the gateway does not know is shown as its type URL and
    base64 value rather than dropped, so the client still sees it.
    """
    raw = next((v for k, v in trailing if k == "grpc-status-details-bin"), None)
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = base64.b64decode(raw + "=" * (-len(raw) % 4))
    try:
        status = status_pb2.Status.FromString(raw)
    except Exception:
        return []
    details: list[Any] = []
    for detail in status.details:
        try:
            details.append(json_format.MessageToDict(detail, descriptor_pool=pool))
        except (TypeError, KeyError, json_format.Error):
            details.append(
                {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode("ascii")}
            )
    return details
