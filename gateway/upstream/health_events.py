"""Where endpoint health changes surface: one log line and one counter each."""

from __future__ import annotations

import logging

from gateway.metrics import count_health_event
from mesh.cluster_health import HealthEvent

log = logging.getLogger("meshgate.health")


def report_health_event(event: HealthEvent) -> None:
    # The same facts as fields of a JSON log record (gateway.logs).
    context = {"cluster": event.cluster, "endpoint": event.address, "event": event.kind}
    if event.kind == "ejected":
        log.warning(
            "cluster %s: endpoint %s ejected (%s) for %gs",
            event.cluster,
            event.address,
            event.reason,
            event.duration_s,
            extra=context,
        )
    elif event.kind == "unhealthy":
        log.warning(
            "cluster %s: endpoint %s failed its %s health check",
            event.cluster,
            event.address,
            event.reason,
            extra=context,
        )
    else:
        log.info(
            "cluster %s: endpoint %s %s", event.cluster, event.address, event.kind, extra=context
        )
    count_health_event(event.cluster, event.kind, event.reason)
