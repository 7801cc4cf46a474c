"""Option codes (tolerant reading, strict writing) and the event union."""

from __future__ import annotations

import json
import warnings

import pytest

from iris_transport import models
from iris_transport.exceptions import MessageValidationError, ValidationProblem

from .conftest import example_document


def test_unknown_code_is_kept_with_warning(order_document):
    order_document["Camera"]["Images"][0]["Laterality"] = "OX"

    with pytest.warns(models.UnknownCodeWarning, match=r"Camera\.Images\[0\]\.Laterality") as caught:
        order = models.parse_order_request(order_document)

    assert order.camera.images[0].laterality == "OX"
    assert type(order.camera.images[0].laterality) is str
    assert "OX" not in str(caught[0].message)


def test_unknown_code_in_list_names_its_index(order_document):
    order_document["Order"]["EvaluationTypes"] = ["DR", "NEW_EXAM"]

    with pytest.warns(models.UnknownCodeWarning, match=r"Order\.EvaluationTypes\[1\]"):
        order = models.parse_order_request(order_document)

    assert order.order.evaluation_types == [models.EvaluationType.DR, "NEW_EXAM"]


def test_unknown_code_is_rejected_when_writing(order_document):
    order_document["Patient"]["Genders"][1]["Gender"] = "Q"
    with pytest.warns(models.UnknownCodeWarning):
        order = models.parse_order_request(order_document)

    with pytest.raises(MessageValidationError) as caught:
        models.to_json_bytes(order)

    assert caught.value.problems[0].path == "Patient.Genders[1].Gender"
    assert "Gender codes: U, M, F" in caught.value.problems[0].message


def test_unknown_code_written_when_not_strict(order_document):
    order_document["Patient"]["MaritalStatus"] = "Z"
    with pytest.warns(models.UnknownCodeWarning):
        order = models.parse_order_request(order_document)

    written = json.loads(models.to_json_bytes(order, strict=False))

    assert written["Patient"]["MaritalStatus"] == "Z"


def test_python_built_unknown_code_rejected():
    patient = models.Patient(local_id="1", gender="Q")

    with pytest.raises(MessageValidationError) as caught:
        models.to_json_bytes(patient)

    assert caught.value.problems == (ValidationProblem("Gender", caught.value.problems[0].message),)


@pytest.mark.parametrize(("field", "code"), [("Race", "2135-2"), ("Ethnicity", "2186-5"), ("PrimaryLanguage", "pt-BR")])
def test_open_code_system_accepts_unlisted_code(order_document, field, code):
    order_document["Patient"][field] = code

    with warnings.catch_warnings():
        warnings.simplefilter("error", models.UnknownCodeWarning)
        order = models.parse_order_request(order_document)

    assert json.loads(models.to_json_bytes(order))["Patient"][field] == code


def test_codes_written_as_iris_codes():
    patient = models.Patient(
        genders=[models.PersonGender(context=models.GenderContext.BIRTH_GENDER, gender=models.Gender.TRANSGENDER_FEMALE)],
        marital_status=models.MaritalStatus.NEVER_MARRIED,
    )

    written = json.loads(models.to_json_bytes(patient))

    assert written == {"Genders": [{"Context": "BirthGender", "Gender": "TF"}], "MaritalStatus": "S"}


def test_gender_id_reads_as_code(order_document):
    order_document["Patient"]["Genders"] = [{"Context": 2, "Gender": 6}]

    order = models.parse_order_request(order_document)

    assert order.patient.genders[0] == models.PersonGender(context="BirthGender", gender="TF")


@pytest.mark.parametrize(
    ("result_object_type", "model"),
    [
        ("OrderCreationReceipt", models.OrderCreationReceipt),
        ("OrderCancelled", models.OrderCancelled),
        ("ImageReceipt", models.ImageReceipt),
        ("ReadyForGradingEvent", models.ReadyForGradingEvent),
        ("GradingReceipt", models.GradingReceipt),
        ("OrderGradedEvent", models.OrderGradedEvent),
        ("ResultsDeliveryReceipt", models.ResultsDeliveryReceipt),
    ],
)
def test_event_type_selects_model(result_object_type, model):
    document = example_document("event-order-creation-receipt.json")
    document["ResultObjectType"] = result_object_type

    event = models.parse_event(document)

    assert type(event) is model
    assert event.iris_order_id == 1224035
    assert event.local_id == "a52b6bed-5b77-4e42-ad7c-203bc6d2ea16"


def test_unknown_event_type_keeps_every_field():
    document = example_document("event-image-receipt.json")
    document["ResultObjectType"] = "ImageDeletedEvent"
    document["DeletedBy"] = {"UserName": "grader1"}

    event = models.parse_event(document)
    written = json.loads(models.to_json_bytes(event))

    assert type(event) is models.GenericEvent
    assert event.result_object_type == "ImageDeletedEvent"
    assert written["DeletedBy"] == {"UserName": "grader1"}
    assert written["ImageLocalId"] == "52737144-4ed2-42f8-8801-af9da52fcb28"
    assert written["IrisImageId"] == 3677459


def test_event_without_type_is_generic():
    event = models.parse_event({"IrisOrderId": 5, "Success": False, "ErrorMessage": "Site not found"})

    assert type(event) is models.GenericEvent
    assert event.succeeded is False


def test_failed_receipt_reports_error():
    document = example_document("event-order-creation-receipt.json")
    document["Success"] = False
    document["ErrorMessage"] = "Invalid ClientGuid"

    event = models.parse_event(document)

    assert event.succeeded is False
    assert event.error_message == "Invalid ClientGuid"


def test_event_without_success_counts_as_succeeded():
    event = models.parse_event({"ResultObjectType": "OrderGradedEvent", "IrisOrderId": 1})

    assert event.succeeded is True


def test_results_delivery_receipt_fields():
    event = models.parse_event(
        {
            "ResultObjectType": "ResultsDeliveryReceipt",
            "IrisOrderId": 7,
            "OrderLocalId": "ORD7",
            "TimeDelivered": "2024-03-01T10:00:00.1234567-05:00",
            "DeliveryType": "Fax",
            "Endpoint": "4444444444",
            "TransmissionStatus": "Sent",
        }
    )

    assert event.time_delivered.microsecond == 123457
    assert event.delivery_type == "Fax"
    assert event.local_id == "ORD7"


def test_event_built_in_python_has_its_type():
    event = models.ImageReceipt(iris_order_id=1, order_local_id="ORD1", success=True)

    written = json.loads(models.to_json_bytes(event))

    assert written == {
        "IrisOrderId": 1,
        "OrderLocalId": "ORD1",
        "Success": True,
        "ResultObjectType": "ImageReceipt",
        "Version": "2.3.1",
    }


def test_order_cancelled_honours_success() -> None:
    refused = models.parse_event(b'{"ResultObjectType": "OrderCancelled", "Success": false, "ErrorMessage": "x"}')
    cancelled = models.parse_event(b'{"ResultObjectType": "OrderCancelled", "Success": true}')

    assert refused.succeeded is False
    assert cancelled.succeeded is True
