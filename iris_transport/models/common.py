"""Structures shared by orders, gradings and results (IRIS "Shared Models")."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, model_validator

from iris_transport.models._base import IrisModel, LocalDateTime, Option
from iris_transport.models.options import Gender, GenderContext

__all__ = [
    "Address",
    "Cpt",
    "EyeGrading",
    "Finding",
    "HealthPlan",
    "Name",
    "Note",
    "PersonGender",
    "PrimaryCareProvider",
    "Provider",
    "Site",
]


class Address(IrisModel):
    street1: Optional[str] = None
    street2: Optional[str] = None
    city: Optional[str] = None
    state: Optional[str] = None
    """Two-letter state abbreviation."""
    postal_code: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _read_zip(cls, data: Any) -> Any:
        # IRIS's published orders write the postal code as "Zip". It is read
        # into PostalCode unless that is set too, in which case Zip is kept as
        # an unknown field.
        if isinstance(data, dict) and "Zip" in data and data.get("PostalCode") is None:
            data = dict(data)
            data["PostalCode"] = data.pop("Zip")
        return data


class Cpt(IrisModel):
    """A procedure code as defined by CMS."""

    code: Optional[str] = None
    description: Optional[str] = None


class Name(IrisModel):
    title: Optional[str] = None
    """Courtesy title ("Dr"); IRIS sends it in results though its Name table omits it."""
    first: Optional[str] = None
    last: Optional[str] = None


class PersonGender(IrisModel):
    context: Optional[Option[GenderContext]] = None
    gender: Optional[Option[Gender]] = None


class Provider(IrisModel):
    """A medical provider: ordering, referring, grading provider or camera operator."""

    npi: Optional[str] = Field(default=None, alias="NPI")
    """National Provider Identifier, 10 digits."""
    taxonomy: Optional[str] = None
    name: Optional[Name] = None
    email: Optional[str] = None
    degrees: Optional[str] = None
    associations: Optional[str] = None


class PrimaryCareProvider(IrisModel):
    npi: Optional[str] = Field(default=None, alias="NPI")
    email_address: Optional[str] = None
    name: Optional[Name] = None
    fax_number: Optional[str] = None


class HealthPlan(IrisModel):
    local_id: Optional[str] = None
    name: Optional[str] = None
    member_id: Optional[str] = None
    individual_id: Optional[str] = None
    primary_care_provider: Optional[PrimaryCareProvider] = None


class Site(IrisModel):
    """The site an order belongs to; Name and Address only matter when IRIS adds sites automatically."""

    local_id: Optional[str] = None
    name: Optional[str] = None
    address: Optional[Address] = None


class Note(IrisModel):
    date: Optional[LocalDateTime] = None
    text: Optional[str] = None


class Finding(IrisModel):
    """A finding for one eye: the pathology (``Finding``) and its level (``Result``)."""

    finding: Optional[str] = None
    result: Optional[str] = None


class EyeGrading(IrisModel):
    """The grading of one eye, in a GradingSubmission and in an OrderResult's Gradings."""

    gradable: Optional[bool] = None
    missing_eye_reason: Optional[str] = None
    ungradable_reasons: Optional[list[str]] = None
    findings: Optional[list[Finding]] = None
