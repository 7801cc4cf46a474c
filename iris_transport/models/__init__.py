"""Typed models of the IRIS 2.3.1 object model.

Attributes are snake_case in Python and IRIS's names on the wire. Reading is
tolerant of what real IRIS messages contain; writing is canonical and strict::

    from iris_transport import models

    order = models.parse_order_request(body)          # bytes, str or dict
    models.validate_for_sending(order)                # rules by OrderControlCode
    body = models.to_json_bytes(order)                # canonical IRIS JSON

    kind, message = models.parse_message(body)        # detect the model
    event = models.parse_event(body)                  # OrderCreationReceipt, ..., GenericEvent
    result = models.parse_order_result(body)
    pdf = result.report_bytes()

Errors: ``iris_transport.exceptions.DecodeError`` (not JSON, with line and
column) and ``MessageValidationError`` (every problem with its field path,
never a value).
"""

from iris_transport.models._base import IRIS_VERSION
from iris_transport.models.common import (
    Address,
    Cpt,
    EyeGrading,
    Finding,
    HealthPlan,
    Name,
    Note,
    PersonGender,
    PrimaryCareProvider,
    Provider,
    Site,
)
from iris_transport.models.events import (
    EVENT_TYPES,
    Event,
    EventBase,
    GenericEvent,
    GradingReceipt,
    ImageReceipt,
    OrderCancelled,
    OrderCreationReceipt,
    OrderGradedEvent,
    ReadyForGradingEvent,
    ResultsDeliveryReceipt,
)
from iris_transport.models.grading import GRADING_SUBMISSION_SCHEMA_URL, GradingSubmission
from iris_transport.models.options import (
    DocumentType,
    Ethnicity,
    EvaluationType,
    Gender,
    GenderContext,
    ImageContext,
    Language,
    Laterality,
    MaritalStatus,
    OrderControlCode,
    Race,
    ResultCode,
)
from iris_transport.models.order_request import (
    ORDER_REQUEST_SCHEMA_URL,
    AzureBlobStorage,
    Camera,
    Image,
    Order,
    OrderRequest,
    Patient,
)
from iris_transport.models.order_result import (
    ORDER_RESULT_SCHEMA_URL,
    Gradings,
    ImageDetails,
    OrderResult,
    ReportDecodeError,
    ResultCamera,
    ResultCameraOperator,
    ResultImage,
    ResultOrder,
    ResultPatient,
    ResultsDocument,
)
from iris_transport.models.rules import find_sending_problems, validate_for_sending
from iris_transport.models.schema import SCHEMA_NAMES, json_schema
from iris_transport.models.serialization import (
    MODEL_KINDS,
    UnknownCodeWarning,
    detect_kind,
    parse,
    parse_event,
    parse_grading_submission,
    parse_message,
    parse_order_request,
    parse_order_result,
    to_json_bytes,
)

__all__ = [
    "EVENT_TYPES",
    "GRADING_SUBMISSION_SCHEMA_URL",
    "IRIS_VERSION",
    "MODEL_KINDS",
    "ORDER_REQUEST_SCHEMA_URL",
    "ORDER_RESULT_SCHEMA_URL",
    "SCHEMA_NAMES",
    "Address",
    "AzureBlobStorage",
    "Camera",
    "Cpt",
    "DocumentType",
    "Ethnicity",
    "EvaluationType",
    "Event",
    "EventBase",
    "EyeGrading",
    "Finding",
    "Gender",
    "GenderContext",
    "GenericEvent",
    "GradingReceipt",
    "GradingSubmission",
    "Gradings",
    "HealthPlan",
    "Image",
    "ImageContext",
    "ImageDetails",
    "ImageReceipt",
    "Language",
    "Laterality",
    "MaritalStatus",
    "Name",
    "Note",
    "Order",
    "OrderCancelled",
    "OrderControlCode",
    "OrderCreationReceipt",
    "OrderGradedEvent",
    "OrderRequest",
    "OrderResult",
    "Patient",
    "PersonGender",
    "PrimaryCareProvider",
    "Provider",
    "Race",
    "ReadyForGradingEvent",
    "ReportDecodeError",
    "ResultCamera",
    "ResultCameraOperator",
    "ResultCode",
    "ResultImage",
    "ResultOrder",
    "ResultPatient",
    "ResultsDeliveryReceipt",
    "ResultsDocument",
    "Site",
    "UnknownCodeWarning",
    "detect_kind",
    "find_sending_problems",
    "json_schema",
    "parse",
    "parse_event",
    "parse_grading_submission",
    "parse_message",
    "parse_order_request",
    "parse_order_result",
    "to_json_bytes",
    "validate_for_sending",
]
