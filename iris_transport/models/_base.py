"""The base model and the field types shared by every IRIS model.

Reading is tolerant and writing is canonical. Each field type below accepts
the forms real IRIS senders produce and writes exactly one form:

- ``Timestamp`` (IRIS ``DateTimeOffset``): ISO 8601 with 0 to 9 fractional
  digits, rounded to microseconds. A value without an offset is taken as UTC,
  and ``""`` reads as absent. Written as ISO 8601 with an offset.
- ``LocalDateTime`` (IRIS ``datetime``, local to the exam location): ISO 8601
  or US ``M/D/YYYY`` with an optional time. Written as ISO 8601, with an
  offset only when it has one, because IRIS gives this field no time zone.
- ``IrisDate`` (IRIS ``Date``): ISO ``YYYY-MM-DD``, US ``M/D/YYYY`` or a
  timestamp whose time is ignored. Written as ``YYYY-MM-DD``.
- ``Guid``: a GUID in any letter case, with or without braces; ``""`` reads
  as absent. Written in upper case, as IRIS's published messages are.
- ``Option`` fields: a code of an IRIS option list. An unknown code is kept
  as a plain ``str`` when reading (``find_unknown_codes`` reports it) and
  rejected when writing.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, Optional, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_pascal
from pydantic_core import core_schema

IRIS_VERSION = "2.3.1"
SCHEMA_URL_BASE = "https://cdn.retinalscreenings.com/hosts/iris/schemas/"


class InvalidValue(ValueError):
    """A field value failed a check; the message names the expected form, never the value."""


class IrisModel(BaseModel):
    """Base of every IRIS model: snake_case in Python, IRIS's PascalCase on the wire.

    Fields the model does not declare are kept in ``model_extra`` and written
    back unchanged, except that ``to_json_bytes`` leaves out one whose value
    is None, as it does every declared field that is None.
    """

    model_config = ConfigDict(
        alias_generator=to_pascal,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        # pydantic's error text quotes the input, which may be patient data.
        # Hiding it covers models built or changed in Python, which do not
        # pass through parse() and its translation of errors.
        hide_input_in_errors=True,
        # Checks and converts assigned values as the constructor does, so an
        # assigned value cannot reach the writer in a form it cannot write.
        validate_assignment=True,
        # Schema titles are the IRIS names, not pydantic's default ("Localid").
        field_title_generator=lambda name, info: info.alias or to_pascal(name),
    )


# --- timestamps and dates -------------------------------------------------
# Each type admits None because its reader turns "" into None before the
# type check runs.

_ISO_DATETIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:[Tt ](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?)?"
    r"\s*(?P<offset>Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_US_DATETIME = re.compile(
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})"
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?:\s*(?P<ampm>[AaPp][Mm]))?)?"
    r"\s*(?P<offset>Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def _parse_offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text in ("Z", "z"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise InvalidValue("has an invalid UTC offset; expected +HH:MM")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _parse_datetime_text(text: str) -> datetime:
    """Parse ISO 8601 or US ``M/D/YYYY [h:mm[:ss] [AM|PM]]`` text into a datetime."""
    text = text.strip()
    match = _ISO_DATETIME.fullmatch(text) or _US_DATETIME.fullmatch(text)
    if match is None:
        raise InvalidValue("must be an ISO 8601 date and time (YYYY-MM-DDThh:mm:ss+hh:mm) or M/D/YYYY")
    parts = match.groupdict()

    hour = int(parts["hour"] or 0)
    ampm = (parts.get("ampm") or "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            raise InvalidValue("has an hour outside 1-12 with AM/PM")
        hour = hour % 12 + (12 if ampm == "PM" else 0)

    # Up to 9 fractional digits (.NET writes 7): round to microseconds, which
    # may carry into the next second.
    fraction = parts["fraction"] or ""
    nanoseconds = int(fraction.ljust(9, "0")) if fraction else 0
    microseconds, remainder = divmod(nanoseconds, 1000)
    if remainder >= 500:
        microseconds += 1

    offset = _parse_offset(parts["offset"])
    try:
        value = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            hour,
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            tzinfo=offset,
        )
    except ValueError:
        raise InvalidValue("is not a valid calendar date and time") from None
    try:
        return value + timedelta(microseconds=microseconds)
    except OverflowError:
        # Only a fraction rounded up past 9999-12-31T23:59:59.999999 gets here.
        raise InvalidValue("must not be later than 9999-12-31T23:59:59.999999") from None


def _read_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None
        value = _parse_datetime_text(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        # IRIS sends DateTimeOffset values with an offset; one without is taken as UTC.
        value = value.replace(tzinfo=timezone.utc)
    return value


def _read_local_datetime(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None
        return _parse_datetime_text(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value


def _read_date(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None
        return _parse_datetime_text(value).date()
    if isinstance(value, datetime):
        return value.date()
    return value


def _write_datetime(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _write_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# "" is in each schema because IRIS sends it for an absent value.
Timestamp = Annotated[
    Optional[datetime],
    BeforeValidator(_read_timestamp),
    PlainSerializer(_write_datetime, return_type=Optional[str], when_used="json"),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}),
]
LocalDateTime = Annotated[
    Optional[datetime],
    BeforeValidator(_read_local_datetime),
    PlainSerializer(_write_datetime, return_type=Optional[str], when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [
                {"format": "date-time"},
                {"pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"},
                {"pattern": r"^\d{1,2}/\d{1,2}/\d{4}( \d{1,2}:\d{2}(:\d{2})?( ?[AaPp][Mm])?)?$"},
                {"maxLength": 0},
            ],
        }
    ),
]
IrisDate = Annotated[
    Optional[date],
    BeforeValidator(_read_date),
    PlainSerializer(_write_date, return_type=Optional[str], when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [
                {"format": "date"},
                {"pattern": r"^\d{4}-\d{2}-\d{2}(T.*)?$"},
                {"pattern": r"^\d{1,2}/\d{1,2}/\d{4}( .*)?$"},
                {"maxLength": 0},
            ],
        }
    ),
]


# --- GUIDs -----------------------------------------------------------------


def _read_guid(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return uuid.UUID(text)
        except ValueError:
            raise InvalidValue("must be a GUID (8-4-4-4-12 hexadecimal digits)") from None
    return value


def _write_guid(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value).upper()


Guid = Annotated[
    Optional[uuid.UUID],
    BeforeValidator(_read_guid),
    PlainSerializer(_write_guid, return_type=Optional[str], when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^$|^\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?$",
        }
    ),
]


# --- option lists ----------------------------------------------------------

# Option lists whose IRIS table is a sample of an open code system: IRIS
# accepts any code of that system, so a code of the right form is valid too.
_OPEN_CODE_PATTERNS: dict[type[Enum], re.Pattern[str]] = {}

# The numeric Ids of option lists whose IRIS table has an Id column.
_OPTION_IDS: dict[type[Enum], dict[int, Enum]] = {}


def register_option_ids(enum_cls: type[Enum], ids: dict[int, Enum]) -> None:
    """Read the numeric ``ids`` of ``enum_cls`` as its codes."""
    _OPTION_IDS[enum_cls] = dict(ids)


def register_open_code_system(enum_cls: type[Enum], pattern: str) -> None:
    """Accept any code matching ``pattern`` for ``enum_cls`` besides its members."""
    _OPEN_CODE_PATTERNS[enum_cls] = re.compile(pattern)


def is_valid_code(enum_cls: type[Enum], code: Any) -> bool:
    """Return True when ``code`` is a member of ``enum_cls`` or fits its open code system."""
    if isinstance(code, enum_cls):
        return True
    pattern = _OPEN_CODE_PATTERNS.get(enum_cls)
    return isinstance(code, str) and pattern is not None and pattern.fullmatch(code) is not None


class OptionCode:
    """Field metadata for a code of one IRIS option list (see ``Option``)."""

    __slots__ = ("enum_cls",)

    def __init__(self, enum_cls: type[Enum]) -> None:
        self.enum_cls = enum_cls

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        enum_cls = self.enum_cls
        members = {member.value: member for member in enum_cls}
        ids = _OPTION_IDS.get(enum_cls, {})

        def to_member(value: Any) -> Any:
            return members.get(value, value)

        def from_id(value: Any) -> Any:
            # Some IRIS libraries send the numeric Id of the option instead of its code.
            if isinstance(value, int) and not isinstance(value, bool) and value in ids:
                return ids[value]
            return value

        schema = core_schema.no_info_after_validator_function(to_member, core_schema.str_schema())
        if ids:
            schema = core_schema.no_info_before_validator_function(from_id, schema)
        return schema

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        branches: list[dict[str, Any]] = [{"type": "string", "enum": [member.value for member in self.enum_cls]}]
        ids = _OPTION_IDS.get(self.enum_cls)
        if ids:
            branches.append({"type": "integer", "enum": sorted(ids)})
        pattern = _OPEN_CODE_PATTERNS.get(self.enum_cls)
        if pattern is not None:
            branches.append({"type": "string", "pattern": f"^{pattern.pattern}$"})
        return branches[0] if len(branches) == 1 else {"anyOf": branches}


class _OptionFactory:
    """``Option[Gender]`` is a Gender member, or a plain ``str`` for a code IRIS added later."""

    def __getitem__(self, enum_cls: type[Enum]) -> Any:
        return Annotated[Union[enum_cls, str], OptionCode(enum_cls)]


Option = _OptionFactory()


# --- walking a model tree --------------------------------------------------


def _option_enum(annotation: Any) -> type[Enum] | None:
    """Return the option list of a field annotation such as ``Optional[list[Option[X]]]``."""
    for metadata in getattr(annotation, "__metadata__", ()):
        if isinstance(metadata, OptionCode):
            return metadata.enum_cls
    for argument in get_args(annotation):
        found = _option_enum(argument)
        if found is not None:
            return found
    return None


_OPTION_FIELDS: dict[type[BaseModel], tuple[tuple[str, str, type[Enum]], ...]] = {}


def _option_fields(model_cls: type[BaseModel]) -> tuple[tuple[str, str, type[Enum]], ...]:
    fields = _OPTION_FIELDS.get(model_cls)
    if fields is None:
        found = []
        for name, info in model_cls.model_fields.items():
            enum_cls = _option_enum(info.annotation)
            if enum_cls is not None:
                found.append((name, info.serialization_alias or info.alias or name, enum_cls))
        fields = _OPTION_FIELDS[model_cls] = tuple(found)
    return fields


def find_unknown_codes(model: BaseModel, path: str = "") -> list[tuple[str, type[Enum]]]:
    """List ``(wire path, option list)`` for every option field holding a code IRIS does not list."""
    found: list[tuple[str, type[Enum]]] = []
    _collect_unknown_codes(model, path, found)
    return found


def _collect_unknown_codes(model: BaseModel, path: str, found: list[tuple[str, type[Enum]]]) -> None:
    model_cls = type(model)
    option_names = set()
    for name, alias, enum_cls in _option_fields(model_cls):
        option_names.add(name)
        value = getattr(model, name)
        if value is None:
            continue
        field_path = f"{path}.{alias}" if path else alias
        if isinstance(value, list):
            for index, item in enumerate(value):
                if item is not None and not is_valid_code(enum_cls, item):
                    found.append((f"{field_path}[{index}]", enum_cls))
        elif not is_valid_code(enum_cls, value):
            found.append((field_path, enum_cls))

    for name, info in model_cls.model_fields.items():
        if name in option_names:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            alias = info.serialization_alias or info.alias or name
            _collect_unknown_codes(value, f"{path}.{alias}" if path else alias, found)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            alias = info.serialization_alias or info.alias or name
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _collect_unknown_codes(item, f"{path}.{alias}[{index}]" if path else f"{alias}[{index}]", found)


def wire_name(model_cls: type[BaseModel], name: str) -> str:
    """Return the IRIS name of a field of ``model_cls``."""
    info = model_cls.model_fields[name]
    return info.serialization_alias or info.alias or name


__all__ = [
    "IRIS_VERSION",
    "SCHEMA_URL_BASE",
    "Guid",
    "InvalidValue",
    "IrisDate",
    "IrisModel",
    "LocalDateTime",
    "Option",
    "OptionCode",
    "Timestamp",
    "find_unknown_codes",
    "is_valid_code",
    "register_open_code_system",
    "register_option_ids",
    "wire_name",
]
