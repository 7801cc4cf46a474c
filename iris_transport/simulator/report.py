"""The simulator's report: a one-page PDF like the one IRIS attaches to an OrderResult.

The PDF carries the patient's name and date of birth, as a real report
does, so it is protected health information wherever it is saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Optional

from iris_transport import models
from iris_transport.simulator.grading import describe_eye

if TYPE_CHECKING:
    from fpdf import FPDF

__all__ = ["render_report"]

_TITLE = "Diabetic Retinal Exam Report"
_NOTICE = "SIMULATED REPORT - produced by the iris-transport IRIS simulator, not for clinical use"


def render_report(result: models.OrderResult, evaluation_types: Sequence[object], created: datetime) -> bytes:
    """Render ``result``'s patient, order, findings per eye and care plan as PDF bytes.

    ``created`` becomes the PDF's creation date, so equal inputs give equal bytes.
    """
    # Imported here so that commands which never render a report start without loading fpdf2.
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_creation_date(created)
    pdf.set_producer("iris-transport simulator")
    pdf.set_title(_TITLE)
    pdf.set_author("IRIS simulator")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "I", 9)
    pdf.set_text_color(160, 0, 0)
    pdf.cell(0, 6, _NOTICE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)

    patient = result.patient or models.ResultPatient()
    order = result.order or models.ResultOrder()
    gradings = result.gradings or models.Gradings()

    _section(pdf, "Patient")
    _row(pdf, "Name", _full_name(patient.name))
    _row(pdf, "Date of birth", patient.dob.isoformat() if patient.dob else "-")
    _row(pdf, "Patient id", patient.local_id)

    _section(pdf, "Order")
    _row(pdf, "Order id", order.local_id)
    _row(pdf, "IRIS order id", str(order.patient_order_id) if order.patient_order_id is not None else None)
    _row(pdf, "Site", result.site.local_id if result.site else None)
    _row(pdf, "Evaluation", ", ".join(str(getattr(code, "value", code)) for code in evaluation_types))
    _row(pdf, "Images", str(result.image_details.total_count) if result.image_details else None)
    _row(pdf, "Graded", _timestamp(gradings.graded_time))
    _row(pdf, "Result code", str(getattr(result.result_code, "value", result.result_code) or "-"))

    _section(pdf, "Findings")
    _row(pdf, "Right eye (OD)", describe_eye(gradings.od))
    _row(pdf, "Left eye (OS)", describe_eye(gradings.os))
    _row(pdf, "ICD-10 codes", ", ".join(gradings.dx_codes or []) or "none")

    _section(pdf, "Care plan")
    _row(pdf, "Plan", gradings.care_plan_name)
    _row(pdf, "Instructions", gradings.care_plan_description)
    _row(pdf, "Urgent", "yes" if gradings.urgent else "no")

    provider = gradings.provider
    if provider is not None:
        _section(pdf, "Grading provider")
        name = _full_name(provider.name)
        if provider.degrees:
            name = f"{name}, {provider.degrees}"
        _row(pdf, "Provider", name)
        _row(pdf, "NPI", provider.npi)

    return bytes(pdf.output())


def _section(pdf: FPDF, title: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT", border="B")
    pdf.ln(1)


def _row(pdf: FPDF, label: str, value: Optional[str]) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(45, 6, label)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 6, _latin1(value or "-"), new_x="LMARGIN", new_y="NEXT")


def _full_name(name: Optional[models.Name]) -> str:
    if name is None:
        return "-"
    parts = [part for part in (name.title, name.first, name.last) if part]
    return " ".join(parts) or "-"


def _timestamp(value: Optional[datetime]) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC%z") if value else "-"


def _latin1(text: str) -> str:
    # The PDF core fonts cover Latin-1 only; other characters print as "?".
    return text.encode("latin-1", "replace").decode("latin-1")
