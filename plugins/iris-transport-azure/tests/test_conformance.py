"""The azure backend against the conformance suite, on the Service Bus emulator."""

from __future__ import annotations

import uuid

import pytest
from azure.servicebus import ServiceBusMessage

from iris_transport.testing import ConformanceBackend, TransportConformance
from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.settings import BATCH_ENVELOPE_RESERVE, AzureServiceBusSettings
from iris_transport_azure.testing import servicebus_emulator  # noqa: F401
from iris_transport_azure.transport import AzureServiceBusTransport, encoded_size

# Short enough that the lock expiry tests finish quickly, long enough that a
# loaded machine settles every message well within it.
LOCK_SECONDS = 4.0
MAX_DELIVERY_COUNT = 4


def max_body_bytes(limit: int) -> int:
    """Return the largest body that fits within ``limit`` with no other field set."""
    sample = 10_000
    overhead = encoded_size(ServiceBusMessage(body=b"x" * sample)) - sample
    return limit - BATCH_ENVELOPE_RESERVE - overhead


class TestAzureConformance(TransportConformance):
    @pytest.fixture
    def conformance_backend(self, servicebus_emulator: ServiceBusEmulator) -> ConformanceBackend:
        queue = f"conformance-{uuid.uuid4().hex[:8]}"
        servicebus_emulator.create_queue(queue, lock_duration=LOCK_SECONDS, max_delivery_count=MAX_DELIVERY_COUNT)
        settings = AzureServiceBusSettings(
            connection_string=servicebus_emulator.connection_string,
            queue=queue,
            lock_duration=LOCK_SECONDS,
            max_delivery_count=MAX_DELIVERY_COUNT,
        )
        return ConformanceBackend(
            transport=lambda: AzureServiceBusTransport(settings, "conformance"),
            dead_letter_receiver=lambda: AzureServiceBusTransport(settings, "conformance", sub_queue="deadletter"),
            lock_duration=LOCK_SECONDS,
            max_body_bytes=max_body_bytes(settings.max_message_bytes),
            delay=2.0,
            expiry_reason="TTLExpiredException",
        )
