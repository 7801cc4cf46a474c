"""AMQP 1.0 message sections, read and written with Proton's ``Data`` codec.

The emulator keeps a message as its encoded sections so that whatever body a
sender wrote (one or more data sections, an AMQP value or sequence, a footer)
reaches the receiver byte for byte. Only the header, the message annotations
and, when a message is dead-lettered, the application properties are decoded
and encoded again.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from proton import Array, Data, Described, ProtonException, symbol, timestamp, ubyte, uint, ulong

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78

_SYMBOLIC_DESCRIPTORS = {
    "amqp:header:list": HEADER,
    "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES,
    "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": AMQP_SEQUENCE,
    "amqp:amqp-value:*": AMQP_VALUE,
    "amqp:footer:map": FOOTER,
}
_BODY_SECTIONS = frozenset({DATA, AMQP_SEQUENCE, AMQP_VALUE})


class MessageFormatError(ValueError):
    """A transfer payload that is not a valid AMQP 1.0 message."""


@dataclasses.dataclass(frozen=True)
class Section:
    """One encoded section of a message, with its descriptor code."""

    code: int
    raw: bytes


def owned(value: Any) -> Any:
    """Copy binary values out of Proton's decode buffer.

    Proton returns binary values as memoryviews into a buffer that it reuses,
    so anything kept past the next decode must be copied to ``bytes``.
    """
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {owned(key): owned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [owned(item) for item in value]
    if isinstance(value, Described):
        return Described(owned(value.descriptor), owned(value.value))
    if isinstance(value, Array):
        return Array(owned(value.descriptor), value.type, *(owned(item) for item in value.elements))
    return value


def decode_value(raw: bytes) -> Any:
    """Decode one AMQP value and return it with its binaries copied."""
    data = Data()
    data.decode(raw)
    data.rewind()
    data.next()
    return owned(data.get_object())


def encode_value(value: Any) -> bytes:
    """Encode one AMQP value given as Proton's Python types."""
    data = Data()
    data.put_object(value)
    return data.encode()


def encode_section(code: int, value: Any) -> bytes:
    """Encode a described section, e.g. ``encode_section(HEADER, [...])``."""
    return encode_value(Described(ulong(code), value))


def split_sections(payload: bytes) -> list[Section]:
    """Split an encoded message into its sections, in order."""
    sections = []
    offset = 0
    while offset < len(payload):
        data = Data()
        try:
            consumed = data.decode(payload[offset:])
        except ProtonException as error:
            raise MessageFormatError(f"invalid AMQP encoding at byte {offset}: {error}") from error
        data.rewind()
        data.next()
        if data.type() != Data.DESCRIBED:
            raise MessageFormatError(f"expected a described section at byte {offset}")
        data.enter()
        data.next()
        descriptor = data.get_object()
        data.exit()
        code = _section_code(descriptor)
        if code is None:
            raise MessageFormatError(f"unknown section descriptor {descriptor!r} at byte {offset}")
        sections.append(Section(code, bytes(payload[offset : offset + consumed])))
        offset += consumed
    return sections


def _section_code(descriptor: Any) -> int | None:
    if isinstance(descriptor, symbol):
        return _SYMBOLIC_DESCRIPTORS.get(str(descriptor))
    if isinstance(descriptor, int) and HEADER <= descriptor <= FOOTER:
        return int(descriptor)
    return None


def split_batch(payload: bytes) -> list[bytes] | None:
    """Return the messages of a batch transfer, or None for a single message.

    The SDK sends a batch as one transfer in message format 0x80013700 whose
    data sections each hold one encoded message. Proton's Python binding does
    not expose a delivery's message format, so a batch is recognized by shape:
    only data sections in the body, each holding one or more AMQP message
    sections. A message of the batch may lack a body section, as one that
    the SDK sends for ``ServiceBusMessage(None)`` does.
    """
    sections = split_sections(payload)
    body = [section for section in sections if section.code in _BODY_SECTIONS]
    if not body or any(section.code != DATA for section in body):
        return None

    messages = []
    for section in body:
        inner = _described_value(section.raw)
        if not isinstance(inner, bytes) or not _is_message(inner):
            return None
        messages.append(inner)
    return messages


def _is_message(candidate: bytes) -> bool:
    try:
        return bool(split_sections(candidate))
    except MessageFormatError:
        return False


def _described_value(raw: bytes) -> Any:
    described = decode_value(raw)
    return described.value if isinstance(described, Described) else None


@dataclasses.dataclass
class MessageParts:
    """A stored message: its header fields, annotations and untouched sections.

    ``properties_raw``, ``application_properties_raw`` and ``body_raw`` are
    the encoded sections as the sender wrote them; ``body_raw`` also carries
    the footer.
    """

    durable: bool | None = None
    priority: int | None = None
    ttl_ms: int | None = None
    annotations: dict = dataclasses.field(default_factory=dict)
    properties_raw: bytes = b""
    application_properties_raw: bytes = b""
    body_raw: bytes = b""

    @classmethod
    def parse(cls, payload: bytes) -> MessageParts:
        """Parse an encoded message; delivery annotations are dropped.

        AMQP 1.0 requires a body section, but the SDK sends none for
        ``ServiceBusMessage(None)``, so a message without one is stored as is.
        """
        parts = cls()
        body = bytearray()
        for section in split_sections(payload):
            if section.code == HEADER:
                parts._read_header(_described_value(section.raw) or [])
            elif section.code == MESSAGE_ANNOTATIONS:
                parts.annotations = dict(_described_value(section.raw) or {})
            elif section.code == PROPERTIES:
                parts.properties_raw = section.raw
            elif section.code == APPLICATION_PROPERTIES:
                parts.application_properties_raw = section.raw
            elif section.code != DELIVERY_ANNOTATIONS:
                body.extend(section.raw)
        if not payload:
            raise MessageFormatError("the message is empty")
        parts.body_raw = bytes(body)
        return parts

    def _read_header(self, fields: list) -> None:
        fields = list(fields) + [None] * (5 - len(fields))
        self.durable = fields[0]
        self.priority = fields[1]
        self.ttl_ms = fields[2]

    def properties(self) -> list:
        """Return the decoded properties list (message id first), padded to 13 fields."""
        if not self.properties_raw:
            return [None] * 13
        fields = list(_described_value(self.properties_raw) or [])
        return fields + [None] * (13 - len(fields))

    def application_properties(self) -> dict:
        """Return the decoded application properties."""
        if not self.application_properties_raw:
            return {}
        return dict(_described_value(self.application_properties_raw) or {})

    def set_application_properties(self, values: dict) -> None:
        """Replace the application properties section."""
        self.application_properties_raw = encode_section(APPLICATION_PROPERTIES, values)

    def annotation(self, name: str) -> Any:
        """Return the message annotation ``name``, or None."""
        return self.annotations.get(symbol(name))

    def encode(self, *, delivery_count: int, extra_annotations: dict[str, Any]) -> bytes:
        """Encode the message as a broker delivers it.

        ``extra_annotations`` replace annotations of the same name; each value
        must already be a Proton type (``timestamp``, ``long``, ``str``, ...).
        """
        header = [
            self.durable,
            ubyte(self.priority) if self.priority is not None else None,
            uint(self.ttl_ms) if self.ttl_ms is not None else None,
            None,
            uint(delivery_count),
        ]
        annotations = dict(self.annotations)
        for name, value in extra_annotations.items():
            annotations[symbol(name)] = value

        encoded = bytearray(encode_section(HEADER, header))
        encoded += encode_section(MESSAGE_ANNOTATIONS, annotations)
        encoded += self.properties_raw
        encoded += self.application_properties_raw
        encoded += self.body_raw
        return bytes(encoded)


def timestamp_ms(seconds: float) -> timestamp:
    """Convert seconds since the epoch to an AMQP timestamp (milliseconds)."""
    return timestamp(int(seconds * 1000))


def lock_token_tag(token: uuid.UUID) -> bytes:
    """Return the delivery tag for a lock token: the UUID in GUID byte order.

    The SDK reads a received message's lock token as
    ``uuid.UUID(bytes_le=delivery_tag)``, the layout .NET's ``Guid`` uses.
    """
    return token.bytes_le
