"""Checks an outgoing message must pass before it is sent to IRIS.

The models read anything IRIS might send, so they make almost every field
optional. What IRIS requires of a message it receives depends on the
OrderControlCode and is checked here, all at once, so that a caller sees every
problem in one ``MessageValidationError``.

Required fields by OrderControlCode (from IRIS's Order Request Model and
OrderControlCode tables):

- NW and XO: ClientGuid, Site.LocalId, Order.LocalId, Order.EvaluationTypes,
  Patient.LocalId, Patient.Name (First and Last), Patient.Dob, Patient.Genders.
- ResendResult: ClientGuid, Site.LocalId, Order.LocalId.
- CA: ClientGuid and Order.LocalId. IRIS's option table also lists
  Site.LocalId, but its published cancel example has no Site and IRIS finds
  the order by Order.LocalId alone, so the example is accepted.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Optional

from pydantic import BaseModel

from iris_transport.exceptions import MessageValidationError, ValidationProblem
from iris_transport.models._base import IRIS_VERSION
from iris_transport.models.common import Address, EyeGrading, PrimaryCareProvider, Provider
from iris_transport.models.grading import GradingSubmission
from iris_transport.models.options import OrderControlCode
from iris_transport.models.order_request import OrderRequest
from iris_transport.models.serialization import unknown_code_problems

__all__ = ["find_sending_problems", "validate_for_sending"]

_NPI = re.compile(r"\d{10}")

# USPS codes of the states, the District of Columbia, the territories and
# the military "states".
US_STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP UM AA AE AP".split()
)


def validate_for_sending(message: BaseModel) -> None:
    """Check an OrderRequest or a GradingSubmission against what IRIS requires of it.

    Raises ``MessageValidationError`` listing every problem, each with its
    IRIS field path and never a field's value.
    """
    problems = find_sending_problems(message)
    if problems:
        raise MessageValidationError(type(message).__name__, problems)


def find_sending_problems(message: BaseModel) -> list[ValidationProblem]:
    """Return every problem ``validate_for_sending`` would report, without raising."""
    if isinstance(message, OrderRequest):
        problems = _order_request_problems(message)
    elif isinstance(message, GradingSubmission):
        problems = _grading_submission_problems(message)
    else:
        raise TypeError(f"only an OrderRequest or a GradingSubmission is sent to IRIS, not {type(message).__name__}")
    problems += unknown_code_problems(message)
    return problems


class _Problems(list):
    """Problems found so far, with helpers for the common checks."""

    def add(self, path: str, message: str) -> None:
        self.append(ValidationProblem(path, message))

    def require(self, value: Any, path: str) -> bool:
        """Add "is required" when ``value`` is None, blank or empty; return whether it is present."""
        if isinstance(value, str):
            missing = not value.strip()
        elif isinstance(value, list):
            missing = not value
        else:
            missing = value is None
        if missing:
            self.add(path, "is required")
        return not missing


def _order_request_problems(request: OrderRequest) -> list[ValidationProblem]:
    problems = _Problems()

    _check_version(request.version, problems)
    code = request.order_control_code
    if problems.require(code, "OrderControlCode") and not isinstance(code, OrderControlCode):
        # Reported with every unknown code at the end; the required fields
        # below then cannot be chosen, so none are checked.
        code = None
    problems.require(request.client_guid, "ClientGuid")

    site_local_id = request.site.local_id if request.site else None
    order_local_id = request.order.local_id if request.order else None
    if code in (OrderControlCode.NEW, OrderControlCode.CHANGE):
        problems.require(site_local_id, "Site.LocalId")
        problems.require(order_local_id, "Order.LocalId")
        problems.require(request.order.evaluation_types if request.order else None, "Order.EvaluationTypes")
        _check_patient_for_new_order(request, problems)
    elif code is OrderControlCode.RESEND_RESULT:
        problems.require(site_local_id, "Site.LocalId")
        problems.require(order_local_id, "Order.LocalId")
    elif code is OrderControlCode.CANCEL:
        problems.require(order_local_id, "Order.LocalId")

    _check_order_request_formats(request, problems)
    return problems


def _check_patient_for_new_order(request: OrderRequest, problems: _Problems) -> None:
    patient = request.patient
    if patient is None:
        problems.add("Patient", "is required")
        return

    problems.require(patient.local_id, "Patient.LocalId")
    if problems.require(patient.name, "Patient.Name"):
        problems.require(patient.name.first, "Patient.Name.First")
        problems.require(patient.name.last, "Patient.Name.Last")
    if problems.require(patient.dob, "Patient.Dob") and patient.dob > date.today():
        problems.add("Patient.Dob", "must not be in the future")
    if not patient.genders:
        problems.add("Patient.Genders", "is required: give at least one PersonGender (Gender alone is obsolete)")
    else:
        for index, person_gender in enumerate(patient.genders):
            problems.require(person_gender.gender, f"Patient.Genders[{index}].Gender")


def _check_order_request_formats(request: OrderRequest, problems: _Problems) -> None:
    if request.site is not None:
        _check_address(request.site.address, "Site.Address", problems)
    if request.patient is not None:
        _check_address(request.patient.address, "Patient.Address", problems)

    for path, provider in (
        ("OrderingProvider", request.ordering_provider),
        ("ReferringProvider", request.referring_provider),
        ("CameraOperator", request.camera_operator),
        ("HealthPlan.PrimaryCareProvider", request.health_plan.primary_care_provider if request.health_plan else None),
    ):
        _check_provider(provider, path, problems)

    images = request.camera.images if request.camera else None
    for index, image in enumerate(images or ()):
        path = f"Camera.Images[{index}]"
        problems.require(image.laterality, f"{path}.Laterality")
        if problems.require(image.azure_blob_storage, f"{path}.AzureBlobStorage"):
            problems.require(image.azure_blob_storage.container, f"{path}.AzureBlobStorage.Container")
            problems.require(image.azure_blob_storage.file_name, f"{path}.AzureBlobStorage.FileName")


def _check_provider(provider: Optional[Provider | PrimaryCareProvider], path: str, problems: _Problems) -> None:
    if provider is None or provider.npi is None:
        return
    if not _NPI.fullmatch(provider.npi):
        problems.add(f"{path}.NPI", "must be 10 digits")


def _check_address(address: Optional[Address], path: str, problems: _Problems) -> None:
    if address is None or address.state is None:
        return
    if address.state not in US_STATE_CODES:
        problems.add(f"{path}.State", "must be a 2-letter US state code such as FL")


def _check_version(version: Optional[str], problems: _Problems) -> None:
    if problems.require(version, "Version") and version != IRIS_VERSION:
        problems.add("Version", f"must be {IRIS_VERSION}")


def _grading_submission_problems(submission: GradingSubmission) -> list[ValidationProblem]:
    problems = _Problems()

    _check_version(submission.version, problems)
    problems.require(submission.client_guid, "ClientGuid")
    problems.require(submission.local_id, "LocalId")
    problems.require(submission.site.local_id if submission.site else None, "Site.LocalId")
    if submission.od is None and submission.os is None:
        problems.add("OD", "is required when OS is absent: grade at least one eye")
    _check_eye(submission.od, "OD", problems)
    _check_eye(submission.os, "OS", problems)
    return problems


def _check_eye(eye: Optional[EyeGrading], path: str, problems: _Problems) -> None:
    if eye is None:
        return
    if eye.gradable is False and eye.findings:
        problems.add(f"{path}.Findings", "must be empty or absent for an ungradable eye")
    if eye.ungradable_reasons and eye.gradable is not False:
        problems.add(f"{path}.UngradableReasons", "is allowed only when Gradable is false")
    if eye.ungradable_reasons and len(eye.ungradable_reasons) > 1:
        problems.add(f"{path}.UngradableReasons", "must have at most 1 item")
    for index, finding in enumerate(eye.findings or ()):
        problems.require(finding.finding, f"{path}.Findings[{index}].Finding")
