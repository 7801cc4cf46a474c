"""Commands that read IRIS messages: ``validate`` and ``schema``."""

from __future__ import annotations

import json
import warnings

import click

from iris_transport.exceptions import DecodeError, MessageValidationError, ValidationProblem
from iris_transport.models import (
    SCHEMA_NAMES,
    UnknownCodeWarning,
    find_sending_problems,
    json_schema,
    parse,
    parse_message,
)
from iris_transport.models.order_request import OrderRequest

__all__ = ["COMMANDS", "schema", "validate"]

# Messages an integrator sends are held to IRIS's sending rules too; messages
# IRIS sends (events, results) only have to parse.
_SENT_KINDS = ("order-request", "grading-submission")


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option(
    "--as",
    "kind",
    type=click.Choice(SCHEMA_NAMES, case_sensitive=False),
    help="Model to validate against. Default: detected from $schema, ResultObjectType or the fields present.",
)
def validate(file: click.utils.LazyFile, kind: str | None) -> None:
    """Check that FILE (or - for standard input) is a valid IRIS message.

    Orders and grading submissions are also checked against the fields IRIS
    requires for sending. Exits 0 when valid and 1 when not, after printing
    every problem with its field path. Field values are never printed.
    """
    data = file.read()
    name = getattr(file, "name", "-")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownCodeWarning)
        try:
            if kind is None:
                kind, message = parse_message(data)
            else:
                kind = kind.lower()
                message = parse(kind, data)
        except DecodeError as err:
            click.echo(f"{name}: {err}")
            raise SystemExit(1) from None
        except MessageValidationError as err:
            _report_problems(name, err.model, err.problems)
            raise SystemExit(1) from None

    model_name = type(message).__name__
    if kind in _SENT_KINDS:
        problems = find_sending_problems(message)
        if problems:
            _report_problems(name, model_name, problems)
            raise SystemExit(1)
    else:
        for warning in caught:
            if issubclass(warning.category, UnknownCodeWarning):
                click.echo(f"{name}: warning: {warning.message}")

    detail = ""
    if isinstance(message, OrderRequest) and message.order_control_code is not None:
        detail = f" ({getattr(message.order_control_code, 'value', message.order_control_code)})"
    click.echo(f"{name}: valid {model_name}{detail}")


def _report_problems(name: str, model_name: str, problems: tuple[ValidationProblem, ...] | list[ValidationProblem]) -> None:
    count = len(problems)
    click.echo(f"{name}: invalid {model_name} ({count} problem{'s' if count != 1 else ''})")
    for problem in problems:
        click.echo(f"  {problem}")


@click.command()
@click.argument("model", type=click.Choice(SCHEMA_NAMES, case_sensitive=False))
def schema(model: str) -> None:
    """Print the JSON Schema (draft 2020-12) of MODEL."""
    click.echo(json.dumps(json_schema(model), indent=2))


COMMANDS: list[click.Command] = [validate, schema]
