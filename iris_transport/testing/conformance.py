"""The transport conformance suite.

A backend's test module subclasses ``TransportConformance`` and overrides the
``conformance_backend`` fixture to return a ``ConformanceBackend`` bound to a
fresh, empty entity::

    class TestMyBackendConformance(TransportConformance):
        @pytest.fixture
        def conformance_backend(self, tmp_path):
            return ConformanceBackend(transport=lambda: MyTransport(...))

Every test reads the backend's ``Capabilities`` from its first transport and
skips, naming the capability, when the backend does not declare it. Tests run
under pytest-asyncio (each is marked ``asyncio``), so the plugin must be
installed but needs no configuration. The tests marked with the ``api``
parameter run twice: through the async ``Transport`` and through
``SyncTransport`` called from a worker thread.

Dead-lettered messages must carry the reason in the application property
``DeadLetterReason`` and the description in ``DeadLetterErrorDescription``,
as Service Bus does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import anyio
import pytest

from iris_transport.exceptions import LockLostError, MessageTooLargeError, UnsupportedOperationError
from iris_transport.transport import Capabilities, OutgoingMessage, ReceivedMessage, SyncTransport, Transport

__all__ = ["ConformanceBackend", "TransportConformance", "TransportFactory"]

TransportFactory = Callable[[], "Transport | Awaitable[Transport]"]
"""Factory of a new transport, with its own connection, on the test's entity."""

DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"

# Maximum lock duration, in seconds, that the lock expiry tests wait for.
_MAX_LOCK_TO_WAIT_FOR = 120.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConformanceBackend:
    """The backend under test, as the conformance suite needs it for one test.

    The fixture that returns it is function-scoped, and every factory opens a
    transport on the same fresh, empty entity. The suite closes every
    transport it opens. Durations are in seconds.
    """

    transport: TransportFactory
    """Factory of a producer and consumer on the entity. The suite calls it again for each extra consumer."""
    second_consumer: TransportFactory | None = None
    """Factory of another consumer on the entity. The suite uses ``transport`` when None."""
    dead_letter_receiver: TransportFactory | None = None
    """Factory of a receiver on the entity's dead-letter queue. Tests that need it skip when None."""
    lock_duration: float | None = None
    """The entity's lock duration, or ``capabilities.lock_duration`` when None.

    Keep it short (a few seconds) because several tests wait for a lock to expire.
    """
    max_body_bytes: int | None = None
    """The largest body the backend accepts with no properties, or ``capabilities.max_message_bytes`` when None."""
    timeout: float = 30.0
    """Upper bound on each wait for a message that should arrive."""
    quiet_wait: float = 1.0
    """How long a receive waits when no message should arrive. Must be shorter than ``delay``."""
    delay: float = 3.0
    """Delay used for scheduled delivery, retry with delay, and time-to-live."""
    max_delivery_reason: str | None = "MaxDeliveryCountExceeded"
    """Reason the broker gives when it dead-letters after ``max_delivery_count``. None skips the check."""
    expiry_reason: str | None = None
    """Reason the broker gives when it dead-letters an expired message.

    None means that expired messages are not dead-lettered or that the reason
    is not checked, so the time-to-live test only checks that the message is gone.
    """


class _Client:
    """One transport, called through the async API or through ``SyncTransport`` on a worker thread."""

    def __init__(self, transport: Transport, api: Literal["async", "sync"]) -> None:
        self.transport = transport
        self.api = api
        self.capabilities: Capabilities = transport.capabilities
        self.backend_name = transport.backend_name
        self._sync: SyncTransport | None = None
        self._closed = False

    async def start(self) -> None:
        if self.api == "sync":
            self._sync = await asyncio.to_thread(SyncTransport, self.transport)

    async def _invoke(self, name: str, *args: Any) -> Any:
        if self._sync is None:
            return await getattr(self.transport, name)(*args)
        return await asyncio.to_thread(getattr(self._sync, name), *args)

    async def send(self, message: OutgoingMessage) -> None:
        await self._invoke("send", message)

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        await self._invoke("send_batch", messages)

    async def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        return await self._invoke("receive", max_messages, max_wait)

    async def complete(self, message: ReceivedMessage) -> None:
        await self._invoke("complete", message)

    async def retry(self, message: ReceivedMessage, delay: float | None = None) -> None:
        await self._invoke("retry", message, delay)

    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str | None = None) -> None:
        await self._invoke("dead_letter", message, reason, description)

    async def extend_lock(self, message: ReceivedMessage, duration: float | None = None) -> datetime | None:
        return await self._invoke("extend_lock", message, duration)

    async def check(self, *, send: bool = True, receive: bool = True) -> bool:
        if self._sync is None:
            return await self.transport.check(send=send, receive=receive)
        return await asyncio.to_thread(functools.partial(self._sync.check, send=send, receive=receive))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sync is None:
            await self.transport.close()
        else:
            await asyncio.to_thread(self._sync.close)


class _Harness:
    """The transports of one test, closed when the test ends."""

    def __init__(self, backend: ConformanceBackend, api: Literal["async", "sync"], stack: contextlib.AsyncExitStack):
        self.backend = backend
        self.api = api
        self._stack = stack

    async def _open(self, factory: TransportFactory) -> _Client:
        transport = factory()
        if inspect.isawaitable(transport):
            transport = await transport
        client = _Client(transport, self.api)
        self._stack.push_async_callback(client.close)
        await client.start()
        return client

    async def consumer(self) -> _Client:
        return await self._open(self.backend.transport)

    async def second_consumer(self) -> _Client:
        return await self._open(self.backend.second_consumer or self.backend.transport)

    async def dead_letter_receiver(self) -> _Client:
        if self.backend.dead_letter_receiver is None:
            pytest.skip("ConformanceBackend.dead_letter_receiver is not set, so dead-lettered messages cannot be read")
        return await self._open(self.backend.dead_letter_receiver)

    def lock_duration(self, client: _Client) -> float:
        """Return the entity's lock duration, or skip when it is unknown or too long to wait for."""
        duration = self.backend.lock_duration or client.capabilities.lock_duration
        if duration is None:
            pytest.skip(
                f"backend {client.backend_name!r} declares no lock_duration;"
                " set ConformanceBackend.lock_duration to run lock expiry tests"
            )
        if duration > _MAX_LOCK_TO_WAIT_FOR:
            pytest.skip(
                f"lock_duration of {duration:g} s is too long to wait for;"
                " give the test entity a lock of a few seconds"
            )
        return duration

    async def receive_one(self, client: _Client, wait: float | None = None) -> ReceivedMessage:
        """Receive exactly one message within ``wait`` seconds (the backend's timeout when None)."""
        messages = await self.receive_count(client, 1, wait)
        assert len(messages) == 1, f"expected 1 message within {wait or self.backend.timeout:g} s, got {len(messages)}"
        return messages[0]

    async def receive_count(
        self, client: _Client, count: int, wait: float | None = None, max_messages: int = 1
    ) -> list[ReceivedMessage]:
        """Receive until ``count`` messages arrived or ``wait`` seconds passed, and return the messages."""
        deadline = time.monotonic() + (self.backend.timeout if wait is None else wait)
        received: list[ReceivedMessage] = []
        while len(received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = await client.receive(min(max_messages, count - len(received)), min(remaining, 5.0))
            assert len(batch) <= max_messages, f"receive returned {len(batch)} messages for max_messages={max_messages}"
            received.extend(batch)
        return received

    async def assert_empty(self, client: _Client, expectation: str) -> None:
        leftover = await client.receive(10, self.backend.quiet_wait)
        assert leftover == [], f"{expectation}, but {len(leftover)} message(s) arrived"


@contextlib.asynccontextmanager
async def _harness(backend: ConformanceBackend, api: Literal["async", "sync"] = "async") -> AsyncIterator[_Harness]:
    # A generous bound for the whole test, so a broken backend fails instead of hanging.
    test_deadline = 6 * backend.timeout + 4 * (backend.lock_duration or 0) + 4 * backend.delay
    async with contextlib.AsyncExitStack() as stack:
        with anyio.fail_after(test_deadline):
            yield _Harness(backend, api, stack)


def _require(client: _Client, capability: str) -> None:
    if not getattr(client.capabilities, capability):
        pytest.skip(f"backend {client.backend_name!r} does not declare the {capability} capability")


def _new_id() -> str:
    return str(uuid.uuid4())


def _assert_properties_kept(received: ReceivedMessage, sent: OutgoingMessage) -> None:
    for key, value in sent.application_properties.items():
        assert key in received.application_properties, f"application property {key!r} is missing"
        kept = received.application_properties[key]
        assert kept == value, f"application property {key!r} changed from {value!r} to {kept!r}"
        assert type(kept) is type(value), f"application property {key!r} changed type to {type(kept).__name__}"


_EVERY_PROPERTY_TYPE = {
    "text": "OrderRequest",
    "integer": 42,
    "negative": -7,
    "fraction": 2.5,
    "flag_true": True,
    "flag_false": False,
    "nothing": None,
    "empty_text": "",
}


@pytest.mark.asyncio
class TransportConformance:
    """Base tests that every backend passes. Subclass it and override ``conformance_backend``."""

    @pytest.fixture
    def conformance_backend(self) -> ConformanceBackend:
        pytest.fail(
            f"{type(self).__name__} must override the conformance_backend fixture"
            " to return a ConformanceBackend bound to a fresh, empty entity",
            pytrace=False,
        )

    @pytest.fixture(params=["async", "sync"])
    def api(self, request: pytest.FixtureRequest) -> str:
        return request.param

    # round trip

    async def test_round_trip_every_field(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            sent = OutgoingMessage(
                body=b'{"OrderControlCode":"NW"}',
                content_type="application/json",
                message_id=_new_id(),
                correlation_id=_new_id(),
                subject="OrderRequest",
                application_properties=_EVERY_PROPERTY_TYPE,
                ordering_key="order-1" if client.capabilities.ordering_keys else None,
            )

            await client.send(sent)
            received = await harness.receive_one(client)

            assert received.body == sent.body
            assert received.content_type == sent.content_type
            assert received.message_id == sent.message_id
            assert received.correlation_id == sent.correlation_id
            assert received.subject == sent.subject
            _assert_properties_kept(received, sent)
            if sent.ordering_key is not None:
                assert received.ordering_key == sent.ordering_key
            assert received.delivery_count == 1
            if received.enqueued_time is not None:
                assert received.enqueued_time.tzinfo is not None, "enqueued_time must be timezone-aware"
            await client.complete(received)

    async def test_round_trip_unicode(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            sent = OutgoingMessage(
                body='{"Name":"Zoë Ångström 王秀英 🩺"}'.encode(),
                content_type="application/json; charset=utf-8",
                message_id=_new_id(),
                subject="Résultat",
                application_properties={"clinic": "Clínica São José", "note": "眼底 ✓"},
            )

            await client.send(sent)
            received = await harness.receive_one(client)

            assert received.body == sent.body
            assert received.subject == sent.subject
            assert received.content_type == sent.content_type
            _assert_properties_kept(received, sent)
            await client.complete(received)

    async def test_round_trip_empty_body(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            sent = OutgoingMessage(body=b"", content_type=None, message_id=_new_id())

            await client.send(sent)
            received = await harness.receive_one(client)

            assert received.body == b""
            assert received.message_id == sent.message_id
            await client.complete(received)

    async def test_body_at_max_size(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            size = conformance_backend.max_body_bytes or client.capabilities.max_message_bytes
            body = bytes(index % 251 for index in range(size))

            await client.send(OutgoingMessage(body=body, content_type=None))
            received = await harness.receive_one(client)

            assert len(received.body) == size
            assert received.body == body
            await client.complete(received)

    async def test_body_over_max_size_raises(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            size = (conformance_backend.max_body_bytes or client.capabilities.max_message_bytes) + 1

            with pytest.raises(MessageTooLargeError):
                await client.send(OutgoingMessage(body=b"x" * size, content_type=None))

            await harness.assert_empty(client, "a message over the size limit must not be sent")

    # sending

    async def test_batch_send(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            sent = [
                OutgoingMessage(body=f"batch {index}".encode(), message_id=_new_id(), application_properties={"n": index})
                for index in range(5)
            ]

            await client.send_batch(sent)
            received = await harness.receive_count(client, len(sent), max_messages=5)

            assert sorted(message.body for message in received) == sorted(message.body for message in sent)
            by_id = {message.message_id: message for message in received}
            for message in sent:
                assert by_id[message.message_id].application_properties.get("n") == message.application_properties["n"]
            for message in received:
                await client.complete(message)

    async def test_batch_with_oversized_message_sends_nothing(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            size = (conformance_backend.max_body_bytes or client.capabilities.max_message_bytes) + 1
            batch = [
                OutgoingMessage(body=b"small", content_type=None),
                OutgoingMessage(body=b"x" * size, content_type=None),
            ]

            with pytest.raises(MessageTooLargeError):
                await client.send_batch(batch)

            await harness.assert_empty(client, "a batch with a message over the size limit must not be sent")

    async def test_receive_respects_max_messages(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            await client.send_batch([OutgoingMessage(body=f"m{index}".encode()) for index in range(4)])

            received = await harness.receive_count(client, 4, max_messages=3)

            assert len(received) == 4
            for message in received:
                await client.complete(message)

    # settling

    async def test_complete_removes(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            await client.send(OutgoingMessage(body=b"once", message_id=_new_id()))

            received = await harness.receive_one(client)
            await client.complete(received)

            await harness.assert_empty(client, "a completed message must not be delivered again")

    async def test_retry_redelivers_with_rising_count(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            sent = OutgoingMessage(body=b"again", message_id=_new_id(), application_properties={"k": "v"})
            await client.send(sent)

            counts = []
            for _ in range(3):
                received = await harness.receive_one(client)
                assert received.message_id == sent.message_id
                assert received.body == sent.body
                counts.append(received.delivery_count)
                if len(counts) < 3:
                    await client.retry(received)

            assert counts == [1, 2, 3]
            _assert_properties_kept(received, sent)
            await client.complete(received)

    async def test_retry_with_delay(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "retry_delay")
            await client.send(OutgoingMessage(body=b"later"))
            first = await harness.receive_one(client)

            await client.retry(first, conformance_backend.delay)

            await harness.assert_empty(client, "a message retried with a delay must wait for the delay")
            again = await harness.receive_one(client, conformance_backend.delay + conformance_backend.timeout)
            assert again.body == b"later"
            assert again.delivery_count == 2
            await client.complete(again)

    async def test_dead_letter_keeps_message_and_reason(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            dead_letters = await harness.dead_letter_receiver()
            sent = OutgoingMessage(
                body='{"ResultObjectType":"OrderResult","é":1}'.encode(),
                content_type="application/json",
                message_id=_new_id(),
                correlation_id=_new_id(),
                subject="OrderResult",
                application_properties=_EVERY_PROPERTY_TYPE,
            )
            await client.send(sent)
            received = await harness.receive_one(client)

            await client.dead_letter(received, "HandlerFailed", "the handler raised ValueError")

            await harness.assert_empty(client, "a dead-lettered message must leave the queue")
            dead = await harness.receive_one(dead_letters)
            assert dead.body == sent.body
            assert dead.content_type == sent.content_type
            assert dead.message_id == sent.message_id
            assert dead.correlation_id == sent.correlation_id
            assert dead.subject == sent.subject
            _assert_properties_kept(dead, sent)
            assert dead.application_properties.get(DEAD_LETTER_REASON) == "HandlerFailed"
            assert dead.application_properties.get(DEAD_LETTER_DESCRIPTION) == "the handler raised ValueError"
            await dead_letters.complete(dead)

    async def test_max_delivery_count_dead_letters(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "native_dead_letter")
            _require(client, "max_delivery_count")
            dead_letters = await harness.dead_letter_receiver()
            limit = client.capabilities.max_delivery_count
            assert limit is not None
            if limit > 50:
                pytest.skip(f"max_delivery_count of {limit} is too high to exhaust in a test")
            await client.send(OutgoingMessage(body=b"poison", message_id=_new_id()))

            for delivery in range(1, limit + 1):
                received = await harness.receive_one(client)
                assert received.delivery_count == delivery
                await client.retry(received)

            await harness.assert_empty(client, f"a message delivered {limit} times must leave the queue")
            dead = await harness.receive_one(dead_letters)
            assert dead.body == b"poison"
            if conformance_backend.max_delivery_reason is not None:
                assert dead.application_properties.get(DEAD_LETTER_REASON) == conformance_backend.max_delivery_reason
            await dead_letters.complete(dead)

    # locks

    async def test_lock_extension_outlives_deadline(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "lock_extension")
            lock_duration = harness.lock_duration(client)
            other = await harness.second_consumer()
            await client.send(OutgoingMessage(body=b"long job"))
            received = await harness.receive_one(client)
            # The lock was taken before receive returned, so it ends by this time at the latest.
            original_deadline = time.monotonic() + lock_duration

            while time.monotonic() < original_deadline + lock_duration / 4:
                await client.extend_lock(received)
                await asyncio.sleep(lock_duration / 4)
            await client.extend_lock(received)

            stolen = await other.receive(1, min(conformance_backend.quiet_wait, lock_duration / 4))
            assert stolen == [], "another consumer received a message whose lock was extended"
            await client.complete(received)

    async def test_extend_lock_unsupported_raises(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            if client.capabilities.lock_extension:
                pytest.skip(f"only for backends without lock_extension, and {client.backend_name!r} declares it")
            await client.send(OutgoingMessage(body=b"x"))
            received = await harness.receive_one(client)

            with pytest.raises(UnsupportedOperationError):
                await client.extend_lock(received)

            await client.complete(received)

    async def test_settle_after_lock_expired_raises(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            lock_duration = harness.lock_duration(client)
            other = await harness.second_consumer()
            await client.send(OutgoingMessage(body=b"slow", message_id=_new_id()))
            first = await harness.receive_one(client)

            # Waiting for the redelivery, rather than sleeping, proves the lock expired.
            again = await harness.receive_one(other, lock_duration + conformance_backend.timeout)

            assert again.message_id == first.message_id
            assert again.delivery_count == 2
            with pytest.raises(LockLostError):
                await client.complete(first)
            await other.complete(again)

    async def test_two_consumers_never_share_message(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            first = await harness.consumer()
            second = await harness.second_consumer()
            count = 20
            await first.send_batch([OutgoingMessage(body=b"job", message_id=f"job-{index}") for index in range(count)])
            seen: set[str | None] = set()
            deadline = time.monotonic() + conformance_backend.timeout

            async def hold_messages(client: _Client) -> list[ReceivedMessage]:
                held: list[ReceivedMessage] = []
                while len(seen) < count and time.monotonic() < deadline:
                    batch = await client.receive(3, 0.2)
                    held.extend(batch)
                    seen.update(message.message_id for message in batch)
                return held

            held_by_first, held_by_second = await asyncio.gather(hold_messages(first), hold_messages(second))

            ids_first = [message.message_id for message in held_by_first]
            ids_second = [message.message_id for message in held_by_second]
            assert len(ids_first) == len(set(ids_first)), "one consumer received a message twice"
            assert len(ids_second) == len(set(ids_second)), "one consumer received a message twice"
            assert set(ids_first).isdisjoint(ids_second), "both consumers held the same message"
            assert set(ids_first) | set(ids_second) == {f"job-{index}" for index in range(count)}
            for message in held_by_first:
                await first.complete(message)
            for message in held_by_second:
                await second.complete(message)

    async def test_close_releases_unsettled(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            other = await harness.second_consumer()
            await client.send(OutgoingMessage(body=b"unfinished", message_id=_new_id()))
            received = await harness.receive_one(client)
            received_at = time.monotonic()

            await client.close()

            # Redelivery before the lock would have expired shows that close released it.
            lock_duration = conformance_backend.lock_duration or client.capabilities.lock_duration
            wait = conformance_backend.timeout
            if lock_duration is not None:
                wait = received_at + lock_duration * 0.9 - time.monotonic()
            again = await harness.receive_one(other, wait)
            assert again.message_id == received.message_id
            await other.complete(again)

    # ordering, scheduling, expiry

    async def test_ordering_key_order(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "ordering_keys")
            keys = ("patient-a", "patient-b")
            for sequence in range(3):
                for key in keys:
                    await client.send(
                        OutgoingMessage(body=f"{key}:{sequence}".encode(), ordering_key=key, message_id=_new_id())
                    )

            order: dict[str, list[int]] = {key: [] for key in keys}
            deadline = time.monotonic() + conformance_backend.timeout
            while sum(map(len, order.values())) < 6 and time.monotonic() < deadline:
                for message in await client.receive(10, 0.5):
                    key, sequence = message.body.decode().split(":")
                    assert message.ordering_key == key
                    order[key].append(int(sequence))
                    await client.complete(message)

            assert order == {key: [0, 1, 2] for key in keys}

    async def test_check_leaves_messages_in_place(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            await client.send(OutgoingMessage(body=b"stays", message_id=_new_id()))

            checked = await client.check(send=True, receive=True)
            if not checked:
                pytest.skip(f"backend {client.backend_name!r} cannot check its broker (check() returned False)")

            received = await harness.receive_one(client)
            assert received.body == b"stays"
            assert received.delivery_count == 1, "check() must not lock or count a delivery"
            await client.complete(received)

    async def test_receive_empty_returns_within_wait(self, conformance_backend: ConformanceBackend, api: str) -> None:
        async with _harness(conformance_backend, api) as harness:
            client = await harness.consumer()
            started = time.monotonic()

            received = await client.receive(1, 1.0)

            elapsed = time.monotonic() - started
            assert received == []
            assert elapsed < 1.0 + 10.0, f"receive(max_wait=1.0) on an empty entity took {elapsed:.1f} s"

    async def test_scheduled_delivery_waits(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "scheduled_delivery")
            when = datetime.now(timezone.utc) + timedelta(seconds=conformance_backend.delay)

            await client.send(OutgoingMessage(body=b"scheduled", scheduled_enqueue_time=when))

            await harness.assert_empty(client, "a scheduled message must not arrive before its time")
            received = await harness.receive_one(client, conformance_backend.delay + conformance_backend.timeout)
            assert received.body == b"scheduled"
            # One second of slack for clocks of the test and the broker that differ slightly.
            assert datetime.now(timezone.utc) >= when - timedelta(seconds=1)
            await client.complete(received)

    async def test_scheduled_delivery_unsupported_raises(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            if client.capabilities.scheduled_delivery:
                pytest.skip(f"only for backends without scheduled_delivery, and {client.backend_name!r} declares it")
            when = datetime.now(timezone.utc) + timedelta(seconds=conformance_backend.delay)

            with pytest.raises(UnsupportedOperationError):
                await client.send(OutgoingMessage(body=b"scheduled", scheduled_enqueue_time=when))

    async def test_time_to_live_expiry(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            _require(client, "time_to_live")
            await client.send(
                OutgoingMessage(
                    body=b"stale",
                    message_id=_new_id(),
                    time_to_live=timedelta(seconds=conformance_backend.delay),
                )
            )

            await asyncio.sleep(conformance_backend.delay + 1.0)

            await harness.assert_empty(client, "a message past its time-to-live must not be delivered")
            if conformance_backend.expiry_reason is not None:
                dead_letters = await harness.dead_letter_receiver()
                dead = await harness.receive_one(dead_letters)
                assert dead.body == b"stale"
                assert dead.application_properties.get(DEAD_LETTER_REASON) == conformance_backend.expiry_reason
                await dead_letters.complete(dead)

    async def test_time_to_live_unsupported_raises(self, conformance_backend: ConformanceBackend) -> None:
        async with _harness(conformance_backend) as harness:
            client = await harness.consumer()
            if client.capabilities.time_to_live:
                pytest.skip(f"only for backends without time_to_live, and {client.backend_name!r} declares it")

            with pytest.raises(UnsupportedOperationError):
                await client.send(OutgoingMessage(body=b"stale", time_to_live=timedelta(seconds=5)))
