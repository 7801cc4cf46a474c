"""Settings and capabilities of the ``azure`` backend.

This module imports pydantic and the core only, not the Azure SDK, so the
plugin can describe the backend while ``azure-servicebus`` is missing.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from iris_transport.config import SecretRef
from iris_transport.transport import Capabilities

__all__ = [
    "AZURE_CAPABILITIES",
    "BATCH_ENVELOPE_RESERVE",
    "AzureServiceBusSettings",
    "DEFAULT_LOCK_DURATION",
    "DEFAULT_MAX_DELIVERY_COUNT",
    "STANDARD_MAX_MESSAGE_BYTES",
]

STANDARD_MAX_MESSAGE_BYTES = 256 * 1024
"""The largest message of the Standard tier; Premium namespaces allow up to 100 MB per entity."""

DEFAULT_LOCK_DURATION = 60.0
"""The LockDuration Service Bus gives a new queue or subscription, in seconds."""

DEFAULT_MAX_DELIVERY_COUNT = 10
"""The MaxDeliveryCount Service Bus gives a new queue or subscription."""

BATCH_ENVELOPE_RESERVE = 512
"""Bytes kept free in each batch for the envelope that the SDK's size count leaves out.

``ServiceBusMessageBatch.size_in_bytes`` (azure-servicebus 7.15) counts each
message and its framing but not the envelope message, which copies the
first message's message id, session id and partition key (up to 128
characters each). Measured on the wire, the envelope takes 56 bytes plus
those ids, at most about 460 bytes.
"""

AZURE_CAPABILITIES = Capabilities(
    max_message_bytes=STANDARD_MAX_MESSAGE_BYTES - BATCH_ENVELOPE_RESERVE,
    batch_send=True,
    max_batch_bytes=STANDARD_MAX_MESSAGE_BYTES - BATCH_ENVELOPE_RESERVE,
    ordering_keys=False,
    scheduled_delivery=True,
    time_to_live=True,
    retry_delay=False,
    native_dead_letter=True,
    lock_extension=True,
    lock_duration=DEFAULT_LOCK_DURATION,
    max_delivery_count=DEFAULT_MAX_DELIVERY_COUNT,
)
"""Capabilities of the ``azure`` backend with default settings.

Service Bus cannot hold an abandoned message back for a delay, so
``retry_delay`` is False and the runtime keeps the message locked for its
backoff before abandoning it. Sizes are the entity's limit less
``BATCH_ENVELOPE_RESERVE``, counted as ``ServiceBusMessageBatch`` counts
them: body, properties and AMQP framing. A transport's own capabilities follow its
settings: ``ordering_keys`` is True on session-enabled entities, and the
lock duration, delivery count and size limit are the configured ones.
"""

# Entity names: letters, digits, '.', '-', '_' and '/' (for nested paths), as
# Service Bus allows, without the '$' of system paths such as $deadletterqueue.
_ENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")


class AzureServiceBusSettings(BaseModel):
    """Settings of one channel on the ``azure`` backend.

    Give either ``connection_string``, or ``namespace`` with ``credential``.
    The entity is ``queue`` (the channel name when neither ``queue`` nor
    ``topic`` is set), or ``topic`` with ``subscription`` for receiving. A
    channel that only sends never opens a receiver or a management link, so
    a connection string or token with the Send right alone is enough.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_string: SecretRef | None = Field(
        default=None,
        description=(
            "Service Bus connection string with a shared access key or signature,"
            " e.g. { env = \"IRIS_ORDERS_CONNECTION_STRING\" }."
        ),
    )
    namespace: str | None = Field(
        default=None,
        description="Fully qualified namespace, e.g. iris.servicebus.windows.net; needs credential.",
    )
    credential: Literal["default"] | SecretRef | None = Field(
        default=None,
        description=(
            '"default" for azure-identity\'s DefaultAzureCredential, or a shared access signature'
            " token (SharedAccessSignature sr=...&sig=...&se=...&skn=...) as a secret."
        ),
    )
    queue: str | None = Field(default=None, description="Queue name; the channel name when neither queue nor topic is set.")
    topic: str | None = Field(default=None, description="Topic to send to, instead of a queue.")
    subscription: str | None = Field(default=None, description="Subscription of topic to receive from.")
    receive_mode: Literal["peek_lock", "receive_and_delete"] = Field(
        default="peek_lock",
        description=(
            "peek_lock locks each message until it is settled; receive_and_delete removes it on"
            " delivery, so a failed handler loses it."
        ),
    )
    prefetch: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Messages the receiver fetches ahead; each stays locked while it waits in the buffer.",
    )
    sessions: bool = Field(
        default=False,
        description=(
            "The entity requires sessions: each message's ordering key becomes its session id, and"
            " messages of one session are delivered in order."
        ),
    )
    lock_duration: float = Field(
        default=DEFAULT_LOCK_DURATION,
        gt=0,
        le=300,
        description="The entity's LockDuration in seconds, as configured on Service Bus (max 5 minutes).",
    )
    max_delivery_count: int = Field(
        default=DEFAULT_MAX_DELIVERY_COUNT,
        ge=1,
        description="The entity's MaxDeliveryCount, as configured on Service Bus.",
    )
    max_message_bytes: int = Field(
        default=STANDARD_MAX_MESSAGE_BYTES,
        ge=1024,
        le=100 * 1024 * 1024,
        description=(
            "Largest message to send, in bytes: 262144 on the Standard tier, up to 104857600 on Premium."
            " The smaller of this and the size the service announces applies."
        ),
    )
    max_lock_renewal_duration: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Seconds for which the SDK's AutoLockRenewer keeps renewing each received message's lock."
            " Unset: the iris-transport consumer renews locks itself."
        ),
    )
    retry_total: int = Field(
        default=3,
        ge=0,
        le=20,
        description="How often the SDK retries an operation after a transient error.",
    )

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.strip().removeprefix("sb://").removeprefix("amqps://").rstrip("/")
        if "/" in host or "." not in host:
            raise ValueError(
                "must be a fully qualified namespace such as iris.servicebus.windows.net,"
                " without a path"
            )
        return host

    @field_validator("queue", "topic", "subscription")
    @classmethod
    def _check_entity_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENTITY_NAME.match(value):
            raise ValueError(
                "must be a Service Bus entity name: letters, digits, '.', '-', '_' and '/', at most"
                " 260 characters; read dead-lettered messages with iris-transport dlq, not a $ path"
            )
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> AzureServiceBusSettings:
        if self.connection_string is None and self.namespace is None:
            raise ValueError(
                "set connection_string, or namespace with credential, to say how to reach Service Bus"
            )
        if self.connection_string is not None and (self.namespace is not None or self.credential is not None):
            raise ValueError(
                "connection_string already names the namespace and carries the key;"
                " remove namespace and credential, or remove connection_string"
            )
        if self.namespace is not None and self.credential is None:
            raise ValueError(
                'namespace needs credential: "default" for DefaultAzureCredential, or a SAS token secret'
            )
        if self.queue is not None and self.topic is not None:
            raise ValueError("set queue or topic, not both")
        if self.subscription is not None and self.topic is None:
            raise ValueError("subscription needs topic: set the topic the subscription belongs to")
        return self

    def entity_for(self, channel: str) -> str:
        """Return the queue or topic that messages of ``channel`` are sent to."""
        return self.topic or self.queue or channel

    def capabilities(self) -> Capabilities:
        """Return the capabilities of a transport with these settings."""
        peek_lock = self.receive_mode == "peek_lock"
        usable = self.max_message_bytes - BATCH_ENVELOPE_RESERVE
        return Capabilities(
            max_message_bytes=usable,
            batch_send=True,
            max_batch_bytes=usable,
            ordering_keys=self.sessions,
            scheduled_delivery=True,
            time_to_live=True,
            retry_delay=False,
            native_dead_letter=True,
            lock_extension=peek_lock,
            lock_duration=self.lock_duration if peek_lock else None,
            max_delivery_count=self.max_delivery_count,
        )
