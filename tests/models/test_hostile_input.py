"""Hostile and unusual input: deep nesting, huge numbers, odd types, edge dates, wrapped base64.

Reading such input raises only ``DecodeError`` or ``MessageValidationError``,
and no error text, cause or context contains a value from the message.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timezone

import jsonschema
import pytest
from pydantic import ValidationError

from iris_transport import models
from iris_transport.exceptions import DecodeError, MessageValidationError

PATIENT_VALUES = ("Zelda", "Quixote", "MRN-77331", "555-867-5309", "1987")


def patient_prefix() -> bytes:
    """Return the start of an order whose first bytes are patient values, as an error preview shows them."""
    return b'{"Patient":{"Name":{"First":"Zelda","Last":"Quixote"},"LocalId":"MRN-77331"},"X":'


def every_text(error: BaseException) -> str:
    """Join the text and repr of ``error`` and of every exception chained to it."""
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def assert_no_patient_values(error: BaseException) -> None:
    text = every_text(error)
    for value in PATIENT_VALUES:
        assert value not in text


@pytest.mark.parametrize("depth", [300, 3000, 100_000])
@pytest.mark.parametrize("read", [models.parse_order_request, models.parse_message])
def test_deep_nesting_is_decode_error(read, depth):
    body = patient_prefix() + b"[" * depth + b"]" * depth + b"}"

    with pytest.raises(DecodeError) as caught:
        read(body)

    assert caught.value.line == 1
    assert "recursion limit" in str(caught.value)
    assert caught.value.__context__ is None
    assert_no_patient_values(caught.value)


@pytest.mark.parametrize("tail", [b"}", b",}"])
@pytest.mark.parametrize("read", [models.parse_order_request, models.parse_message])
def test_huge_integer_is_decode_error(read, tail):
    body = patient_prefix() + b"1" * 5000 + tail

    with pytest.raises(DecodeError) as caught:
        read(body)

    assert caught.value.column is not None
    assert caught.value.__context__ is None
    assert_no_patient_values(caught.value)


def test_parse_message_rejects_utf16():
    body = '{"OrderControlCode": "CA"}'.encode("utf-16")

    with pytest.raises(DecodeError):
        models.parse_message(body)


@pytest.mark.parametrize("result_object_type", [[], {"a": 1}, 5, True])
def test_non_string_result_object_type(result_object_type):
    document = {"ResultObjectType": result_object_type, "OrderLocalId": "MRN-77331"}

    with pytest.raises(MessageValidationError) as caught:
        models.parse_event(json.dumps(document))

    assert [str(problem) for problem in caught.value.problems] == ["ResultObjectType: must be a string"]
    assert_no_patient_values(caught.value)


def test_non_string_result_object_type_via_parse_message():
    with pytest.raises(MessageValidationError):
        models.parse_message(b'{"ResultObjectType": {"a": 1}}')


@pytest.mark.parametrize(
    "text",
    ["9999-12-31T23:59:59.9999999+00:00", "9999-12-31T23:59:59.9999995", "12/31/9999 11:59:59.9999999 PM"],
)
def test_timestamp_rounding_past_year_9999(text):
    with pytest.raises(MessageValidationError) as caught:
        models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": text})

    assert [problem.path for problem in caught.value.problems] == ["Timestamp"]


def test_lowercase_t_separator_is_read():
    event = models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": "2022-01-01t17:42:18z"})

    assert event.timestamp == datetime(2022, 1, 1, 17, 42, 18, tzinfo=timezone.utc)


def test_constructor_error_hides_values():
    with pytest.raises(ValidationError) as caught:
        models.Patient(local_id="MRN-77331", dob="2/30/1987", phone=5558675309)

    text = every_text(caught.value)
    assert "2/30/1987" not in text
    assert "5558675309" not in text


def test_assignment_is_validated():
    patient = models.Patient(local_id="MRN-77331")

    patient.dob = "4/2/1987"

    assert patient.dob == date(1987, 4, 2)


def test_assignment_of_wrong_type_hides_value():
    patient = models.Patient(local_id="MRN-77331")

    with pytest.raises(ValidationError) as caught:
        patient.phone = 5558675309

    assert "5558675309" not in every_text(caught.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [(("Patient", "Genders", 0, "Gender"), 1), (("Order", "EvaluationTypes"), [1])],
)
def test_schema_accepts_numeric_option_ids(order_document, path, value):
    target = order_document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    models.parse_order_request(order_document)

    validator = jsonschema.Draft202012Validator(models.json_schema("order-request"))

    assert [error.message for error in validator.iter_errors(order_document)] == []


def test_schema_rejects_unlisted_numeric_id(order_document):
    order_document["Order"]["EvaluationTypes"] = [5]
    validator = jsonschema.Draft202012Validator(models.json_schema("order-request"))

    assert list(validator.iter_errors(order_document)) != []


def test_report_with_line_breaks_decodes(result_document):
    report = b"%PDF-1.4 " + bytes(range(256)) * 2
    result_document["ResultsDocument"]["Content"] = base64.encodebytes(report).decode().replace("\n", "\r\n")

    result = models.parse_order_result(result_document)

    assert result.report_bytes() == report


def test_report_with_bad_characters_still_fails(result_document):
    result_document["ResultsDocument"]["Content"] = "JVBE*Rg=="

    result = models.parse_order_result(result_document)

    with pytest.raises(models.ReportDecodeError):
        result.report_bytes()


@pytest.mark.parametrize("offset", ["+24:00", "-23:60"])
def test_invalid_offset_is_named(offset):
    with pytest.raises(MessageValidationError) as caught:
        models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": f"2022-01-01T00:00:00{offset}"})

    assert [str(problem) for problem in caught.value.problems] == [
        "Timestamp: has an invalid UTC offset; expected +HH:MM"
    ]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_number_message(number):
    body = b'{"ResultObjectType": "ImageReceipt", "IrisOrderId": ' + number + b"}"

    with pytest.raises(MessageValidationError) as caught:
        models.parse_event(body)

    assert [str(problem) for problem in caught.value.problems] == ["IrisOrderId: must be a finite number"]
