"""Why the connection stopped a request the app is still serving.

The HTTP protocol (gateway.edge_protocol) sees what the app cannot without
paying for it on every request: the client's socket closing, and the body
not arriving in time. It then writes the reason into the request's scope
and cancels the task running the app; the app (gateway.app) reads the
reason when the CancelledError reaches it. The cancellation reaches the
backend call wherever the handler is waiting, so the call is cancelled and
the cluster's in-flight slot released at once, streams included.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Literal

# The scope key; the value is one of the reasons below.
SCOPE_KEY = "meshgate.interrupted"
Reason = Literal["client_gone", "body_timeout"]
CLIENT_GONE: Reason = "client_gone"
BODY_TIMEOUT: Reason = "body_timeout"


def interrupt_reason(scope: MutableMapping[str, Any]) -> Reason | None:
    reason = scope.get(SCOPE_KEY)
    return reason if reason in (CLIENT_GONE, BODY_TIMEOUT) else None
