"""Consumer settlement, retries, dead-lettering, lock renewal and shutdown, on the real local backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable

import pytest

from iris_transport.backends.local import LocalTransport
from iris_transport.codec import message_decoder
from iris_transport.exceptions import (
    ConfigurationError,
    MessageValidationError,
    TransportConnectionError,
    ValidationProblem,
)
from iris_transport.runtime import (
    Consumer,
    MemoryDeduplicationStore,
    RetryPolicy,
    SQLiteDeduplicationStore,
    SyncConsumer,
)
from iris_transport.transport import OutgoingMessage, ReceivedMessage

from .conftest import LOCK_DURATION, decode_json, drain, json_message, send_all, wait_until

FAST_BACKOFF = RetryPolicy(initial_delay=0.05, max_delay=0.2)


def make_consumer(transport: LocalTransport, handler: Callable, **options: object) -> Consumer:
    options.setdefault("decode", decode_json)
    options.setdefault("backoff", FAST_BACKOFF)
    options.setdefault("receive_wait", 0.2)
    return Consumer(transport, handler, **options)


async def run_until(consumer: Consumer, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run ``consumer`` until ``condition`` holds, then stop it and re-raise anything ``run`` raised."""
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: condition() or task.done(), timeout)
    finally:
        await asyncio.wait_for(consumer.stop(), 60)
    await task


async def dead_letters(make_transport: Callable[..., LocalTransport]) -> list[ReceivedMessage]:
    return await drain(make_transport().dead_letter_transport())


async def test_handler_failing_twice_then_completes(make_transport):
    await send_all(make_transport(), json_message("tx-1"))
    deliveries: list[int] = []
    completed = threading.Event()

    def handler(message: ReceivedMessage) -> None:
        deliveries.append(message.delivery_count)
        if len(deliveries) < 3:
            raise RuntimeError("temporary failure")
        completed.set()

    consumer = make_consumer(make_transport(), handler, decode=None, max_attempts=5)
    await run_until(consumer, completed.is_set)

    assert deliveries == [1, 2, 3]
    assert await drain(make_transport()) == []
    assert await dead_letters(make_transport) == []


async def test_handler_always_raising_is_dead_lettered(make_transport):
    await send_all(make_transport(), json_message("tx-1"))
    calls: list[int] = []

    class GradingServiceDown(Exception):
        pass

    async def handler(document: dict) -> None:
        calls.append(1)
        raise GradingServiceDown("grading service returned 503")

    consumer = make_consumer(make_transport(), handler, max_attempts=3)
    dead: list[ReceivedMessage] = []

    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: len(calls) >= 3 or task.done())
        for _ in range(100):
            dead.extend(await dead_letters(make_transport))
            if dead:
                break
    finally:
        await asyncio.wait_for(consumer.stop(), 60)
    await task

    assert len(calls) == 3
    assert len(dead) == 1
    assert dead[0].message_id == "msg-tx-1"
    assert dead[0].application_properties["DeadLetterReason"] == "GradingServiceDown"
    assert dead[0].application_properties["DeadLetterErrorDescription"] == "grading service returned 503"
    assert await drain(make_transport()) == []


async def test_exception_message_left_out_on_request(make_transport):
    await send_all(make_transport(), json_message("tx-1"))

    def handler(document: dict) -> None:
        raise ValueError("a value that must not leave the process")

    consumer = make_consumer(make_transport(), handler, max_attempts=1, include_exception_message=False)
    dead: list[ReceivedMessage] = []

    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            dead.extend(await dead_letters(make_transport))
            if dead:
                break
    finally:
        await asyncio.wait_for(consumer.stop(), 60)
    await task

    assert len(dead) == 1
    assert dead[0].application_properties["DeadLetterReason"] == "ValueError"
    assert dead[0].application_properties.get("DeadLetterErrorDescription") is None


async def test_undecodable_body_dead_lettered_at_once(make_transport, caplog):
    await send_all(make_transport(), OutgoingMessage(body=b'{"TransactionId": "tx-1",\n "Patient" }', message_id="bad"))
    calls: list[object] = []
    decode = message_decoder(json.loads)
    consumer = make_consumer(make_transport(), calls.append, decode=decode, max_attempts=5)
    dead: list[ReceivedMessage] = []

    caplog.set_level(logging.INFO, logger="iris_transport.runtime.consumer")
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            dead.extend(await dead_letters(make_transport))
            if dead:
                break
    finally:
        await asyncio.wait_for(consumer.stop(), 60)
    await task

    assert calls == []
    assert "retrying" not in caplog.text
    assert len(dead) == 1
    assert dead[0].application_properties["DeadLetterReason"] == "DecodeError"
    description = dead[0].application_properties["DeadLetterErrorDescription"]
    assert "line 2, column 12" in description
    assert "Patient" not in description


async def test_invalid_message_dead_lettered_as_validation_error(make_transport):
    await send_all(make_transport(), json_message("tx-1"))

    def decode(message: ReceivedMessage) -> dict:
        raise MessageValidationError("OrderResult", [ValidationProblem("Patient.Dob", "field required")])

    calls: list[object] = []
    consumer = make_consumer(make_transport(), calls.append, decode=decode)
    dead: list[ReceivedMessage] = []

    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            dead.extend(await dead_letters(make_transport))
            if dead:
                break
    finally:
        await asyncio.wait_for(consumer.stop(), 60)
    await task

    assert calls == []
    assert dead[0].application_properties["DeadLetterReason"] == "ValidationError"
    assert "Patient.Dob: field required" in dead[0].application_properties["DeadLetterErrorDescription"]


@pytest.mark.parametrize("handler_kind", ["sync", "async"])
async def test_handler_outliving_lock_keeps_message(make_transport, handler_kind):
    await send_all(make_transport(), json_message("tx-1"))
    started = threading.Event()
    finished = threading.Event()
    handling_time = LOCK_DURATION * 2.5

    def sync_handler(document: dict) -> None:
        started.set()
        time.sleep(handling_time)
        finished.set()

    async def async_handler(document: dict) -> None:
        started.set()
        await asyncio.sleep(handling_time)
        finished.set()

    handler = sync_handler if handler_kind == "sync" else async_handler
    consumer = make_consumer(make_transport(), handler)
    task = asyncio.create_task(consumer.run())
    rival = make_transport()
    stolen: list[ReceivedMessage] = []
    try:
        await wait_until(started.is_set)
        while not finished.is_set():
            stolen.extend(await rival.receive(max_messages=1, max_wait=0.2))
        await wait_until(lambda: not consumer._active)
    finally:
        await rival.close()
        await asyncio.wait_for(consumer.stop(), 60)
    await task

    assert stolen == []
    assert await drain(make_transport()) == []


async def test_duplicate_transaction_id_handled_once_in_memory(make_transport):
    await check_deduplication(make_transport, MemoryDeduplicationStore())


async def test_duplicate_transaction_id_handled_once_in_sqlite(make_transport, tmp_path):
    store = SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3")
    try:
        await check_deduplication(make_transport, store)
    finally:
        store.close()


class CountingStore:
    """Count the claims a real store has returned, so a test can wait for the duplicate."""

    def __init__(self, store) -> None:
        self.store = store
        self.claims = 0

    async def claim(self, key: str) -> bool:
        claimed = await self.store.claim(key)
        self.claims += 1
        return claimed

    async def confirm(self, key: str) -> None:
        await self.store.confirm(key)

    async def release(self, key: str) -> None:
        await self.store.release(key)


async def check_deduplication(make_transport, store) -> None:
    await send_all(
        make_transport(),
        json_message("tx-1", message_id="first"),
        json_message("tx-1", message_id="second"),
        json_message("tx-2", message_id="third"),
    )
    handled: list[str] = []
    counting = CountingStore(store)
    consumer = make_consumer(
        make_transport(),
        lambda document: handled.append(document["TransactionId"]),
        dedup=counting,
        dedup_key=lambda document: document["TransactionId"],
    )

    await run_until(consumer, lambda: counting.claims == 3 and not consumer._active)

    assert sorted(handled) == ["tx-1", "tx-2"]
    assert await drain(make_transport()) == []
    assert await dead_letters(make_transport) == []


async def test_failed_handler_releases_dedup_key(make_transport):
    await send_all(make_transport(), json_message("tx-1"))
    attempts: list[int] = []

    def handler(document: dict) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("temporary failure")

    consumer = make_consumer(
        make_transport(),
        handler,
        dedup=MemoryDeduplicationStore(),
        dedup_key=lambda document: document["TransactionId"],
    )
    await run_until(consumer, lambda: len(attempts) >= 2)

    assert len(attempts) == 2
    assert await drain(make_transport()) == []


async def test_stop_releases_prefetched_messages(make_transport):
    await send_all(make_transport(), *(json_message(f"tx-{i}") for i in range(4)))
    started = threading.Event()
    release = threading.Event()
    handled: list[str] = []

    def handler(document: dict) -> None:
        started.set()
        release.wait(30)
        handled.append(document["TransactionId"])

    consumer = make_consumer(make_transport(), handler, concurrency=1, prefetch=3)
    task = asyncio.create_task(consumer.run())
    await wait_until(lambda: started.is_set() and len(consumer._buffer) == 3)

    stopping = asyncio.create_task(consumer.stop())
    await wait_until(lambda: not consumer._buffer)
    release.set()
    await asyncio.wait_for(stopping, 60)
    await task

    assert handled == ["tx-0"]
    # The released messages are visible at once, long before their locks would expire.
    left = await drain(make_transport(), wait=LOCK_DURATION / 4)
    assert sorted(json.loads(message.body)["TransactionId"] for message in left) == ["tx-1", "tx-2", "tx-3"]


async def test_stop_abandons_handler_after_deadline(make_transport, caplog):
    await send_all(make_transport(), json_message("tx-1"))
    started = threading.Event()
    release = threading.Event()

    def handler(document: dict) -> None:
        started.set()
        release.wait(30)

    consumer = make_consumer(make_transport(), handler, shutdown_timeout=0.5)
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(started.is_set)
        with caplog.at_level(logging.WARNING, logger="iris_transport.runtime.consumer"):
            await asyncio.wait_for(consumer.stop(), 30)
        await asyncio.wait_for(task, 30)
    finally:
        release.set()

    assert "Abandoning the handler of message msg-tx-1" in caplog.text
    # The message was not completed: it comes back once released or expired.
    left = await drain(make_transport(), wait=LOCK_DURATION * 2)
    assert [message.message_id for message in left] == ["msg-tx-1"]


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("handler_kind", ["sync", "async"])
def test_handler_exit_stops_consumer_cleanly(make_transport, exception, handler_kind):
    asyncio.run(send_all(make_transport(), json_message("tx-1")))
    store = MemoryDeduplicationStore()

    def sync_handler(document: dict) -> None:
        raise exception()

    async def async_handler(document: dict) -> None:
        raise exception()

    handler = sync_handler if handler_kind == "sync" else async_handler
    transport = make_transport()
    consumer = SyncConsumer(
        transport,
        handler,
        decode=decode_json,
        receive_wait=0.2,
        dedup=store,
        dedup_key=lambda document: document["TransactionId"],
    )
    raised: list[BaseException] = []

    def run() -> None:
        # The event loop re-raises these from run(), so it runs in its own thread and loop.
        try:
            consumer.run()
        except BaseException as err:
            raised.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)

    assert not thread.is_alive()
    assert [type(err) for err in raised] == [exception]
    assert transport._closed
    assert asyncio.run(store.claim("tx-1"))
    # Given back at once, long before its lock would expire.
    left = asyncio.run(drain(make_transport(), wait=LOCK_DURATION / 4))
    assert [message.message_id for message in left] == ["msg-tx-1"]


async def test_abandoned_handler_releases_dedup_key(make_transport):
    await send_all(make_transport(), json_message("tx-1"))
    store = MemoryDeduplicationStore()
    started = threading.Event()
    release = threading.Event()

    async def handler(document: dict) -> None:
        started.set()
        await asyncio.sleep(60)

    consumer = make_consumer(
        make_transport(),
        handler,
        shutdown_timeout=0.5,
        dedup=store,
        dedup_key=lambda document: document["TransactionId"],
    )
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(started.is_set)
        await asyncio.wait_for(consumer.stop(), 30)
        await asyncio.wait_for(task, 30)
    finally:
        release.set()

    assert await store.claim("tx-1")


async def test_retry_held_when_backend_cannot_delay(make_transport):
    await send_all(make_transport(), json_message("tx-1"))
    attempts: list[float] = []

    def handler(document: dict) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("temporary failure")

    transport = make_transport()
    transport.capabilities = dataclasses.replace(transport.capabilities, retry_delay=False)
    consumer = make_consumer(transport, handler, backoff=RetryPolicy(initial_delay=0.5, max_delay=0.5, jitter=0))
    await run_until(consumer, lambda: len(attempts) >= 2)

    assert len(attempts) == 2
    assert await drain(make_transport()) == []


class FlakyReceiveTransport(LocalTransport):
    """A real local transport whose first receives fail as if the connection dropped."""

    failures_left = 2

    async def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        if self.failures_left:
            self.failures_left -= 1
            raise TransportConnectionError("connection reset", backend=self.backend_name)
        return await super().receive(max_messages, max_wait)


async def test_transient_receive_errors_are_retried(make_transport, settings, caplog):
    await send_all(make_transport(), json_message("tx-1"))
    handled: list[dict] = []
    consumer = make_consumer(FlakyReceiveTransport(settings, "results"), handled.append)

    with caplog.at_level(logging.INFO, logger="iris_transport.runtime.consumer"):
        await run_until(consumer, lambda: bool(handled))

    assert len(handled) == 1
    assert "Receive failed (1 failures in a row)" in caplog.text
    assert "Receive recovered after 2 failures" in caplog.text


async def test_permanent_receive_error_stops_consumer(make_transport, tmp_path, caplog):
    transport = make_transport(path=tmp_path / "missing-directory" / "queues.sqlite3")
    consumer = make_consumer(transport, lambda document: None)

    with caplog.at_level(logging.ERROR, logger="iris_transport.runtime.consumer"):
        with pytest.raises(ConfigurationError, match="does not exist"):
            await asyncio.wait_for(consumer.run(), 30)

    assert "the local backend is not usable" in caplog.text
    assert "Traceback" not in caplog.text


async def test_sync_consumer_stops_from_another_thread(make_transport):
    await send_all(make_transport(), json_message("tx-1"), json_message("tx-2"))
    handled: list[str] = []
    consumer = SyncConsumer(
        make_transport(),
        lambda document: handled.append(document["TransactionId"]),
        decode=decode_json,
        receive_wait=0.2,
        concurrency=2,
    )
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        await wait_until(lambda: len(handled) == 2)
    finally:
        stopped = await asyncio.to_thread(consumer.stop, 60)
        thread.join(60)

    assert stopped
    assert not thread.is_alive()
    assert sorted(handled) == ["tx-1", "tx-2"]


def test_consumer_rejects_invalid_options(make_transport):
    transport = make_transport()

    with pytest.raises(ValueError, match="concurrency must be more than 0"):
        Consumer(transport, print, concurrency=0)
    with pytest.raises(ValueError, match="prefetch must be 0 or more"):
        Consumer(transport, print, prefetch=-1)
    with pytest.raises(ValueError, match="dedup and dedup_key go together"):
        Consumer(transport, print, dedup=MemoryDeduplicationStore())


def test_consumer_warns_when_broker_dead_letters_first(make_transport, caplog):
    with caplog.at_level(logging.WARNING, logger="iris_transport.runtime.consumer"):
        Consumer(make_transport(max_delivery_count=3), print, max_attempts=5)

    assert "more than the local backend's max delivery count of 3" in caplog.text


async def test_handlers_run_up_to_concurrency(make_transport):
    await send_all(make_transport(), *(json_message(f"tx-{i}") for i in range(6)))
    # Each group of three handlers waits for all three to arrive, which only
    # happens if three run at the same time.
    barrier = threading.Barrier(3, timeout=30)
    lock = threading.Lock()
    running = 0
    peak = 0
    handled: list[str] = []

    def handler(document: dict) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        barrier.wait()
        with lock:
            running -= 1
            handled.append(document["TransactionId"])

    consumer = make_consumer(make_transport(), handler, concurrency=3, prefetch=2)
    await run_until(consumer, lambda: len(handled) == 6)

    assert sorted(handled) == [f"tx-{i}" for i in range(6)]
    assert peak == 3
    assert await drain(make_transport()) == []
