"""Conversion between iris-transport messages and Service Bus SDK messages.

Outgoing, ``OutgoingMessage`` becomes a ``ServiceBusMessage`` with one Data
section. Incoming, every body shape an AMQP sender can produce becomes bytes:

* one or more Data sections: the sections concatenated;
* an AMQP value: a string as UTF-8, binary as is, a map or list as JSON,
  any other scalar as its JSON text, null as an empty body;
* one or more AMQP sequence sections: a single item in all is converted as
  an AMQP value would be, so a JSON string or a map in a one-item sequence
  reads like a plain message. Several items become one JSON array.

Decoding the bytes (BOMs, .NET DataContract strings, JSON) is the codec's
job, not the transport's. Application property keys and string values
arrive from the SDK as bytes; they are turned into ``str`` here, and other
AMQP types that are not a ``PropertyValue`` (uuid, timestamp) become text.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

from iris_transport.transport import OutgoingMessage, PropertyValue, ReceivedMessage

__all__ = [
    "body_bytes",
    "check_application_properties",
    "normalize_application_properties",
    "to_received_message",
    "to_service_bus_message",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


# Outgoing


def to_service_bus_message(message: OutgoingMessage, *, session_id_required: bool) -> ServiceBusMessage:
    """Build the SDK message for ``message``.

    The ordering key becomes the session id when the entity requires
    sessions, and is not sent otherwise, because Service Bus orders messages
    only within a session. Raises ``ValueError`` or ``TypeError`` naming the
    field when a value cannot be sent.
    """
    session_id = None
    if session_id_required:
        if not message.ordering_key:
            raise ValueError(
                "OutgoingMessage.ordering_key is missing, but the Service Bus entity requires sessions;"
                " set an ordering key, which is sent as the session id"
            )
        session_id = message.ordering_key

    scheduled = message.scheduled_enqueue_time
    if scheduled is not None and scheduled.tzinfo is None:
        raise ValueError("OutgoingMessage.scheduled_enqueue_time must be timezone-aware, e.g. in timezone.utc")
    if message.time_to_live is not None and message.time_to_live <= dt.timedelta(0):
        raise ValueError("OutgoingMessage.time_to_live must be positive")

    return ServiceBusMessage(
        body=bytes(message.body),
        application_properties=check_application_properties(message.application_properties) or None,
        session_id=session_id,
        message_id=message.message_id,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        time_to_live=message.time_to_live,
        scheduled_enqueue_time_utc=scheduled,
    )


def check_application_properties(properties: Mapping[str, PropertyValue]) -> dict[str, PropertyValue]:
    """Return a copy of ``properties`` after checking that Service Bus accepts each value.

    Raises ``TypeError`` for a key that is not a string or a value that is not
    str, int, float, bool or None, and ``ValueError`` for an integer outside
    the signed 64-bit range of an AMQP long. Both name the property.
    """
    checked: dict[str, PropertyValue] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"application property name {key!r} must be a non-empty str")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"application property {key!r} is a {type(value).__name__}; Service Bus accepts"
                " str, int, float, bool or None, so convert it first"
            )
        if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(
                f"application property {key!r} is outside the signed 64-bit range Service Bus accepts;"
                " send it as a str"
            )
        checked[key] = value
    return checked


# Incoming


def to_received_message(sdk_message: ServiceBusReceivedMessage) -> ReceivedMessage:
    """Build the ``ReceivedMessage`` of an SDK message, keeping the SDK message as its handle.

    The SDK reports the AMQP delivery count, which counts earlier failed
    deliveries only; ``ReceivedMessage.delivery_count`` counts this one too.
    """
    return ReceivedMessage(
        body=body_bytes(sdk_message),
        content_type=_optional_text(sdk_message.content_type),
        message_id=_optional_text(sdk_message.message_id),
        correlation_id=_optional_text(sdk_message.correlation_id),
        subject=_optional_text(sdk_message.subject),
        application_properties=normalize_application_properties(sdk_message.application_properties),
        ordering_key=_optional_text(sdk_message.session_id),
        time_to_live=sdk_message.time_to_live,
        scheduled_enqueue_time=sdk_message.scheduled_enqueue_time_utc,
        delivery_count=(sdk_message.delivery_count or 0) + 1,
        enqueued_time=sdk_message.enqueued_time_utc,
        handle=sdk_message,
    )


def body_bytes(sdk_message: ServiceBusReceivedMessage) -> bytes:
    """Return the body of any AMQP body shape as bytes (see the module docstring)."""
    body_type = sdk_message.body_type
    if body_type == AmqpMessageBodyType.DATA:
        return b"".join(bytes(section) for section in sdk_message.body)
    if body_type == AmqpMessageBodyType.SEQUENCE:
        items: list[Any] = []
        for section in sdk_message.body:
            items.extend(section)
        if len(items) == 1:
            return _value_bytes(items[0])
        return _json_bytes(items)
    return _value_bytes(sdk_message.body)


def _value_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return _json_bytes(value)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _jsonable(value: Any) -> Any:
    """Turn AMQP values into JSON-serialisable ones: binary and symbols become text."""
    if isinstance(value, Mapping):
        return {_text(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(value))
    if isinstance(value, (uuid.UUID, dt.datetime)):
        return _text(value)
    return value


def normalize_application_properties(properties: Mapping[Any, Any] | None) -> dict[str, PropertyValue]:
    """Return ``properties`` with str keys and ``PropertyValue`` values."""
    normalized: dict[str, PropertyValue] = {}
    for key, value in (properties or {}).items():
        normalized[_text(key)] = _property_value(value)
    return normalized


def _property_value(value: Any) -> PropertyValue:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview, uuid.UUID, dt.datetime)):
        return _text(value)
    if isinstance(value, (Mapping, list, tuple)):
        return _json_bytes(value).decode("utf-8")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(value))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _bytes_text(value: bytes) -> str:
    """Decode UTF-8 text; binary that is not UTF-8 becomes base64, so no byte is lost."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")
