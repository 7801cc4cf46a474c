"""Starting, stopping and running the Service Bus emulator, and its test hooks."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from click.testing import CliRunner
from servicebus_helpers import receive_until

from iris_transport_azure.emulator import EmulatorError, QueueOptions, ServiceBusEmulator

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(90)]


def send_and_receive(connection_string: str, queue_name: str, body: str) -> str:
    with ServiceBusClient.from_connection_string(connection_string) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage(body))
        with client.get_queue_receiver(queue_name) as receiver:
            (message,) = receive_until(receiver, 1)
            receiver.complete_message(message)
    return str(message)


def test_port_zero_binds_a_free_port():
    with ServiceBusEmulator(port=0, queues=["orders"]) as emulator:
        assert emulator.port > 0
        assert f"127.0.0.1:{emulator.port}" in emulator.connection_string
        assert "UseDevelopmentEmulator=true" in emulator.connection_string
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=5):
            pass


def test_stop_releases_the_port():
    emulator = ServiceBusEmulator(queues=["orders"]).start()
    port = emulator.port
    assert send_and_receive(emulator.connection_string, "orders", "before stop") == "before stop"
    emulator.stop()

    assert not emulator.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_port_in_use_fails_to_start():
    with ServiceBusEmulator() as first:
        second = ServiceBusEmulator(port=first.port)
        with pytest.raises(EmulatorError, match="failed to start"):
            second.start()


def test_queues_configured_at_start():
    options = {"orders": QueueOptions(lock_duration=2), "events": QueueOptions()}
    with ServiceBusEmulator(queues=options, auto_create_queues=False) as emulator:
        assert send_and_receive(emulator.connection_string, "orders", "o") == "o"
        assert send_and_receive(emulator.connection_string, "events", "e") == "e"


def test_auto_create_on_first_use():
    with ServiceBusEmulator(auto_create_queues=True) as emulator:
        assert send_and_receive(emulator.connection_string, "results", "created") == "created"


def test_invalid_queue_options_name_the_field():
    with pytest.raises(ValueError, match="lock_duration"):
        QueueOptions(lock_duration=0)
    with pytest.raises(ValueError, match="max_delivery_count"):
        QueueOptions(max_delivery_count=0)


def test_client_reconnects_after_drop(servicebus_emulator):
    servicebus_emulator.create_queue("orders")
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        with client.get_queue_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("before drop"))
            assert servicebus_emulator.drop_connections() == 1
            sender.send_messages(ServiceBusMessage("after drop"))

        with client.get_queue_receiver("orders") as receiver:
            messages = receive_until(receiver, 2)
            for message in messages:
                receiver.complete_message(message)
    assert [str(message) for message in messages] == ["before drop", "after drop"]


def test_standalone_process_serves_and_stops():
    process = subprocess.Popen(
        [sys.executable, "-m", "iris_transport_azure.emulator", "--port", "0", "--queue", "orders",
         "--queue", "events", "--queue", "results", "--lock-duration", "5", "--no-auto-create"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", first_line)
        assert match, f"unexpected first line: {first_line!r}"
        connection_string = process.stdout.readline().split("Connection string: ", 1)[1].strip()
        assert f":{match.group(1)};" in connection_string

        assert send_and_receive(connection_string, "results", "served") == "served"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "stopped" in stdout


def test_iris_transport_command_lists_emulator():
    from iris_transport.cli import main

    result = CliRunner().invoke(main, ["emulator", "servicebus", "--help"])
    assert result.exit_code == 0, result.output
    assert "--queue" in result.output
    assert "--lock-duration" in result.output
    assert "--max-delivery-count" in result.output
