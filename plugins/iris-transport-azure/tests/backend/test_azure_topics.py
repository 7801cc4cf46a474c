"""The azure backend on a topic and its subscriptions, and on a send-only key, against the emulator."""

from __future__ import annotations

import uuid

import pytest

from iris_transport.exceptions import AuthenticationError, ConfigurationError
from iris_transport.transport import OutgoingMessage
from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.settings import AzureServiceBusSettings
from iris_transport_azure.transport import AzureServiceBusTransport

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(120)]

LOCK_SECONDS = 4.0
RECEIVE_SECONDS = 10.0


@pytest.fixture
def topic(servicebus_emulator: ServiceBusEmulator) -> str:
    name = f"results-{uuid.uuid4().hex[:8]}"
    servicebus_emulator.create_topic(name, ["crm", "archive"], lock_duration=LOCK_SECONDS)
    return name


def subscription_settings(emulator: ServiceBusEmulator, topic: str, subscription: str, **overrides: object) -> AzureServiceBusSettings:
    values: dict[str, object] = {
        "connection_string": emulator.connection_string,
        "topic": topic,
        "subscription": subscription,
        "lock_duration": LOCK_SECONDS,
    }
    values.update(overrides)
    return AzureServiceBusSettings.model_validate(values)


async def test_topic_send_subscription_complete(servicebus_emulator, topic) -> None:
    settings = subscription_settings(servicebus_emulator, topic, "crm")

    async with AzureServiceBusTransport(settings, "results") as transport:
        await transport.send(OutgoingMessage(body=b'{"ResultObjectType": "OrderResult"}', message_id="result-1"))
        [received] = await transport.receive(1, RECEIVE_SECONDS)
        await transport.complete(received)

    assert received.message_id == "result-1"
    assert received.body == b'{"ResultObjectType": "OrderResult"}'
    assert received.delivery_count == 1
    assert servicebus_emulator.message_count(f"{topic}/Subscriptions/crm") == 0
    assert servicebus_emulator.message_count(f"{topic}/Subscriptions/archive") == 1


async def test_each_subscription_receives_copy(servicebus_emulator, topic) -> None:
    async with AzureServiceBusTransport(subscription_settings(servicebus_emulator, topic, "crm"), "results") as sender:
        await sender.send_batch([OutgoingMessage(body=b"{}", message_id=f"result-{index}") for index in range(3)])

    for subscription in ("crm", "archive"):
        settings = subscription_settings(servicebus_emulator, topic, subscription)
        async with AzureServiceBusTransport(settings, "results") as receiver:
            received = []
            for _ in range(3):
                received.extend(await receiver.receive(3 - len(received), RECEIVE_SECONDS))
                if len(received) == 3:
                    break
            for message in received:
                await receiver.complete(message)
        assert sorted(message.message_id for message in received) == ["result-0", "result-1", "result-2"]


async def test_subscription_dead_letter(servicebus_emulator, topic) -> None:
    settings = subscription_settings(servicebus_emulator, topic, "crm")

    async with AzureServiceBusTransport(settings, "results") as transport:
        await transport.send(OutgoingMessage(body=b"{}", message_id="bad-result"))
        [received] = await transport.receive(1, RECEIVE_SECONDS)
        await transport.dead_letter(received, "UnknownClientGuid", "the ClientGuid names no site")

    async with transport.dead_letter_transport() as dead_letters:
        assert dead_letters.receive_path == f"{topic}/subscriptions/crm/$deadletterqueue"
        [dead] = await dead_letters.receive(1, RECEIVE_SECONDS)
        await dead_letters.complete(dead)

    assert dead.message_id == "bad-result"
    assert dead.application_properties["DeadLetterReason"] == "UnknownClientGuid"
    assert dead.application_properties["DeadLetterErrorDescription"] == "the ClientGuid names no site"
    assert servicebus_emulator.message_count(f"{topic}/Subscriptions/archive/$DeadLetterQueue") == 0


async def test_subscription_retry_redelivers(servicebus_emulator, topic) -> None:
    settings = subscription_settings(servicebus_emulator, topic, "crm")

    async with AzureServiceBusTransport(settings, "results") as transport:
        await transport.send(OutgoingMessage(body=b"{}", message_id="retried"))
        [first] = await transport.receive(1, RECEIVE_SECONDS)
        await transport.retry(first)
        [second] = await transport.receive(1, RECEIVE_SECONDS)
        await transport.complete(second)

    assert second.message_id == "retried"
    assert second.delivery_count == 2


async def test_topic_receive_needs_subscription(servicebus_emulator, topic) -> None:
    settings = AzureServiceBusSettings(connection_string=servicebus_emulator.connection_string, topic=topic)

    async with AzureServiceBusTransport(settings, "results") as transport:
        await transport.send(OutgoingMessage(body=b"{}"))
        with pytest.raises(ConfigurationError, match="subscription is missing"):
            await transport.receive(1, 1.0)

    assert servicebus_emulator.message_count(f"{topic}/Subscriptions/crm") == 1


# a send-only key


@pytest.fixture
def secured_emulator():
    emulator = ServiceBusEmulator(
        topics={"results": ["crm"]},
        auto_create_queues=False,
        key_rights={"SendOnly": {"Send"}, "ListenOnly": {"Listen"}},
    )
    with emulator:
        yield emulator


async def test_send_only_key_sends(secured_emulator) -> None:
    settings = subscription_settings(secured_emulator, "results", "crm", connection_string=secured_emulator.connection_string_for("SendOnly"))

    async with AzureServiceBusTransport(settings, "results") as transport:
        await transport.send(OutgoingMessage(body=b"{}", message_id="sent-with-send-only"))
        await transport.send_batch([OutgoingMessage(body=b"{}"), OutgoingMessage(body=b"{}")])

    assert secured_emulator.message_count("results/Subscriptions/crm") == 3


async def test_send_only_key_cannot_receive(secured_emulator) -> None:
    # The SDK's default retries apply, so this also shows that the rejection does not hang.
    settings = subscription_settings(secured_emulator, "results", "crm", connection_string=secured_emulator.connection_string_for("SendOnly"))

    async with AzureServiceBusTransport(settings, "results") as transport:
        with pytest.raises(AuthenticationError) as caught:
            await transport.receive(1, 1.0)

    assert caught.value.transient is False
    assert "lacks the Listen right" in str(caught.value)
    assert "SharedAccessKey=" not in str(caught.value)


async def test_listen_only_key_cannot_send(secured_emulator) -> None:
    settings = subscription_settings(
        secured_emulator, "results", "crm", connection_string=secured_emulator.connection_string_for("ListenOnly"), retry_total=0
    )

    async with AzureServiceBusTransport(settings, "results") as transport:
        with pytest.raises(AuthenticationError, match="lacks the Send right"):
            await transport.send(OutgoingMessage(body=b"{}"))

    assert secured_emulator.message_count("results/Subscriptions/crm") == 0
