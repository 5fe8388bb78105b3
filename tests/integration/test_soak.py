"""The short soak (``make soak`` runs the 5-minute one): good and hostile
clients, backend kills and reloads against one worker for SOAK_SECONDS."""

from __future__ import annotations

import pytest

from tests.soak import HOSTILE, soak

pytestmark = pytest.mark.integration

SOAK_SECONDS = 40.0
# Growth allowed over the run (the worker's RSS after warm-up vs at the end).
RSS_GROWTH_MIB = 48.0
FD_GROWTH = 16


def test_short_soak_loses_nothing_and_returns_to_baseline() -> None:
    report = soak(SOAK_SECONDS, kill_every=15.0, reload_every=8.0)
    print(report.text())
    assert report.worker_alive
    assert report.failed == 0, report.text()
    assert report.outcomes["good_ok"] > 100, report.text()
    for name, _, _ in HOSTILE:
        assert report.outcomes[f"hostile_{name}"] >= 1, (name, report.text())
    assert report.backend_kills >= 2 and report.reloads >= 4
    assert report.rss_end_mib <= report.rss_start_mib + RSS_GROWTH_MIB, report.text()
    assert report.fds_end <= report.fds_start + FD_GROWTH, report.text()
