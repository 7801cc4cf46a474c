"""Property: any model survives write -> read -> write unchanged."""

from __future__ import annotations

import json
import types
import uuid
from datetime import timedelta, timezone
from typing import Any, Literal, Union, get_args, get_origin

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, BeforeValidator

from iris_transport import models
from iris_transport.models._base import OptionCode

OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
AWARE_DATETIMES = st.datetimes(timezones=OFFSETS)
TEXT = st.text(max_size=12)
INTS = st.integers(min_value=-(2**53), max_value=2**53)

# Strategies for the library's field types, keyed by the name of their reader.
_READERS = {
    "_read_timestamp": AWARE_DATETIMES,
    "_read_local_datetime": st.one_of(st.datetimes(), AWARE_DATETIMES),
    "_read_date": st.dates(),
    "_read_guid": st.uuids(),
}


def strategy_for(annotation: Any) -> st.SearchStrategy:
    """Derive values of a model field's type, None included where the field allows it."""
    origin = get_origin(annotation)

    if origin in (Union, types.UnionType):
        arguments = [argument for argument in get_args(annotation) if argument is not type(None)]
        allows_none = len(arguments) < len(get_args(annotation))
        inner = strategy_for(arguments[0]) if len(arguments) == 1 else st.one_of(*map(strategy_for, arguments))
        return st.one_of(st.none(), inner) if allows_none else inner

    for metadata in getattr(annotation, "__metadata__", ()):
        if isinstance(metadata, OptionCode):
            return st.sampled_from(list(metadata.enum_cls))
        if isinstance(metadata, BeforeValidator) and metadata.func.__name__ in _READERS:
            return st.one_of(st.none(), _READERS[metadata.func.__name__])
    if hasattr(annotation, "__metadata__"):
        return strategy_for(annotation.__origin__)

    if origin is list:
        return st.lists(strategy_for(get_args(annotation)[0]), max_size=2)
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return st.deferred(lambda: models_of(annotation))
    if annotation is str:
        return TEXT
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return INTS
    if annotation is uuid.UUID:
        return st.uuids()
    raise TypeError(f"no strategy for {annotation!r}")


def models_of(model_cls: type[BaseModel]) -> st.SearchStrategy:
    fields = {name: strategy_for(info.annotation) for name, info in model_cls.model_fields.items()}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: model_cls(**values))


MESSAGES = st.one_of(
    models_of(models.OrderRequest),
    models_of(models.GradingSubmission),
    models_of(models.OrderResult),
    *(models_of(event_cls) for event_cls in (*models.EVENT_TYPES.values(), models.GenericEvent)),
)

PARSERS = {
    models.OrderRequest: models.parse_order_request,
    models.GradingSubmission: models.parse_grading_submission,
    models.OrderResult: models.parse_order_result,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_write_read_write_is_stable(message):
    parse = PARSERS.get(type(message), models.parse_event)

    written = models.to_json_bytes(message)
    reread = parse(written)

    assert type(reread) is type(message)
    assert models.to_json_bytes(reread) == written
    assert reread == message


def test_null_unknown_field_is_left_out():
    order = models.parse_order_request(
        {"OrderControlCode": "CA", "Foo": None, "Order": {"LocalId": "ORD1", "Bar": None, "Baz": {"Qux": None}}}
    )

    written = json.loads(models.to_json_bytes(order))

    assert "Foo" not in written
    assert "Bar" not in written["Order"]
    assert written["Order"]["Baz"] == {"Qux": None}
