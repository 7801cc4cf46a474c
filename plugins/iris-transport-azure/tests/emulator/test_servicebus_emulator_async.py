"""The Service Bus emulator against the official async SDK client (azure.servicebus.aio)."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageLockLostError, MessagingEntityNotFoundError
from servicebus_helpers import receive_until_async

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(90)]


@pytest.fixture
async def client(servicebus_emulator):
    async with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        yield client


async def send(client, queue_name, *messages):
    async with client.get_queue_sender(queue_name) as sender:
        await sender.send_messages(list(messages))


async def test_send_receive_complete(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    await send(client, queue_name, ServiceBusMessage("hello", message_id="m", subject="OrderRequest"))

    async with client.get_queue_receiver(queue_name) as receiver:
        (message,) = await receive_until_async(receiver, 1)
        await receiver.complete_message(message)
        assert await receiver.receive_messages(max_message_count=1, max_wait_time=1) == []

    assert str(message) == "hello"
    assert message.message_id == "m"
    assert message.subject == "OrderRequest"
    assert servicebus_emulator.message_count(queue_name) == 0


async def test_batch_send(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    async with client.get_queue_sender(queue_name) as sender:
        batch = await sender.create_message_batch()
        for index in range(3):
            batch.add_message(ServiceBusMessage(f"message {index}"))
        await sender.send_messages(batch)

    async with client.get_queue_receiver(queue_name) as receiver:
        messages = await receive_until_async(receiver, 3)
        for message in messages:
            await receiver.complete_message(message)
    assert [str(message) for message in messages] == ["message 0", "message 1", "message 2"]


async def test_abandon_then_dead_letter(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    await send(client, queue_name, ServiceBusMessage("flaky", message_id="m"))

    async with client.get_queue_receiver(queue_name) as receiver:
        (first,) = await receive_until_async(receiver, 1)
        await receiver.abandon_message(first)
        (second,) = await receive_until_async(receiver, 1)
        await receiver.dead_letter_message(second, reason="HandlerFailed", error_description="KeyError: LocalId")

    async with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = await receive_until_async(dead_letters, 1)
        await dead_letters.complete_message(dead)

    assert [first.delivery_count, second.delivery_count] == [0, 1]
    assert dead.message_id == "m"
    assert dead.dead_letter_reason == "HandlerFailed"
    assert dead.dead_letter_error_description == "KeyError: LocalId"


async def test_lock_renewal_and_expiry(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name, lock_duration=2)
    await send(client, queue_name, ServiceBusMessage("renewed"), ServiceBusMessage("expired"))

    async with client.get_queue_receiver(queue_name) as receiver:
        renewed, expired = await receive_until_async(receiver, 2)
        for _ in range(3):
            await asyncio.sleep(1)
            await receiver.renew_message_lock(renewed)
        await receiver.complete_message(renewed)

        with pytest.raises(MessageLockLostError):
            await receiver.complete_message(expired)
        (again,) = await receive_until_async(receiver, 1)
        await receiver.complete_message(again)

    assert str(again) == "expired"
    assert again.delivery_count == 1


async def test_defer_peek_and_schedule(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    await send(client, queue_name, ServiceBusMessage("deferred", message_id="m"))
    scheduled_time = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    async with client.get_queue_sender(queue_name) as sender:
        (scheduled_number,) = await sender.schedule_messages(ServiceBusMessage("scheduled"), scheduled_time)

    async with client.get_queue_receiver(queue_name) as receiver:
        (message,) = await receive_until_async(receiver, 1)
        await receiver.defer_message(message)

        # Without a sequence number, the SDK peeks from the last received one on.
        peeked = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert [item.sequence_number for item in peeked] == [message.sequence_number, scheduled_number]

        (deferred,) = await receiver.receive_deferred_messages([message.sequence_number])
        await receiver.complete_message(deferred)

    async with client.get_queue_sender(queue_name) as sender:
        await sender.cancel_scheduled_messages(scheduled_number)
    assert servicebus_emulator.message_count(queue_name) == 0


async def test_receive_and_delete(servicebus_emulator, client, queue_name):
    servicebus_emulator.create_queue(queue_name)
    await send(client, queue_name, ServiceBusMessage("once"))

    async with client.get_queue_receiver(
        queue_name, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        (message,) = await receive_until_async(receiver, 1)
    assert str(message) == "once"
    assert servicebus_emulator.message_count(queue_name) == 0


async def test_unknown_queue_fails_fast(client):
    with pytest.raises(MessagingEntityNotFoundError):
        async with client.get_queue_sender("no-such-queue") as sender:
            await sender.send_messages(ServiceBusMessage("lost"))
