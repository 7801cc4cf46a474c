"""The ``validate`` and ``schema`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from iris_transport.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "iris-examples"
VALID_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.json") if ".as-published." not in path.name)


def run(*arguments: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(arguments), input=input)


def nw_order_without_dob_and_short_npi(tmp_path: Path) -> Path:
    document = json.loads((EXAMPLES / "order-request.corrected.json").read_bytes())
    del document["Patient"]["Dob"]
    document["OrderingProvider"]["NPI"] = "123456789"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_validate_valid_example_exits_zero(name):
    result = run("validate", str(EXAMPLES / name))

    assert result.exit_code == 0, result.output
    assert "valid" in result.output


@pytest.mark.parametrize(
    ("name", "position"),
    [("order-request.as-published.json", "line 34 column 9"), ("order-update.as-published.json", "line 9 column 5")],
)
def test_validate_as_published_order_exits_one(name, position):
    result = run("validate", str(EXAMPLES / name))

    assert result.exit_code == 1
    assert position in result.output


def test_validate_prints_every_problem_without_values(tmp_path):
    result = run("validate", str(nw_order_without_dob_and_short_npi(tmp_path)))

    assert result.exit_code == 1
    assert "Patient.Dob: is required" in result.output
    assert "OrderingProvider.NPI: must be 10 digits" in result.output
    for value in ("John", "Doe", "123456789", "2000"):
        assert value not in result.output


def test_validate_type_errors(tmp_path):
    document = json.loads((EXAMPLES / "order-result.json").read_bytes())
    document["Images"][0]["Laterality"] = 7
    document["Patient"]["Dob"] = "Doe"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))

    result = run("validate", str(path))

    assert result.exit_code == 1
    assert "Images[0].Laterality: must be a string" in result.output
    assert "Patient.Dob: must be" in result.output
    assert "Doe" not in result.output


def test_validate_as_overrides_detection():
    result = run("validate", "--as", "event", str(EXAMPLES / "order-cancel.json"))

    assert result.exit_code == 0, result.output
    assert "GenericEvent" in result.output


def test_validate_reads_standard_input():
    result = run("validate", "-", input=(EXAMPLES / "event-image-receipt.json").read_bytes())

    assert result.exit_code == 0
    assert "valid ImageReceipt" in result.output


def test_validate_warns_on_unknown_code_in_received_message(tmp_path):
    document = json.loads((EXAMPLES / "order-result.json").read_bytes())
    document["ResultCode"] = "Z"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))

    result = run("validate", str(path))

    assert result.exit_code == 0
    assert "warning: ResultCode: code not in IRIS's ResultCode option list" in result.output


def test_validate_rejects_unknown_code_in_sent_message(tmp_path):
    document = json.loads((EXAMPLES / "order-request.corrected.json").read_bytes())
    document["Camera"]["Images"][0]["Laterality"] = "OX"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(document))

    result = run("validate", str(path))

    assert result.exit_code == 1
    assert "Camera.Images[0].Laterality: must be one of the Laterality codes: OD, OS, OU" in result.output


def test_validate_unrecognizable_message(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"Hello": "world"}')

    result = run("validate", str(path))

    assert result.exit_code == 1
    assert "not a recognizable IRIS message" in result.output


@pytest.mark.parametrize("arguments", [("validate",), ("validate", "--as", "patient", "x.json"), ("schema", "patient")])
def test_usage_errors_exit_two(arguments):
    assert run(*arguments).exit_code == 2


def test_validate_missing_file_exits_two(tmp_path):
    assert run("validate", str(tmp_path / "absent.json")).exit_code == 2


def test_schema_accepts_corrected_published_order():
    result = run("schema", "order-request")
    schema = json.loads(result.output)

    document = json.loads((EXAMPLES / "order-request.corrected.json").read_bytes())

    assert result.exit_code == 0
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document)) == []


@pytest.mark.parametrize("model", ["order-request", "grading-submission", "event", "order-result"])
def test_schema_prints_each_model(model):
    result = run("schema", model)

    assert result.exit_code == 0
    assert json.loads(result.output)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_installed_command_runs(tmp_path):
    command = Path(sys.executable).with_name("iris-transport")
    order = nw_order_without_dob_and_short_npi(tmp_path)

    valid = subprocess.run(
        [str(command), "validate", str(EXAMPLES / "order-cancel.json")], capture_output=True, text=True, timeout=60
    )
    invalid = subprocess.run([str(command), "validate", str(order)], capture_output=True, text=True, timeout=60)

    assert valid.returncode == 0, valid.stderr
    assert invalid.returncode == 1
    assert "Patient.Dob: is required" in invalid.stdout
    assert "OrderingProvider.NPI: must be 10 digits" in invalid.stdout


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"OrderLocalId": "Zelda", "X": ' + b"[" * 3000 + b"]" * 3000 + b"}", "recursion limit exceeded"),
        (b'{"OrderLocalId": "Zelda", "X": ' + b"1" * 5000 + b"}", "number out of range"),
        (b'{"ResultObjectType": ["Zelda"]}', "ResultObjectType: must be a string"),
        (b'{"ResultObjectType": "ImageReceipt", "Timestamp": "9999-12-31T23:59:59.9999999"}', "Timestamp: must not be"),
        (b"", "line 1 column 1"),
        (b"\xff\xfe\x00Zelda\x81", "not UTF-8 text"),
    ],
)
def test_validate_hostile_body_exits_one(body, expected):
    result = run("validate", "-", input=body)

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert expected in result.output
    assert "Zelda" not in result.output


def test_validate_directory_exits_two(tmp_path):
    result = run("validate", str(tmp_path))

    assert result.exit_code == 2
    assert "directory" in result.output


def test_validate_unknown_model_lists_names():
    result = run("validate", "--as", "patient", str(EXAMPLES / "order-cancel.json"))

    assert result.exit_code == 2
    for name in ("order-request", "grading-submission", "event", "order-result"):
        assert name in result.output
