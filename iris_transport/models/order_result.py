"""OrderResult: a graded order's results and report, delivered on the ``results`` channel."""

from __future__ import annotations

import base64
import binascii
from typing import Optional

from pydantic import Field

from iris_transport.models._base import (
    IRIS_VERSION,
    SCHEMA_URL_BASE,
    Guid,
    IrisDate,
    IrisModel,
    LocalDateTime,
    Option,
    Timestamp,
)
from iris_transport.models.common import Cpt, EyeGrading, HealthPlan, Name, Note, PersonGender, Provider, Site
from iris_transport.models.options import DocumentType, EvaluationType, Gender, ImageContext, Laterality, ResultCode

__all__ = [
    "ORDER_RESULT_SCHEMA_URL",
    "Gradings",
    "ImageDetails",
    "OrderResult",
    "ReportDecodeError",
    "ResultCamera",
    "ResultCameraOperator",
    "ResultImage",
    "ResultOrder",
    "ResultPatient",
    "ResultsDocument",
]

ORDER_RESULT_SCHEMA_URL = f"{SCHEMA_URL_BASE}order-results.schema.{IRIS_VERSION}.json"

# Media types of the report formats IRIS names in ResultsDocument.Type. HL7 v2
# (ORU) has no registered media type; this is the one HL7 tooling commonly uses.
_MEDIA_TYPES = {
    DocumentType.PDF: "application/pdf",
    DocumentType.HTML: "text/html",
    DocumentType.ORU: "x-application/hl7-v2+er7",
}


# MIME base64 (RFC 2045) wraps lines at 76 characters with CRLF, so line breaks
# and spaces are dropped before the strict decode rejects any other character.
_LINE_BREAKS_AND_SPACES = str.maketrans("", "", " \t\r\n")


class ReportDecodeError(ValueError):
    """The report content does not decode with its declared Encoding."""


class ResultsDocument(IrisModel):
    """The report: its format (``Type``), its ``Encoding`` and the encoded ``Content``."""

    type: Optional[Option[DocumentType]] = None
    encoding: Optional[str] = None
    """Base64, ASCII or another encoding scheme."""
    content: Optional[str] = None
    """The report exactly as sent; use ``decoded()`` for its bytes."""

    @property
    def media_type(self) -> str:
        """The report's media type, ``application/octet-stream`` for an unknown Type."""
        return _MEDIA_TYPES.get(self.type, "application/octet-stream")  # type: ignore[arg-type]

    def decoded(self) -> bytes:
        """Return the report's bytes, decoding base64 when ``Encoding`` is Base64.

        Raises ``ReportDecodeError`` when the content is not valid for its encoding.
        """
        content = self.content or ""
        encoding = (self.encoding or "").strip().lower()
        if encoding == "base64":
            try:
                return base64.b64decode(content.translate(_LINE_BREAKS_AND_SPACES), validate=True)
            except (binascii.Error, ValueError):
                raise ReportDecodeError("ResultsDocument.Content is not valid base64") from None
        if encoding in ("ascii", "us-ascii"):
            try:
                return content.encode("ascii")
            except UnicodeEncodeError:
                raise ReportDecodeError("ResultsDocument.Content is not ASCII") from None
        return content.encode("utf-8")


class ImageDetails(IrisModel):
    """Counts of the images attached to the order."""

    total_count: Optional[int] = None
    right_eye_count: Optional[int] = None
    right_eye_original_count: Optional[int] = None
    right_eye_enhanced_count: Optional[int] = None
    left_eye_count: Optional[int] = None
    left_eye_original_count: Optional[int] = None
    left_eye_enhanced_count: Optional[int] = None
    preferred: Optional[bool] = None
    single_eye_only: Optional[bool] = None


class ResultCamera(IrisModel):
    """The camera that took a result image."""

    local_id: Optional[str] = None
    location: Optional[str] = None
    ip_address: Optional[str] = Field(default=None, alias="IPAddress")
    mac_address: Optional[str] = Field(default=None, alias="MACAddress")
    serial_number: Optional[str] = None
    manufacturer: Optional[str] = None
    model: Optional[str] = None
    software_version: Optional[str] = None


class ResultImage(IrisModel):
    local_id: Optional[str] = None
    taken: Optional[Timestamp] = None
    received: Optional[Timestamp] = None
    file_name: Optional[str] = None
    laterality: Optional[Option[Laterality]] = None
    image_context: Optional[Option[ImageContext]] = None
    parent_local_id: Optional[str] = None
    group_id: Optional[int] = None
    group_ordinal: Optional[int] = None
    camera: Optional[ResultCamera] = None


class ResultOrder(IrisModel):
    """The order as IRIS echoes it in results."""

    patient_order_id: Optional[int] = None
    """The order's id at IRIS."""
    serviced_time: Optional[Timestamp] = None
    status: Optional[str] = None
    evaluation_types: Optional[list[Option[EvaluationType]]] = None
    scheduled_time: Optional[LocalDateTime] = None
    created_time: Optional[Timestamp] = None
    service_date: Optional[Timestamp] = None
    """Sent in IRIS's published result example though the Order table omits it."""
    local_id: Optional[str] = None
    department_id: Optional[str] = None
    encounter_number: Optional[str] = None
    study_instance_unique_id: Optional[str] = None
    orderable_identifier: Optional[str] = None
    additional_info: Optional[str] = None
    state: Optional[str] = None
    single_eye_only: Optional[bool] = None
    missing_eye_reason: Optional[str] = None


class ResultPatient(IrisModel):
    patient_id: Optional[int] = None
    """The patient's id at IRIS."""
    local_id: Optional[str] = None
    name: Optional[Name] = None
    dob: Optional[IrisDate] = Field(default=None, alias="Dob")
    gender: Optional[Option[Gender]] = None
    genders: Optional[list[PersonGender]] = None
    phone: Optional[str] = None


class Gradings(IrisModel):
    """The grading of the order: per-eye findings, care plan, ICD-10 codes and grader."""

    notes: Optional[list[Note]] = None
    graded_time: Optional[Timestamp] = None
    queued_time: Optional[Timestamp] = None
    care_plan_name: Optional[str] = None
    care_plan_description: Optional[str] = None
    pathology: Optional[bool] = None
    urgent: Optional[bool] = None
    emergent: Optional[bool] = None
    od: Optional[EyeGrading] = Field(default=None, alias="OD")
    os: Optional[EyeGrading] = Field(default=None, alias="OS")
    ou: Optional[EyeGrading] = Field(default=None, alias="OU")
    dx_codes: Optional[list[str]] = Field(default=None, alias="DxCodes")
    provider: Optional[Provider] = None


class ResultCameraOperator(IrisModel):
    """The user who captured the images."""

    user_name: Optional[str] = None
    name: Optional[Name] = None
    notes: Optional[list[Note]] = None


class OrderResult(IrisModel):
    """Results of a graded order, with its report."""

    schema_url: str = Field(default=ORDER_RESULT_SCHEMA_URL, alias="$schema")
    version: str = IRIS_VERSION
    timestamp: Optional[Timestamp] = None
    transaction_id: Optional[Guid] = None
    result_code: Optional[Option[ResultCode]] = None
    site: Optional[Site] = None
    results_document: Optional[ResultsDocument] = None
    image_details: Optional[ImageDetails] = None
    images: Optional[list[ResultImage]] = None
    order: Optional[ResultOrder] = None
    patient: Optional[ResultPatient] = None
    ordering_provider: Optional[Provider] = None
    gradings: Optional[Gradings] = None
    camera_operator: Optional[ResultCameraOperator] = None
    health_plan: Optional[HealthPlan] = None
    cpt: Optional[Cpt] = None

    @property
    def iris_order_id(self) -> Optional[int]:
        """The order's id at IRIS (``Order.PatientOrderId``)."""
        return self.order.patient_order_id if self.order else None

    @property
    def local_id(self) -> Optional[str]:
        """The order's LocalId given by the submitting organization."""
        return self.order.local_id if self.order else None

    @property
    def report_media_type(self) -> Optional[str]:
        """The report's media type, or None when the result has no report."""
        return self.results_document.media_type if self.results_document else None

    def report_bytes(self) -> Optional[bytes]:
        """Return the decoded report, or None when the result has no report.

        Raises ``ReportDecodeError`` when the content does not decode.
        """
        if self.results_document is None or self.results_document.content is None:
            return None
        return self.results_document.decoded()
