"""pytest fixtures for tests against the Service Bus emulator.

Import the fixture into a ``conftest.py``::

    from iris_transport_azure.testing import servicebus_emulator  # noqa: F401

Each test gets its own emulator on a free 127.0.0.1 port, with no queues and
auto-creation off, so a misspelt queue name fails as it would on Service Bus.
Create queues with ``servicebus_emulator.create_queue("orders", lock_duration=2)``
and topics with ``servicebus_emulator.create_topic("results", ["crm", "archive"])``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iris_transport_azure.emulator import QueueOptions, ServiceBusEmulator

__all__ = ["QueueOptions", "ServiceBusEmulator", "servicebus_emulator"]


@pytest.fixture
def servicebus_emulator() -> Iterator[ServiceBusEmulator]:
    """Start a Service Bus emulator for one test and stop it afterwards.

    It exposes ``.connection_string``, ``.port``, ``.create_queue(name,
    **options)``, ``.create_topic(name, subscriptions, **options)``,
    ``.message_count(path)`` and the test hook ``.drop_connections()``.
    Every key has every right; start a ``ServiceBusEmulator`` with
    ``key_rights`` to test a send-only or listen-only key.
    """
    emulator = ServiceBusEmulator("127.0.0.1", 0, auto_create_queues=False)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
