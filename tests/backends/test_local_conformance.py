"""The local backend against the conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from iris_transport.backends.local import TTL_EXPIRED, LocalSettings, LocalTransport
from iris_transport.testing import ConformanceBackend, TransportConformance

# Short enough that the lock expiry tests finish quickly, long enough that a
# loaded machine settles every message well within it.
LOCK_SECONDS = 4.0


class TestLocalConformance(TransportConformance):
    @pytest.fixture
    def conformance_backend(self, tmp_path: Path) -> ConformanceBackend:
        settings = LocalSettings(path=tmp_path / "queues.sqlite3", lock_duration=LOCK_SECONDS, poll_interval=0.02)
        return ConformanceBackend(
            transport=lambda: LocalTransport(settings, "conformance"),
            dead_letter_receiver=lambda: LocalTransport(settings, "conformance", sub_queue="deadletter"),
            lock_duration=LOCK_SECONDS,
            delay=2.0,
            expiry_reason=TTL_EXPIRED,
        )
