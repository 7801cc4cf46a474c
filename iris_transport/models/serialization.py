"""Reading IRIS JSON into models and writing models as canonical IRIS JSON."""

from __future__ import annotations

import warnings
from typing import Any, TypeVar, Union

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from iris_transport.exceptions import DecodeError, MessageValidationError, ValidationProblem
from iris_transport.models._base import find_unknown_codes
from iris_transport.models._errors import decode_error_for, json_syntax_reason, problems_from
from iris_transport.models.events import Event, EventBase
from iris_transport.models.grading import GradingSubmission
from iris_transport.models.order_request import OrderRequest
from iris_transport.models.options import Ethnicity, Language, Race
from iris_transport.models.order_result import OrderResult

__all__ = [
    "MODEL_KINDS",
    "UnknownCodeWarning",
    "detect_kind",
    "parse",
    "parse_event",
    "parse_grading_submission",
    "parse_message",
    "parse_order_request",
    "parse_order_result",
    "to_json_bytes",
    "unknown_code_problems",
]

Message = Union[OrderRequest, GradingSubmission, EventBase, OrderResult]
ModelT = TypeVar("ModelT", bound=BaseModel)
Data = Union[bytes, bytearray, memoryview, str, dict]

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)

MODEL_KINDS: dict[str, Any] = {
    "order-request": OrderRequest,
    "grading-submission": GradingSubmission,
    "event": _EVENT_ADAPTER,
    "order-result": OrderResult,
}
"""The models a message can be read as, by the names the CLI uses."""

_MODEL_NAMES = {
    "order-request": "OrderRequest",
    "grading-submission": "GradingSubmission",
    "event": "event",
    "order-result": "OrderResult",
}

_UTF8_BOM = b"\xef\xbb\xbf"


class UnknownCodeWarning(UserWarning):
    """A message read from IRIS contains a code missing from its option list, so the code was kept as text."""


def _strip_bom(data: Any) -> Any:
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if isinstance(data, bytes) and data.startswith(_UTF8_BOM):
        return data[len(_UTF8_BOM) :]
    if isinstance(data, str) and data.startswith("\ufeff"):
        return data[1:]
    return data


def _validate(kind: str, data: Data) -> Any:
    validator = MODEL_KINDS[kind]
    data = _strip_bom(data)
    try:
        if isinstance(data, dict):
            if isinstance(validator, TypeAdapter):
                return validator.validate_python(data)
            return validator.model_validate(data)
        if isinstance(validator, TypeAdapter):
            return validator.validate_json(data)
        return validator.model_validate_json(data)
    except ValidationError as err:
        failure = _translate(kind, data, err)
    # Raised outside the except block so that the error carries no
    # __context__: pydantic's error keeps the input, which may be patient data.
    raise failure


def _translate(kind: str, data: Data, error: ValidationError) -> Exception:
    reason = json_syntax_reason(error)
    if reason is not None:
        return decode_error_for(data, reason)
    return MessageValidationError(_MODEL_NAMES[kind], problems_from(error))


def _warn_unknown_codes(model: BaseModel) -> None:
    for path, enum_cls in find_unknown_codes(model):
        # The code is left out because some option lists (Race, Gender) describe the patient.
        warnings.warn(
            f"{path}: code not in IRIS's {enum_cls.__name__} option list; kept as text",
            UnknownCodeWarning,
            stacklevel=4,
        )


def parse(kind: str, data: Data) -> Any:
    """Read ``data`` as the model named by ``kind`` (a key of ``MODEL_KINDS``).

    Raises ``DecodeError`` for a body that is not JSON and
    ``MessageValidationError`` listing every problem otherwise. An unknown
    option code is kept as text with an ``UnknownCodeWarning``.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    model = _validate(kind, data)
    _warn_unknown_codes(model)
    return model


def parse_order_request(data: Data) -> OrderRequest:
    """Read an OrderRequest from JSON bytes, text or a decoded dict."""
    return parse("order-request", data)


def parse_grading_submission(data: Data) -> GradingSubmission:
    """Read a GradingSubmission from JSON bytes, text or a decoded dict."""
    return parse("grading-submission", data)


def parse_event(data: Data) -> EventBase:
    """Read an event into the model of its ``ResultObjectType``, or ``GenericEvent`` if unknown."""
    return parse("event", data)


def parse_order_result(data: Data) -> OrderResult:
    """Read an OrderResult from JSON bytes, text or a decoded dict."""
    return parse("order-result", data)


def detect_kind(document: Any) -> str:
    """Return which model a decoded JSON document is, from ``$schema``, ``ResultObjectType`` or its shape.

    Raises ``MessageValidationError`` when the document matches no model.
    """
    if not isinstance(document, dict):
        raise MessageValidationError("message", [ValidationProblem("", "must be a JSON object")])

    schema_url = document.get("$schema")
    if isinstance(schema_url, str):
        for marker, kind in (
            ("order-submission", "order-request"),
            ("grading-submission", "grading-submission"),
            ("order-result", "order-result"),
        ):
            if marker in schema_url:
                return kind

    result_object_type = document.get("ResultObjectType")
    if result_object_type == "OrderResult":
        return "order-result"
    if result_object_type is not None:
        return "event"

    keys = set(document)
    if "OrderControlCode" in keys:
        return "order-request"
    if keys & {"ResultsDocument", "ResultCode", "Gradings", "ImageDetails"}:
        return "order-result"
    if keys & {"OD", "OS"}:
        return "grading-submission"
    if keys & {"IrisOrderId", "OrderLocalId", "Success"}:
        return "event"
    raise MessageValidationError(
        "message",
        [
            ValidationProblem(
                "",
                "is not a recognizable IRIS message: expected $schema, ResultObjectType, "
                "OrderControlCode or the fields of an OrderResult or GradingSubmission",
            )
        ],
    )


def parse_message(data: Data) -> tuple[str, Message]:
    """Read any IRIS message and return ``(kind, model)``, detecting the kind as ``detect_kind`` does."""
    data = _strip_bom(data)
    if isinstance(data, dict):
        document = data
    else:
        document = _load_json(data)
    kind = detect_kind(document)
    return kind, parse(kind, document)


def _load_json(data: Any) -> Any:
    # pydantic-core's parser, not the json module, so that a body is read
    # here exactly as parse() reads it: UTF-8 only, with the same nesting
    # and number limits.
    try:
        return pydantic_core.from_json(data)
    except ValueError as err:
        reason = str(err)
    # Raised here, outside the except block, so that no parser error rides along as __context__.
    raise decode_error_for(data, reason)


def to_json_bytes(model: BaseModel, *, strict: bool = True) -> bytes:
    """Write ``model`` as canonical IRIS JSON (UTF-8, absent values omitted).

    With ``strict`` (the default) a code that is not in its IRIS option list
    raises ``MessageValidationError``, so that only codes IRIS accepts are
    sent. ``strict=False`` writes such codes as they are, for forwarding a
    message read from IRIS.
    """
    if strict:
        problems = unknown_code_problems(model)
        if problems:
            raise MessageValidationError(type(model).__name__, problems)
    return model.__pydantic_serializer__.to_json(model, by_alias=True, exclude_none=True)


def unknown_code_problems(model: BaseModel) -> list[ValidationProblem]:
    """List a problem for every option field of ``model`` holding a code IRIS does not list."""
    return [ValidationProblem(path, expected_codes(enum_cls)) for path, enum_cls in find_unknown_codes(model)]


def expected_codes(enum_cls: Any) -> str:
    """Describe the codes an option list accepts."""
    codes = ", ".join(member.value for member in enum_cls)
    if enum_cls in (Race, Ethnicity):
        return f"must be an HL7 {enum_cls.__name__} code (NNNN-N), such as {codes}"
    if enum_cls is Language:
        return f"must be a language tag, such as {codes}"
    return f"must be one of the {enum_cls.__name__} codes: {codes}"
