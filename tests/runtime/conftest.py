"""Fixtures for runtime tests: real ``local`` backend queues in a temporary SQLite file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iris_transport.backends.local import LocalSettings, LocalTransport
from iris_transport.transport import OutgoingMessage, ReceivedMessage

# Short enough to expire within a test, and long enough that a loaded machine
# still renews in time, because renewal runs at half of it.
LOCK_DURATION = 2.0


@pytest.fixture
def settings(tmp_path: Path) -> LocalSettings:
    return LocalSettings(path=tmp_path / "queues.sqlite3", lock_duration=LOCK_DURATION, max_delivery_count=10)


@pytest.fixture
def make_transport(settings: LocalSettings) -> Callable[..., LocalTransport]:
    """Return a factory of transports on the test's ``results`` queue."""

    def make(**overrides: object) -> LocalTransport:
        return LocalTransport(settings.model_copy(update=overrides), "results")

    return make


def json_message(transaction_id: str = "tx-1", message_id: str | None = None, **fields: object) -> OutgoingMessage:
    body = json.dumps({"TransactionId": transaction_id, **fields}).encode()
    return OutgoingMessage(body=body, message_id=message_id or f"msg-{transaction_id}")


def decode_json(message: ReceivedMessage) -> dict:
    return json.loads(message.body)


async def send_all(transport: LocalTransport, *messages: OutgoingMessage) -> None:
    await transport.send_batch(list(messages))
    await transport.close()


async def drain(transport: LocalTransport, wait: float = 0.5) -> list[ReceivedMessage]:
    """Receive every message visible now from ``transport`` and complete it; close the transport."""
    received: list[ReceivedMessage] = []
    try:
        while True:
            batch = await transport.receive(max_messages=10, max_wait=wait)
            if not batch:
                return received
            for message in batch:
                await transport.complete(message)
            received.extend(batch)
    finally:
        await transport.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(0.02)
