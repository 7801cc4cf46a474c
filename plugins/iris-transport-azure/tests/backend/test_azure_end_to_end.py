"""``iris-transport send order`` over Service Bus, with the IRIS simulator responding on the same emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from iris_transport.cli import main
from iris_transport.config import STANDARD_CHANNELS, load_config
from iris_transport.simulator import IrisSimulator, example_order_bytes
from iris_transport_azure.emulator import ServiceBusEmulator

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(180)]

EXAMPLE_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
EXAMPLE_SITE = "PC1234"
# Patient values of the example order that must never be printed.
PATIENT_VALUES = ("John", "Doe", "2000-01-01", "1/1/2000")
CONNECTION_STRING_ENV = "IRIS_TEST_SERVICEBUS_CONNECTION_STRING"


@pytest.fixture
def azure_config(servicebus_emulator: ServiceBusEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CONNECTION_STRING_ENV, servicebus_emulator.connection_string)
    lines = [f'client_guid = "{EXAMPLE_CLIENT_GUID}"', f'default_site = "{EXAMPLE_SITE}"']
    for channel in STANDARD_CHANNELS:
        servicebus_emulator.create_queue(channel, lock_duration=30)
        lines += [
            "",
            f"[channels.{channel}]",
            'backend = "azure"',
            f'connection_string = {{ env = "{CONNECTION_STRING_ENV}" }}',
            "lock_duration = 30",
        ]
    path = tmp_path / "iris-transport.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


async def test_send_order_yields_events_and_result(azure_config: Path, tmp_path: Path) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_bytes(example_order_bytes())
    config = load_config(azure_config)
    assert {config.channel(name).backend for name in STANDARD_CHANNELS} == {"azure"}

    async with IrisSimulator(config, receive_wait=0.5, shutdown_timeout=10.0) as simulator:
        sent = await asyncio.to_thread(invoke, "send", "order", str(order_file), "--config", str(azure_config))
        assert sent.exit_code == 0, sent.output
        await simulator.wait_until(lambda stats: stats["results"] >= 1 and stats["events"] >= 4, 90.0)

    events = await asyncio.to_thread(
        invoke, "listen", "events", "--json", "--count", "4", "--timeout", "60", "--config", str(azure_config)
    )
    assert events.exit_code == 0, events.output
    kinds = [json.loads(line)["ResultObjectType"] for line in events.stdout.splitlines()]
    assert kinds == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent"]

    reports = tmp_path / "reports"
    results = await asyncio.to_thread(
        invoke,
        "listen", "results", "--save-reports", str(reports), "--count", "1", "--timeout", "60",
        "--config", str(azure_config),
    )
    assert results.exit_code == 0, results.output
    assert "ResultCode F" in results.output
    [report] = reports.glob("*.pdf")
    assert report.read_bytes().startswith(b"%PDF-")
    for output in (sent.output, events.output, results.output):
        for value in PATIENT_VALUES:
            assert value not in output
