"""The Service Bus emulator under load, abuse and awkward requests from the official SDK."""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
import uuid

import pytest
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import ServiceBusConnectionError, ServiceBusError
from click.testing import CliRunner
from proton import Message
from proton.utils import BlockingConnection
from servicebus_helpers import receive_until

from iris_transport_azure.emulator import EmulatorError, ServiceBusEmulator
from iris_transport_azure.emulator._store import MessageState
from iris_transport_azure.emulator.cli import servicebus_command

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(180)]

WORKERS = 4


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_concurrent_clients_receive_each_message_once(servicebus_emulator, queue_name):
    servicebus_emulator.create_queue(queue_name)
    total = 2000
    connection_string = servicebus_emulator.connection_string
    completed: collections.Counter[str] = collections.Counter()
    counter_lock = threading.Lock()
    errors: list[BaseException] = []
    senders_done = threading.Event()

    def send(first: int) -> None:
        try:
            with ServiceBusClient.from_connection_string(connection_string) as client:
                with client.get_queue_sender(queue_name) as sender:
                    for number in range(first, total, WORKERS):
                        sender.send_messages(ServiceBusMessage(f"m{number}"))
        except BaseException as error:
            errors.append(error)

    def receive() -> None:
        try:
            with ServiceBusClient.from_connection_string(connection_string) as client:
                with client.get_queue_receiver(queue_name, prefetch_count=10) as receiver:
                    idle_after_senders = 0
                    while idle_after_senders < 2:
                        batch = receiver.receive_messages(max_message_count=20, max_wait_time=1)
                        idle_after_senders = idle_after_senders + 1 if not batch and senders_done.is_set() else 0
                        for message in batch:
                            receiver.complete_message(message)
                            with counter_lock:
                                completed[str(message)] += 1
        except BaseException as error:
            errors.append(error)

    senders = [threading.Thread(target=send, args=(first,)) for first in range(WORKERS)]
    receivers = [threading.Thread(target=receive) for _ in range(WORKERS)]
    for thread in senders + receivers:
        thread.start()
    for thread in senders:
        thread.join(120)
    senders_done.set()
    for thread in receivers:
        thread.join(120)

    assert not [thread for thread in senders + receivers if thread.is_alive()]
    assert errors == []
    assert set(completed) == {f"m{number}" for number in range(total)}
    assert [body for body, count in completed.items() if count != 1] == []
    assert servicebus_emulator.running
    assert servicebus_emulator.message_count(queue_name) == 0


def test_dropped_connections_lose_no_message(servicebus_emulator, queue_name):
    servicebus_emulator.create_queue(queue_name, lock_duration=5, max_delivery_count=100)
    total = 300
    connection_string = servicebus_emulator.connection_string
    received: set[str] = set()
    stop = threading.Event()

    def receive() -> None:
        with ServiceBusClient.from_connection_string(connection_string, retry_backoff_factor=0.2) as client:
            with client.get_queue_receiver(queue_name) as receiver:
                while not stop.is_set():
                    try:
                        for message in receiver.receive_messages(max_message_count=10, max_wait_time=1):
                            # A completion can reach the emulator while its reply is lost
                            # to a drop, so a message counts as received on arrival.
                            received.add(str(message))
                            receiver.complete_message(message)
                    except Exception:  # a dropped connection; the SDK reconnects on the next call
                        continue

    receiver_thread = threading.Thread(target=receive)
    receiver_thread.start()
    try:
        with ServiceBusClient.from_connection_string(connection_string, retry_backoff_factor=0.2) as client:
            with client.get_queue_sender(queue_name) as sender:
                for number in range(total):
                    if number % 50 == 25:
                        servicebus_emulator.drop_connections()
                    sender.send_messages(ServiceBusMessage(f"m{number}"))
        deadline_checks = 0
        while len(received) < total and deadline_checks < 60:
            stop.wait(1)
            deadline_checks += 1
    finally:
        stop.set()
        receiver_thread.join(60)

    assert received == {f"m{number}" for number in range(total)}
    assert servicebus_emulator.message_count(queue_name) == 0


def test_stop_gives_connected_sdk_a_connection_error():
    emulator = ServiceBusEmulator(queues=["orders"]).start()
    with ServiceBusClient.from_connection_string(emulator.connection_string, retry_total=0) as client:
        with client.get_queue_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("before stop"))
            emulator.stop()

            with pytest.raises(ServiceBusConnectionError) as raised:
                sender.send_messages(ServiceBusMessage("after stop"))
    assert "index out of range" not in str(raised.value)


def test_dead_letter_with_long_description(servicebus_emulator, queue_name):
    servicebus_emulator.create_queue(queue_name)
    reason = "R" * 4_000
    description = "stack frame\n" * 5_000
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage("poison"))
        with client.get_queue_receiver(queue_name) as receiver:
            (message,) = receive_until(receiver, 1)
            receiver.dead_letter_message(message, reason=reason, error_description=description)
        with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
            (dead,) = receive_until(dead_letters, 1)
            dead_letters.complete_message(dead)

    assert dead.dead_letter_reason == reason
    assert dead.dead_letter_error_description == description


@pytest.mark.parametrize("receive_mode", [ServiceBusReceiveMode.PEEK_LOCK, ServiceBusReceiveMode.RECEIVE_AND_DELETE])
def test_deferred_receive_with_repeated_number(servicebus_emulator, queue_name, receive_mode):
    servicebus_emulator.create_queue(queue_name)
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string, retry_total=0) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage("later"))
        with client.get_queue_receiver(queue_name) as receiver:
            (message,) = receive_until(receiver, 1)
            receiver.defer_message(message)

        with client.get_queue_receiver(queue_name, receive_mode=receive_mode) as receiver:
            deferred = receiver.receive_deferred_messages([message.sequence_number, message.sequence_number])
            assert [str(item) for item in deferred] == ["later"]
            assert deferred[0].delivery_count == 1
            if receive_mode is ServiceBusReceiveMode.PEEK_LOCK:
                receiver.complete_message(deferred[0])

    assert servicebus_emulator.message_count(queue_name) == 0


def test_start_stop_leaks_no_threads_or_fds():
    threads_before = threading.active_count()
    with ServiceBusEmulator(queues=["orders"]):
        pass  # the first start loads Proton's modules, which may open files
    fds_before = open_fd_count()

    for _ in range(20):
        emulator = ServiceBusEmulator(queues=["orders"]).start()
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=5):
            emulator.stop()

    assert threading.active_count() == threads_before
    assert open_fd_count() == fds_before


def test_stop_closes_connections_that_never_opened():
    emulator = ServiceBusEmulator().start()
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as silent:
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as half_open:
            half_open.sendall(b"AMQP\x03\x01\x00\x00")
            assert half_open.recv(8) == b"AMQP\x03\x01\x00\x00"
            emulator.stop()

            assert silent.recv(1024) == b""
            while half_open.recv(1024):
                pass


def test_port_in_use_names_the_address():
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        result = CliRunner().invoke(servicebus_command, ["--port", str(port)])

    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert f"127.0.0.1:{port}" in result.output
    assert "--port" in result.output


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("com.microsoft:peek-message", {"from-sequence-number": "first", "message-count": 1}),
        ("com.microsoft:cancel-scheduled-message", {"sequence-numbers": ["one"]}),
        ("com.microsoft:receive-by-sequence-number", {"sequence-numbers": [1], "receiver-settle-mode": "x"}),
    ],
)
def test_management_field_of_wrong_type_is_bad_request(servicebus_emulator, operation, body):
    servicebus_emulator.create_queue("orders")
    connection = BlockingConnection(f"127.0.0.1:{servicebus_emulator.port}", timeout=10, allowed_mechs="ANONYMOUS")
    try:
        receiver = connection.create_receiver("orders/$management")
        sender = connection.create_sender("orders/$management")
        request = Message(id=uuid.uuid4(), reply_to="orders/$management", properties={"operation": operation}, body=body)
        sender.send(request)
        reply = receiver.receive(timeout=10)
    finally:
        connection.close()

    assert reply.properties["statusCode"] == 400
    assert reply.properties["errorCondition"] == "com.microsoft:argument-error"


@pytest.mark.parametrize("session_id", ["order-42", NEXT_AVAILABLE_SESSION])
def test_session_receiver_is_rejected(servicebus_emulator, queue_name, session_id):
    servicebus_emulator.create_queue(queue_name)
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage("in a session", session_id="order-42"))
        receiver = client.get_queue_receiver(queue_name, session_id=session_id, max_wait_time=2)
        with pytest.raises(ServiceBusError, match="sessions"):
            with receiver:
                receiver.receive_messages(max_message_count=1)

    assert servicebus_emulator.message_count(queue_name) == 1


def test_emulator_failure_reaches_sdk_as_error(servicebus_emulator, queue_name, monkeypatch, caplog):
    servicebus_emulator.create_queue(queue_name)

    def fail(*args, **kwargs):
        raise RuntimeError("peek failed on purpose")

    monkeypatch.setattr(servicebus_emulator._store, "peek", fail)
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string, retry_total=0) as client:
        with client.get_queue_receiver(queue_name) as receiver:
            with pytest.raises(ServiceBusError) as raised:
                receiver.peek_messages(max_message_count=1)

    assert "index out of range" not in str(raised.value)
    assert "peek failed on purpose" in caplog.text
    assert servicebus_emulator.running


def test_timers_survive_a_failed_tick(servicebus_emulator, queue_name, monkeypatch):
    servicebus_emulator.create_queue(queue_name, lock_duration=1)
    store = servicebus_emulator._store
    all_entities = store.all_entities
    failures = []

    def fail_once():
        # Only the timer tick lists all entities, so this fails one tick.
        if not failures:
            failures.append("tick")
            raise RuntimeError("timer failed on purpose")
        return all_entities()

    def lock_state() -> MessageState:
        (message,) = store.resolve(queue_name).messages.values()
        return message.state

    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage("locked"))
        with client.get_queue_receiver(queue_name) as receiver:
            receive_until(receiver, 1)
    monkeypatch.setattr(store, "all_entities", fail_once)

    # No client is connected, so only the timer tick can end the lock.
    deadline = time.monotonic() + 30
    while servicebus_emulator.call(lock_state) is MessageState.LOCKED and time.monotonic() < deadline:
        time.sleep(0.2)

    assert failures == ["tick"]
    assert servicebus_emulator.call(lock_state) is MessageState.ACTIVE


def test_stopped_emulator_cannot_be_reentered():
    emulator = ServiceBusEmulator(queues=["orders"])
    with emulator:
        pass

    with pytest.raises(EmulatorError, match="create a new one"):
        with emulator:
            pass


@pytest.mark.parametrize("lock_duration", ["inf", "1e300"])
def test_unbounded_lock_duration_is_rejected(lock_duration):
    result = CliRunner().invoke(servicebus_command, ["--port", "0", "--lock-duration", lock_duration])

    assert result.exit_code == 1
    assert "lock_duration must be a positive number of seconds up to 31536000" in result.output


def test_message_without_body_round_trips(servicebus_emulator, queue_name):
    servicebus_emulator.create_queue(queue_name)
    with ServiceBusClient.from_connection_string(servicebus_emulator.connection_string, retry_total=0) as client:
        with client.get_queue_sender(queue_name) as sender:
            sender.send_messages(ServiceBusMessage(None, application_properties={"kind": "single"}))
            batch = sender.create_message_batch()
            batch.add_message(ServiceBusMessage(None, application_properties={"kind": "batched"}))
            batch.add_message(ServiceBusMessage("after the empty one"))
            sender.send_messages(batch)
        with client.get_queue_receiver(queue_name) as receiver:
            single, batched, text = receive_until(receiver, 3)
            for message in (single, batched, text):
                receiver.complete_message(message)

    assert single.body is None
    assert single.application_properties == {b"kind": b"single"}
    assert batched.body is None
    assert batched.application_properties == {b"kind": b"batched"}
    assert str(text) == "after the empty one"


def test_request_racing_stop_fails_at_once():
    emulator = ServiceBusEmulator(queues=["orders"]).start()
    outcomes: list[str] = []

    def count_until_stopped() -> None:
        while True:
            try:
                emulator.message_count("orders")
            except EmulatorError as error:
                outcomes.append(str(error))
                return

    poller = threading.Thread(target=count_until_stopped)
    poller.start()
    emulator.stop()
    poller.join(30)

    assert not poller.is_alive()
    (outcome,) = outcomes
    assert "did not run the request within" not in outcome
