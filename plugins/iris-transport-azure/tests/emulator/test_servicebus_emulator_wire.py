"""Management replies of the emulator as a plain Proton client sees them on the wire.

The SDK turns these replies into exceptions before a test can look at them,
so the status codes and conditions are checked here with Proton directly.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from proton import Array, Data, Delivery, Link, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container, ReceiverOption
from proton.utils import BlockingConnection

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(60)]


@pytest.fixture
def management(servicebus_emulator):
    servicebus_emulator.create_queue("orders")
    connection = BlockingConnection(f"127.0.0.1:{servicebus_emulator.port}", timeout=10, allowed_mechs="ANONYMOUS")
    receiver = connection.create_receiver("orders/$management")
    sender = connection.create_sender("orders/$management")

    def request(operation: str, body: dict) -> Message:
        message = Message(
            id=uuid.uuid4(),
            reply_to="orders/$management",
            properties={"operation": operation},
            body=body,
        )
        sender.send(message)
        reply = receiver.receive(timeout=10)
        assert reply.correlation_id == message.id
        return reply

    yield request
    connection.close()


def test_renew_unknown_lock_is_lock_lost(management):
    reply = management(
        "com.microsoft:renew-lock", {"lock-tokens": Array(None, Data.UUID, uuid.uuid4())}
    )
    assert reply.properties["statusCode"] == 410
    assert reply.properties["errorCondition"] == "com.microsoft:message-lock-lost"
    assert reply.properties["statusDescription"]


def test_settle_unknown_lock_is_lock_lost(management):
    reply = management(
        "com.microsoft:update-disposition",
        {"disposition-status": "completed", "lock-tokens": Array(None, Data.UUID, uuid.uuid4())},
    )
    assert reply.properties["statusCode"] == 410
    assert reply.properties["errorCondition"] == "com.microsoft:message-lock-lost"


def test_receive_unknown_deferred_is_not_found(management):
    reply = management(
        "com.microsoft:receive-by-sequence-number",
        {"sequence-numbers": Array(None, Data.LONG, 42), "receiver-settle-mode": 1},
    )
    assert reply.properties["statusCode"] == 404
    assert reply.properties["errorCondition"] == "com.microsoft:message-not-found"


def test_peek_empty_queue_is_no_content(management):
    reply = management("com.microsoft:peek-message", {"from-sequence-number": 1, "message-count": 10})
    assert reply.properties["statusCode"] == 204


def test_unsupported_operation_is_not_implemented(management):
    reply = management("com.microsoft:get-session-state", {"session-id": "s"})
    assert reply.properties["statusCode"] == 501
    assert reply.properties["errorCondition"] == "amqp:not-implemented"


def test_missing_field_is_bad_request(management):
    reply = management("com.microsoft:renew-lock", {})
    assert reply.properties["statusCode"] == 400
    assert "lock-tokens" in reply.properties["statusDescription"]


def test_cbs_put_token_is_accepted(servicebus_emulator):
    connection = BlockingConnection(f"127.0.0.1:{servicebus_emulator.port}", timeout=10, allowed_mechs="ANONYMOUS")
    try:
        receiver = connection.create_receiver("$cbs")
        sender = connection.create_sender("$cbs")
        request = Message(
            id=uuid.uuid4(),
            reply_to="$cbs",
            properties={"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": "sb://x/orders"},
            body="SharedAccessSignature sr=x&sig=y&se=1&skn=z",
        )
        sender.send(request)
        reply = receiver.receive(timeout=10)
    finally:
        connection.close()
    assert reply.correlation_id == request.id
    assert reply.properties["status-code"] == 202


class _LateSettler(MessagingHandler):
    """Receives one message in peek-lock mode and accepts it after the lock expired."""

    def __init__(self, url: str, queue_name: str, delay: float) -> None:
        super().__init__(prefetch=1, auto_accept=False, auto_settle=False)
        self.url = url
        self.queue_name = queue_name
        self.delay = delay
        self.delivery = None
        self.outcome = None
        self.condition = None

    def on_start(self, event):
        connection = event.container.connect(self.url, allowed_mechs="ANONYMOUS")
        event.container.create_receiver(connection, self.queue_name, options=_SettleSecond())

    def on_message(self, event):
        self.delivery = event.delivery
        event.container.schedule(self.delay, self)

    def on_timer_task(self, event):
        self.delivery.update(Delivery.ACCEPTED)

    def on_settled(self, event):
        self.outcome = event.delivery.remote_state
        self.condition = event.delivery.remote.condition
        event.connection.close()


class _SettleSecond(ReceiverOption):
    def apply(self, link):
        link.rcv_settle_mode = Link.RCV_SECOND


def test_link_settlement_after_lock_expiry_is_lock_lost(servicebus_emulator):
    servicebus_emulator.create_queue("orders", lock_duration=1)
    connection = BlockingConnection(f"127.0.0.1:{servicebus_emulator.port}", timeout=10, allowed_mechs="ANONYMOUS")
    try:
        connection.create_sender("orders").send(Message(body="late"))
    finally:
        connection.close()

    handler = _LateSettler(f"127.0.0.1:{servicebus_emulator.port}", "orders", delay=2.0)
    thread = threading.Thread(target=Container(handler).run, daemon=True)
    thread.start()
    thread.join(20)

    assert not thread.is_alive(), "the Proton client did not finish within 20 s"
    assert handler.outcome == Delivery.REJECTED
    assert handler.condition is not None
    assert handler.condition.name == "com.microsoft:message-lock-lost"
