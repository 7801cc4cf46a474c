"""The Service Bus emulator against the official sync SDK client, over a real socket."""

from __future__ import annotations

import datetime
import time

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
)
from azure.servicebus import ServiceBusMessageState
from servicebus_helpers import receive_until

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(90)]


@pytest.fixture
def client(servicebus_emulator):
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        yield client


def send(client, queue_name, *messages):
    with client.get_queue_sender(queue_name) as sender:
        sender.send_messages(list(messages))


def test_send_receive_complete(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage(b'{"OrderControlCode": "NW"}'))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        assert b"".join(message.body) == b'{"OrderControlCode": "NW"}'
        assert message.delivery_count == 0
        assert message.sequence_number == 1
        assert message.lock_token is not None
        assert message.enqueued_time_utc is not None
        receiver.complete_message(message)

        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []
    assert servicebus_emulator.message_count(queue_name) == 0


def test_batch_send_keeps_order(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    with client.get_queue_sender(queue_name) as sender:
        batch = sender.create_message_batch()
        for index in range(5):
            batch.add_message(ServiceBusMessage(f"message {index}", message_id=f"id-{index}"))
        sender.send_messages(batch)

    with client.get_queue_receiver(queue_name) as receiver:
        messages = receive_until(receiver, 5)
        for message in messages:
            receiver.complete_message(message)

    assert [message.message_id for message in messages] == [f"id-{index}" for index in range(5)]
    assert [str(message) for message in messages] == [f"message {index}" for index in range(5)]
    assert [message.sequence_number for message in messages] == [1, 2, 3, 4, 5]


def test_message_properties_round_trip(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    sent = ServiceBusMessage(
        b"\x00\xffbinary body",
        application_properties={"ResultObjectType": "OrderResult", "Attempt": 3, "Ratio": 0.5, "Final": True},
        message_id="message-1",
        correlation_id="correlation-1",
        subject="OrderResult",
        content_type="application/json",
        reply_to="events",
        to="results",
    )
    send(client, queue_name, sent)

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)

    assert b"".join(message.body) == b"\x00\xffbinary body"
    assert message.application_properties == {
        b"ResultObjectType": b"OrderResult",
        b"Attempt": 3,
        b"Ratio": 0.5,
        b"Final": True,
    }
    assert message.message_id == "message-1"
    assert message.correlation_id == "correlation-1"
    assert message.subject == "OrderResult"
    assert message.content_type == "application/json"
    assert message.reply_to == "events"
    assert message.to == "results"


def test_abandon_redelivers_with_rising_count(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("retry me", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        lock_tokens = set()
        (first,) = receive_until(receiver, 1)
        lock_tokens.add(first.lock_token)
        receiver.abandon_message(first)
        (second,) = receive_until(receiver, 1)
        lock_tokens.add(second.lock_token)
        receiver.abandon_message(second)
        (third,) = receive_until(receiver, 1)
        lock_tokens.add(third.lock_token)
        receiver.complete_message(third)

    assert [first.message_id, second.message_id, third.message_id] == ["m", "m", "m"]
    assert [first.delivery_count, second.delivery_count, third.delivery_count] == [0, 1, 2]
    assert len(lock_tokens) == 3


def test_dead_letter_with_reason(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("poison", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.dead_letter_message(
            message, reason="ValidationFailed", error_description="OrderRequest.Patient.Dob is missing"
        )
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []

    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(dead_letters, 1)
        dead_letters.complete_message(dead)

    assert dead.message_id == "m"
    assert str(dead) == "poison"
    assert dead.dead_letter_reason == "ValidationFailed"
    assert dead.dead_letter_error_description == "OrderRequest.Patient.Dob is missing"
    assert dead.sequence_number == message.sequence_number
    assert servicebus_emulator.message_count(f"{queue_name}/$DeadLetterQueue") == 0


def test_renewed_lock_outlives_lock_duration(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, lock_duration=2)
    send(client, queue_name, ServiceBusMessage("slow work"))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        first_expiry = message.locked_until_utc
        for _ in range(3):
            time.sleep(1)
            new_expiry = receiver.renew_message_lock(message)
        assert new_expiry > first_expiry
        receiver.complete_message(message)

        assert receiver.receive_messages(max_message_count=1, max_wait_time=3) == []
    assert servicebus_emulator.message_count(queue_name) == 0


def test_expired_lock_redelivers(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, lock_duration=2)
    send(client, queue_name, ServiceBusMessage("forgotten", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        (first,) = receive_until(receiver, 1)
        (second,) = receive_until(receiver, 1)
        assert second.lock_token != first.lock_token
        receiver.complete_message(second)

    assert second.message_id == "m"
    assert second.delivery_count == first.delivery_count + 1


def test_settle_after_lock_expiry_fails(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, lock_duration=2)
    send(client, queue_name, ServiceBusMessage("late"))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        time.sleep(2.5)
        with pytest.raises(MessageLockLostError):
            receiver.complete_message(message)
        with pytest.raises(MessageLockLostError):
            receiver.renew_message_lock(message)

        (again,) = receive_until(receiver, 1)
        receiver.complete_message(again)
    assert again.delivery_count == 1


def test_max_delivery_count_dead_letters(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, max_delivery_count=2)
    send(client, queue_name, ServiceBusMessage("always fails", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        for _ in range(2):
            (message,) = receive_until(receiver, 1)
            receiver.abandon_message(message)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []

    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(dead_letters, 1)
        dead_letters.complete_message(dead)
    assert dead.message_id == "m"
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_error_description


def test_expired_message_dead_letters(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("stale", message_id="m", time_to_live=datetime.timedelta(seconds=1)))

    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(dead_letters, 1)
        dead_letters.complete_message(dead)
    assert dead.message_id == "m"
    assert dead.dead_letter_reason == "TTLExpiredException"

    with client.get_queue_receiver(queue_name) as receiver:
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []


def test_default_message_ttl_dead_letters(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, default_message_ttl=1)
    send(client, queue_name, ServiceBusMessage("stale", message_id="m"))

    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(dead_letters, 1)
        dead_letters.complete_message(dead)
    assert dead.dead_letter_reason == "TTLExpiredException"


def test_scheduled_message_waits_for_its_time(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    scheduled_time = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    with client.get_queue_sender(queue_name) as sender:
        (sequence_number,) = sender.schedule_messages(ServiceBusMessage("later", message_id="m"), scheduled_time)

    with client.get_queue_receiver(queue_name) as receiver:
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []
        (message,) = receive_until(receiver, 1)
        received_at = datetime.datetime.now(datetime.timezone.utc)
        receiver.complete_message(message)

    assert message.message_id == "m"
    assert message.sequence_number == sequence_number
    assert received_at >= scheduled_time
    assert message.scheduled_enqueue_time_utc is not None


def test_cancelled_scheduled_message_never_arrives(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    scheduled_time = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    with client.get_queue_sender(queue_name) as sender:
        sequence_numbers = sender.schedule_messages(
            [ServiceBusMessage("cancelled 1"), ServiceBusMessage("cancelled 2")], scheduled_time
        )
        assert len(sequence_numbers) == 2
        sender.cancel_scheduled_messages(sequence_numbers)

    with client.get_queue_receiver(queue_name) as receiver:
        assert receiver.peek_messages(max_message_count=10) == []
        time.sleep(3)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []


def test_deferred_message_received_by_sequence_number(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("not yet", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.defer_message(message)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []

        (deferred,) = receiver.receive_deferred_messages([message.sequence_number])
        assert deferred.message_id == "m"
        assert deferred.lock_token is not None
        assert deferred.locked_until_utc is not None
        receiver.complete_message(deferred)

        assert receiver.peek_messages(max_message_count=10) == []
    assert servicebus_emulator.message_count(queue_name) == 0


def test_deferred_message_dead_lettered(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("defer then fail", message_id="m"))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.defer_message(message)
        (deferred,) = receiver.receive_deferred_messages([message.sequence_number])
        receiver.dead_letter_message(deferred, reason="Rejected", error_description="no handler")

    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(dead_letters, 1)
        dead_letters.complete_message(dead)
    assert dead.dead_letter_reason == "Rejected"
    assert dead.dead_letter_error_description == "no handler"


def test_peek_leaves_messages_in_place(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, *(ServiceBusMessage(f"message {index}") for index in range(3)))

    with client.get_queue_receiver(queue_name) as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
        assert [message.sequence_number for message in peeked] == [1, 2, 3]
        assert [str(message) for message in peeked] == ["message 0", "message 1", "message 2"]

        received = receive_until(receiver, 3)
        for message in received:
            receiver.complete_message(message)
    assert [message.sequence_number for message in received] == [1, 2, 3]


def test_receive_and_delete_needs_no_settlement(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("once", message_id="m"))

    with client.get_queue_receiver(queue_name, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        (message,) = receive_until(receiver, 1)
    assert message.message_id == "m"
    assert servicebus_emulator.message_count(queue_name) == 0


def test_closed_receiver_releases_prefetched(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, *(ServiceBusMessage(f"message {index}") for index in range(3)))

    with client.get_queue_receiver(queue_name, prefetch_count=10) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)

    with client.get_queue_receiver(queue_name) as receiver:
        rest = receive_until(receiver, 2)
        for message in rest:
            receiver.complete_message(message)
    assert [message.delivery_count for message in rest] == [0, 0]


def test_unknown_queue_fails_fast(client):
    with pytest.raises(MessagingEntityNotFoundError):
        with client.get_queue_sender("no-such-queue") as sender:
            sender.send_messages(ServiceBusMessage("lost"))

    with pytest.raises(MessagingEntityNotFoundError):
        with client.get_queue_receiver("no-such-queue") as receiver:
            receiver.receive_messages(max_message_count=1, max_wait_time=5)


def test_queue_names_match_case_insensitively(servicebus_emulator, client):
    servicebus_emulator.create_queue("Orders")
    send(client, "orders", ServiceBusMessage("mixed case"))

    with client.get_queue_receiver("ORDERS") as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)
    assert str(message) == "mixed case"


def test_large_message_round_trip(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    body = bytes(range(256)) * 800  # 200 KiB, under the default 256 KiB limit
    send(client, queue_name, ServiceBusMessage(body))

    with client.get_queue_receiver(queue_name) as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)
    assert b"".join(message.body) == body


def test_oversized_message_rejected_by_sdk(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, max_message_size=64 * 1024)
    with client.get_queue_sender(queue_name) as sender:
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * 100 * 1024))
        sender.send_messages(ServiceBusMessage(b"x" * 10 * 1024))
    assert servicebus_emulator.message_count(queue_name) == 1


def test_peeked_message_states(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    send(client, queue_name, ServiceBusMessage("active"), ServiceBusMessage("deferred"))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with client.get_queue_sender(queue_name) as sender:
        sender.schedule_messages(ServiceBusMessage("scheduled"), later)

    with client.get_queue_receiver(queue_name) as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
        assert [message.state for message in peeked] == [
            ServiceBusMessageState.ACTIVE,
            ServiceBusMessageState.ACTIVE,
            ServiceBusMessageState.SCHEDULED,
        ]
