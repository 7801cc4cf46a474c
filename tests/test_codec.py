"""The codec: every body shape real senders produce decodes to the same JSON document."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pydantic
import pytest

from iris_transport import codec
from iris_transport.codec import SERIALIZATION_NAMESPACE, decode_json_body, encode_json_message
from iris_transport.exceptions import DecodeError, MessageValidationError
from iris_transport.transport import ReceivedMessage

EXAMPLES = Path(__file__).parent / "data" / "iris-examples"

DOCUMENT = '{"TransactionId": "6b0b3f1e", "Patient": {"LastName": "Müller", "Note": "café ☕"}, "Codes": [1, 2]}'
EXPECTED = DOCUMENT.encode("utf-8")


def binary_xml(element: str, *records: bytes) -> bytes:
    """Build a .NET Binary XML ([MC-NBFX]) document the way DataContractSerializer writes a string."""
    namespace = SERIALIZATION_NAMESPACE.encode()
    return bytes([0x40, len(element)]) + element.encode() + bytes([0x08, len(namespace)]) + namespace + b"".join(records)


def text_record(record_type: int, payload: bytes) -> bytes:
    length_format = {0x98: "<B", 0x9A: "<H", 0x9C: "<i", 0xB6: "<B", 0xB8: "<H", 0xBA: "<i", 0x9E: "<B", 0xA0: "<H"}[
        record_type & ~1
    ]
    return bytes([record_type]) + struct.pack(length_format, len(payload)) + payload


UTF8 = EXPECTED

BODIES = {
    "utf-8": UTF8,
    "utf-8 with BOM": b"\xef\xbb\xbf" + UTF8,
    "utf-8 with surrounding whitespace": b"\r\n  " + UTF8 + b"\n",
    "utf-16 LE with BOM": DOCUMENT.encode("utf-16"),
    "utf-16 BE with BOM": b"\xfe\xff" + DOCUMENT.encode("utf-16-be"),
    "utf-16 LE without BOM": DOCUMENT.encode("utf-16-le"),
    "utf-32 with BOM": DOCUMENT.encode("utf-32"),
    "double-encoded JSON": json.dumps(DOCUMENT).encode(),
    "double-encoded JSON with BOM": b"\xef\xbb\xbf" + json.dumps(DOCUMENT).encode(),
    "double-encoded JSON with a BOM inside the string": json.dumps("\ufeff" + DOCUMENT).encode(),
    "triple-encoded JSON": json.dumps(json.dumps(DOCUMENT)).encode(),
    "DataContract XML text": f'<string xmlns="{SERIALIZATION_NAMESPACE}">{DOCUMENT}</string>'.encode(),
    "DataContract XML with declaration": (
        f'<?xml version="1.0" encoding="utf-8"?><string xmlns="{SERIALIZATION_NAMESPACE}">{DOCUMENT}</string>'
    ).encode(),
    "DataContract XML in UTF-16": f'<string xmlns="{SERIALIZATION_NAMESPACE}">{DOCUMENT}</string>'.encode("utf-16"),
    "DataContract XML base64Binary": (
        f'<base64Binary xmlns="{SERIALIZATION_NAMESPACE}">{base64.b64encode(UTF8).decode()}</base64Binary>'
    ).encode(),
    "DataContract binary Chars8TextWithEndElement": binary_xml("string", text_record(0x99, UTF8)),
    "DataContract binary Chars16Text and EndElement": binary_xml("string", text_record(0x9A, UTF8), b"\x01"),
    "DataContract binary Chars16TextWithEndElement": binary_xml("string", text_record(0x9B, UTF8)),
    "DataContract binary Chars32TextWithEndElement": binary_xml("string", text_record(0x9D, UTF8)),
    "DataContract binary split text records": binary_xml(
        "string", text_record(0x98, UTF8[:10]), text_record(0x9A, UTF8[10:]), b"\x01"
    ),
    "DataContract binary UnicodeChars16Text": binary_xml(
        "string", text_record(0xB9 - 1, DOCUMENT.encode("utf-16-le")), b"\x01"
    ),
    "DataContract binary base64Binary": binary_xml("base64Binary", text_record(0x9F, b"\xef\xbb\xbf" + UTF8)),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_body_decodes_to_document(body):
    assert decode_json_body(body, "application/json") == EXPECTED


def test_long_binary_body_decodes():
    document = json.dumps({"Report": "A" * 70_000}).encode()

    assert decode_json_body(binary_xml("string", text_record(0x9D, document))) == document
    assert decode_json_body(binary_xml("string", text_record(0x9A, document[:60_000]), text_record(0x9B, document[60_000:]))) == document


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "application/octet-stream", "application/xml", "application/json; charset=utf-16", "x/y; charset=nonsense"],
)
def test_wrong_or_missing_content_type_ignored(content_type):
    assert decode_json_body(UTF8, content_type) == EXPECTED
    assert decode_json_body(DOCUMENT.encode("utf-16"), content_type) == EXPECTED


def test_declared_charset_used_when_body_is_not_utf8():
    body = DOCUMENT.replace("☕", "").encode("latin-1")

    assert decode_json_body(body, "application/json; charset=ISO-8859-1") == DOCUMENT.replace("☕", "").encode()


def test_syntax_error_reports_line_and_column():
    body = b'{\n  "Patient": {"LastName": "Doe"\n  "Dob": "1970-01-01"}\n}'

    with pytest.raises(DecodeError) as caught:
        decode_json_body(body)

    assert caught.value.line == 3
    assert caught.value.column == 3
    assert "line 3, column 3" in str(caught.value)
    assert "Doe" not in str(caught.value)
    assert "1970" not in str(caught.value)


def test_syntax_error_inside_wrapped_json():
    with pytest.raises(DecodeError, match="wrapped in a JSON string is not valid JSON") as caught:
        decode_json_body(json.dumps('{"LastName": "Doe",}').encode())

    assert caught.value.line == 1
    assert "Doe" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the message body is empty"),
        (b"   ", "not valid JSON"),
        (b"[1, 2]", "not an object \\(found an array\\)"),
        (b'"just text"', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid UTF-16"),
        (b'{"LastName": "M\xfcller"}', "not valid UTF-8 text \\(invalid bytes at offset 15\\)"),
        (b"<Order><LastName>Doe</LastName></Order>", "XML but not a .NET DataContract string"),
        (b'<string xmlns="urn:other">{}</string>', "XML but not a .NET DataContract string"),
        (b"<string", "looks like XML but is malformed"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><string/>', "document type declaration"),
        (f'<base64Binary xmlns="{SERIALIZATION_NAMESPACE}">not base64!</base64Binary>'.encode(), "not valid base64"),
        (binary_xml("string", b"\x99\x40{}"), "truncated"),
        (binary_xml("string", text_record(0x99, b"{}"), b"\x00"), "data follows the end of the element"),
        (binary_xml("string", b"\x8c\x00\x00\x00\x00"), "unexpected record type 0x8C"),
        (b"@\x06string\x083http://example.com/other-namespace/xxxxxxxxxxxxxxxxxxxxx\x99\x02{}", "namespace"),
        (json.dumps(json.dumps(json.dumps(json.dumps("{}")))).encode(), "wrapped more than"),
        (json.dumps('{"Name": "\ud800"}').encode(), "unpaired UTF-16 surrogate"),
        (b"[" * 100_000, "nests arrays or objects too deeply"),
        (b'{"Name": ' * 100_000, "nests arrays or objects too deeply"),
        (b'{"Mrn": ' + b"1" * 5000 + b"}", "not valid JSON: Exceeds the limit"),
        (b'{"Weight": NaN}', "NaN is not a JSON value"),
        (json.dumps('{"Weight": -Infinity}').encode(), "-Infinity is not a JSON value"),
    ],
)
def test_undecodable_body_raises_reason(body, reason):
    with pytest.raises(DecodeError, match=reason) as caught:
        decode_json_body(body)

    assert "Doe" not in str(caught.value)
    assert "Müller" not in str(caught.value)


def test_body_must_be_bytes():
    with pytest.raises(TypeError, match="body must be bytes"):
        decode_json_body(DOCUMENT)  # type: ignore[arg-type]


def test_encode_json_message_sets_content_type_and_ids():
    message = encode_json_message(
        b"\xef\xbb\xbf" + UTF8,
        message_id="m-1",
        correlation_id="c-1",
        subject="OrderResult",
        properties={"ResultObjectType": "OrderResult"},
    )

    assert message.body == UTF8
    assert message.content_type == "application/json"
    assert message.message_id == "m-1"
    assert message.correlation_id == "c-1"
    assert message.subject == "OrderResult"
    assert message.application_properties == {"ResultObjectType": "OrderResult"}


def test_message_decoder_normalises_before_parsing():
    decode = codec.message_decoder(json.loads)
    received = ReceivedMessage(body=json.dumps(DOCUMENT).encode(), content_type="text/plain")

    assert decode(received) == json.loads(DOCUMENT)


def test_message_decoder_hides_pydantic_input_values():
    class Patient(pydantic.BaseModel):
        age: int
        names: list[int]

    decode = codec.message_decoder(Patient.model_validate_json)
    received = ReceivedMessage(body=b'{"age": "John Doe", "names": [1, "Jane Roe"]}')

    with pytest.raises(MessageValidationError) as caught:
        decode(received)

    text = str(caught.value)
    assert "John Doe" not in text
    assert "Jane Roe" not in text
    assert [problem.path for problem in caught.value.problems] == ["age", "names[1]"]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_model_round_trip_through_codec():
    body = (EXAMPLES / "event-order-cancelled.json").read_bytes()
    kind, model = codec.decode_model(ReceivedMessage(body=binary_xml("string", text_record(0x9B, body))))

    outgoing = codec.encode_model(model, message_id="m-1")
    kind_again, model_again = codec.decode_model(ReceivedMessage(body=outgoing.body))

    assert kind_again == kind
    assert model_again == model
    assert outgoing.content_type == "application/json"
