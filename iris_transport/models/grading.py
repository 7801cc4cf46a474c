"""GradingSubmission: a grading posted to an order (IRIS test environments only)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from iris_transport.models._base import IRIS_VERSION, SCHEMA_URL_BASE, Guid, IrisModel
from iris_transport.models.common import EyeGrading, Site

__all__ = ["GRADING_SUBMISSION_SCHEMA_URL", "GradingSubmission"]

GRADING_SUBMISSION_SCHEMA_URL = f"{SCHEMA_URL_BASE}grading-submission.schema.{IRIS_VERSION}.json"


class GradingSubmission(IrisModel):
    """Grader choices for each eye of one order, sent on the ``gradings`` queue."""

    schema_url: str = Field(default=GRADING_SUBMISSION_SCHEMA_URL, alias="$schema")
    version: str = IRIS_VERSION
    od: Optional[EyeGrading] = Field(default=None, alias="OD")
    """Right eye."""
    os: Optional[EyeGrading] = Field(default=None, alias="OS")
    """Left eye."""
    local_id: Optional[str] = None
    """The order's LocalId at the submitting organization."""
    client_guid: Optional[Guid] = None
    site: Optional[Site] = None
