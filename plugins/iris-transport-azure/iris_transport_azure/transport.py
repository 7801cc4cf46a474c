"""The ``azure`` backend: Azure Service Bus queues and topics through ``azure-servicebus``.

Supported: single and batched send (``ServiceBusMessageBatch``, sized by
the limit the service announces on the send link), message id, correlation
id, subject, content type, application properties, scheduled enqueue time,
time-to-live, session ids from ordering keys on session-enabled entities;
peek-lock receive with lock renewal, complete, abandon, dead-letter with
reason and description, defer; reading the dead-letter sub-queue.

Connection settings (``AzureServiceBusSettings``): a ``connection_string``,
or a fully qualified ``namespace`` with ``credential = "default"``
(azure-identity's ``DefaultAzureCredential``) or a SAS token. The entity is
``queue`` (the channel name by default), or ``topic`` and ``subscription``.

Semantics and choices:

* Clients are created on first use. Sending opens only a sender link, so a
  send-only channel works with a credential that has the Send right alone.
* ``retry(message, delay)`` abandons the message at once: Service Bus has
  no delayed abandon, so ``capabilities.retry_delay`` is False and the
  consumer holds the message locked for its backoff before calling
  ``retry``. Scheduling a copy and completing the original would lose the
  broker's delivery count, which decides when it dead-letters by itself.
* ``extend_lock`` renews the lock for the entity's lock duration (Service
  Bus takes no duration), or the session's lock on session-enabled
  entities. Set ``max_lock_renewal_duration`` to let the SDK's
  ``AutoLockRenewer`` renew instead.
* ``close`` abandons every message it received and did not settle, which
  counts as a delivery, as it does for any Service Bus receiver.
* ``delivery_count`` is the SDK's count plus one, because the SDK counts
  earlier failed deliveries only.
* Each ``send_batch`` fills as few ``ServiceBusMessageBatch`` objects as the
  size limit allows (starting a new one when the session id changes) and
  sends them in order. Each batch is stored atomically, the whole call is
  not. Every message is checked before the first batch is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus import exceptions as sdk_errors
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient, ServiceBusReceiver, ServiceBusSender

from iris_transport.exceptions import (
    BackendNotInstalledError,
    ConfigurationError,
    LockLostError,
    MessageTooLargeError,
    OperationTimeoutError,
    TransportError,
    UnsupportedOperationError,
)
from iris_transport.transport import OutgoingMessage, ReceivedMessage, Transport

from iris_transport_azure.errors import BACKEND, translate_errors
from iris_transport_azure.messages import to_received_message, to_service_bus_message
from iris_transport_azure.settings import BATCH_ENVELOPE_RESERVE, AzureServiceBusSettings

__all__ = ["AzureServiceBusTransport", "encoded_size"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0
"""Seconds each step of ``close`` may take before it is given up."""

_DEAD_LETTER_PATH = "/$deadletterqueue"


class AzureServiceBusTransport(Transport):
    """A transport on one Service Bus queue, topic and subscription, or their dead-letter sub-queue.

    ``sub_queue="deadletter"`` receives from the dead-letter sub-queue and
    cannot send. Methods may be called from several tasks of one event loop.
    """

    backend_name = BACKEND

    def __init__(
        self,
        settings: AzureServiceBusSettings,
        channel: str,
        *,
        sub_queue: Literal["deadletter"] | None = None,
    ) -> None:
        if sub_queue not in (None, "deadletter"):
            raise ValueError(f'sub_queue must be None or "deadletter", not {sub_queue!r}')
        self.settings = settings
        self.channel = channel
        self.entity = settings.entity_for(channel)
        self.is_dead_letter = sub_queue == "deadletter"
        self.capabilities = settings.capabilities()
        self._peek_lock = settings.receive_mode == "peek_lock"

        self._client: ServiceBusClient | None = None
        self._credential: Any = None
        self._sender: ServiceBusSender | None = None
        self._receiver: ServiceBusReceiver | None = None
        self._renewer: AutoLockRenewer | None = None
        self._batch_limit: int | None = None
        # Received, unsettled messages by lock token: the ones close() abandons.
        self._held: dict[str, tuple[ServiceBusReceivedMessage, ServiceBusReceiver]] = {}
        # Set after the receiver's connection failed: the SDK reconnects by
        # itself, but a receiver that reconnected after a dropped connection was
        # seen to attach a new link and then never receive, so it is replaced.
        self._receiver_failed = False
        self._sender_lock = asyncio.Lock()
        self._receive_lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"AzureServiceBusTransport(channel={self.channel!r}, entity={self.receive_path!r})"

    @property
    def receive_path(self) -> str:
        """The entity path this transport receives from, as Service Bus names it."""
        path = self.entity
        if self.settings.subscription is not None:
            path = f"{self.entity}/subscriptions/{self.settings.subscription}"
        return path + (_DEAD_LETTER_PATH if self.is_dead_letter else "")

    def dead_letter_transport(self) -> AzureServiceBusTransport:
        """Return a new transport that receives from this entity's dead-letter sub-queue."""
        return AzureServiceBusTransport(self.settings, self.channel, sub_queue="deadletter")

    # clients

    def _get_client(self) -> ServiceBusClient:
        if self._closed:
            raise TransportError(f"the Service Bus transport of channel {self.channel!r} is closed", backend=BACKEND)
        if self._client is None:
            self._client = self._create_client()
        return self._client

    def _create_client(self) -> ServiceBusClient:
        options: dict[str, Any] = {"retry_total": self.settings.retry_total}
        if self.settings.connection_string is not None:
            try:
                return ServiceBusClient.from_connection_string(
                    self.settings.connection_string.get_secret_value(), **options
                )
            except ValueError:
                # The SDK's message may quote the string, so it is not chained.
                raise ConfigurationError(
                    f"channels.{self.channel}.connection_string is not a valid Service Bus connection"
                    " string; copy it from the portal's Shared access policies page"
                ) from None

        assert self.settings.namespace is not None
        self._credential = self._create_credential()
        return ServiceBusClient(self.settings.namespace, self._credential, **options)

    def _create_credential(self) -> Any:
        if self.settings.credential == "default":
            try:
                from azure.identity.aio import DefaultAzureCredential
            except ImportError as err:
                raise BackendNotInstalledError(BACKEND, 'pip install "iris-transport-azure[identity]"', "azure.identity") from err
            return DefaultAzureCredential()

        from azure.core.credentials import AzureSasCredential

        assert self.settings.credential is not None and self.settings.credential != "default"
        return AzureSasCredential(self.settings.credential.get_secret_value())

    def _get_sender(self) -> ServiceBusSender:
        if self.is_dead_letter:
            raise UnsupportedOperationError(
                BACKEND, "send to a dead-letter sub-queue", hint=f"send to {self.entity!r} instead"
            )
        if self._sender is None:
            client = self._get_client()
            if self.settings.topic is not None:
                self._sender = client.get_topic_sender(self.entity)
            else:
                self._sender = client.get_queue_sender(self.entity)
        return self._sender

    async def _get_receiver(self) -> ServiceBusReceiver:
        """Return the receiver, opening its link first so that a short receive wait is not spent on the opening."""
        if self._receiver is not None:
            return self._receiver
        if self.settings.topic is not None and self.settings.subscription is None:
            raise ConfigurationError(
                f"channels.{self.channel}.subscription is missing: receiving from topic {self.entity!r}"
                " needs the subscription to read"
            )

        options: dict[str, Any] = {
            "receive_mode": ServiceBusReceiveMode.PEEK_LOCK if self._peek_lock else ServiceBusReceiveMode.RECEIVE_AND_DELETE,
            "prefetch_count": self.settings.prefetch,
        }
        if self.is_dead_letter:
            options["sub_queue"] = ServiceBusSubQueue.DEAD_LETTER
        elif self.settings.sessions:
            # NOTE: session receiving has not run against a broker, because the
            # test emulator serves no sessions.
            options["session_id"] = NEXT_AVAILABLE_SESSION

        client = self._get_client()
        if self.settings.subscription is not None:
            receiver = client.get_subscription_receiver(self.entity, self.settings.subscription, **options)
        else:
            receiver = client.get_queue_receiver(self.entity, **options)
        with translate_errors("open receiver", self.receive_path, self.settings):
            try:
                await receiver.__aenter__()
            except BaseException:
                await _close_quietly(receiver, f"receiver on {self.receive_path}")
                raise
        self._receiver = receiver
        if self.settings.max_lock_renewal_duration is not None and self._peek_lock and self._renewer is None:
            self._renewer = AutoLockRenewer(max_lock_renewal_duration=self.settings.max_lock_renewal_duration)
        logger.info("Opened a Service Bus receiver on %s for channel %s", self.receive_path, self.channel)
        return self._receiver

    # sending

    async def send(self, message: OutgoingMessage) -> None:
        await self.send_batch([message])

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` in as few Service Bus batches as fit; check every size before sending any."""
        if not messages:
            return
        sdk_messages = [
            to_service_bus_message(message, session_id_required=self.settings.sessions) for message in messages
        ]

        async with self._sender_lock:
            sender = self._get_sender()
            batches = await self._fill_batches(sender, sdk_messages)
            for batch in batches:
                with translate_errors("send", self.entity, self.settings):
                    try:
                        await sender.send_messages(batch)
                    except sdk_errors.MessageSizeExceededError as err:
                        raise MessageTooLargeError(
                            batch.size_in_bytes, batch.max_size_in_bytes, backend=BACKEND, what="batch"
                        ) from err
        logger.debug("Sent %d message(s) in %d batch(es) to %s", len(sdk_messages), len(batches), self.entity)

    async def _fill_batches(
        self, sender: ServiceBusSender, sdk_messages: list[ServiceBusMessage]
    ) -> list[ServiceBusMessageBatch]:
        batches: list[ServiceBusMessageBatch] = []
        current = await self._new_batch(sender)
        current_session: str | None = None
        for index, sdk_message in enumerate(sdk_messages):
            if len(current) and sdk_message.session_id != current_session:
                batches.append(current)
                current = await self._new_batch(sender)
            try:
                current.add_message(sdk_message)
            except sdk_errors.MessageSizeExceededError:
                if not len(current):
                    raise self._too_large(sdk_messages, index, current.max_size_in_bytes) from None
                batches.append(current)
                current = await self._new_batch(sender)
                try:
                    current.add_message(sdk_message)
                except sdk_errors.MessageSizeExceededError:
                    raise self._too_large(sdk_messages, index, current.max_size_in_bytes) from None
            current_session = sdk_message.session_id
        batches.append(current)
        return batches

    async def _new_batch(self, sender: ServiceBusSender) -> ServiceBusMessageBatch:
        with translate_errors("open sender", self.entity, self.settings):
            if self._batch_limit is None:
                # The first batch opens the send link and carries the size the service announced on it.
                announced = (await sender.create_message_batch()).max_size_in_bytes
                self._batch_limit = min(announced, self.settings.max_message_bytes) - BATCH_ENVELOPE_RESERVE
                logger.info(
                    "Opened a Service Bus sender on %s for channel %s: the service accepts batches of up to"
                    " %d bytes, this channel fills them up to %d",
                    self.entity, self.channel, announced, self._batch_limit,
                )
            return await sender.create_message_batch(max_size_in_bytes=self._batch_limit)

    def _too_large(self, sdk_messages: list[ServiceBusMessage], index: int, limit: int) -> MessageTooLargeError:
        what = "message" if len(sdk_messages) == 1 else f"message {index} of the batch"
        return MessageTooLargeError(encoded_size(sdk_messages[index]), limit, backend=BACKEND, what=what)

    # receiving

    async def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        async with self._receive_lock:
            if self._receiver_failed:
                logger.info("Replacing the Service Bus receiver on %s after a connection failure", self.receive_path)
                self._receiver_failed = False
                await self._drop_receiver()
            try:
                receiver = await self._get_receiver()
            except OperationTimeoutError:
                if not self._is_session_receiver():
                    raise
                # No session had messages while the receiver waited to lock one.
                return []
            try:
                with translate_errors("receive", self.receive_path, self.settings):
                    sdk_messages = await receiver.receive_messages(
                        max_message_count=max_messages, max_wait_time=max(max_wait, 0.01)
                    )
            except TransportError as err:
                self._receiver_failed = err.transient
                raise

            if not sdk_messages and self._is_session_receiver() and not self._held:
                # The locked session is empty, so let go of it and take the next one.
                await self._drop_receiver()

        received = []
        for sdk_message in sdk_messages:
            if self._peek_lock:
                self._held[str(sdk_message.lock_token)] = (sdk_message, receiver)
                if self._renewer is not None and not self._is_session_receiver():
                    self._renewer.register(receiver, sdk_message)
            received.append(to_received_message(sdk_message))
        logger.debug("Received %d message(s) from %s", len(received), self.receive_path)
        return received

    def _is_session_receiver(self) -> bool:
        return self.settings.sessions and not self.is_dead_letter

    async def check(self, *, send: bool = True, receive: bool = True) -> bool:
        """Open a send link and peek one message, as the directions ask.

        Nothing is sent, received or locked. A topic channel without a
        subscription is checked for sending only.
        """
        if send and not self.is_dead_letter:
            sender = self._get_sender()
            with translate_errors("open sender", self.entity, self.settings):
                await sender.__aenter__()
        if receive and (self.settings.topic is None or self.settings.subscription is not None):
            await self.peek(1)
        return True

    async def _drop_receiver(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            await _close_quietly(receiver, f"receiver on {self.receive_path}")

    async def peek(self, max_messages: int = 100, from_sequence_number: int | None = None) -> list[ReceivedMessage]:
        """Return up to ``max_messages`` without locking them, from ``from_sequence_number`` on.

        Peeked messages cannot be settled. Their ``handle`` is the SDK message,
        whose ``sequence_number`` pages through the entity.
        """
        async with self._receive_lock:
            receiver = await self._get_receiver()
            with translate_errors("peek", self.receive_path, self.settings):
                sdk_messages = await receiver.peek_messages(
                    max_message_count=max_messages, sequence_number=from_sequence_number or 0
                )
        return [to_received_message(sdk_message) for sdk_message in sdk_messages]

    async def receive_deferred(self, sequence_numbers: Sequence[int]) -> list[ReceivedMessage]:
        """Receive deferred messages by the sequence numbers that ``defer`` returned."""
        async with self._receive_lock:
            receiver = await self._get_receiver()
            with translate_errors("receive deferred", self.receive_path, self.settings):
                sdk_messages = await receiver.receive_deferred_messages(list(sequence_numbers))
        for sdk_message in sdk_messages:
            if self._peek_lock:
                self._held[str(sdk_message.lock_token)] = (sdk_message, receiver)
        return [to_received_message(sdk_message) for sdk_message in sdk_messages]

    # settling

    async def complete(self, message: ReceivedMessage) -> None:
        if not self._peek_lock:
            return
        await self._settle(message, "complete", lambda receiver, sdk_message: receiver.complete_message(sdk_message))

    async def retry(self, message: ReceivedMessage, delay: float | None = None) -> None:
        """Abandon the message so that it is delivered again at once; ``delay`` is not supported and ignored."""
        self._require_peek_lock("retry")
        await self._settle(message, "abandon", lambda receiver, sdk_message: receiver.abandon_message(sdk_message))

    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str | None = None) -> None:
        self._require_peek_lock("dead_letter")
        await self._settle(
            message,
            "dead-letter",
            lambda receiver, sdk_message: receiver.dead_letter_message(
                sdk_message, reason=reason, error_description=description
            ),
        )

    async def defer(self, message: ReceivedMessage) -> int:
        """Defer the message and return its sequence number, which ``receive_deferred`` takes."""
        self._require_peek_lock("defer")
        sdk_message, _receiver = self._held_message(message, "defer")
        await self._settle(message, "defer", lambda receiver, held: receiver.defer_message(held))
        return sdk_message.sequence_number

    async def extend_lock(self, message: ReceivedMessage, duration: float | None = None) -> datetime | None:
        """Renew the message's lock (the session's on session-enabled entities) and return its new expiry.

        Service Bus renews for the entity's lock duration, so ``duration`` is ignored.
        """
        self._require_peek_lock("extend_lock")
        sdk_message, receiver = self._held_message(message, "extend_lock")
        if self._is_session_receiver():
            return await self._call_with_lock("renew lock", message, receiver, lambda: receiver.session.renew_lock())
        return await self._call_with_lock(
            "renew lock", message, receiver, lambda: receiver.renew_message_lock(sdk_message)
        )

    async def _settle(
        self,
        message: ReceivedMessage,
        operation: str,
        action: Callable[[ServiceBusReceiver, ServiceBusReceivedMessage], Awaitable[None]],
    ) -> None:
        sdk_message, receiver = self._held_message(message, operation)
        token = str(sdk_message.lock_token)
        try:
            await self._call_with_lock(operation, message, receiver, lambda: action(receiver, sdk_message))
        except TransportError as err:
            # A lost lock or a settled message cannot be settled by anyone now.
            if not err.transient:
                self._held.pop(token, None)
            raise
        self._held.pop(token, None)

    async def _call_with_lock(
        self,
        operation: str,
        message: ReceivedMessage,
        receiver: ServiceBusReceiver,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Run a lock operation on the receiver that received ``message``."""
        try:
            with translate_errors(operation, self.receive_path, self.settings):
                return await call()
        except ValueError as err:
            # The SDK raises a plain ValueError when the receiver that got the
            # message lost its connection. Service Bus releases the locks of a
            # closed link, so the lock is gone.
            self._receiver_failed = True
            raise self._lock_lost(operation, message) from err
        finally:
            if receiver is not self._receiver:
                # The receiver was replaced while this call ran, and the SDK
                # reopens a closed receiver to retry a settlement. Left open, it
                # would take messages that no caller reads.
                await _close_quietly(receiver, f"replaced receiver on {self.receive_path}")

    def _held_message(
        self, message: ReceivedMessage, operation: str
    ) -> tuple[ServiceBusReceivedMessage, ServiceBusReceiver]:
        """Return the SDK message and its receiver; raise when this transport cannot settle it."""
        sdk_message = message.handle
        if not isinstance(sdk_message, ServiceBusReceivedMessage):
            raise ValueError(f"cannot {operation} message {message.message_id!r}: an azure transport did not receive it")
        # The SDK clears the lock token of a settled message.
        token = str(sdk_message.lock_token)
        held = self._held.get(token) if sdk_message.lock_token is not None else None
        if held is None or held[0] is not sdk_message:
            raise TransportError(
                f"cannot {operation} message {message.message_id!r}: this transport does not hold it;"
                " it was settled already, or another transport received it",
                backend=BACKEND,
                transient=False,
            )
        receiver = held[1]
        if receiver is not self._receiver:
            self._held.pop(token, None)
            raise self._lock_lost(operation, message)
        return held

    def _lock_lost(self, operation: str, message: ReceivedMessage) -> LockLostError:
        return LockLostError(
            f"cannot {operation} message {message.message_id!r}: the connection that received it was"
            " lost, and its lock with it; Service Bus delivers the message again",
            backend=BACKEND,
        )

    def _require_peek_lock(self, operation: str) -> None:
        if not self._peek_lock:
            raise UnsupportedOperationError(
                BACKEND,
                operation,
                hint="messages received with receive_mode = \"receive_and_delete\" are settled on delivery",
            )

    # closing

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        released = 0
        if self._renewer is not None:
            await _close_quietly(self._renewer, "lock renewer")
        if self._receiver is not None:
            released = await self._release_held(self._receiver)
        for resource, what in (
            (self._receiver, f"receiver on {self.receive_path}"),
            (self._sender, f"sender on {self.entity}"),
            (self._client, "client"),
            (self._credential, "credential"),
        ):
            if resource is not None and hasattr(resource, "close"):
                await _close_quietly(resource, what)
        self._receiver = self._sender = self._client = self._credential = None

        if released:
            logger.info("Closed the Service Bus transport of channel %s; released %d unsettled message(s)", self.channel, released)
        else:
            logger.info("Closed the Service Bus transport of channel %s", self.channel)

    async def _release_held(self, receiver: ServiceBusReceiver) -> int:
        released = 0
        held, self._held = list(self._held.values()), {}
        for sdk_message, received_by in held:
            if received_by is not receiver:
                continue
            try:
                await asyncio.wait_for(receiver.abandon_message(sdk_message), CLOSE_TIMEOUT)
            except (sdk_errors.ServiceBusError, sdk_errors.MessageAlreadySettled, asyncio.TimeoutError) as err:
                # The lock is gone or unreachable: the broker delivers the message
                # again when the lock expires, which is all that releasing achieves.
                logger.debug("Could not abandon message %s on close: %r", sdk_message.message_id, err)
            else:
                released += 1
        return released


def encoded_size(sdk_message: ServiceBusMessage) -> int:
    """Return the bytes that ``sdk_message`` takes in a batch of its own, as the SDK counts them."""
    measuring = ServiceBusMessageBatch(max_size_in_bytes=2**62)
    measuring.add_message(sdk_message)
    return measuring.size_in_bytes


async def _close_quietly(resource: Any, what: str) -> None:
    try:
        await asyncio.wait_for(resource.close(), CLOSE_TIMEOUT)
    except asyncio.TimeoutError:
        logger.warning("Closing the Service Bus %s took more than %.0f s; gave up waiting", what, CLOSE_TIMEOUT)
    except (sdk_errors.ServiceBusError, OSError) as err:
        logger.debug("Closing the Service Bus %s failed: %r", what, err)
