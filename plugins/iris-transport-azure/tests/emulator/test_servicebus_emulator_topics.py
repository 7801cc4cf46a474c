"""Topics, subscriptions and SAS key rights of the Service Bus emulator, against the official sync SDK."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)
from click.testing import CliRunner
from servicebus_helpers import receive_until

from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.emulator._access import parse_token
from iris_transport_azure.emulator.cli import servicebus_command

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(90)]

ACCESS_ERRORS = (ServiceBusAuthenticationError, ServiceBusAuthorizationError)
KEY_RIGHTS = {"SendOnly": {"Send"}, "ListenOnly": {"Listen"}, "Admin": {"Manage"}}


@pytest.fixture
def client(servicebus_emulator):
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        yield client


@pytest.fixture
def secured_emulator():
    with ServiceBusEmulator(
        queues=["orders"], topics={"results": ["crm"]}, auto_create_queues=False, key_rights=KEY_RIGHTS
    ) as emulator:
        yield emulator


def client_for(emulator: ServiceBusEmulator, key_name: str) -> ServiceBusClient:
    # retry_total=0 makes a rejected link fail at once instead of after the SDK's backoff.
    return ServiceBusClient.from_connection_string(emulator.connection_string_for(key_name), retry_total=0)


# topics and subscriptions


def test_topic_copies_to_each_subscription(servicebus_emulator, client):
    servicebus_emulator.create_topic("results", ["crm", "archive"])
    with client.get_topic_sender("results") as sender:
        sender.send_messages([ServiceBusMessage("first", message_id="m-1"), ServiceBusMessage("second", message_id="m-2")])

    for subscription in ("crm", "archive"):
        with client.get_subscription_receiver("results", subscription) as receiver:
            messages = receive_until(receiver, 2)
            for message in messages:
                receiver.complete_message(message)
        assert [message.message_id for message in messages] == ["m-1", "m-2"]
        assert [str(message) for message in messages] == ["first", "second"]
        assert [message.sequence_number for message in messages] == [1, 2]
        assert servicebus_emulator.message_count(f"results/Subscriptions/{subscription}") == 0


def test_subscription_settles_independently(servicebus_emulator, client):
    servicebus_emulator.create_topic("results", ["crm", "archive"])
    with client.get_topic_sender("results") as sender:
        sender.send_messages(ServiceBusMessage("result"))

    with client.get_subscription_receiver("results", "crm") as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)

    assert servicebus_emulator.message_count("results/Subscriptions/crm") == 0
    assert servicebus_emulator.message_count("results/Subscriptions/archive") == 1


def test_subscription_dead_letter_queue(servicebus_emulator, client):
    servicebus_emulator.create_topic("results", ["crm", "archive"])
    with client.get_topic_sender("results") as sender:
        sender.send_messages(ServiceBusMessage("result", application_properties={"ResultObjectType": "OrderResult"}))

    with client.get_subscription_receiver("results", "crm") as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.dead_letter_message(message, reason="UnknownClientGuid", error_description="no such site")

    with client.get_subscription_receiver("results", "crm", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        (dead,) = receive_until(receiver, 1)
        receiver.complete_message(dead)
    assert dead.dead_letter_reason == "UnknownClientGuid"
    assert dead.dead_letter_error_description == "no such site"
    assert dead.dead_letter_source == "results/Subscriptions/crm"
    assert dead.application_properties[b"ResultObjectType"] == b"OrderResult"

    # The other subscription's copy keeps its own application properties.
    with client.get_subscription_receiver("results", "archive") as receiver:
        (copy,) = receive_until(receiver, 1)
        receiver.complete_message(copy)
    assert copy.dead_letter_reason is None


def test_topic_names_match_case_insensitively(servicebus_emulator, client):
    servicebus_emulator.create_topic("Results", ["CRM"])
    with client.get_topic_sender("RESULTS") as sender:
        sender.send_messages(ServiceBusMessage("result"))

    with client.get_subscription_receiver("results", "crm") as receiver:
        (message,) = receive_until(receiver, 1)
        receiver.complete_message(message)
    assert str(message) == "result"


def test_topic_schedule_and_cancel(servicebus_emulator, client):
    servicebus_emulator.create_topic("results", ["crm", "archive"])
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with client.get_topic_sender("results") as sender:
        (kept,) = sender.schedule_messages(ServiceBusMessage("kept"), later)
        (cancelled,) = sender.schedule_messages(ServiceBusMessage("cancelled"), later)
        sender.cancel_scheduled_messages(cancelled)

    for subscription in ("crm", "archive"):
        with client.get_subscription_receiver("results", subscription) as receiver:
            peeked = receiver.peek_messages(max_message_count=10)
        assert [message.sequence_number for message in peeked] == [kept]
        assert [str(message) for message in peeked] == ["kept"]


def test_topic_without_subscriptions_accepts_sends(servicebus_emulator, client):
    servicebus_emulator.create_topic("results")
    with client.get_topic_sender("results") as sender:
        sender.send_messages(ServiceBusMessage("nobody listens"))

    servicebus_emulator.create_topic("results", ["crm"])
    assert servicebus_emulator.message_count("results/Subscriptions/crm") == 0


def test_receive_from_topic_fails(servicebus_emulator):
    servicebus_emulator.create_topic("results", ["crm"])
    with client_for(servicebus_emulator, "RootManageSharedAccessKey") as client:
        with pytest.raises(ServiceBusError, match="is a topic"):
            with client.get_queue_receiver("results") as receiver:
                receiver.receive_messages(max_wait_time=1)


def test_unknown_subscription_not_found(servicebus_emulator, client):
    servicebus_emulator.create_topic("results", ["crm"])
    with pytest.raises(MessagingEntityNotFoundError):
        with client.get_subscription_receiver("results", "billing") as receiver:
            receiver.receive_messages(max_wait_time=1)


def test_queue_and_topic_share_names(servicebus_emulator):
    servicebus_emulator.create_queue("orders")
    servicebus_emulator.create_topic("results")

    with pytest.raises(ValueError, match="a queue has that name"):
        servicebus_emulator.create_topic("Orders", ["crm"])
    with pytest.raises(ValueError, match="a topic has that name"):
        servicebus_emulator.create_queue("RESULTS")


def test_topics_given_at_construction():
    with ServiceBusEmulator(topics={"results": ["crm", "archive"]}, auto_create_queues=False) as emulator:
        assert emulator.message_count("results/Subscriptions/crm") == 0
        assert emulator.message_count("results/Subscriptions/archive/$DeadLetterQueue") == 0
        with pytest.raises(LookupError, match="is a topic"):
            emulator.message_count("results")


def test_topics_reject_a_string_of_subscriptions():
    with pytest.raises(ValueError, match="list of subscription names"):
        ServiceBusEmulator(topics={"results": "crm"})


def test_cli_serves_topic():
    command = [sys.executable, "-m", "iris_transport_azure.emulator", "--port", "0", "--topic", "results:crm,archive"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The reader thread ends when the process ends, so a missing line fails after the timeout instead of hanging.
    reader = ThreadPoolExecutor(1)
    try:
        lines = [reader.submit(process.stdout.readline).result(timeout=30) for _ in range(2)]
        assert lines[0].startswith("Service Bus emulator listening on 127.0.0.1:")
        connection_string = lines[1].removeprefix("Connection string: ").strip()

        with ServiceBusClient.from_connection_string(connection_string) as client:
            with client.get_topic_sender("results") as sender:
                sender.send_messages(ServiceBusMessage("result"))
            for subscription in ("crm", "archive"):
                with client.get_subscription_receiver("results", subscription) as receiver:
                    (message,) = receive_until(receiver, 1)
                    receiver.complete_message(message)
                assert str(message) == "result"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.shutdown(wait=True)
        process.stdout.close()

    assert process.returncode == 0


def test_cli_rejects_topic_without_subscriptions():
    result = CliRunner().invoke(servicebus_command, ["--port", "0", "--topic", "results"])

    assert result.exit_code == 2
    assert "not NAME:SUB1,SUB2" in result.output


# SAS key rights


def test_token_parsing():
    token = parse_token("SharedAccessSignature sr=sb%3A%2F%2Fhost%2Fresults&sig=abc%3D&se=1700000000&skn=SendOnly")

    assert token is not None
    assert token.audience == "sb://host/results"
    assert token.key_name == "SendOnly"
    assert parse_token("Bearer eyJ0eXAi") is None


def test_send_only_key_sends(secured_emulator):
    with client_for(secured_emulator, "SendOnly") as client:
        with client.get_topic_sender("results") as sender:
            sender.send_messages(ServiceBusMessage("result"))
        with client.get_queue_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("order"))

    assert secured_emulator.message_count("results/Subscriptions/crm") == 1
    assert secured_emulator.message_count("orders") == 1


def test_send_only_key_cannot_receive(secured_emulator):
    with client_for(secured_emulator, "SendOnly") as client:
        with pytest.raises(ACCESS_ERRORS, match="lacks the Listen right"):
            with client.get_subscription_receiver("results", "crm") as receiver:
                receiver.receive_messages(max_wait_time=1)
        with pytest.raises(ACCESS_ERRORS, match="lacks the Listen right"):
            with client.get_queue_receiver("orders") as receiver:
                receiver.receive_messages(max_wait_time=1)


def test_listen_only_key_cannot_send(secured_emulator):
    with client_for(secured_emulator, "ListenOnly") as client:
        with pytest.raises(ACCESS_ERRORS, match="lacks the Send right"):
            with client.get_topic_sender("results") as sender:
                sender.send_messages(ServiceBusMessage("result"))

    assert secured_emulator.message_count("results/Subscriptions/crm") == 0


def test_listen_only_key_receives(secured_emulator):
    with client_for(secured_emulator, "Admin") as client:
        with client.get_topic_sender("results") as sender:
            sender.send_messages(ServiceBusMessage("result"))

    with client_for(secured_emulator, "ListenOnly") as client:
        with client.get_subscription_receiver("results", "crm") as receiver:
            (message,) = receive_until(receiver, 1)
            receiver.complete_message(message)
            assert receiver.peek_messages(max_message_count=1) == []
    assert secured_emulator.message_count("results/Subscriptions/crm") == 0


def test_unknown_key_name_rejected(secured_emulator):
    with client_for(secured_emulator, "RootManageSharedAccessKey") as client:
        with pytest.raises(ACCESS_ERRORS, match="is not configured"):
            with client.get_queue_sender("orders") as sender:
                sender.send_messages(ServiceBusMessage("order"))


def test_key_rights_reject_unknown_rights():
    with pytest.raises(ValueError, match="unknown rights"):
        ServiceBusEmulator(key_rights={"SendOnly": {"Write"}})
