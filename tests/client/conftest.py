"""Fixtures for client tests: every channel on a temporary SQLite file, and the IRIS simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iris_transport.config import IrisConfig
from iris_transport.simulator import IrisSimulator, example_order_bytes, local_config
from iris_transport.transport import ReceivedMessage

EXAMPLE_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
EXAMPLE_SITE = "PC1234"
# Generous, because the machine running the tests may be loaded.
WAIT = 30.0


@pytest.fixture
def config(tmp_path: Path) -> IrisConfig:
    return local_config(tmp_path / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)


@pytest.fixture
def example_order() -> dict[str, Any]:
    return json.loads(example_order_bytes())


def make_simulator(config: IrisConfig, **options: Any) -> IrisSimulator:
    return IrisSimulator(config, receive_wait=0.2, shutdown_timeout=5.0, **options)


async def drain(config: IrisConfig, channel: str, wait: float = 0.5) -> list[ReceivedMessage]:
    """Receive and complete every message on ``channel``, waiting ``wait`` seconds for the first."""
    transport = config.create_transport(channel)
    received: list[ReceivedMessage] = []
    try:
        while True:
            batch = await transport.receive(max_messages=10, max_wait=wait if not received else 0.2)
            if not batch:
                return received
            for message in batch:
                await transport.complete(message)
            received += batch
    finally:
        await transport.close()
