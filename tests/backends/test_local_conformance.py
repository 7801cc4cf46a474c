"""The local backend against the conformance suite."""

from __future__ import annotations

import subprocess
import sys
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


STRICT_MODE_MODULE = '''
import pytest

from iris_transport.backends.local import LocalSettings, LocalTransport
from iris_transport.testing import ConformanceBackend, TransportConformance


class TestStrictMode(TransportConformance):
    @pytest.fixture
    def conformance_backend(self, tmp_path):
        settings = LocalSettings(path=tmp_path / "queues.sqlite3")
        return ConformanceBackend(transport=lambda: LocalTransport(settings, "strict"))
'''


def test_kit_runs_without_asyncio_configuration(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_strict.py").write_text(STRICT_MODE_MODULE)

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "complete_removes or batch_send"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
