"""JSON Schema export, checked with the jsonschema package."""

from __future__ import annotations

import json

import jsonschema
import pytest

from iris_transport import models

from .conftest import VALID_EXAMPLES, example_document
from .test_helpers import build_new_order

KIND_OF_EXAMPLE = {
    "event": "event",
    "grading": "grading-submission",
    "order-cancel": "order-request",
    "order-request": "order-request",
    "order-update": "order-request",
    "order-result": "order-result",
}


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(models.json_schema(name))


def errors(name: str, document: dict) -> list[str]:
    return [error.message for error in validator(name).iter_errors(document)]


@pytest.mark.parametrize("name", models.SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name):
    schema = models.json_schema(name)

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("example", VALID_EXAMPLES)
def test_valid_examples_match_their_schema(example):
    kind = next(kind for prefix, kind in KIND_OF_EXAMPLE.items() if example.startswith(prefix))

    assert errors(kind, example_document(example)) == []


def test_new_order_built_in_python_matches_schema():
    written = json.loads(models.to_json_bytes(build_new_order()))

    assert errors("order-request", written) == []


def test_schema_rejects_new_order_without_dob():
    document = json.loads(models.to_json_bytes(build_new_order()))
    del document["Patient"]["Dob"]

    assert errors("order-request", document) == ["'Dob' is a required property"]


def test_schema_rejects_short_npi_and_unknown_code():
    document = json.loads(models.to_json_bytes(build_new_order()))
    document["OrderingProvider"]["NPI"] = "123456789"
    document["Camera"]["Images"][0]["Laterality"] = "OX"

    assert len(errors("order-request", document)) == 2


def test_schema_accepts_minimal_cancel():
    document = {"Version": "2.3.1", "OrderControlCode": "CA", "ClientGuid": "63e3c9ef-66ac-4154-b0c2-494515eb99a7", "Order": {"LocalId": "O1"}}

    assert errors("order-request", document) == []


def test_event_schema_accepts_unknown_event_type():
    assert errors("event", {"ResultObjectType": "SomethingNew", "Anything": [1]}) == []


def test_schema_by_class_name():
    assert models.json_schema("OrderRequest") == models.json_schema("order-request")


def test_unknown_schema_name():
    with pytest.raises(ValueError, match="expected one of"):
        models.json_schema("patient")
