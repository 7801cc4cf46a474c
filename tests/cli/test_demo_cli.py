"""The demo, send, cancel, resend, listen and simulate commands."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iris_transport.cli import main
from iris_transport.simulator import IrisSimulator, example_order_bytes, local_config

from iris_transport.testing import require_peer

EXAMPLE_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
EXAMPLE_SITE = "PC1234"
EXECUTABLE = Path(sys.executable).with_name("iris-transport")
# Patient values of the example order that must never be printed.
PATIENT_VALUES = ("John", "Doe", "2000-01-01", "1/1/2000")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    local_config(tmp_path / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)
    return tmp_path / "iris-transport.toml"


@pytest.fixture
def order_file(tmp_path: Path) -> Path:
    path = tmp_path / "order.json"
    path.write_bytes(example_order_bytes())
    return path


def invoke(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def queue_bodies(config_file: Path, channel: str, wait: float = 0.5) -> list[dict]:
    from iris_transport.config import load_config

    config = load_config(config_file, environ={})

    async def drain() -> list[dict]:
        transport = config.create_transport(channel)
        try:
            messages = await transport.receive(max_messages=10, max_wait=wait)
            for message in messages:
                await transport.complete(message)
            return [json.loads(message.body) for message in messages]
        finally:
            await transport.close()

    return asyncio.run(drain())


def test_demo_end_to_end(tmp_path):
    output = tmp_path / "out"

    completed = subprocess.run(
        [str(EXECUTABLE), "demo", "--output", str(output), "--delay", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    shown = [line.split()[0] for line in lines if line.startswith("  ") and "IrisOrderId" in line]
    assert shown == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent", "OrderResult"]
    assert "ResultCode      F" in completed.stdout
    assert "OD (right eye)" in completed.stdout
    for value in PATIENT_VALUES:
        assert value not in completed.stdout
    [report] = output.glob("*.pdf")
    assert str(report) in completed.stdout
    assert report.read_bytes().startswith(b"%PDF-")


def test_demo_report_read_by_pdfinfo(tmp_path):
    pdfinfo = shutil.which("pdfinfo")
    require_peer(pdfinfo is not None, "pdfinfo", "install poppler-utils (apt-get install -y poppler-utils)")

    result = invoke("demo", "--output", str(tmp_path), "--delay", "0")
    assert result.exit_code == 0, result.output
    [report] = tmp_path.glob("*.pdf")

    completed = subprocess.run([pdfinfo, str(report)], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "Pages:" in completed.stdout


def test_demo_help_lists_exit_codes():
    result = invoke("demo", "--help")

    assert result.exit_code == 0
    assert "Exit status: 0 success; 1" in result.output
    assert "2 wrong usage" in result.output


def test_send_order_from_file(config_file, order_file):
    result = invoke("send", "order", str(order_file), "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert "Sent NW for order ORD1234 on channel orders (backend local" in result.output
    [body] = queue_bodies(config_file, "orders")
    assert body["Order"]["LocalId"] == "ORD1234"


def test_send_order_from_stdin(config_file):
    result = invoke("send", "order", "-", "--config", str(config_file), input=example_order_bytes())

    assert result.exit_code == 0, result.output
    assert len(queue_bodies(config_file, "orders")) == 1


def test_send_invalid_order_sends_nothing(config_file, tmp_path):
    order = json.loads(example_order_bytes())
    del order["Patient"]["Dob"]
    del order["Site"]
    path = tmp_path / "invalid.json"
    path.write_text(json.dumps(order))
    # Without a default_site, the missing Site cannot be filled in.
    config_file.write_text(config_file.read_text().replace('default_site = "PC1234"\n', ""))

    result = CliRunner().invoke(main, ["send", "order", str(path), "--config", str(config_file)])

    assert result.exit_code == 1
    assert "error: OrderRequest is invalid (2 problems); nothing was sent" in result.stderr
    assert "Patient.Dob: is required" in result.stderr
    assert "Site.LocalId: is required" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("fix: ")
    assert "Traceback" not in result.stderr
    for value in PATIENT_VALUES:
        assert value not in result.stderr
    assert queue_bodies(config_file, "orders") == []


def test_send_order_not_json(config_file, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"OrderControlCode": "NW",}')

    result = CliRunner().invoke(main, ["send", "order", str(path), "--config", str(config_file)])

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: the input is not an IRIS JSON message")
    assert lines[1].startswith("fix: ")


def test_missing_config_file_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["cancel", "ORD1", "--config", str(tmp_path / "nope.toml")])

    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert "fix: correct the configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_option_is_usage_error(config_file):
    result = invoke("cancel", "ORD1", "--no-such-option")

    assert result.exit_code == 2


def test_cancel_sends_ca(config_file):
    result = invoke("cancel", "ORD1234", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert "Sent CA for order ORD1234" in result.output
    [body] = queue_bodies(config_file, "orders")
    assert body["OrderControlCode"] == "CA"
    assert body["ClientGuid"] == EXAMPLE_CLIENT_GUID
    assert body["Site"]["LocalId"] == EXAMPLE_SITE


def test_resend_sends_resend_result(config_file):
    result = invoke("resend", "ORD1234", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    [body] = queue_bodies(config_file, "orders")
    assert body["OrderControlCode"] == "ResendResult"


def answer_example_order(config_file: Path) -> None:
    """Submit the example order and let the simulator answer it completely."""
    from iris_transport.client import AsyncIrisClient
    from iris_transport.config import load_config

    config = load_config(config_file, environ={})

    async def run() -> None:
        async with IrisSimulator(config, receive_wait=0.2, shutdown_timeout=5.0) as simulator:
            async with AsyncIrisClient(config) as client:
                await client.submit_order(example_order_bytes())
            await simulator.wait_until(lambda stats: stats["results"] >= 1 and stats["events"] >= 4, 30.0)

    asyncio.run(run())


def test_listen_events(config_file):
    answer_example_order(config_file)

    result = invoke("listen", "events", "--count", "4", "--timeout", "30", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    types = [line.split()[0] for line in result.output.splitlines() if "IrisOrderId" in line]
    assert types == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent"]


def test_listen_events_as_json(config_file):
    answer_example_order(config_file)

    result = CliRunner().invoke(
        main, ["listen", "events", "--json", "--count", "4", "--timeout", "30", "--config", str(config_file)]
    )

    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["ResultObjectType"] for event in events][0] == "OrderCreationReceipt"
    assert len(events) == 4


def test_listen_results_saves_reports(config_file, tmp_path):
    answer_example_order(config_file)
    reports = tmp_path / "reports"

    result = invoke(
        "listen", "results", "--save-reports", str(reports), "--count", "1", "--timeout", "30",
        "--config", str(config_file),
    )

    assert result.exit_code == 0, result.output
    [report] = reports.glob("*.pdf")
    assert report.read_bytes().startswith(b"%PDF-")
    assert "ResultCode F" in result.output
    for value in PATIENT_VALUES:
        assert value not in result.output


def test_listen_times_out_when_count_not_reached(config_file):
    result = CliRunner().invoke(
        main, ["listen", "events", "--count", "1", "--timeout", "1", "--config", str(config_file)]
    )

    assert result.exit_code == 1
    assert "timed out after 1 s with 0 of 1 messages" in result.stderr


def test_save_reports_only_for_results(config_file, tmp_path):
    result = invoke("listen", "events", "--save-reports", str(tmp_path), "--config", str(config_file))

    assert result.exit_code == 2


def test_simulate_answers_until_sigterm(config_file, order_file, tmp_path):
    process = subprocess.Popen(
        [str(EXECUTABLE), "simulate", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "IRIS_TRANSPORT_CONFIG": ""},
    )
    try:
        assert invoke("send", "order", str(order_file), "--config", str(config_file)).exit_code == 0
        result = invoke("listen", "results", "--count", "1", "--timeout", "60", "--config", str(config_file))
        assert result.exit_code == 0, result.output
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise

    assert process.returncode == 0, stderr
    assert "IRIS simulator stopped" in stderr
    for value in PATIENT_VALUES:
        assert value not in stderr


@pytest.mark.parametrize("command", ["cancel", "resend"])
def test_blank_local_id_is_usage_error(config_file, command):
    result = CliRunner().invoke(main, [command, " ", "--config", str(config_file)])

    assert result.exit_code == 2
    assert "LOCAL_ID" in result.stderr
    assert "Traceback" not in result.stderr
    assert queue_bodies(config_file, "orders") == []


def test_send_order_too_large(config_file, tmp_path):
    order = json.loads(example_order_bytes())
    order["Order"]["AdditionalInfo"] = "John Doe " * 200_000
    path = tmp_path / "large.json"
    path.write_text(json.dumps(order))

    result = CliRunner().invoke(main, ["send", "order", str(path), "--config", str(config_file)])

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert "over the backend's limit" in lines[0]
    assert lines[1].startswith("fix: ")
    assert "credentials" not in lines[1]
    for value in PATIENT_VALUES:
        assert value not in result.stderr
    assert queue_bodies(config_file, "orders") == []


def test_demo_unusable_output_fails_first(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = CliRunner().invoke(main, ["demo", "--output", str(blocker / "reports"), "--delay", "0"])

    assert result.exit_code == 1
    assert "Submitted" not in result.stdout
    assert result.stderr.startswith("error: ")
    assert "fix: " in result.stderr


def test_demo_interrupted_by_sigint(tmp_path):
    process = subprocess.Popen(
        [str(EXECUTABLE), "demo", "--output", str(tmp_path / "out"), "--delay", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Waiting for"):
                break
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 1
    assert stderr.splitlines() == ["error: interrupted: `iris-transport demo` stopped before it finished"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_listen_unusable_report_dir_keeps_result(config_file, tmp_path):
    answer_example_order(config_file)
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = CliRunner().invoke(
        main,
        ["listen", "results", "--save-reports", str(blocker / "reports"), "--count", "1", "--timeout", "30",
         "--config", str(config_file)],
    )

    assert result.exit_code == 1
    assert "error: " in result.stderr
    assert "fix: " in result.stderr
    assert "Traceback" not in result.stderr
    # After the failed attempt the result is delayed by the backoff, about a second.
    [body] = queue_bodies(config_file, "results", wait=30.0)
    assert body["ResultCode"] == "F"


def test_event_line_shows_wire_success():
    from iris_transport import models
    from iris_transport.simulator.demo import format_event

    refused = models.OrderCreationReceipt(order_local_id="ORD1", success=False, error_message="Site.LocalId: unknown site")

    line = format_event(refused)

    assert "Success false" in line
    assert "Error Site.LocalId: unknown site" in line


def test_simulate_without_client_guid_names_option(tmp_path):
    local_config(tmp_path / "queues.sqlite3")

    result = CliRunner().invoke(main, ["simulate", "--config", str(tmp_path / "iris-transport.toml")])

    assert result.exit_code == 1
    assert "--client-guid" in result.stderr
    assert "Traceback" not in result.stderr


def test_send_unknown_code_shows_no_warning(config_file, tmp_path):
    order = json.loads(example_order_bytes())
    order["Camera"]["Images"][0]["Laterality"] = "XX"
    path = tmp_path / "unknown-code.json"
    path.write_text(json.dumps(order))

    process = subprocess.run(
        [str(EXECUTABLE), "send", "order", str(path), "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode == 1
    assert "Warning" not in process.stderr
    assert process.stderr.splitlines()[0] == "error: OrderRequest is invalid (1 problem); nothing was sent"
    assert "Camera.Images[0].Laterality" in process.stderr


def test_listen_unknown_code_is_one_log_line(config_file):
    from iris_transport.codec import encode_json_message
    from iris_transport.config import load_config

    result_document = json.loads(Path(__file__).parent.parent.joinpath("data", "iris-examples", "order-result.json").read_bytes())
    result_document["Images"][0]["Laterality"] = "ZZ"

    async def send() -> None:
        transport = load_config(config_file, environ={}).create_transport("results")
        try:
            await transport.send(encode_json_message(json.dumps(result_document).encode(), message_id="r1"))
        finally:
            await transport.close()

    asyncio.run(send())

    process = subprocess.run(
        [str(EXECUTABLE), "listen", "results", "--count", "1", "--timeout", "30", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert process.returncode == 0, process.stderr
    [warning] = [line for line in process.stderr.splitlines() if "Laterality" in line]
    assert "WARNING" in warning
    assert "UnknownCodeWarning: Images[0].Laterality" in warning
    assert ".py" not in process.stderr
