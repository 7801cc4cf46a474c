"""Every published IRIS example: the valid ones read and re-write, the broken ones fail with a position."""

from __future__ import annotations

import pytest

from iris_transport import models
from iris_transport.exceptions import DecodeError

from .conftest import AS_PUBLISHED, EXAMPLES, VALID_EXAMPLES, example_bytes

EXPECTED_KINDS = {
    "event-image-receipt.json": ("event", models.ImageReceipt),
    "event-order-cancelled.json": ("event", models.OrderCancelled),
    "event-order-creation-receipt.json": ("event", models.OrderCreationReceipt),
    "grading-submission-1.json": ("grading-submission", models.GradingSubmission),
    "grading-submission-2.json": ("grading-submission", models.GradingSubmission),
    "grading-submission-3.json": ("grading-submission", models.GradingSubmission),
    "grading-submission-4.json": ("grading-submission", models.GradingSubmission),
    "order-cancel.json": ("order-request", models.OrderRequest),
    "order-request.corrected.json": ("order-request", models.OrderRequest),
    "order-update.corrected.json": ("order-request", models.OrderRequest),
    "order-result.json": ("order-result", models.OrderResult),
}

# Position of the first syntax error in each as-published file (1-based).
SYNTAX_ERRORS = {
    "order-request.as-published.json": (34, 9),  # trailing comma after FileName
    "order-update.as-published.json": (9, 5),  # trailing comma, then an extra closing brace
}


def test_every_example_file_is_covered():
    names = {path.name for path in EXAMPLES.iterdir()}

    assert names == set(EXPECTED_KINDS) | set(AS_PUBLISHED) | {"README.md"}


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_valid_example_parses_as_its_model(name):
    kind, message = models.parse_message(example_bytes(name))

    assert kind == EXPECTED_KINDS[name][0]
    assert type(message) is EXPECTED_KINDS[name][1]


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_valid_example_rewrites_stably(name):
    _, message = models.parse_message(example_bytes(name))
    written = models.to_json_bytes(message)

    _, reread = models.parse_message(written)

    assert models.to_json_bytes(reread) == written
    assert reread == message


@pytest.mark.parametrize("name", [name for name in VALID_EXAMPLES if EXPECTED_KINDS[name][0] != "event" and "result" not in name])
def test_sent_example_passes_sending_rules(name):
    _, message = models.parse_message(example_bytes(name))

    assert models.find_sending_problems(message) == []


@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_as_published_order_fails_with_line_and_column(name):
    with pytest.raises(DecodeError) as caught:
        models.parse_order_request(example_bytes(name))

    assert (caught.value.line, caught.value.column) == SYNTAX_ERRORS[name]
    assert f"line {SYNTAX_ERRORS[name][0]} column {SYNTAX_ERRORS[name][1]}" in str(caught.value)


@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_as_published_order_fails_detection_too(name):
    with pytest.raises(DecodeError) as caught:
        models.parse_message(example_bytes(name))

    assert caught.value.line == SYNTAX_ERRORS[name][0]


@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_corrected_copy_sits_beside_original(name):
    corrected = name.replace(".as-published.", ".corrected.")

    order = models.parse_order_request(example_bytes(corrected))

    assert order.order_control_code in (models.OrderControlCode.NEW, models.OrderControlCode.CHANGE)
    assert order.camera.images[0].azure_blob_storage.file_name == "04211055-DFF7-41EF-9EF3-43FE61D10D43.dcm"


def test_published_order_fields_read_into_attributes():
    order = models.parse_order_request(example_bytes("order-request.corrected.json"))

    assert order.version == "2.3.1"
    assert str(order.client_guid).upper() == "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
    assert order.site.local_id == "PC1234"
    assert order.order.evaluation_types == [models.EvaluationType.DR]
    assert order.patient.genders[0].context is models.GenderContext.IDENTITY_GENDER
    assert order.patient.race is models.Race.OTHER_RACE
    assert order.patient.primary_language is models.Language.US_ENGLISH
    assert order.patient.dx_code == "E119"
    assert order.ordering_provider.npi == "1234567890"
    assert order.camera_operator.email == "john.doe@primarycare.com"
    assert order.health_plan.primary_care_provider.fax_number == "4444444444"


def test_published_result_fields_read_into_attributes():
    result = models.parse_order_result(example_bytes("order-result.json"))

    assert result.result_code is models.ResultCode.FINAL
    assert result.images[1].laterality is models.Laterality.LEFT_EYE
    assert result.images[0].camera.manufacturer == "Remidio"
    assert result.gradings.od.findings[0].result == "Mild"
    assert result.gradings.dx_codes == ["E083211"]
    assert result.gradings.provider.name.title == "Dr"
    assert result.camera_operator.user_name == "john.doe@primarycare.com"
    assert result.cpt.code == "92250"
    assert result.iris_order_id == 1094030
    assert result.local_id == "ORD1234"
