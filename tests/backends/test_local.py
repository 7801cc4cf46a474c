"""Behaviour of the local backend beyond the conformance suite."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

from iris_transport.backends.local import (
    DEAD_LETTER_DESCRIPTION_PROPERTY,
    DEAD_LETTER_REASON_PROPERTY,
    LOCAL_CAPABILITIES,
    LOCAL_MAX_MESSAGE_BYTES,
    MAX_DELIVERY_COUNT_EXCEEDED,
    LocalSettings,
    LocalTransport,
)
from iris_transport.exceptions import (
    ConfigurationError,
    LockLostError,
    MessageTooLargeError,
    TransportError,
    UnsupportedOperationError,
)
from iris_transport.transport import OutgoingMessage, ReceivedMessage, SyncTransport

WORKER = Path(__file__).with_name("local_worker.py")


@pytest.fixture
def settings(tmp_path: Path) -> LocalSettings:
    return LocalSettings(path=tmp_path / "queues.sqlite3", poll_interval=0.01)


async def receive_one(transport: LocalTransport, wait: float = 10.0) -> ReceivedMessage:
    messages = await transport.receive(1, max_wait=wait)
    assert len(messages) == 1, f"expected 1 message within {wait} s"
    return messages[0]


# settings


def test_settings_defaults() -> None:
    settings = LocalSettings()

    assert settings.path == Path("iris-transport-queues.sqlite3")
    assert settings.queue is None
    assert settings.lock_duration == 30.0
    assert settings.max_delivery_count == 10
    assert settings.poll_interval == 0.05


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lock_duration", 0),
        ("lock_duration", -1),
        ("max_delivery_count", 0),
        ("poll_interval", 0),
        ("queue", ""),
        ("queue", "orders/$deadletterqueue"),
        ("unknown_option", 1),
    ],
)
def test_settings_reject_invalid_value(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        LocalSettings(**{field: value})

    assert caught.value.errors()[0]["loc"] == (field,)


def test_capabilities_follow_settings(settings: LocalSettings) -> None:
    transport = LocalTransport(settings.model_copy(update={"lock_duration": 7.0, "max_delivery_count": 3}), "orders")

    assert transport.capabilities.lock_duration == 7.0
    assert transport.capabilities.max_delivery_count == 3
    assert transport.capabilities.max_message_bytes == LOCAL_CAPABILITIES.max_message_bytes
    assert LOCAL_CAPABILITIES.max_message_bytes == 1024 * 1024


def test_queue_defaults_to_channel(settings: LocalSettings) -> None:
    assert LocalTransport(settings, "results").queue == "results"
    assert LocalTransport(settings.model_copy(update={"queue": "inbox"}), "results").queue == "inbox"


def test_repr_names_file_and_queue(settings: LocalSettings) -> None:
    text = repr(LocalTransport(settings, "events"))

    assert "queues.sqlite3" in text
    assert "events" in text


async def test_missing_directory_raises(tmp_path: Path) -> None:
    transport = LocalTransport(LocalSettings(path=tmp_path / "absent" / "q.sqlite3"), "orders")

    with pytest.raises(ConfigurationError, match="does not exist"):
        await transport.send(OutgoingMessage(body=b"x"))
    await transport.close()


async def test_newer_schema_raises(settings: LocalSettings) -> None:
    with sqlite3.connect(settings.path) as connection:
        connection.execute("PRAGMA user_version = 99")
    connection.close()
    transport = LocalTransport(settings, "orders")

    with pytest.raises(ConfigurationError, match="newer iris-transport"):
        await transport.receive(1, max_wait=0)
    await transport.close()


async def test_file_uses_wal(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x"))

    connection = sqlite3.connect(settings.path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


async def test_new_file_waits_for_other_writer(settings: LocalSettings) -> None:
    # A connection writing to a file still in rollback-journal mode makes
    # SQLite fail the switch to WAL at once instead of waiting.
    blocker = sqlite3.connect(settings.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("CREATE TABLE other_tool (x)")
    asyncio.get_running_loop().call_later(0.5, blocker.execute, "COMMIT")

    try:
        async with LocalTransport(settings, "orders") as transport:
            await asyncio.wait_for(transport.send(OutgoingMessage(body=b"x")), 20)
            received = await receive_one(transport)
            await transport.complete(received)
    finally:
        blocker.close()

    assert received.body == b"x"


# sending


async def test_every_field_round_trips(settings: LocalSettings) -> None:
    scheduled = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    sent = OutgoingMessage(
        body=b"{}",
        content_type="application/json",
        message_id="m-1",
        correlation_id="c-1",
        subject="OrderRequest",
        application_properties={"a": 1, "b": 1.0, "c": True, "d": None, "e": "é"},
        ordering_key="k",
        time_to_live=timedelta(days=400, microseconds=1),
        scheduled_enqueue_time=scheduled,
    )

    async with LocalTransport(settings, "orders") as transport:
        await transport.send(sent)
        received = await receive_one(transport)

    assert received.body == sent.body
    assert received.content_type == sent.content_type
    assert received.message_id == sent.message_id
    assert received.correlation_id == sent.correlation_id
    assert received.subject == sent.subject
    assert received.application_properties == sent.application_properties
    assert [type(value) for value in received.application_properties.values()] == [int, float, bool, type(None), str]
    assert received.ordering_key == sent.ordering_key
    assert received.time_to_live == sent.time_to_live
    assert received.scheduled_enqueue_time == scheduled
    assert received.scheduled_enqueue_time.tzinfo == timezone.utc
    assert received.enqueued_time is not None
    assert received.enqueued_time.tzinfo == timezone.utc
    assert received.delivery_count == 1


async def test_none_fields_stay_none(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x", content_type=None))
        received = await receive_one(transport)

    assert received.content_type is None
    assert received.message_id is None
    assert received.correlation_id is None
    assert received.subject is None
    assert received.ordering_key is None
    assert received.time_to_live is None
    assert received.scheduled_enqueue_time is None
    assert received.application_properties == {}


async def test_naive_scheduled_time_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(ValueError, match="scheduled_enqueue_time must be timezone-aware"):
            await transport.send(OutgoingMessage(body=b"x", scheduled_enqueue_time=datetime(2030, 1, 1)))


async def test_non_positive_time_to_live_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(ValueError, match="time_to_live must be positive"):
            await transport.send(OutgoingMessage(body=b"x", time_to_live=timedelta(0)))


async def test_property_of_wrong_type_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(TypeError, match=r"messages\[1\]\.application_properties\['tags'\] has type list"):
            await transport.send_batch(
                [OutgoingMessage(body=b"ok"), OutgoingMessage(body=b"x", application_properties={"tags": ["a"]})]
            )
        assert await transport.receive(1, max_wait=0) == []


async def test_text_body_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(TypeError, match="body must be bytes"):
            await transport.send(OutgoingMessage(body="text"))  # type: ignore[arg-type]


async def test_oversized_properties_raise(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(MessageTooLargeError, match="application_properties"):
            await transport.send(OutgoingMessage(body=b"x", application_properties={"big": "x" * 70_000}))


async def test_max_body_with_properties_fits(settings: LocalSettings) -> None:
    body = b"x" * LOCAL_MAX_MESSAGE_BYTES
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=body, message_id="big", application_properties={"p": "v"}))
        received = await receive_one(transport)

    assert received.body == body


async def test_queues_in_one_file_are_separate(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as orders, LocalTransport(settings, "events") as events:
        await orders.send(OutgoingMessage(body=b"order"))

        assert await events.receive(1, max_wait=0.2) == []
        assert (await receive_one(orders)).body == b"order"


# settling


async def test_messages_survive_reopen(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send_batch([OutgoingMessage(body=f"m{index}".encode()) for index in range(3)])

    async with LocalTransport(settings, "orders") as transport:
        received = await transport.receive(10, max_wait=1)

    assert [message.body for message in received] == [b"m0", b"m1", b"m2"]


async def test_close_releases_and_counts_delivery(settings: LocalSettings) -> None:
    first = LocalTransport(settings, "orders")
    await first.send(OutgoingMessage(body=b"x"))
    await receive_one(first)
    await first.close()

    async with LocalTransport(settings, "orders") as second:
        # lock_duration is 30 s, so an immediate redelivery proves the release.
        again = await receive_one(second, wait=0.5)

    assert again.delivery_count == 2


async def test_close_is_idempotent(settings: LocalSettings) -> None:
    transport = LocalTransport(settings, "orders")
    await transport.send(OutgoingMessage(body=b"x"))

    await transport.close()
    await transport.close()

    with pytest.raises(TransportError, match="closed"):
        await transport.receive(1, max_wait=0)


async def test_expired_lease_rejects_every_settlement(tmp_path: Path) -> None:
    settings = LocalSettings(path=tmp_path / "q.sqlite3", lock_duration=0.3, poll_interval=0.01)
    async with LocalTransport(settings, "orders") as first, LocalTransport(settings, "orders") as second:
        await first.send(OutgoingMessage(body=b"x"))
        stale = await receive_one(first)
        fresh = await receive_one(second)

        with pytest.raises(LockLostError):
            await first.complete(stale)
        with pytest.raises(LockLostError):
            await first.retry(stale)
        with pytest.raises(LockLostError):
            await first.dead_letter(stale, "Late")
        with pytest.raises(LockLostError):
            await first.extend_lock(stale)
        assert fresh.delivery_count == 2
        await second.complete(fresh)


async def test_complete_twice_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x"))
        received = await receive_one(transport)
        await transport.complete(received)

        with pytest.raises(LockLostError):
            await transport.complete(received)


async def test_extend_lock_returns_new_expiry(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x"))
        received = await receive_one(transport)

        expiry = await transport.extend_lock(received, 120)

        assert expiry is not None
        assert expiry.tzinfo == timezone.utc
        assert expiry > datetime.now(timezone.utc) + timedelta(seconds=100)
        await transport.complete(received)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
async def test_non_finite_durations_raise(settings: LocalSettings, seconds: float) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x"))
        received = await receive_one(transport)

        with pytest.raises(ValueError, match="duration must be a finite number"):
            await transport.extend_lock(received, seconds)
        with pytest.raises(ValueError, match="delay must be a finite number"):
            await transport.retry(received, seconds)
        await transport.complete(received)


async def test_nan_max_wait_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(ValueError, match="max_wait must be 0 or more"):
            await asyncio.wait_for(transport.receive(1, max_wait=float("nan")), 10)


async def test_foreign_message_raises(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        with pytest.raises(ValueError, match="not received from a local transport"):
            await transport.complete(ReceivedMessage(body=b"x"))


async def test_expired_lease_reaches_dead_letter_after_max_deliveries(tmp_path: Path) -> None:
    settings = LocalSettings(path=tmp_path / "q.sqlite3", lock_duration=0.2, max_delivery_count=1, poll_interval=0.01)
    async with LocalTransport(settings, "orders") as transport, transport.dead_letter_transport() as dead_letters:
        await transport.send(OutgoingMessage(body=b"poison"))
        await receive_one(transport)

        # The dead-letter reader moves the message once its only lease expires.
        dead = await receive_one(dead_letters)

    assert dead.body == b"poison"
    assert dead.application_properties[DEAD_LETTER_REASON_PROPERTY] == MAX_DELIVERY_COUNT_EXCEEDED
    assert "1 times" in str(dead.application_properties[DEAD_LETTER_DESCRIPTION_PROPERTY])


async def test_dead_letter_queue_rejects_send_and_dead_letter(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport, transport.dead_letter_transport() as dead_letters:
        await transport.send(OutgoingMessage(body=b"x"))
        await transport.dead_letter(await receive_one(transport), "Invalid")
        dead = await receive_one(dead_letters)

        with pytest.raises(UnsupportedOperationError):
            await dead_letters.send(OutgoingMessage(body=b"x"))
        with pytest.raises(UnsupportedOperationError):
            await dead_letters.dead_letter(dead, "Again")
        assert DEAD_LETTER_DESCRIPTION_PROPERTY not in dead.application_properties
        await dead_letters.complete(dead)


async def test_dead_letter_requires_reason(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send(OutgoingMessage(body=b"x"))
        received = await receive_one(transport)

        with pytest.raises(ValueError, match="reason"):
            await transport.dead_letter(received, "")
        await transport.complete(received)


# ordering keys


async def test_ordering_key_holds_back_later_messages(settings: LocalSettings) -> None:
    async with LocalTransport(settings, "orders") as transport:
        await transport.send_batch(
            [
                OutgoingMessage(body=b"a0", ordering_key="a"),
                OutgoingMessage(body=b"a1", ordering_key="a"),
                OutgoingMessage(body=b"free"),
                OutgoingMessage(body=b"b0", ordering_key="b"),
            ]
        )

        first = await transport.receive(10, max_wait=1)
        assert [message.body for message in first] == [b"a0", b"free", b"b0"]

        await transport.retry(first[0])
        again = await transport.receive(10, max_wait=1)
        assert [message.body for message in again] == [b"a0"]

        await transport.complete(again[0])
        last = await transport.receive(10, max_wait=1)
        assert [message.body for message in last] == [b"a1"]


# processes


def test_two_producer_processes(settings: LocalSettings) -> None:
    producers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "produce", "--path", str(settings.path), "--prefix", prefix, "--count", "100"],
            stdout=subprocess.DEVNULL,
        )
        for prefix in ("p", "q")
    ]
    for producer in producers:
        assert producer.wait(timeout=120) == 0

    async def drain() -> list[str | None]:
        async with LocalTransport(settings, "jobs") as transport:
            received = await transport.receive(500, max_wait=1)
            for message in received:
                await transport.complete(message)
            return [message.message_id for message in received]

    message_ids = asyncio.run(drain())

    expected = {f"{prefix}-{index}" for prefix in ("p", "q") for index in range(100)}
    assert len(message_ids) == 200
    assert set(message_ids) == expected
    for prefix in ("p", "q"):
        own = [message_id for message_id in message_ids if message_id.startswith(prefix)]
        assert own == [f"{prefix}-{index}" for index in range(100)], "one producer's messages came out of order"


def test_sync_transport_round_trip(settings: LocalSettings) -> None:
    with SyncTransport(LocalTransport(settings, "orders")) as transport:
        transport.send(OutgoingMessage(body=b"sync"))
        received = transport.receive(1, max_wait=5)
        transport.complete(received[0])
        leftover = transport.receive(1, max_wait=0.1)

    assert received[0].body == b"sync"
    assert leftover == []
