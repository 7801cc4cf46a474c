"""Producer size checks and batching, on the real local backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from iris_transport.backends.local import LocalTransport
from iris_transport.exceptions import MessageTooLargeError
from iris_transport.runtime import Producer, SyncProducer, estimate_message_size, plan_batches
from iris_transport.runtime.producer import BATCH_MESSAGE_OVERHEAD_BYTES, BATCH_OVERHEAD_BYTES
from iris_transport.transport import Capabilities, OutgoingMessage

from .conftest import drain


class RecordingTransport(LocalTransport):
    """A real local transport that records the size of each broker request."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[int] = []

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        self.requests.append(len(messages))
        await super().send_batch(messages)


def message(index: int, body_size: int = 100) -> OutgoingMessage:
    return OutgoingMessage(body=b"x" * body_size, message_id=f"m{index}")


def recording_transport(settings, **limits: object) -> RecordingTransport:
    transport = RecordingTransport(settings, "results")
    transport.capabilities = dataclasses.replace(transport.capabilities, **limits)
    return transport


async def test_send_many_splits_by_count(settings, make_transport):
    transport = recording_transport(settings, max_batch_messages=3)
    async with Producer(transport) as producer:
        await producer.send_many([message(i) for i in range(7)])

    assert transport.requests == [3, 3, 1]
    received = await drain(make_transport())
    assert [m.message_id for m in received] == [f"m{i}" for i in range(7)]


async def test_send_many_splits_by_bytes(settings, make_transport):
    per_message = estimate_message_size(message(0, 1000)) + BATCH_MESSAGE_OVERHEAD_BYTES
    transport = recording_transport(settings, max_batch_bytes=BATCH_OVERHEAD_BYTES + 2 * per_message)
    async with Producer(transport) as producer:
        await producer.send_many([message(i, 1000) for i in range(5)])

    # Two messages fill a batch. The fifth goes alone through send(), which
    # the local backend implements as a batch of one.
    assert transport.requests == [2, 2, 1]
    assert len(await drain(make_transport())) == 5


async def test_oversized_message_fails_before_sending(settings, make_transport):
    transport = recording_transport(settings, max_message_bytes=10_000)
    messages = [message(0), message(1, 20_000), message(2)]

    async with Producer(transport) as producer:
        with pytest.raises(MessageTooLargeError) as caught:
            await producer.send_many(messages)
        with pytest.raises(MessageTooLargeError):
            await producer.send(messages[1])

    error = caught.value
    assert error.limit == 10_000
    assert error.size == estimate_message_size(messages[1])
    assert "10000 bytes" in str(error)
    assert f"{error.size} bytes" in str(error)
    assert transport.requests == []
    assert await drain(make_transport()) == []


def test_size_estimate_counts_headers_and_properties():
    bare = OutgoingMessage(body=b"{}", content_type=None)
    full = OutgoingMessage(
        body=b"{}",
        content_type="application/json",
        message_id="abc",
        application_properties={"Kind": "OrderResult", "Attempt": 2, "Final": True},
    )

    assert estimate_message_size(bare) == 2
    assert estimate_message_size(full) == 2 + len("application/json") + 3 + (4 + 11) + (7 + 8) + (5 + 1)


def test_plan_without_batch_send_sends_one_by_one():
    capabilities = Capabilities(max_message_bytes=1000, batch_send=False)

    batches = plan_batches([message(i) for i in range(3)], capabilities)

    assert [len(batch) for batch in batches] == [1, 1, 1]


def test_plan_puts_message_too_big_to_share_alone():
    capabilities = Capabilities(max_message_bytes=5000, batch_send=True, max_batch_bytes=3000)
    messages = [message(0, 100), message(1, 4000), message(2, 100)]

    batches = plan_batches(messages, capabilities)

    assert [[m.message_id for m in batch] for batch in batches] == [["m0"], ["m1"], ["m2"]]


def test_sync_producer_sends_batches(settings, make_transport):
    transport = recording_transport(settings, max_batch_messages=2)
    with SyncProducer(transport) as producer:
        producer.send_many([message(i) for i in range(3)])
        producer.send(message(3))

    assert transport.requests == [2, 1, 1]
