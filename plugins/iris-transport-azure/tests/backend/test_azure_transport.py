"""Azure transport behaviour beyond the conformance suite: settings, errors, send-only use, defer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from iris_transport.cli import main
from iris_transport.exceptions import EntityNotFoundError, MessageTooLargeError, TransportError
from iris_transport.plugins import create_plugin_manager, create_transport
from iris_transport.transport import OutgoingMessage
from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.settings import AzureServiceBusSettings
from iris_transport_azure.transport import AzureServiceBusTransport

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(120)]

SECRET = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleQ=="


# settings


def test_settings_need_a_way_to_connect() -> None:
    with pytest.raises(ValidationError, match="set connection_string, or namespace with credential"):
        AzureServiceBusSettings(queue="orders")


def test_settings_namespace_needs_credential() -> None:
    with pytest.raises(ValidationError, match="namespace needs credential"):
        AzureServiceBusSettings(namespace="iris.servicebus.windows.net")


def test_settings_namespace_normalised() -> None:
    settings = AzureServiceBusSettings(namespace="sb://iris.servicebus.windows.net/", credential="default")

    assert settings.namespace == "iris.servicebus.windows.net"
    assert settings.credential == "default"


def test_settings_sas_token_is_secret() -> None:
    settings = AzureServiceBusSettings(namespace="iris.servicebus.windows.net", credential="SharedAccessSignature sr=x&sig=y")

    assert "sig=y" not in repr(settings)
    assert settings.credential.get_secret_value() == "SharedAccessSignature sr=x&sig=y"


def test_settings_subscription_needs_topic() -> None:
    with pytest.raises(ValidationError, match="subscription needs topic"):
        AzureServiceBusSettings(connection_string=SECRET, subscription="iris")


def test_settings_reject_dead_letter_path() -> None:
    with pytest.raises(ValidationError, match="entity name"):
        AzureServiceBusSettings(connection_string=SECRET, queue="orders/$deadletterqueue")


def test_settings_repr_hides_connection_string() -> None:
    settings = AzureServiceBusSettings(connection_string=SECRET)

    assert "c2VjcmV0" not in repr(settings)
    assert "c2VjcmV0" not in str(settings.model_dump())
    assert "c2VjcmV0" not in repr(AzureServiceBusTransport(settings, "orders"))


def test_capabilities_follow_settings() -> None:
    settings = AzureServiceBusSettings(connection_string=SECRET, sessions=True, lock_duration=10, max_delivery_count=3)

    capabilities = AzureServiceBusTransport(settings, "orders").capabilities

    assert capabilities.ordering_keys
    assert capabilities.lock_duration == 10
    assert capabilities.max_delivery_count == 3
    assert not capabilities.retry_delay


def test_backend_registered_through_entry_point() -> None:
    transport = create_transport("azure", {"connection_string": SECRET, "queue": "orders"}, "orders", create_plugin_manager())

    assert isinstance(transport, AzureServiceBusTransport)
    assert transport.entity == "orders"


def test_queue_defaults_to_channel_name() -> None:
    transport = AzureServiceBusTransport(AzureServiceBusSettings(connection_string=SECRET), "results")

    assert transport.entity == "results"
    assert transport.receive_path == "results"
    assert transport.dead_letter_transport().receive_path == "results/$deadletterqueue"


# sending


@pytest.mark.parametrize(
    ("properties", "error", "match"),
    [
        ({"nested": {"a": 1}}, TypeError, "'nested' is a dict"),
        ({"items": [1]}, TypeError, "'items' is a list"),
        ({"huge": 2**64}, ValueError, "'huge' is outside the signed 64-bit range"),
    ],
)
async def test_invalid_property_rejected_before_sending(make_settings, properties, error, match) -> None:
    async with AzureServiceBusTransport(make_settings(), "orders") as transport:
        with pytest.raises(error, match=match):
            await transport.send(OutgoingMessage(body=b"{}", application_properties=properties))


async def test_too_large_error_names_size_and_limit(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(max_message_bytes=4096), "orders") as transport:
        with pytest.raises(MessageTooLargeError) as caught:
            await transport.send(OutgoingMessage(body=b"x" * 5000))

    assert caught.value.limit == 4096 - 512
    assert caught.value.size > 5000
    assert f"of {caught.value.size} bytes" in str(caught.value)
    assert f"limit of {caught.value.limit} bytes" in str(caught.value)


async def test_large_batch_split_by_size(make_settings, servicebus_emulator: ServiceBusEmulator, queue_name) -> None:
    messages = [OutgoingMessage(body=bytes([index]) * 100_000, message_id=f"big-{index}") for index in range(6)]

    async with AzureServiceBusTransport(make_settings(), "orders") as transport:
        await transport.send_batch(messages)

    assert servicebus_emulator.message_count(queue_name) == 6


async def test_send_only_opens_no_receiver(make_settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="iris_transport_azure")

    async with AzureServiceBusTransport(make_settings(), "orders") as transport:
        await transport.send(OutgoingMessage(body=b"{}"))

    attached = [record.getMessage() for record in caplog.records if "Attached" in record.getMessage()]
    assert attached == []


async def test_unknown_queue_is_entity_not_found(servicebus_emulator: ServiceBusEmulator) -> None:
    settings = AzureServiceBusSettings(connection_string=servicebus_emulator.connection_string, queue="missing", retry_total=0)

    async with AzureServiceBusTransport(settings, "orders") as transport:
        with pytest.raises(EntityNotFoundError) as caught:
            await transport.send(OutgoingMessage(body=b"{}"))

    assert caught.value.transient is False
    assert "SharedAccessKey=" not in str(caught.value)


async def test_check_passes_on_existing_queue(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(), "events") as transport:
        assert await transport.check(send=True, receive=True) is True


async def test_check_unknown_queue_is_entity_not_found(servicebus_emulator: ServiceBusEmulator) -> None:
    settings = AzureServiceBusSettings(connection_string=servicebus_emulator.connection_string, queue="missing", retry_total=0)

    for send, receive in ((True, False), (False, True)):
        async with AzureServiceBusTransport(settings, "orders") as transport:
            with pytest.raises(EntityNotFoundError):
                await transport.check(send=send, receive=receive)


async def test_check_leaves_messages_unlocked(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(), "events") as transport:
        await transport.send(OutgoingMessage(body=b"{}", message_id="m-1"))
        await transport.check(send=False, receive=True)
        [message] = await transport.receive(1, 10.0)

    assert message.message_id == "m-1"
    assert message.delivery_count == 1


# receiving


async def test_defer_and_receive_deferred(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(), "events") as transport:
        await transport.send(OutgoingMessage(body=b"{}", message_id="later"))
        [received] = await transport.receive(1, 10)

        sequence_number = await transport.defer(received)
        assert await transport.receive(1, 1.0) == []
        [again] = await transport.receive_deferred([sequence_number])

        assert again.message_id == "later"
        await transport.complete(again)


async def test_extend_lock_returns_new_expiry(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(), "events") as transport:
        await transport.send(OutgoingMessage(body=b"{}"))
        [received] = await transport.receive(1, 10)

        expiry = await transport.extend_lock(received)

        assert expiry is not None
        assert expiry.tzinfo is not None
        await transport.complete(received)


async def test_settle_twice_raises(make_settings) -> None:
    async with AzureServiceBusTransport(make_settings(), "events") as transport:
        await transport.send(OutgoingMessage(body=b"{}"))
        [received] = await transport.receive(1, 10)
        await transport.complete(received)

        with pytest.raises(TransportError, match="does not hold it"):
            await transport.complete(received)


async def test_receive_and_delete_needs_no_settlement(make_settings, servicebus_emulator, queue_name) -> None:
    async with AzureServiceBusTransport(make_settings(receive_mode="receive_and_delete"), "events") as transport:
        await transport.send(OutgoingMessage(body=b"{}"))
        [received] = await transport.receive(1, 10)
        await transport.complete(received)

    assert servicebus_emulator.message_count(queue_name) == 0


# dead-letter commands


def write_config(path: Path, connection_string: str, queue: str) -> Path:
    config = path / "iris-transport.toml"
    config.write_text(
        f'[channels.events]\nbackend = "azure"\nqueue = "{queue}"\nconnection_string = "{connection_string}"\n',
        encoding="utf-8",
    )
    return config


async def dead_letter_two(settings: AzureServiceBusSettings) -> None:
    async with AzureServiceBusTransport(settings, "events") as transport:
        await transport.send_batch(
            [
                OutgoingMessage(body=b'{"Patient": "John Doe"}', message_id="dead-1", application_properties={"k": 1}),
                OutgoingMessage(body=b'{"Patient": "John Doe"}', message_id="dead-2"),
            ]
        )
        received = []
        while len(received) < 2:
            received += await transport.receive(2, 10)
        for message in received:
            await transport.dead_letter(message, "ValidationError", f"Patient.Dob is missing ({message.message_id})")


async def test_dlq_list_and_replay(make_settings, servicebus_emulator, queue_name, tmp_path) -> None:
    import asyncio

    settings = make_settings()
    await dead_letter_two(settings)
    config = write_config(tmp_path, servicebus_emulator.connection_string, queue_name)
    runner = CliRunner()

    listed = await asyncio.to_thread(runner.invoke, main, ["dlq", "list", "events", "--json", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    rows = {row["message_id"]: row for row in __import__("json").loads(listed.stdout)}
    assert set(rows) == {"dead-1", "dead-2"}
    assert rows["dead-1"]["reason"] == "ValidationError"
    assert rows["dead-1"]["description"] == "Patient.Dob is missing (dead-1)"
    assert rows["dead-1"]["delivery_count"] >= 1
    assert "John" not in listed.output

    table = await asyncio.to_thread(runner.invoke, main, ["dlq", "list", "events", "--config", str(config)])
    assert "dead-2" in table.output
    assert "John" not in table.output

    replayed = await asyncio.to_thread(
        runner.invoke, main, ["dlq", "replay", "events", "--message-id", "dead-1", "--wait", "2", "--config", str(config)]
    )
    assert replayed.exit_code == 0, replayed.output
    assert "replayed dead-1" in replayed.output

    async with AzureServiceBusTransport(settings, "events") as transport:
        [back] = await transport.receive(1, 10)
        assert back.message_id == "dead-1"
        assert back.application_properties == {"k": 1}
        await transport.complete(back)
    assert servicebus_emulator.message_count(f"{queue_name}/$deadletterqueue") == 1


async def test_dlq_replay_needs_selection(tmp_path) -> None:
    result = CliRunner().invoke(main, ["dlq", "replay", "events"])

    assert result.exit_code == 2
    assert "give --all, or one or more --message-id" in result.output


def test_dlq_on_local_channel_fails_with_exit_1(tmp_path) -> None:
    config = tmp_path / "iris-transport.toml"
    config.write_text('[channels.events]\nbackend = "local"\npath = "q.sqlite3"\n')

    result = CliRunner().invoke(main, ["dlq", "list", "events", "--config", str(config)])

    assert result.exit_code == 1
    assert "uses the 'local' backend" in result.output
    assert "Usage:" not in result.output


def test_dlq_table_keeps_one_row_per_message() -> None:
    from iris_transport_azure.dlq import _table_cell

    cell = _table_cell("event is invalid (1 problem):\n  IrisOrderId: must be an integer\n")

    assert cell == "event is invalid (1 problem):; IrisOrderId: must be an integer"
    assert _table_cell(None) == ""
