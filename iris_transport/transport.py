"""The transport contract: what every backend implements.

A transport moves opaque messages (bytes plus properties) to and from one
broker entity: a queue, a topic and subscription, or a Pub/Sub topic and
subscription. It does not import or interpret the IRIS models. Backends subclass
``Transport``; callers that are not async wrap one in ``SyncTransport``.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from iris_transport.exceptions import UnsupportedOperationError

__all__ = [
    "Capabilities",
    "OutgoingMessage",
    "PropertyValue",
    "ReceivedMessage",
    "SyncTransport",
    "Transport",
]

PropertyValue = str | int | float | bool | None
"""A value an application property may take on every backend."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """A message to send.

    ``time_to_live`` and ``scheduled_enqueue_time`` are honoured only by
    backends whose capabilities declare them; others raise
    ``UnsupportedOperationError``. ``scheduled_enqueue_time`` must be timezone-aware.
    """

    body: bytes
    content_type: str | None = "application/json"
    message_id: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: Mapping[str, PropertyValue] = dataclasses.field(default_factory=dict)
    ordering_key: str | None = None
    time_to_live: timedelta | None = None
    scheduled_enqueue_time: datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReceivedMessage(OutgoingMessage):
    """A message a transport delivered and that the caller must settle.

    ``delivery_count`` counts deliveries including this one, so a first
    delivery has 1. ``handle`` is a lock token, receipt handle or ack id that
    only the transport that returned the message understands, so settle the
    message through that same transport.
    """

    delivery_count: int = 1
    enqueued_time: datetime | None = None
    handle: Any = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Capabilities:
    """The operations and limits of a backend, declared as data so that the runtime can adapt.

    Sizes are in bytes and durations in seconds. ``None`` means no limit, or
    not applicable.
    """

    max_message_bytes: int
    batch_send: bool = False
    max_batch_messages: int | None = None
    max_batch_bytes: int | None = None
    ordering_keys: bool = False
    scheduled_delivery: bool = False
    time_to_live: bool = False
    retry_delay: bool = False
    """The broker can hold a message back for a delay before redelivering it."""
    native_dead_letter: bool = False
    """The broker keeps a dead-letter queue itself, with the reason."""
    lock_extension: bool = False
    lock_duration: float | None = None
    """How long a received message stays invisible to other consumers by default."""
    max_delivery_count: int | None = None
    """Deliveries after which the broker dead-letters a message by itself."""


class Transport(abc.ABC):
    """An async connection to one broker entity.

    Implementations set ``backend_name`` and ``capabilities``, create SDK
    clients lazily on first use, translate every SDK error into
    ``iris_transport.exceptions`` at this boundary, and are safe to use from
    several tasks of one event loop at once.
    """

    backend_name: ClassVar[str] = "unnamed"
    capabilities: Capabilities

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage) -> None:
        """Send one message.

        Raises ``MessageTooLargeError`` before sending when the message is
        over ``capabilities.max_message_bytes``.
        """

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send several messages, as one broker request where the backend can.

        The caller keeps each batch within ``max_batch_messages`` and
        ``max_batch_bytes``. The default sends the messages one by one.
        """
        for message in messages:
            await self.send(message)

    @abc.abstractmethod
    async def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        """Receive up to ``max_messages``, waiting at most ``max_wait`` seconds.

        Returns an empty list when nothing arrived in time. Every returned
        message is locked (leased, invisible) until it is settled or its lock
        expires.
        """

    @abc.abstractmethod
    async def complete(self, message: ReceivedMessage) -> None:
        """Remove a processed message from the entity for good.

        Raises ``LockLostError`` when the lock expired first.
        """

    @abc.abstractmethod
    async def retry(self, message: ReceivedMessage, delay: float | None = None) -> None:
        """Give a message back for another delivery, after ``delay`` seconds where supported.

        Backends without ``retry_delay`` ignore ``delay`` and make the message
        visible at once.
        """

    @abc.abstractmethod
    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str | None = None) -> None:
        """Move a message to the dead-letter queue, keeping body, properties and the reason."""

    async def extend_lock(self, message: ReceivedMessage, duration: float | None = None) -> datetime | None:
        """Keep a message locked for ``duration`` more seconds (the backend's default when None).

        Returns the new expiry when the backend reports one.
        """
        raise UnsupportedOperationError(self.backend_name, "extend_lock")

    async def check(self, *, send: bool = True, receive: bool = True) -> bool:
        """Contact the broker to confirm the entity exists and the credentials allow ``send`` / ``receive``.

        Sends, receives and locks no message. Raises the errors the real
        operations would (``EntityNotFoundError``, ``AuthenticationError``, ...).
        Returns False when the backend cannot check without side effects, which
        is what this default does; True when the check ran and passed.
        """
        return False

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every unsettled message this transport received and close its clients.

        Calling ``close`` twice is harmless.
        """

    async def __aenter__(self: _T) -> _T:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


_T = TypeVar("_T", bound=Transport)


class SyncTransport:
    """A blocking form of a ``Transport``, running it on a private event loop thread.

    Every method has the same meaning as its async twin. ``close`` also stops
    the loop thread.
    """

    def __init__(self, transport: Transport) -> None:
        from anyio.from_thread import start_blocking_portal

        self.transport = transport
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return self.transport.capabilities

    @property
    def backend_name(self) -> str:
        return self.transport.backend_name

    def send(self, message: OutgoingMessage) -> None:
        self._portal.call(self.transport.send, message)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        self._portal.call(self.transport.send_batch, messages)

    def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        return self._portal.call(self.transport.receive, max_messages, max_wait)

    def complete(self, message: ReceivedMessage) -> None:
        self._portal.call(self.transport.complete, message)

    def retry(self, message: ReceivedMessage, delay: float | None = None) -> None:
        self._portal.call(self.transport.retry, message, delay)

    def dead_letter(self, message: ReceivedMessage, reason: str, description: str | None = None) -> None:
        self._portal.call(self.transport.dead_letter, message, reason, description)

    def extend_lock(self, message: ReceivedMessage, duration: float | None = None) -> datetime | None:
        return self._portal.call(self.transport.extend_lock, message, duration)

    def check(self, *, send: bool = True, receive: bool = True) -> bool:
        return self._portal.call(functools.partial(self.transport.check, send=send, receive=receive))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self.transport.close)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> SyncTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
