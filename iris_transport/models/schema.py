"""JSON Schema (draft 2020-12) of the IRIS messages, as this library reads and accepts them.

The schemas describe what the models accept: the tolerant forms of dates,
``CPTCode`` as a string or an object, and unknown fields. On top of the
models, the OrderRequest schema states the required fields of each
OrderControlCode (see ``iris_transport.models.rules``), and the provider and
address schemas the NPI and state formats.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from iris_transport.models.events import Event
from iris_transport.models.grading import GradingSubmission
from iris_transport.models.order_request import OrderRequest
from iris_transport.models.order_result import OrderResult

__all__ = ["SCHEMA_NAMES", "json_schema"]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

SCHEMA_NAMES = ("order-request", "grading-submission", "event", "order-result")
_CLASS_NAMES = {
    "orderrequest": "order-request",
    "gradingsubmission": "grading-submission",
    "orderresult": "order-result",
}

_NOT_BLANK = {"type": "string", "pattern": r"\S"}


def json_schema(model_name: str) -> dict[str, Any]:
    """Return the JSON Schema of ``order-request``, ``grading-submission``, ``event`` or ``order-result``.

    Class names (``OrderRequest``) are accepted too. Raises ``ValueError`` for
    any other name.
    """
    key = model_name.strip().lower()
    key = _CLASS_NAMES.get(key.replace("-", "").replace("_", ""), key)
    if key not in SCHEMA_NAMES:
        raise ValueError(f"unknown model {model_name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    return copy.deepcopy(_build(key))


@lru_cache(maxsize=None)
def _build(key: str) -> dict[str, Any]:
    if key == "order-request":
        schema = OrderRequest.model_json_schema(by_alias=True)
        _add_order_request_rules(schema)
    elif key == "grading-submission":
        schema = GradingSubmission.model_json_schema(by_alias=True)
    elif key == "order-result":
        schema = OrderResult.model_json_schema(by_alias=True)
    else:
        schema = TypeAdapter(Event).json_schema(by_alias=True)
        # GenericEvent matches every event, so exactly-one-of would reject the known ones.
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
        schema.pop("discriminator", None)
        schema["title"] = "IRIS event"

    _add_formats(schema)
    return {"$schema": DRAFT_2020_12, **schema}


def _add_formats(schema: dict[str, Any]) -> None:
    definitions = schema.get("$defs", {})
    for name in ("Provider", "PrimaryCareProvider"):
        if name in definitions:
            definitions[name]["properties"]["NPI"]["pattern"] = r"^\d{10}$"
    if "Address" in definitions:
        definitions["Address"]["properties"]["State"]["pattern"] = r"^[A-Z]{2}$"


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _add_order_request_rules(schema: dict[str, Any]) -> None:
    definitions = schema["$defs"]

    # CPTCode is read as a bare code or as a CPT object (see models.order_request.Order).
    cpt = definitions["Order"]["properties"]["CPTCode"]
    cpt["anyOf"] = [{"type": "string"}, *cpt["anyOf"]]

    site = {"Site": _object(["LocalId"], {"LocalId": _NOT_BLANK})}
    order_id = {"LocalId": _NOT_BLANK}
    new_or_change = _object(
        ["ClientGuid", "Site", "Order", "Patient"],
        {
            **site,
            "Order": _object(
                ["LocalId", "EvaluationTypes"],
                {**order_id, "EvaluationTypes": {"type": "array", "minItems": 1}},
            ),
            "Patient": _object(
                ["LocalId", "Name", "Dob", "Genders"],
                {
                    "LocalId": _NOT_BLANK,
                    "Name": _object(["First", "Last"], {"First": _NOT_BLANK, "Last": _NOT_BLANK}),
                    "Dob": {"type": "string"},
                    "Genders": {"type": "array", "minItems": 1},
                },
            ),
        },
    )
    resend = _object(["ClientGuid", "Site", "Order"], {**site, "Order": _object(["LocalId"], order_id)})
    # The published cancel example has no Site; IRIS finds the order by Order.LocalId.
    cancel = _object(["ClientGuid", "Order"], {"Order": _object(["LocalId"], order_id)})

    def when(codes: list[str], then: dict[str, Any]) -> dict[str, Any]:
        return {
            "if": {"required": ["OrderControlCode"], "properties": {"OrderControlCode": {"enum": codes}}},
            "then": then,
        }

    schema["required"] = ["Version", "OrderControlCode", "ClientGuid"]
    schema["allOf"] = [
        when(["NW", "XO"], new_or_change),
        when(["ResendResult"], resend),
        when(["CA"], cancel),
    ]
