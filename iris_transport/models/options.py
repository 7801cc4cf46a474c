"""IRIS option lists (enumerations), with IRIS's codes as the values.

Each member's value is the code IRIS puts on the wire. Where IRIS's table has
an Id column, the numeric Id is accepted when reading too. Race, Ethnicity and
Language list a sample of an HL7 code system, and IRIS accepts any code of that
system, so a code of the system's form is valid for them as well.
"""

from __future__ import annotations

from enum import Enum

from iris_transport.models._base import register_open_code_system, register_option_ids

__all__ = [
    "DocumentType",
    "Ethnicity",
    "EvaluationType",
    "Gender",
    "GenderContext",
    "ImageContext",
    "Language",
    "Laterality",
    "MaritalStatus",
    "OrderControlCode",
    "Race",
    "ResultCode",
]


class OrderControlCode(str, Enum):
    """The operation an OrderRequest requests."""

    NEW = "NW"
    CHANGE = "XO"
    CANCEL = "CA"
    RESEND_RESULT = "ResendResult"


class EvaluationType(str, Enum):
    """An exam IRIS performs; an organization may use only those it subscribes to."""

    DR = "DR"
    GLAUCOMA = "Glaucoma"
    HIV = "HIV"
    DRME = "DRME"
    DR_REFNOREF = "DR_REFNOREF"
    AMD = "AMD"
    DR_AMD = "DR_AMD"
    SP = "SP"
    DR_AREDS_GLAUC = "DR_AREDS_GLAUC"
    AI_EYENUK_O1 = "AI_Eyenuk_O1"


class Gender(str, Enum):
    UNSPECIFIED = "U"
    MALE = "M"
    FEMALE = "F"
    NON_BINARY = "N"
    OTHER = "O"
    TRANSGENDER_MALE = "TM"
    TRANSGENDER_FEMALE = "TF"
    NON_DISCLOSED = "ND"
    EXPLORING_OR_QUESTIONING = "EQ"
    NOT_LISTED = "NL"
    NOT_EXCLUSIVELY_MALE_OR_FEMALE = "X"


class GenderContext(str, Enum):
    """Whether a PersonGender is the birth or the identity gender."""

    UNKNOWN = "Unknown"
    IDENTITY_GENDER = "IdentityGender"
    BIRTH_GENDER = "BirthGender"


class Laterality(str, Enum):
    RIGHT_EYE = "OD"
    LEFT_EYE = "OS"
    BOTH_EYES = "OU"


class ImageContext(str, Enum):
    PRIMARY = "Primary"
    SECONDARY_VIEW_FIELD = "SecondaryViewField"
    UNKNOWN = "Unknown"
    COMPONENT = "Component"
    AGGREGATE = "Aggregate"
    ENHANCEMENT = "Enhancement"
    ADDED_LATE = "AddedLate"


class MaritalStatus(str, Enum):
    """HL7 v3 MaritalStatus codes."""

    ANNULLED = "A"
    DIVORCED = "D"
    INTERLOCUTORY = "I"
    LEGALLY_SEPARATED = "L"
    MARRIED = "M"
    POLYGAMOUS = "P"
    NEVER_MARRIED = "S"
    DOMESTIC_PARTNER = "T"
    WIDOWED = "W"


class ResultCode(str, Enum):
    """The kind of result an OrderResult carries."""

    ADDENDUM = "A"
    CORRECTION = "C"
    FINAL = "F"
    PRELIMINARY = "P"
    RESEND = "R"


class Race(str, Enum):
    """HL7 v3 Race codes listed by IRIS; any HL7 race code (``NNNN-N``) is accepted."""

    AMERICAN_INDIAN_OR_ALASKA_NATIVE = "1002-5"
    ASIAN = "2028-9"
    BLACK_OR_AFRICAN_AMERICAN = "2054-5"
    NATIVE_HAWAIIAN_OR_OTHER_PACIFIC_ISLANDER = "2076-8"
    OTHER_RACE = "2131-1"
    WHITE = "2106-3"


class Ethnicity(str, Enum):
    """HL7 v3 Ethnicity codes listed by IRIS; any HL7 ethnicity code (``NNNN-N``) is accepted."""

    SPANIARD = "2137-8"
    MEXICAN = "2148-5"
    CENTRAL_AMERICAN = "2155-0"
    PUERTO_RICAN = "2180-8"
    CUBAN = "2182-4"
    MEXICAN_AMERICAN = "2149-3"


class Language(str, Enum):
    """Language codes listed by IRIS; any BCP 47 language tag (``en``, ``pt-BR``) is accepted."""

    ENGLISH = "en"
    US_ENGLISH = "en-US"
    FRENCH = "fr"
    SPANISH = "es"
    ITALIAN = "it"
    PORTUGUESE = "pt"
    CHINESE = "zh"


class DocumentType(str, Enum):
    """The format of an OrderResult's report (``ResultsDocument.Type``)."""

    PDF = "PDF"
    HTML = "HTML"
    ORU = "ORU"


register_option_ids(
    Gender,
    {index: member for index, member in enumerate(Gender)},
)
register_option_ids(
    GenderContext,
    {index: member for index, member in enumerate(GenderContext)},
)
register_option_ids(
    MaritalStatus,
    {index: member for index, member in enumerate(MaritalStatus)},
)
register_option_ids(
    ImageContext,
    {index: member for index, member in enumerate(ImageContext)},
)
# IRIS numbers evaluation types with gaps (5, 10 and 11 are not published).
register_option_ids(
    EvaluationType,
    dict(zip((1, 2, 3, 4, 6, 7, 8, 9, 12, 13), EvaluationType)),
)

register_open_code_system(Race, r"\d{4}-\d")
register_open_code_system(Ethnicity, r"\d{4}-\d")
register_open_code_system(Language, r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
