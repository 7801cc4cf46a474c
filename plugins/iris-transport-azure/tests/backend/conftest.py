"""Fixtures for the azure backend tests: an emulator per test and a fresh queue on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.settings import AzureServiceBusSettings
from iris_transport_azure.testing import servicebus_emulator  # noqa: F401

LOCK_SECONDS = 4.0


@pytest.fixture
def queue_name(servicebus_emulator: ServiceBusEmulator) -> str:
    name = f"azure-{uuid.uuid4().hex[:8]}"
    servicebus_emulator.create_queue(name, lock_duration=LOCK_SECONDS)
    return name


@pytest.fixture
def make_settings(servicebus_emulator: ServiceBusEmulator, queue_name: str) -> Callable[..., AzureServiceBusSettings]:
    """Build settings for the test's queue on the emulator; keyword arguments override any setting."""

    def make(**overrides: object) -> AzureServiceBusSettings:
        values: dict[str, object] = {
            "connection_string": servicebus_emulator.connection_string,
            "queue": queue_name,
            "lock_duration": LOCK_SECONDS,
        }
        values.update(overrides)
        return AzureServiceBusSettings.model_validate(values)

    return make
