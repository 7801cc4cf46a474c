"""The codec: message bodies as real senders produce them <-> one UTF-8 JSON document.

``decode_json_body`` accepts every body shape seen on IRIS channels and
returns the JSON document as UTF-8 bytes without a BOM:

- UTF-8 with or without a byte order mark, UTF-16 and UTF-32 with a byte
  order mark or detected from the first characters (as RFC 4627 describes);
- a JSON document wrapped in a JSON string (``"{\\"OrderControlCode\\": ...}"``);
- the legacy .NET ``BrokeredMessage(string)`` body, which the old
  WindowsAzure.ServiceBus SDK serialised with ``DataContractSerializer`` as
  .NET Binary XML ([MC-NBFX]): ``<string xmlns="http://schemas.microsoft.com/
  2003/10/Serialization/">{...}</string>`` written as records. The
  ``base64Binary`` form that ``BrokeredMessage(byte[])`` produces is
  accepted too, and so is the same XML as text;
- a missing or wrong content type: the bytes decide, and the content type is
  only used for its ``charset`` when the bytes carry no byte order mark.

The byte-level functions here do not import the models. ``decode_model`` and
``encode_model`` import ``iris_transport.models`` when they are called.
Errors never quote the body, because IRIS bodies carry patient data.
"""

from __future__ import annotations

import codecs
import json
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pydantic

from iris_transport.exceptions import DecodeError, MessageValidationError, ValidationProblem
from iris_transport.transport import OutgoingMessage, PropertyValue, ReceivedMessage

__all__ = [
    "JSON_CONTENT_TYPE",
    "decode_json_body",
    "decode_model",
    "encode_json_message",
    "encode_model",
    "message_decoder",
]

JSON_CONTENT_TYPE = "application/json"

SERIALIZATION_NAMESPACE = "http://schemas.microsoft.com/2003/10/Serialization/"

# A document wrapped in up to two JSON strings is accepted. Deeper nesting is
# rejected as malformed.
_MAX_WRAPPING_DEPTH = 3

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

T = TypeVar("T")


def decode_json_body(body: bytes, content_type: str | None = None) -> bytes:
    """Normalise a message body into one JSON object, as UTF-8 bytes without a BOM.

    Raises ``DecodeError`` with the reason (and the 1-based line and column for
    JSON syntax errors) when the body is empty, not text in a known encoding,
    a malformed .NET DataContract body, not JSON, or JSON that is not an object.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    body = bytes(body)
    if not body:
        raise DecodeError("the message body is empty")

    if _is_binary_xml(body):
        text = _decode_binary_xml_string(body)
    else:
        text = _decode_text(body, _charset_of(content_type))
    return _decode_json_text(text, depth=0)


def encode_json_message(
    json_bytes: bytes,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    subject: str | None = None,
    properties: Mapping[str, PropertyValue] | None = None,
    ordering_key: str | None = None,
    time_to_live: timedelta | None = None,
    scheduled_enqueue_time: datetime | None = None,
) -> OutgoingMessage:
    """Build an ``OutgoingMessage`` carrying a canonical UTF-8 JSON document.

    The body is sent as given, with content type ``application/json``. A
    leading UTF-8 byte order mark is removed, because RFC 8259 (section 8.1)
    forbids JSON senders to add one.
    """
    if not isinstance(json_bytes, (bytes, bytearray)):
        raise TypeError(f"json_bytes must be bytes, not {type(json_bytes).__name__}")
    body = bytes(json_bytes)
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]

    return OutgoingMessage(
        body=body,
        content_type=JSON_CONTENT_TYPE,
        message_id=message_id,
        correlation_id=correlation_id,
        subject=subject,
        application_properties=dict(properties or {}),
        ordering_key=ordering_key,
        time_to_live=time_to_live,
        scheduled_enqueue_time=scheduled_enqueue_time,
    )


def message_decoder(parse: Callable[[bytes], T]) -> Callable[[ReceivedMessage], T]:
    """Return a ``decode`` callable for the consumer: normalise the body, then ``parse`` it.

    ``parse`` receives UTF-8 JSON bytes, for example a model's
    ``model_validate_json`` or ``iris_transport.models.parse_message``. A
    pydantic ``ValidationError`` from ``parse`` is raised as
    ``MessageValidationError`` naming field paths only, because pydantic's own
    text quotes the invalid values, which may be patient data.
    """

    def decode(message: ReceivedMessage) -> T:
        document = decode_json_body(message.body, message.content_type)
        try:
            return parse(document)
        except pydantic.ValidationError as err:
            raise _validation_error_without_values(err) from None

    return decode


def _validation_error_without_values(err: pydantic.ValidationError) -> MessageValidationError:
    problems = []
    for error in err.errors(include_input=False, include_url=False, include_context=False):
        path = ""
        for part in error["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif path:
                path += f".{part}"
            else:
                path = str(part)
        problems.append(ValidationProblem(path, error["msg"]))
    return MessageValidationError(err.title, problems)


def decode_model(message: ReceivedMessage) -> Any:
    """Decode a received message into the IRIS model its body describes.

    Returns ``(kind, model)`` as ``iris_transport.models.parse_message`` does.
    Raises ``DecodeError`` for undecodable bodies and
    ``MessageValidationError`` for bodies that fail their model.
    """
    from iris_transport import models

    return models.parse_message(decode_json_body(message.body, message.content_type))


def encode_model(
    model: Any,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    subject: str | None = None,
    properties: Mapping[str, PropertyValue] | None = None,
) -> OutgoingMessage:
    """Serialise an IRIS model to canonical JSON and wrap it in an ``OutgoingMessage``."""
    from iris_transport import models

    return encode_json_message(
        models.to_json_bytes(model),
        message_id=message_id,
        correlation_id=correlation_id,
        subject=subject,
        properties=properties,
    )


# Text and JSON


def _charset_of(content_type: str | None) -> str | None:
    if not content_type:
        return None

    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset":
            continue
        charset = value.strip().strip('"').strip("'")
        try:
            return codecs.lookup(charset).name
        except LookupError:
            # An unknown charset label is as good as none: the bytes decide.
            return None
    return None


def _detect_encoding(body: bytes, charset: str | None) -> tuple[str, int]:
    """Return the encoding of a text body and the length of its byte order mark."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding, len(bom)

    # Without a BOM, JSON text starts with an ASCII character, so the zero
    # bytes around the first characters give UTF-16 and UTF-32 away.
    head = body[:4]
    if len(head) == 4:
        if head[:3] == b"\x00\x00\x00":
            return "utf-32-be", 0
        if head[1:] == b"\x00\x00\x00":
            return "utf-32-le", 0
    if len(head) >= 2:
        if head[0] == 0 and head[1] != 0:
            return "utf-16-be", 0
        if head[0] != 0 and head[1] == 0:
            return "utf-16-le", 0

    return "utf-8", 0


def _decode_text(body: bytes, charset: str | None) -> str:
    encoding, bom_length = _detect_encoding(body, charset)
    try:
        text = body[bom_length:].decode(encoding)
    except UnicodeDecodeError as err:
        # Valid UTF-8 wins over a declared charset, because senders often
        # declare one they do not use; the declared one is the fallback.
        if not bom_length and encoding == "utf-8" and charset not in (None, "ascii", "utf-8"):
            return _decode_declared_charset(body, charset)
        raise DecodeError(
            f"the message body is not valid {encoding.upper()} text "
            f"(invalid bytes at offset {err.start + bom_length})"
        ) from None

    if text.lstrip().startswith("<"):
        return _decode_xml_string(text)
    return text


def _decode_declared_charset(body: bytes, charset: str) -> str:
    try:
        text = body.decode(charset)
    except UnicodeDecodeError as err:
        raise DecodeError(
            f"the message body is neither UTF-8 nor valid {charset.upper()} text as its content type "
            f"declares (invalid bytes at offset {err.start})"
        ) from None

    if text.lstrip().startswith("<"):
        return _decode_xml_string(text)
    return text


def _decode_json_text(text: str, depth: int) -> bytes:
    where = "the message body" if depth == 0 else "the JSON document wrapped in a JSON string"
    if depth > 0:
        # A sender that wrote its JSON with a BOM and then wrapped that text
        # in a JSON string leaves the BOM as the string's first character.
        text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        # JSONDecodeError.msg names the expected token only; err.doc would hold the body.
        raise DecodeError(
            f"{where} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            line=err.lineno,
            column=err.colno,
        ) from None
    except RecursionError:
        raise DecodeError(f"{where} nests arrays or objects too deeply to decode") from None
    except ValueError as err:
        # Python rejects integers longer than sys.get_int_max_str_digits() with
        # a ValueError; the message gives digit counts only.
        raise DecodeError(f"{where} is not valid JSON: {err}") from None

    if isinstance(value, str):
        if depth + 1 >= _MAX_WRAPPING_DEPTH:
            raise DecodeError(
                f"the message body is a JSON string wrapped more than {_MAX_WRAPPING_DEPTH - 1} times"
            )
        return _decode_json_text(value, depth + 1)

    if not isinstance(value, dict):
        raise DecodeError(f"{where} is JSON but not an object (found {_json_type_name(value)})")

    try:
        return text.strip().encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(f"{where} contains an unpaired UTF-16 surrogate escape") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (RFC 8259 allows no NaN or Infinity)")


def _json_type_name(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


# The .NET DataContract body, as text XML


def _decode_xml_string(text: str) -> str:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DecodeError("the XML message body has a document type declaration, which is not accepted")

    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        line, column = err.position
        raise DecodeError(
            f"the message body looks like XML but is malformed at line {line}, column {column + 1}",
            line=line,
            column=column + 1,
        ) from None

    namespace, _, local_name = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if namespace != SERIALIZATION_NAMESPACE or local_name not in ("string", "base64Binary") or len(root):
        raise DecodeError(
            "the message body is XML but not a .NET DataContract string; expected a single "
            f"<string xmlns=\"{SERIALIZATION_NAMESPACE}\"> element"
        )

    content = root.text or ""
    if local_name == "base64Binary":
        return _decode_text(_decode_base64(content), None)
    return content


def _decode_base64(content: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode("".join(content.split()), validate=True)
    except binascii.Error:
        raise DecodeError("the .NET DataContract base64Binary body is not valid base64") from None


# The .NET DataContract body, as .NET Binary XML ([MC-NBFX])
#
# DataContractSerializer writes a string as one element without a prefix
# (ShortElement record 0x40, name "string") and its namespace declaration
# (ShortXmlnsAttribute record 0x08). The text follows as one or more text
# records. The last one marks the end of the element by an odd record type
# (type + 1), or an EndElement record (0x01) follows it. Names carry a 7-bit
# variable-length length prefix. Text lengths are 1, 2 or 4 bytes, little-endian.

_SHORT_ELEMENT = 0x40
_SHORT_XMLNS_ATTRIBUTE = 0x08
_END_ELEMENT = 0x01

# Text record type (without the end-element bit) -> (length size, encoding).
_TEXT_RECORDS = {
    0x98: (1, "utf-8"),  # Chars8Text
    0x9A: (2, "utf-8"),  # Chars16Text
    0x9C: (4, "utf-8"),  # Chars32Text
    0xB6: (1, "utf-16-le"),  # UnicodeChars8Text
    0xB8: (2, "utf-16-le"),  # UnicodeChars16Text
    0xBA: (4, "utf-16-le"),  # UnicodeChars32Text
    0x9E: (1, None),  # Bytes8Text
    0xA0: (2, None),  # Bytes16Text
    0xA2: (4, None),  # Bytes32Text
}
_EMPTY_TEXT = 0xA8
_LENGTH_FORMATS = {1: "<B", 2: "<H", 4: "<i"}


def _is_binary_xml(body: bytes) -> bool:
    # "@" cannot start JSON or XML text, so this test never misreads a text body.
    return len(body) > 2 and body[0] == _SHORT_ELEMENT and body[1] in (len("string"), len("base64Binary"))


class _RecordReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def read_byte(self) -> int:
        if self.offset >= len(self.data):
            raise self.truncated()
        value = self.data[self.offset]
        self.offset += 1
        return value

    def read_bytes(self, count: int) -> bytes:
        end = self.offset + count
        if count < 0 or end > len(self.data):
            raise self.truncated()
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def read_multibyte_int31(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            byte = self.read_byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise self.malformed("a length prefix is longer than 5 bytes")

    def read_name(self) -> str:
        raw = self.read_bytes(self.read_multibyte_int31())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.malformed("a name is not valid UTF-8") from None

    def truncated(self) -> DecodeError:
        return DecodeError(f"the .NET DataContract binary body is truncated at byte offset {self.offset}")

    def malformed(self, reason: str) -> DecodeError:
        return DecodeError(f"the .NET DataContract binary body is malformed at byte offset {self.offset}: {reason}")


def _decode_binary_xml_string(body: bytes) -> str:
    reader = _RecordReader(body)
    reader.read_byte()
    element_name = reader.read_name()
    if element_name not in ("string", "base64Binary"):
        raise reader.malformed("expected a <string> or <base64Binary> element")

    record = reader.read_byte()
    while record == _SHORT_XMLNS_ATTRIBUTE:
        namespace = reader.read_name()
        if namespace != SERIALIZATION_NAMESPACE:
            raise reader.malformed("the element's namespace is not the DataContract serialization namespace")
        record = reader.read_byte()

    text_parts: list[str] = []
    byte_parts: list[bytes] = []
    while True:
        if record == _END_ELEMENT:
            break
        ends_element = bool(record & 1) and record >= 0x80
        record_type = record & ~1 if record >= 0x80 else record

        if record_type == _EMPTY_TEXT:
            pass
        elif record_type in _TEXT_RECORDS:
            length_size, encoding = _TEXT_RECORDS[record_type]
            (length,) = struct.unpack(_LENGTH_FORMATS[length_size], reader.read_bytes(length_size))
            payload = reader.read_bytes(length)
            if encoding is None:
                byte_parts.append(payload)
            else:
                try:
                    text_parts.append(payload.decode(encoding))
                except UnicodeDecodeError:
                    raise reader.malformed(f"a text record is not valid {encoding.upper()}") from None
        else:
            raise reader.malformed(f"unexpected record type 0x{record:02X} inside the element")

        if ends_element:
            break
        record = reader.read_byte()

    if reader.offset != len(body):
        raise reader.malformed("data follows the end of the element")

    if element_name == "base64Binary" or byte_parts:
        if text_parts:
            raise reader.malformed("the element mixes text and byte records")
        return _decode_text(b"".join(byte_parts), None)
    return "".join(text_parts)
