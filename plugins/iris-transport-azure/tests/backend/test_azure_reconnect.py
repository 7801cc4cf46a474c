"""A consumer on the azure backend survives the emulator dropping every connection."""

from __future__ import annotations

import asyncio
import collections
import logging

import pytest

from iris_transport.runtime import Consumer
from iris_transport.transport import OutgoingMessage, ReceivedMessage
from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.transport import AzureServiceBusTransport

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(180)]

MESSAGE_COUNT = 40


class CompletionCountingTransport(AzureServiceBusTransport):
    """Counts, per message id, the completions that Service Bus confirmed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.completions: collections.Counter[str] = collections.Counter()

    async def complete(self, message: ReceivedMessage) -> None:
        await super().complete(message)
        self.completions[message.message_id or ""] += 1


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting until {what}")
        await asyncio.sleep(0.1)


async def test_consumer_finishes_queue_after_connections_drop(
    servicebus_emulator: ServiceBusEmulator, queue_name: str, make_settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="iris_transport_azure.transport")
    settings = make_settings()
    ids = [f"job-{index}" for index in range(MESSAGE_COUNT)]
    async with AzureServiceBusTransport(settings, "events") as producer:
        await producer.send_batch([OutgoingMessage(body=b'{"n": 1}', message_id=message_id) for message_id in ids])

    handled: collections.Counter[str] = collections.Counter()
    dropped = asyncio.Event()

    async def handle(message: ReceivedMessage) -> None:
        handled[message.message_id or ""] += 1
        await asyncio.sleep(0.05)
        if sum(handled.values()) >= MESSAGE_COUNT // 3 and not dropped.is_set():
            dropped.set()
            closed = await asyncio.to_thread(servicebus_emulator.drop_connections)
            assert closed >= 1

    transport = CompletionCountingTransport(settings, "events")
    consumer = Consumer(transport, handle, concurrency=2, receive_wait=1.0, shutdown_timeout=10.0)
    run = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: set(transport.completions) == set(ids), 120, "every message was completed")
    finally:
        await consumer.stop()
        await asyncio.wait_for(run, 30)

    assert dropped.is_set()
    assert set(handled) == set(ids)
    twice = sorted(message_id for message_id, count in transport.completions.items() if count != 1)
    assert twice == [], f"completed more than once: {twice}"
    assert await asyncio.to_thread(servicebus_emulator.message_count, queue_name) == 0
    dead_letters = f"{queue_name}/$deadletterqueue"
    assert await asyncio.to_thread(servicebus_emulator.message_count, dead_letters) == 0
