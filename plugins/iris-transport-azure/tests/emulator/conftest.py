"""Fixtures for the emulator tests: each test gets its own emulator."""

from __future__ import annotations

import uuid

import pytest

from iris_transport_azure.testing import servicebus_emulator  # noqa: F401


@pytest.fixture
def queue_name() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"
