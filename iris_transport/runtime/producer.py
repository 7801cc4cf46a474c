"""The producer: size checks and batching within a backend's declared limits.

Every message is checked against ``capabilities.max_message_bytes`` before
anything is sent, so a list with one oversized message sends nothing.

Sizes are estimates, because each broker encodes messages its own way. A
message counts as its body plus the UTF-8 length of its id, correlation id,
subject, content type and ordering key. Each application property adds the
length of its name and value, where a number counts 8 bytes and a boolean 1. Inside a
batch each message costs ``BATCH_MESSAGE_OVERHEAD_BYTES`` more, and each batch
``BATCH_OVERHEAD_BYTES`` more, for the broker's framing. Both overheads are
deliberately generous: an AMQP batch frames each message in well under
100 bytes, and SQS counts attribute names, types and values (which the
property estimate covers) but no framing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iris_transport.exceptions import MessageTooLargeError
from iris_transport.transport import Capabilities, OutgoingMessage, PropertyValue, SyncTransport, Transport

__all__ = [
    "BATCH_MESSAGE_OVERHEAD_BYTES",
    "BATCH_OVERHEAD_BYTES",
    "Producer",
    "SyncProducer",
    "check_message_size",
    "estimate_message_size",
    "plan_batches",
]

BATCH_MESSAGE_OVERHEAD_BYTES = 256
BATCH_OVERHEAD_BYTES = 512


def estimate_message_size(message: OutgoingMessage) -> int:
    """Estimate the bytes a broker counts against its message size limit (see the module docstring)."""
    size = len(message.body)
    for header in (
        message.message_id,
        message.correlation_id,
        message.subject,
        message.content_type,
        message.ordering_key,
    ):
        if header:
            size += len(header.encode("utf-8"))
    for name, value in message.application_properties.items():
        size += len(name.encode("utf-8")) + _property_value_size(value)
    return size


def _property_value_size(value: PropertyValue) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return 8
    return len(str(value).encode("utf-8"))


def check_message_size(message: OutgoingMessage, capabilities: Capabilities, backend: str | None = None) -> int:
    """Return the message's estimated size; raise ``MessageTooLargeError`` when it is over the limit."""
    size = estimate_message_size(message)
    if size > capabilities.max_message_bytes:
        raise MessageTooLargeError(size, capabilities.max_message_bytes, backend=backend)
    return size


def plan_batches(
    messages: Iterable[OutgoingMessage], capabilities: Capabilities, backend: str | None = None
) -> list[list[OutgoingMessage]]:
    """Split messages, in order, into batches within the backend's count and byte limits.

    Without ``capabilities.batch_send`` every message is its own batch. A
    message too big to share a batch also goes alone. Raises
    ``MessageTooLargeError`` for the first message over ``max_message_bytes``.
    """
    sized = [(message, check_message_size(message, capabilities, backend)) for message in messages]
    if not capabilities.batch_send:
        return [[message] for message, _ in sized]

    max_count = capabilities.max_batch_messages
    max_bytes = capabilities.max_batch_bytes
    batches: list[list[OutgoingMessage]] = []
    current: list[OutgoingMessage] = []
    current_bytes = BATCH_OVERHEAD_BYTES

    for message, size in sized:
        cost = size + BATCH_MESSAGE_OVERHEAD_BYTES
        full_by_count = max_count is not None and len(current) >= max_count
        full_by_bytes = max_bytes is not None and current_bytes + cost > max_bytes
        if current and (full_by_count or full_by_bytes):
            batches.append(current)
            current = []
            current_bytes = BATCH_OVERHEAD_BYTES
        current.append(message)
        current_bytes += cost

    if current:
        batches.append(current)
    return batches


class Producer:
    """Send messages through one transport, checking sizes and batching within its limits.

    ``close`` (or leaving ``async with``) closes the transport.
    """

    def __init__(self, transport: Transport) -> None:
        if isinstance(transport, SyncTransport):
            raise TypeError("Producer needs an async Transport; use SyncProducer with a SyncTransport")
        self.transport = transport

    async def send(self, message: OutgoingMessage) -> None:
        """Send one message; raise ``MessageTooLargeError`` before sending when it is over the limit."""
        check_message_size(message, self.transport.capabilities, self.transport.backend_name)
        await self.transport.send(message)

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages in order, in as few broker requests as the backend's limits allow.

        Every size is checked before the first send. When a batch fails, the
        error is raised and the batches before it stay sent. Resending the
        whole list is then safe if the messages carry a ``message_id`` and
        the receivers deduplicate.
        """
        for batch in plan_batches(messages, self.transport.capabilities, self.transport.backend_name):
            if len(batch) == 1:
                await self.transport.send(batch[0])
            else:
                await self.transport.send_batch(batch)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class SyncProducer:
    """The blocking form of ``Producer``, over a ``SyncTransport`` (an async ``Transport`` is wrapped in one)."""

    def __init__(self, transport: SyncTransport | Transport) -> None:
        if isinstance(transport, Transport):
            transport = SyncTransport(transport)
        self.transport = transport

    def send(self, message: OutgoingMessage) -> None:
        """Send one message; see ``Producer.send``."""
        check_message_size(message, self.transport.capabilities, self.transport.backend_name)
        self.transport.send(message)

    def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages in batches; see ``Producer.send_many``."""
        for batch in plan_batches(messages, self.transport.capabilities, self.transport.backend_name):
            if len(batch) == 1:
                self.transport.send(batch[0])
            else:
                self.transport.send_batch(batch)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
