"""Queue, lock and timer rules of the emulator's store, driven by a manual clock."""

from __future__ import annotations

import pytest

from iris_transport_azure.emulator._codec import DATA, MessageParts, encode_section
from iris_transport_azure.emulator._store import LockLostError, MessageState, Outcome, QueueOptions, Store


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_store(clock: ManualClock, **options) -> Store:
    return Store(default_options=QueueOptions(**options), auto_create=True, clock=clock)


def parts(body: bytes = b"body", ttl_ms: int | None = None) -> MessageParts:
    return MessageParts(ttl_ms=ttl_ms, body_raw=encode_section(DATA, body))


def test_settle_after_lock_expiry_raises(clock):
    store = make_store(clock, lock_duration=2)
    queue = store.resolve("orders")
    store.enqueue(queue, parts())
    message = store.receive(queue, peek_lock=True)
    token = message.lock_token

    clock.now += 3
    with pytest.raises(LockLostError):
        store.settle(token, Outcome.COMPLETE)
    with pytest.raises(LockLostError):
        store.renew_lock(token)

    again = store.receive(queue, peek_lock=True)
    assert again is message
    assert again.delivery_attempts == 2
    assert again.lock_token != token


def test_release_does_not_count_attempt(clock):
    store = make_store(clock, max_delivery_count=1)
    queue = store.resolve("orders")
    store.enqueue(queue, parts())

    for _ in range(3):
        message = store.receive(queue, peek_lock=True)
        store.settle(message.lock_token, Outcome.RELEASE)

    assert message.delivery_attempts == 0
    assert message.state is MessageState.ACTIVE
    assert queue.dead_letter_queue.messages == {}


def test_lock_expiry_counts_toward_max_delivery(clock):
    store = make_store(clock, lock_duration=1, max_delivery_count=2)
    queue = store.resolve("orders")
    store.enqueue(queue, parts())

    for _ in range(2):
        assert store.receive(queue, peek_lock=True) is not None
        clock.now += 2
    assert store.receive(queue, peek_lock=True) is None

    (dead,) = queue.dead_letter_queue.messages.values()
    assert dead.parts.application_properties()["DeadLetterReason"] == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_source == "orders"


def test_expired_message_dropped_when_configured(clock):
    store = make_store(clock, dead_lettering_on_message_expiration=False)
    queue = store.resolve("orders")
    store.enqueue(queue, parts(ttl_ms=1000))

    clock.now += 2
    assert store.receive(queue, peek_lock=True) is None
    assert queue.dead_letter_queue.messages == {}


def test_locked_message_expires_after_its_lock(clock):
    store = make_store(clock, lock_duration=5)
    queue = store.resolve("orders")
    store.enqueue(queue, parts(ttl_ms=1000))
    message = store.receive(queue, peek_lock=True)

    clock.now += 2
    store.process_timers(queue)
    assert message.state is MessageState.LOCKED

    clock.now += 4
    store.process_timers(queue)
    assert message.sequence_number in queue.dead_letter_queue.messages


def test_scheduled_message_activates_on_time(clock):
    store = make_store(clock)
    queue = store.resolve("orders")
    store.enqueue(queue, parts(), scheduled_at=clock.now + 10)

    assert store.receive(queue, peek_lock=True) is None
    clock.now += 10
    message = store.receive(queue, peek_lock=True)
    assert message is not None
    assert message.enqueued_at == clock.now


def test_abandoned_deferred_message_stays_deferred(clock):
    store = make_store(clock)
    queue = store.resolve("orders")
    store.enqueue(queue, parts())
    message = store.receive(queue, peek_lock=True)
    store.settle(message.lock_token, Outcome.DEFER)

    (deferred,) = store.receive_deferred(queue, [message.sequence_number], peek_lock=True)
    store.settle(deferred.lock_token, Outcome.ABANDON)

    assert message.state is MessageState.DEFERRED
    assert store.receive(queue, peek_lock=True) is None


def test_entity_paths_resolve_case_insensitively(clock):
    store = make_store(clock)
    queue = store.create_queue("Orders")

    assert store.resolve("orders") is queue
    assert store.resolve("ORDERS/$deadletterqueue") is queue.dead_letter_queue
    assert store.resolve("/Orders/") is queue


def test_renewed_lock_expires_at_its_new_time(clock):
    store = make_store(clock, lock_duration=10)
    queue = store.resolve("orders")
    store.enqueue(queue, parts())
    message = store.receive(queue, peek_lock=True)

    clock.now += 8
    store.renew_lock(message.lock_token)
    clock.now += 8
    store.process_timers(queue)
    assert message.state is MessageState.LOCKED

    clock.now += 3
    store.process_timers(queue)
    assert message.state is MessageState.ACTIVE
    assert message.lock_token is None


def test_lock_expiry_releases_only_due_locks(clock):
    store = make_store(clock, lock_duration=5)
    orders = store.resolve("orders")
    events = store.resolve("events")
    for _ in range(3):
        store.enqueue(orders, parts())
    store.enqueue(events, parts())
    early = store.receive(orders, peek_lock=True)
    completed = store.receive(orders, peek_lock=True)
    other_queue = store.receive(events, peek_lock=True)
    store.settle(completed.lock_token, Outcome.COMPLETE)

    clock.now += 3
    late = store.receive(orders, peek_lock=True)
    clock.now += 3
    assert store.process_timers(orders)

    assert early.state is MessageState.ACTIVE
    assert early.delivery_attempts == 1
    assert late.state is MessageState.LOCKED
    assert other_queue.state is MessageState.LOCKED
    assert completed.sequence_number not in orders.messages


def test_thousands_of_locks_expire_together(clock):
    store = make_store(clock, lock_duration=1)
    queue = store.resolve("orders")
    for _ in range(5000):
        store.enqueue(queue, parts())
    locked = [store.receive(queue, peek_lock=True) for _ in range(5000)]

    clock.now += 2
    assert store.process_timers(queue)

    assert all(message.state is MessageState.ACTIVE for message in locked)
    assert store.receive(queue, peek_lock=True) is locked[0]
