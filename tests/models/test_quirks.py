"""One test per difference between IRIS's examples and its field tables, plus the other tolerated forms."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from iris_transport import models


def _written(model) -> dict:
    return json.loads(models.to_json_bytes(model))


def test_cpt_code_string_reads_as_cpt(order_document):
    order = models.parse_order_request(order_document)

    assert order.order.cpt_code == models.Cpt(code="57554")
    assert _written(order)["Order"]["CPTCode"] == "57554"


def test_cpt_code_object_reads_as_cpt(order_document):
    order_document["Order"]["CPTCode"] = {"Code": "92250", "Description": "Fundus photography"}

    order = models.parse_order_request(order_document)

    assert order.order.cpt_code.description == "Fundus photography"
    assert _written(order)["Order"]["CPTCode"] == {"Code": "92250", "Description": "Fundus photography"}


def test_result_cpt_is_an_object(result_document):
    result = models.parse_order_result(result_document)

    assert _written(result)["Cpt"] == {
        "Code": "92250",
        "Description": "Fundus photography with interpretation and report",
    }


def test_zip_reads_as_postal_code(order_document):
    order_document["Patient"]["Address"] = {"City": "Tampa", "State": "FL", "Zip": "33601"}

    order = models.parse_order_request(order_document)

    assert order.patient.address.postal_code == "33601"
    assert _written(order)["Patient"]["Address"] == {"City": "Tampa", "State": "FL", "PostalCode": "33601"}


def test_zip_beside_postal_code_is_kept(order_document):
    order_document["Patient"]["Address"] = {"PostalCode": "33601", "Zip": "33602"}

    address = models.parse_order_request(order_document).patient.address

    assert address.postal_code == "33601"
    assert address.model_extra == {"Zip": "33602"}


def test_order_urgent_is_read_and_written(order_document):
    order_document["Order"]["Urgent"] = True

    order = models.parse_order_request(order_document)

    assert order.order.urgent is True
    assert _written(order)["Order"]["Urgent"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/1/2000", date(2000, 1, 1)),
        ("12/31/1961", date(1961, 12, 31)),
        ("2000-01-01", date(2000, 1, 1)),
        ("2000-01-01T00:00:00", date(2000, 1, 1)),
    ],
)
def test_dob_reads_us_and_iso_forms(order_document, text, expected):
    order_document["Patient"]["Dob"] = text

    order = models.parse_order_request(order_document)

    assert order.patient.dob == expected
    assert _written(order)["Patient"]["Dob"] == expected.isoformat()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/1/2025", datetime(2025, 1, 1)),
        ("1/15/2025 2:30 PM", datetime(2025, 1, 15, 14, 30)),
        ("1/15/2025 12:05:09 AM", datetime(2025, 1, 15, 0, 5, 9)),
        ("2025-01-15T14:30:00", datetime(2025, 1, 15, 14, 30)),
    ],
)
def test_scheduled_time_reads_us_and_iso_forms(order_document, text, expected):
    order_document["Order"]["ScheduledTime"] = text

    order = models.parse_order_request(order_document)

    assert order.order.scheduled_time == expected
    assert _written(order)["Order"]["ScheduledTime"] == expected.isoformat()


def test_seven_fractional_digits_round_to_microseconds(order_document):
    order = models.parse_order_request(order_document)

    taken = order.camera.images[0].taken
    assert taken == datetime(2022, 1, 1, 17, 42, 18, 693678, tzinfo=timezone.utc)
    assert _written(order)["Camera"]["Images"][0]["Taken"] == "2022-01-01T17:42:18.693678+00:00"


@pytest.mark.parametrize(
    ("fraction", "microseconds"),
    [
        ("", 0),
        (".5", 500000),
        (".123", 123000),
        (".123456", 123456),
        (".1234564", 123456),
        (".1234565", 123457),
        (".123456789", 123457),
    ],
)
def test_fractional_digits_zero_to_nine(fraction, microseconds):
    event = models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": f"2022-01-02T17:42:18{fraction}-05:00"})

    assert event.timestamp.microsecond == microseconds
    assert event.timestamp.utcoffset() == timedelta(hours=-5)


def test_rounding_carries_into_next_second():
    event = models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": "2022-12-31T23:59:59.9999999+00:00"})

    assert event.timestamp == datetime(2023, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2022-01-02T17:42:18Z", "2022-01-02T17:42:18", "2022-01-02T17:42:18+0000"])
def test_timestamp_without_colon_offset_or_zone_is_utc(text):
    event = models.parse_event({"ResultObjectType": "ImageReceipt", "Timestamp": text})

    assert event.timestamp == datetime(2022, 1, 2, 17, 42, 18, tzinfo=timezone.utc)
    assert json.loads(models.to_json_bytes(event))["Timestamp"] == "2022-01-02T17:42:18+00:00"


def test_empty_timestamp_and_transaction_id_read_as_absent(result_document):
    result = models.parse_order_result(result_document)

    assert result.timestamp is None
    assert result.transaction_id is None
    assert "Timestamp" not in _written(result)
    assert "TransactionId" not in _written(result)


def test_placeholder_report_content_is_kept(result_document):
    result = models.parse_order_result(result_document)

    assert result.results_document.content == "..."
    with pytest.raises(models.ReportDecodeError):
        result.report_bytes()


def test_null_findings_read_as_absent(result_document):
    result = models.parse_order_result(result_document)

    assert result.gradings.os.findings is None
    assert "Findings" not in _written(result)["Gradings"]["OS"]


def test_null_arrays_read_as_absent(order_document):
    order_document["Order"]["EvaluationTypes"] = None
    order_document["Patient"]["Genders"] = None
    order_document["Camera"]["Images"] = None

    order = models.parse_order_request(order_document)

    assert order.order.evaluation_types is None
    assert order.patient.genders is None
    assert order.camera.images is None


@pytest.mark.parametrize(
    "text",
    [
        "63E3C9EF-66AC-4154-B0C2-494515EB99A7",
        "63e3c9ef-66ac-4154-b0c2-494515eb99a7",
        "63e3C9EF-66ac-4154-B0c2-494515EB99a7",
        "{63e3c9ef-66ac-4154-b0c2-494515eb99a7}",
    ],
)
def test_guid_any_letter_case(order_document, text):
    order_document["ClientGuid"] = text

    order = models.parse_order_request(order_document)

    assert _written(order)["ClientGuid"] == "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


def test_unknown_fields_are_kept_and_written(order_document):
    order_document["FutureRootField"] = {"Nested": [1, 2]}
    order_document["Patient"]["PreferredName"] = "JD"

    order = models.parse_order_request(order_document)
    written = _written(order)

    assert written["FutureRootField"] == {"Nested": [1, 2]}
    assert written["Patient"]["PreferredName"] == "JD"


def test_utf8_bom_is_ignored(order_document):
    body = b"\xef\xbb\xbf" + json.dumps(order_document).encode()

    assert models.parse_order_request(body).site.local_id == "PC1234"


def test_evaluation_type_id_reads_as_code(result_document):
    # IRIS's Go library models result EvaluationTypes as the numeric Ids.
    result_document["Order"]["EvaluationTypes"] = [1, 8]

    result = models.parse_order_result(result_document)

    assert result.order.evaluation_types == [models.EvaluationType.DR, models.EvaluationType.DR_AMD]
