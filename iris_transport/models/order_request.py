"""OrderRequest: the message that creates (NW), changes (XO) or cancels (CA) an order, or requests its results again (ResendResult)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, field_serializer, field_validator

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
from iris_transport.models.common import Address, Cpt, HealthPlan, Name, PersonGender, Provider, Site
from iris_transport.models.options import (
    Ethnicity,
    EvaluationType,
    Gender,
    ImageContext,
    Language,
    Laterality,
    MaritalStatus,
    OrderControlCode,
    Race,
)

__all__ = [
    "AzureBlobStorage",
    "Camera",
    "Image",
    "Order",
    "OrderRequest",
    "Patient",
    "ORDER_REQUEST_SCHEMA_URL",
]

ORDER_REQUEST_SCHEMA_URL = f"{SCHEMA_URL_BASE}order-submission.schema.{IRIS_VERSION}.json"


class AzureBlobStorage(IrisModel):
    """Location of an image in Azure Blob Storage: a container and a file name in it."""

    container: Optional[str] = None
    file_name: Optional[str] = None


class Image(IrisModel):
    local_id: Optional[str] = None
    taken: Optional[Timestamp] = None
    azure_blob_storage: Optional[AzureBlobStorage] = None
    laterality: Optional[Option[Laterality]] = None
    image_context: Optional[Option[ImageContext]] = None
    parent_local_id: Optional[str] = None
    group_id: Optional[int] = None
    group_ordinal: Optional[int] = None


class Camera(IrisModel):
    local_id: Optional[str] = None
    location: Optional[str] = None
    ip_address: Optional[str] = Field(default=None, alias="IPAddress")
    mac_address: Optional[str] = Field(default=None, alias="MACAddress")
    serial_number: Optional[str] = None
    manufacturer: Optional[str] = None
    model: Optional[str] = None
    software_version: Optional[str] = None
    images: Optional[list[Image]] = None


class Patient(IrisModel):
    local_id: Optional[str] = None
    """The patient's id at the submitting organization, typically the MRN."""
    name: Optional[Name] = None
    dob: Optional[IrisDate] = Field(default=None, alias="Dob")
    gender: Optional[Option[Gender]] = None
    """Obsolete in IRIS 2.3.1: use ``genders``."""
    genders: Optional[list[PersonGender]] = None
    race: Optional[Option[Race]] = None
    ethnicity: Optional[Option[Ethnicity]] = None
    primary_language: Optional[Option[Language]] = None
    marital_status: Optional[Option[MaritalStatus]] = None
    email: Optional[str] = None
    phone: Optional[str] = None
    additional_info: Optional[str] = None
    address: Optional[Address] = None
    dx_code: Optional[str] = Field(default=None, alias="DxCode")
    """ICD-10 code of the starting diagnosis (IRIS's default is E08)."""


class Order(IrisModel):
    evaluation_types: Optional[list[Option[EvaluationType]]] = None
    scheduled_time: Optional[LocalDateTime] = None
    """Scheduled time local to the exam location; IRIS gives it no offset."""
    local_id: Optional[str] = None
    department_id: Optional[str] = None
    encounter_number: Optional[str] = None
    study_instance_unique_id: Optional[str] = None
    orderable_identifier: Optional[str] = None
    cpt_code: Optional[Cpt] = Field(default=None, alias="CPTCode")
    additional_info: Optional[str] = None
    state: Optional[str] = None
    """US state where the exam is performed, as an abbreviation or the full name."""
    single_eye_only: Optional[bool] = None
    missing_eye_reason: Optional[str] = None
    urgent: Optional[bool] = None
    """Sent in IRIS's published order example though the Order table omits it."""
    created_time: Optional[Timestamp] = None

    @field_validator("cpt_code", mode="before")
    @classmethod
    def _read_cpt_code(cls, value: Any) -> Any:
        # IRIS's own client libraries and its published example send the bare
        # code; the Order table describes a CPT object.
        if isinstance(value, str):
            return {"Code": value}
        return value

    @field_serializer("cpt_code", mode="wrap")
    def _write_cpt_code(self, value: Optional[Cpt], handler: Any) -> Any:
        # Written the way IRIS's libraries send it (a string) unless there is
        # more than the code to send.
        if value is not None and value.description is None and not value.model_extra and value.code is not None:
            return value.code
        return handler(value)


class OrderRequest(IrisModel):
    """An order operation sent to IRIS on the ``orders`` queue."""

    schema_url: str = Field(default=ORDER_REQUEST_SCHEMA_URL, alias="$schema")
    version: str = IRIS_VERSION
    user_name_submitting: Optional[str] = None
    order_control_code: Optional[Option[OrderControlCode]] = None
    client_guid: Optional[Guid] = None
    """The organization's identifier issued by IRIS."""
    site: Optional[Site] = None
    camera: Optional[Camera] = None
    order: Optional[Order] = None
    patient: Optional[Patient] = None
    ordering_provider: Optional[Provider] = None
    referring_provider: Optional[Provider] = None
    camera_operator: Optional[Provider] = None
    camera_operator_user_name: Optional[str] = None
    """Deprecated by IRIS in favour of ``camera_operator``."""
    health_plan: Optional[HealthPlan] = None
