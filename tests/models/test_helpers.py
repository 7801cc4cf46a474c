"""Canonical writing and the helpers on results."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date, datetime, timezone

from iris_transport import models

CLIENT_GUID = uuid.UUID("63E3C9EF-66AC-4154-B0C2-494515EB99A7")


def build_new_order() -> models.OrderRequest:
    """The published NW example, built attribute by attribute."""
    return models.OrderRequest(
        user_name_submitting="john.doe@primarycare.com",
        order_control_code=models.OrderControlCode.NEW,
        client_guid=CLIENT_GUID,
        site=models.Site(local_id="PC1234", address=models.Address()),
        camera=models.Camera(
            local_id="1234",
            serial_number="1234",
            images=[
                models.Image(
                    local_id="1234-1-1",
                    taken=datetime(2022, 1, 1, 17, 42, 18, 693678, tzinfo=timezone.utc),
                    azure_blob_storage=models.AzureBlobStorage(
                        container="PC1234", file_name="04211055-DFF7-41EF-9EF3-43FE61D10D43.dcm"
                    ),
                    laterality=models.Laterality.RIGHT_EYE,
                )
            ],
        ),
        order=models.Order(
            evaluation_types=[models.EvaluationType.DR],
            scheduled_time=datetime(2025, 1, 1),
            local_id="ORD1234",
            cpt_code=models.Cpt(code="57554"),
            state="FL",
            urgent=False,
        ),
        patient=models.Patient(
            local_id="1234",
            name=models.Name(first="John", last="Doe"),
            dob=date(2000, 1, 1),
            genders=[
                models.PersonGender(context=models.GenderContext.IDENTITY_GENDER, gender=models.Gender.MALE),
                models.PersonGender(context=models.GenderContext.BIRTH_GENDER, gender=models.Gender.MALE),
            ],
            race=models.Race.OTHER_RACE,
            primary_language=models.Language.US_ENGLISH,
            address=models.Address(),
            dx_code="E119",
        ),
        ordering_provider=models.Provider(npi="1234567890", name=models.Name()),
        camera_operator=models.Provider(
            npi="1234567890", name=models.Name(first="John", last="Doe"), email="john.doe@primarycare.com"
        ),
        health_plan=models.HealthPlan(
            local_id="1234",
            name="ProviderA",
            member_id="1234",
            primary_care_provider=models.PrimaryCareProvider(
                npi="1234567890", name=models.Name(), fax_number="4444444444"
            ),
        ),
    )


def test_built_and_parsed_order_write_identical_bytes(order_document):
    parsed = models.parse_order_request(order_document)

    assert models.to_json_bytes(build_new_order()) == models.to_json_bytes(parsed)


def test_defaults_set_version_and_schema():
    written = json.loads(models.to_json_bytes(models.OrderRequest()))

    assert written == {
        "$schema": "https://cdn.retinalscreenings.com/hosts/iris/schemas/order-submission.schema.2.3.1.json",
        "Version": "2.3.1",
    }


def test_schema_urls_per_model():
    assert models.GradingSubmission().schema_url.endswith("/grading-submission.schema.2.3.1.json")
    assert models.OrderResult().schema_url.endswith("/order-results.schema.2.3.1.json")


def test_wire_names_are_irises():
    provider = models.Provider(npi="1234567890")
    camera = models.Camera(ip_address="10.0.0.2", mac_address="00:11:22:33:44:55")
    gradings = models.Gradings(dx_codes=["E119"])

    assert json.loads(models.to_json_bytes(provider)) == {"NPI": "1234567890"}
    assert json.loads(models.to_json_bytes(camera)) == {"IPAddress": "10.0.0.2", "MACAddress": "00:11:22:33:44:55"}
    assert json.loads(models.to_json_bytes(gradings)) == {"DxCodes": ["E119"]}
    assert set(json.loads(models.to_json_bytes(models.Patient(dx_code="E08", dob=date(2000, 1, 2))))) == {"DxCode", "Dob"}


def test_models_built_by_wire_name():
    order = models.Order.model_validate({"LocalId": "O1", "CPTCode": "92250"})

    assert order.local_id == "O1"
    assert order.cpt_code.code == "92250"


def test_report_bytes_and_media_type(result_document):
    report = b"%PDF-1.7 example report"
    result_document["ResultsDocument"]["Content"] = base64.b64encode(report).decode()

    result = models.parse_order_result(result_document)

    assert result.report_bytes() == report
    assert result.report_media_type == "application/pdf"


def test_ascii_report(result_document):
    result_document["ResultsDocument"] = {"Type": "ORU", "Encoding": "ASCII", "Content": "MSH|^~\\&|IRIS"}

    result = models.parse_order_result(result_document)

    assert result.report_bytes() == b"MSH|^~\\&|IRIS"
    assert result.report_media_type == "x-application/hl7-v2+er7"


def test_result_without_report():
    result = models.OrderResult()

    assert result.report_bytes() is None
    assert result.report_media_type is None


def test_parse_accepts_bytes_text_and_dict(order_document):
    text = json.dumps(order_document)

    from_bytes = models.parse_order_request(text.encode())
    from_text = models.parse_order_request(text)
    from_dict = models.parse_order_request(order_document)

    assert from_bytes == from_text == from_dict
