"""Validation errors: every problem at once, IRIS paths, and never a patient value."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from iris_transport import models
from iris_transport.exceptions import DecodeError, MessageValidationError, ValidationProblem

PATIENT_VALUES = ("John", "Doe", "1234", "2000", "E119", "john.doe")


def problems_of(message) -> list[tuple[str, str]]:
    return [(problem.path, problem.message) for problem in models.find_sending_problems(message)]


def paths_of(message) -> list[str]:
    return [path for path, _ in problems_of(message)]


def assert_no_patient_values(text: str) -> None:
    for value in PATIENT_VALUES:
        assert value not in text


def test_missing_dob_and_short_npi_reported_together(order_document):
    del order_document["Patient"]["Dob"]
    order_document["OrderingProvider"]["NPI"] = "123456789"
    order = models.parse_order_request(order_document)

    with pytest.raises(MessageValidationError) as caught:
        models.validate_for_sending(order)

    assert caught.value.problems == (
        ValidationProblem("Patient.Dob", "is required"),
        ValidationProblem("OrderingProvider.NPI", "must be 10 digits"),
    )
    assert_no_patient_values(str(caught.value))


@pytest.mark.parametrize("code", ["NW", "XO"])
def test_new_and_change_require_spec_fields(code):
    order = models.OrderRequest(order_control_code=code)

    assert paths_of(order) == [
        "ClientGuid",
        "Site.LocalId",
        "Order.LocalId",
        "Order.EvaluationTypes",
        "Patient",
    ]


def test_new_order_requires_patient_fields():
    order = models.OrderRequest(order_control_code="NW", patient=models.Patient(name=models.Name(first=" ")))

    assert paths_of(order)[4:] == [
        "Patient.LocalId",
        "Patient.Name.First",
        "Patient.Name.Last",
        "Patient.Dob",
        "Patient.Genders",
    ]


def test_gender_alone_is_not_enough(order_document):
    order_document["Patient"]["Genders"] = []
    order_document["Patient"]["Gender"] = "M"

    assert paths_of(models.parse_order_request(order_document)) == ["Patient.Genders"]


def test_future_dob_is_rejected(order_document):
    order = models.parse_order_request(order_document)
    order.patient.dob = date.today() + timedelta(days=1)

    assert problems_of(order) == [("Patient.Dob", "must not be in the future")]


def test_cancel_example_without_site_is_valid():
    order = models.OrderRequest(order_control_code="CA", client_guid="63e3c9ef-66ac-4154-b0c2-494515eb99a7", order=models.Order(local_id="ORD1"))

    assert problems_of(order) == []


def test_cancel_requires_order_local_id():
    assert paths_of(models.OrderRequest(order_control_code="CA")) == ["ClientGuid", "Order.LocalId"]


def test_resend_requires_site_and_order():
    assert paths_of(models.OrderRequest(order_control_code="ResendResult")) == [
        "ClientGuid",
        "Site.LocalId",
        "Order.LocalId",
    ]


def test_missing_order_control_code():
    assert paths_of(models.OrderRequest()) == ["OrderControlCode", "ClientGuid"]


def test_unknown_order_control_code():
    assert problems_of(models.OrderRequest(order_control_code="DEL")) == [
        ("ClientGuid", "is required"),
        ("OrderControlCode", "must be one of the OrderControlCode codes: NW, XO, CA, ResendResult"),
    ]


def test_wrong_version_is_rejected(order_document):
    order_document["Version"] = "V2.3.1"

    assert problems_of(models.parse_order_request(order_document)) == [("Version", "must be 2.3.1")]


@pytest.mark.parametrize("npi", ["123456789", "12345678901", "12345abcde"])
def test_npi_must_be_ten_digits_everywhere(order_document, npi):
    order_document["CameraOperator"]["NPI"] = npi
    order_document["HealthPlan"]["PrimaryCareProvider"]["NPI"] = npi
    order_document["ReferringProvider"] = {"NPI": npi}

    assert paths_of(models.parse_order_request(order_document)) == [
        "ReferringProvider.NPI",
        "CameraOperator.NPI",
        "HealthPlan.PrimaryCareProvider.NPI",
    ]


@pytest.mark.parametrize("state", ["Florida", "fl", "F", "ZZ"])
def test_address_state_must_be_two_letter_code(order_document, state):
    order_document["Site"]["Address"]["State"] = state
    order_document["Patient"]["Address"]["State"] = state

    assert paths_of(models.parse_order_request(order_document)) == ["Site.Address.State", "Patient.Address.State"]


def test_order_state_accepts_full_name(order_document):
    order_document["Order"]["State"] = "Florida"

    assert problems_of(models.parse_order_request(order_document)) == []


def test_image_needs_laterality_and_blob(order_document):
    order_document["Camera"]["Images"].append({"LocalId": "2", "AzureBlobStorage": {"Container": "c"}})

    assert paths_of(models.parse_order_request(order_document)) == [
        "Camera.Images[1].Laterality",
        "Camera.Images[1].AzureBlobStorage.FileName",
    ]


def test_ungradable_eye_has_no_findings():
    submission = models.GradingSubmission(
        client_guid="63e3c9ef-66ac-4154-b0c2-494515eb99a7",
        local_id="ORD1",
        site=models.Site(local_id="S1"),
        od=models.EyeGrading(gradable=False, ungradable_reasons=["Media opacity"], findings=[models.Finding(finding="Diabetic Retinopathy", result="Mild")]),
        os=models.EyeGrading(gradable=True, ungradable_reasons=["a", "b"]),
    )

    assert problems_of(submission) == [
        ("OD.Findings", "must be empty or absent for an ungradable eye"),
        ("OS.UngradableReasons", "is allowed only when Gradable is false"),
        ("OS.UngradableReasons", "must have at most 1 item"),
    ]


def test_grading_submission_required_fields():
    assert paths_of(models.GradingSubmission()) == ["ClientGuid", "LocalId", "Site.LocalId", "OD"]


def test_results_are_not_sent():
    with pytest.raises(TypeError):
        models.validate_for_sending(models.OrderResult())


def test_type_errors_use_wire_paths(order_document):
    order_document["Camera"]["Images"][0]["Laterality"] = 3
    order_document["Camera"]["Images"][0]["GroupId"] = "first"
    order_document["Patient"]["Dob"] = "31.12.1999"
    order_document["ClientGuid"] = "not-a-guid"
    order_document["Order"]["SingleEyeOnly"] = "maybe"

    with pytest.raises(MessageValidationError) as caught:
        models.parse_order_request(json.dumps(order_document))

    assert [(problem.path, problem.message) for problem in caught.value.problems] == [
        ("ClientGuid", "must be a GUID (8-4-4-4-12 hexadecimal digits)"),
        ("Camera.Images[0].Laterality", "must be a string"),
        ("Camera.Images[0].GroupId", "must be an integer"),
        ("Order.SingleEyeOnly", "must be true or false"),
        ("Patient.Dob", "must be an ISO 8601 date and time (YYYY-MM-DDThh:mm:ss+hh:mm) or M/D/YYYY"),
    ]


def test_type_errors_never_echo_values(order_document):
    order_document["Patient"]["Name"] = "John Doe"
    order_document["Patient"]["Dob"] = "John-2000"
    order_document["Patient"]["LocalId"] = ["1234"]
    order_document["Patient"]["Phone"] = 5551234

    with pytest.raises(MessageValidationError) as caught:
        models.parse_order_request(order_document)

    text = str(caught.value)
    assert_no_patient_values(text)
    assert "5551234" not in text
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_event_type_error_path_skips_union_tag():
    with pytest.raises(MessageValidationError) as caught:
        models.parse_event({"ResultObjectType": "ImageReceipt", "IrisImageId": "x"})

    assert caught.value.problems == (ValidationProblem("IrisImageId", "must be an integer"),)


def test_decode_error_has_no_context():
    with pytest.raises(DecodeError) as caught:
        models.parse_message(b'{"Patient": {"Name": "John Doe",}}')

    assert caught.value.__context__ is None
    assert "John" not in str(caught.value)
    assert (caught.value.line, caught.value.column) == (1, 33)


def test_top_level_must_be_object():
    with pytest.raises(MessageValidationError) as caught:
        models.parse_order_request(b"[1, 2]")

    assert caught.value.problems == (ValidationProblem("", "must be an object"),)


def test_unrecognizable_message():
    with pytest.raises(MessageValidationError) as caught:
        models.parse_message(b'{"Hello": 1}')

    assert caught.value.problems[0].path == ""
