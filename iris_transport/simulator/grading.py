"""Simulated grading: findings per eye, the care plan, ICD-10 codes and the OrderResult.

The findings and care plans are plausible, not clinical: they let an
integration see every field of a real OrderResult filled in.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable
from typing import Optional

from iris_transport import models
from iris_transport.models import EvaluationType, Laterality

__all__ = [
    "CarePlan",
    "auto_grade_eye",
    "care_plan_for",
    "describe_eye",
    "dx_codes_for",
    "images_per_eye",
    "severity_of",
]

DIABETIC_RETINOPATHY = "Diabetic Retinopathy"
MACULAR_EDEMA = "Macular Edema"

# Diabetic retinopathy levels with how often the simulator picks each one.
_DR_LEVELS = (("None", 50), ("Mild", 25), ("Moderate", 15), ("Severe", 6), ("Proliferative", 4))
_DR_SEVERITY = {"None": 0, "Mild": 1, "Moderate": 2, "Severe": 3, "Proliferative": 3}

# Results that mean "nothing found" in IRIS's published gradings.
_NORMAL_RESULTS = frozenset({"none", "no observable", "not present", "normal", "no suspect", "absent"})

_DR_TYPES = frozenset(
    {
        EvaluationType.DR,
        EvaluationType.DRME,
        EvaluationType.DR_REFNOREF,
        EvaluationType.DR_AMD,
        EvaluationType.DR_AREDS_GLAUC,
        EvaluationType.AI_EYENUK_O1,
        EvaluationType.SP,
    }
)
_AMD_TYPES = frozenset({EvaluationType.AMD, EvaluationType.DR_AMD, EvaluationType.DR_AREDS_GLAUC})
_GLAUCOMA_TYPES = frozenset({EvaluationType.GLAUCOMA, EvaluationType.DR_AREDS_GLAUC})

# ICD-10-CM diabetes categories (E08 is IRIS's default starting diagnosis).
_DIABETES_CATEGORY = re.compile(r"E(08|09|10|11|13)")
DEFAULT_DIABETES_CATEGORY = "E08"

# Fifth and sixth characters of the ICD-10-CM diabetic retinopathy codes by
# level, without and with macular edema; the seventh gives the eye.
_DR_CODES = {
    "Mild": ("329", "321"),
    "Moderate": ("339", "331"),
    "Severe": ("349", "341"),
    "Proliferative": ("359", "351"),
}
_LATERALITY_CODE = {"OD": "1", "OS": "2", "OU": "3"}


@dataclasses.dataclass(frozen=True)
class CarePlan:
    name: str
    description: str
    urgent: bool = False


_CARE_PLANS = (
    CarePlan("Return in 12 months", "No pathology found. Have the patient return in 12 months for a screening exam."),
    CarePlan("Return in 6 months", "Have the patient return in 6 months for a followup exam."),
    CarePlan("Refer to eye care professional", "Refer the patient to an ophthalmologist or optometrist within 4 weeks."),
    CarePlan("Urgent referral", "Refer the patient to an ophthalmologist within 1 week.", urgent=True),
)


def auto_grade_eye(
    rng: random.Random, evaluation_types: Iterable[object], image_count: int
) -> models.EyeGrading:
    """Grade one eye: ungradable without images, else findings drawn from ``rng`` for each evaluation."""
    if image_count == 0:
        return models.EyeGrading(gradable=False, missing_eye_reason="No images were received for this eye")

    types = set(evaluation_types) or {EvaluationType.DR}
    findings: list[models.Finding] = []
    if types & _DR_TYPES or not types & (_AMD_TYPES | _GLAUCOMA_TYPES):
        level = _weighted_choice(rng, _DR_LEVELS)
        findings.append(models.Finding(finding=DIABETIC_RETINOPATHY, result=level))
        edema = "Present" if level != "None" and rng.random() < 0.2 else "None"
        findings.append(models.Finding(finding=MACULAR_EDEMA, result=edema))
    if types & _AMD_TYPES:
        findings.append(models.Finding(finding="Wet AMD", result="No Observable"))
        findings.append(models.Finding(finding="Dry AMD", result=rng.choice(("No Observable", "No Observable", "Early"))))
    if types & _GLAUCOMA_TYPES:
        findings.append(models.Finding(finding="Glaucoma", result=rng.choice(("No Suspect", "No Suspect", "Suspect"))))
    return models.EyeGrading(gradable=True, findings=findings)


def severity_of(eye: Optional[models.EyeGrading]) -> int:
    """Return 0 (nothing found) to 3 (urgent) for one eye's findings."""
    if eye is None or not eye.findings:
        return 0
    worst = 0
    for finding in eye.findings:
        result = (finding.result or "").strip()
        if finding.finding == DIABETIC_RETINOPATHY and result in _DR_SEVERITY:
            worst = max(worst, _DR_SEVERITY[result])
        elif result and result.lower() not in _NORMAL_RESULTS:
            worst = max(worst, 2)
    return worst


def care_plan_for(*eyes: Optional[models.EyeGrading]) -> CarePlan:
    """Choose the care plan of the worse eye."""
    return _CARE_PLANS[max((severity_of(eye) for eye in eyes), default=0)]


def dx_codes_for(od: Optional[models.EyeGrading], os: Optional[models.EyeGrading], patient_dx_code: Optional[str]) -> list[str]:
    """Return ICD-10-CM codes for the diabetic retinopathy found, in the class of the patient's DxCode."""
    match = _DIABETES_CATEGORY.match((patient_dx_code or "").replace(".", "").upper())
    category = "E" + match.group(1) if match else DEFAULT_DIABETES_CATEGORY

    by_code: dict[str, set[str]] = {}
    for laterality, eye in (("OD", od), ("OS", os)):
        level, edema = _dr_level(eye)
        if level is None or level == "None" or level not in _DR_CODES:
            continue
        without_edema, with_edema = _DR_CODES[level]
        by_code.setdefault(with_edema if edema else without_edema, set()).add(laterality)

    codes = []
    for code, eyes in by_code.items():
        laterality = "OU" if eyes == {"OD", "OS"} else next(iter(eyes))
        codes.append(f"{category}{code}{_LATERALITY_CODE[laterality]}")
    return sorted(codes)


def images_per_eye(images: Iterable[models.Image]) -> dict[str, int]:
    """Count images by laterality; an OU image counts for both eyes."""
    counts = {"OD": 0, "OS": 0}
    for image in images:
        laterality = getattr(image.laterality, "value", image.laterality)
        if laterality in (Laterality.RIGHT_EYE.value, Laterality.BOTH_EYES.value):
            counts["OD"] += 1
        if laterality in (Laterality.LEFT_EYE.value, Laterality.BOTH_EYES.value):
            counts["OS"] += 1
    return counts


def describe_eye(eye: Optional[models.EyeGrading]) -> str:
    """Describe one eye's grading in one line, such as ``Diabetic Retinopathy: Mild, Macular Edema: None``."""
    if eye is None:
        return "not graded"
    if eye.gradable is False:
        reason = (eye.ungradable_reasons or [None])[0] or eye.missing_eye_reason
        return f"ungradable ({reason})" if reason else "ungradable"
    if not eye.findings:
        return "gradable, no findings"
    return ", ".join(f"{finding.finding}: {finding.result or '-'}" for finding in eye.findings)


def _dr_level(eye: Optional[models.EyeGrading]) -> tuple[Optional[str], bool]:
    if eye is None or not eye.findings:
        return None, False
    level = None
    edema = False
    for finding in eye.findings:
        if finding.finding == DIABETIC_RETINOPATHY:
            level = finding.result
        elif finding.finding == MACULAR_EDEMA:
            edema = (finding.result or "").strip().lower() not in _NORMAL_RESULTS | {""}
    return level, edema


def _weighted_choice(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(values, weights=weights, k=1)[0]

