"""Preparing OrderRequests and GradingSubmissions for sending: parse, fill in, validate, encode."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any, Union

from iris_transport import models
from iris_transport.codec import encode_json_message
from iris_transport.exceptions import DecodeError, MessageValidationError, ValidationProblem
from iris_transport.transport import OutgoingMessage

__all__ = ["OrderInput", "GradingInput", "fill_defaults", "prepare_grading", "prepare_order", "to_outgoing"]

OrderInput = Union[models.OrderRequest, Mapping[str, Any], bytes, str]
"""An OrderRequest as a model, a decoded JSON object, or JSON bytes or text."""

GradingInput = Union[models.GradingSubmission, Mapping[str, Any], bytes, str]
"""A GradingSubmission as a model, a decoded JSON object, or JSON bytes or text."""

GRADING_SUBJECT = "GradingSubmission"


def prepare_order(
    order: OrderInput,
    *,
    client_guid: str | None,
    default_site: str | None,
    expected_code: models.OrderControlCode | None = None,
) -> models.OrderRequest:
    """Return a validated copy of ``order`` with ClientGuid and Site filled in from the configuration.

    With ``expected_code``, an order without an OrderControlCode gets that
    code, and an order with another code is rejected. Raises
    ``MessageValidationError`` listing every problem.
    """
    request = _as_order_request(order)
    if expected_code is not None:
        if request.order_control_code is None:
            request.order_control_code = expected_code
        elif request.order_control_code != expected_code:
            raise MessageValidationError(
                "OrderRequest",
                [ValidationProblem("OrderControlCode", _wrong_code_message(expected_code))],
            )

    fill_defaults(request, client_guid=client_guid, default_site=default_site)
    models.validate_for_sending(request)
    return request


def prepare_grading(
    grading: GradingInput, *, client_guid: str | None, default_site: str | None
) -> models.GradingSubmission:
    """Return a validated copy of ``grading`` with ClientGuid and Site filled in from the configuration."""
    if isinstance(grading, models.GradingSubmission):
        submission = grading.model_copy(deep=True)
    elif isinstance(grading, Mapping):
        submission = models.parse_grading_submission(dict(grading))
    else:
        submission = _parse_json_input(models.parse_grading_submission, grading)
    fill_defaults(submission, client_guid=client_guid, default_site=default_site)
    models.validate_for_sending(submission)
    return submission


def fill_defaults(
    message: models.OrderRequest | models.GradingSubmission, *, client_guid: str | None, default_site: str | None
) -> None:
    """Set ClientGuid and Site.LocalId from the configuration where ``message`` lacks them."""
    if message.client_guid is None and client_guid:
        message.client_guid = uuid.UUID(client_guid)
    if default_site and (message.site is None or not message.site.local_id):
        if message.site is None:
            message.site = models.Site(local_id=default_site)
        else:
            message.site.local_id = default_site


def to_outgoing(message: models.OrderRequest | models.GradingSubmission) -> OutgoingMessage:
    """Encode a prepared message as IRIS JSON with its message id and subject.

    The message id is the message's TransactionId when it carries one, so a
    resend is recognisable as a duplicate, and a new UUID otherwise. The
    subject is the OrderControlCode, or ``GradingSubmission``.
    """
    if isinstance(message, models.OrderRequest):
        code = message.order_control_code
        subject = getattr(code, "value", code)
    else:
        subject = GRADING_SUBJECT
    return encode_json_message(models.to_json_bytes(message), message_id=_message_id(message), subject=subject)


def _as_order_request(order: OrderInput) -> models.OrderRequest:
    if isinstance(order, models.OrderRequest):
        return order.model_copy(deep=True)
    if isinstance(order, Mapping):
        return models.parse_order_request(dict(order))
    return _parse_json_input(models.parse_order_request, order)


_PATH_HINT = "pass the content of the file, such as Path(path).read_bytes(), not its path"


def _parse_json_input(parse: Any, document: Any) -> Any:
    # A file name passed where JSON is expected is a common slip, so the
    # error shows how to pass the file's content.
    if isinstance(document, os.PathLike):
        raise TypeError(f"expected a model, a JSON object, or JSON bytes or text; {_PATH_HINT}")
    try:
        return parse(document)
    except DecodeError as err:
        if isinstance(document, str) and not document.lstrip().startswith(("{", '"')):
            raise DecodeError(f"{err}; {_PATH_HINT}", line=err.line, column=err.column) from err
        raise


def _message_id(message: Any) -> str:
    transaction_id = getattr(message, "transaction_id", None)
    if transaction_id is None and message.model_extra:
        transaction_id = message.model_extra.get("TransactionId")
    if transaction_id:
        return str(transaction_id).upper()
    return str(uuid.uuid4()).upper()


def _wrong_code_message(expected: models.OrderControlCode) -> str:
    methods = {
        models.OrderControlCode.NEW: "submit_order",
        models.OrderControlCode.CHANGE: "change_order",
        models.OrderControlCode.CANCEL: "cancel_order",
        models.OrderControlCode.RESEND_RESULT: "resend_results",
    }
    return (
        f"must be {expected.value} for {methods[expected]}; send other operations with their own method "
        "or with send_order"
    )
