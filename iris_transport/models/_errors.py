"""Translation of pydantic's validation errors into IRIS field paths and safe messages.

pydantic's own messages may quote the input, and IRIS messages carry patient
data, so every message here is built from the error type and its context only.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from iris_transport.exceptions import DecodeError, ValidationProblem
from iris_transport.models._base import InvalidValue, IrisModel

_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_unicode": "must be a valid Unicode string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "datetime_type": "must be a date and time",
    "datetime_parsing": "must be an ISO 8601 date and time",
    "date_type": "must be a date",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "uuid_type": "must be a GUID",
    "uuid_parsing": "must be a GUID",
    "none_required": "must be null",
    "extra_forbidden": "is not allowed",
    "union_tag_invalid": "has an unknown type",
    "union_tag_not_found": "needs a type tag",
}


@lru_cache(maxsize=1)
def _wire_names() -> tuple[dict[str, str], frozenset[str]]:
    """Map every model field name to its IRIS name, and list all IRIS names."""
    by_name: dict[str, str] = {}
    pending: list[type[BaseModel]] = [IrisModel]
    while pending:
        model_cls = pending.pop()
        pending.extend(model_cls.__subclasses__())
        for name, info in model_cls.model_fields.items():
            by_name[name] = info.serialization_alias or info.alias or name
    return by_name, frozenset(by_name.values())


def wire_path(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into an IRIS path such as ``Camera.Images[0].Laterality``.

    Location parts that are not field names (union branch tags such as
    ``OrderCreationReceipt`` or ``str``) are dropped.
    """
    by_name, wire_names = _wire_names()
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part in wire_names:
            name = part
        elif part in by_name:
            name = by_name[part]
        else:
            continue
        path = f"{path}.{name}" if path else name
    return path


def describe_error(error: dict[str, Any]) -> str:
    """Return the expectation an error stands for, without the input value."""
    kind = error["type"]
    context = error.get("ctx") or {}

    if kind == "value_error" and isinstance(context.get("error"), InvalidValue):
        return str(context["error"])
    if kind == "literal_error":
        return f"must be {context.get('expected', 'one of the allowed values')}"
    if kind in ("too_short", "too_long"):
        return f"must have {'at least' if kind == 'too_short' else 'at most'} " + (
            f"{context.get('min_length', context.get('max_length'))} items"
        )
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "is out of range"
    return _MESSAGES.get(kind, f"is invalid ({kind})")


def problems_from(error: ValidationError) -> list[ValidationProblem]:
    """List one problem per pydantic error, without duplicates, in input order."""
    problems: list[ValidationProblem] = []
    seen: set[ValidationProblem] = set()
    for item in error.errors(include_url=False, include_context=True, include_input=False):
        problem = ValidationProblem(wire_path(tuple(item["loc"])), describe_error(item))
        if problem not in seen:
            seen.add(problem)
            problems.append(problem)
    return problems


def json_syntax_reason(error: ValidationError) -> str | None:
    """Return the parser's reason for a JSON syntax error in ``error``, or None when there is none."""
    for item in error.errors(include_input=False, include_url=False):
        if item["type"] == "json_invalid":
            return str((item.get("ctx") or {}).get("error", ""))
    return None


# pydantic-core's parser (jiter) writes each reason as one of its fixed error
# phrases followed by the position, so the reason quotes no input.
_PARSER_POSITION = re.compile(r"(?P<reason>.+) at line (?P<line>\d+) column (?P<column>\d+)")


def decode_error_for(data: bytes | str, parser_reason: str | None = None) -> DecodeError:
    """Build a DecodeError with the line and column of the first JSON syntax error in ``data``.

    ``parser_reason`` is pydantic-core's reason for rejecting ``data``. It is
    used when the standard library's parser finds no syntax error of its own.
    """
    try:
        json.loads(data)
    except UnicodeDecodeError:
        return DecodeError("invalid message body: not UTF-8 text")
    except json.JSONDecodeError as err:
        line, column, reason = err.lineno, err.colno, err.msg
        return DecodeError(f"invalid JSON at line {line} column {column}: {reason}", line=line, column=column)
    except (RecursionError, ValueError):
        # The standard parser gave up before any syntax error: the nesting is
        # too deep for it, or an integer has more than 4,300 digits.
        pass
    return _decode_error_from_parser(parser_reason)


def _decode_error_from_parser(parser_reason: str | None) -> DecodeError:
    match = _PARSER_POSITION.fullmatch(parser_reason or "")
    if match is None:
        # Neither parser reported a position.
        return DecodeError("invalid JSON: the body is not strict JSON")
    line, column = int(match["line"]), int(match["column"])
    return DecodeError(f"invalid JSON at line {line} column {column}: {match['reason']}", line=line, column=column)
