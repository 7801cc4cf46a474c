"""The IRIS simulator on the local backend: what it sends in reply to each kind of message."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from iris_transport import models
from iris_transport.codec import encode_json_message
from iris_transport.config import IrisConfig
from iris_transport.exceptions import ConfigurationError
from iris_transport.simulator import IrisSimulator, SimulatorDelays, example_order_bytes, local_config
from iris_transport.transport import OutgoingMessage

from iris_transport.testing import require_peer

EXAMPLE_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
EXAMPLE_SITE = "PC1234"
WAIT = 30.0
TEST_DATA = Path(__file__).parent.parent / "data" / "iris-examples"


@pytest.fixture
def config(tmp_path: Path) -> IrisConfig:
    return local_config(tmp_path / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)


@pytest.fixture
def example_order() -> dict[str, Any]:
    return json.loads(example_order_bytes())


class FixedClock:
    """A clock that advances one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 2, 9, 30, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def simulator(config: IrisConfig, **options: Any) -> IrisSimulator:
    return IrisSimulator(config, receive_wait=0.2, shutdown_timeout=5.0, **options)


async def send_order(config: IrisConfig, document: dict[str, Any] | bytes, message_id: str = "order-1") -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    transport = config.create_transport("orders")
    try:
        await transport.send(OutgoingMessage(body=body, message_id=message_id))
    finally:
        await transport.close()


async def receive_all(config: IrisConfig, channel: str, wait: float = 0.5) -> list[dict[str, Any]]:
    transport = config.create_transport(channel)
    bodies: list[dict[str, Any]] = []
    try:
        while True:
            batch = await transport.receive(max_messages=10, max_wait=wait if not bodies else 0.2)
            if not batch:
                return bodies
            for message in batch:
                await transport.complete(message)
                bodies.append(json.loads(message.body))
    finally:
        await transport.close()


async def run_until(sim: IrisSimulator, orders: int = 0, gradings: int = 0, results: int = 0) -> None:
    await sim.wait_until(
        lambda stats: stats["orders"] >= orders and stats["gradings"] >= gradings and stats["results"] >= results,
        WAIT,
    )


def test_packaged_example_order_matches_test_data():
    assert example_order_bytes() == (TEST_DATA / "order-request.corrected.json").read_bytes()


async def test_example_order_gets_every_step(config, example_order):
    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1, results=1)

    events = await receive_all(config, "events")
    [result] = await receive_all(config, "results")
    assert [event["ResultObjectType"] for event in events] == [
        "OrderCreationReceipt",
        "ImageReceipt",
        "ReadyForGradingEvent",
        "OrderGradedEvent",
    ]
    assert {event["OrderLocalId"] for event in events} == {"ORD1234"}
    assert {event["PatientLocalId"] for event in events} == {"1234"}
    assert len({event["IrisOrderId"] for event in events}) == 1
    assert all(event["Success"] is True for event in events)
    assert events[1]["ImageLocalId"] == "1234-1-1"
    assert result["ResultCode"] == "F"
    assert result["Order"]["PatientOrderId"] == events[0]["IrisOrderId"]
    assert result["ResultsDocument"]["Type"] == "PDF"
    assert base64.b64decode(result["ResultsDocument"]["Content"]).startswith(b"%PDF-")
    assert result["ImageDetails"]["RightEyeCount"] == 1
    assert result["Gradings"]["OS"]["Gradable"] is False


async def test_unknown_site_gets_failed_receipt(config, example_order):
    example_order["Site"]["LocalId"] = "NOT-A-SITE"

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1)

    [receipt] = await receive_all(config, "events")
    assert receipt["ResultObjectType"] == "OrderCreationReceipt"
    assert receipt["Success"] is False
    assert receipt["ErrorMessage"].startswith("Site.LocalId: ")
    assert receipt["OrderLocalId"] == "ORD1234"
    assert await receive_all(config, "results", wait=0.2) == []


async def test_missing_fields_get_failed_receipt(config, example_order):
    del example_order["Patient"]["Dob"]
    del example_order["Order"]["EvaluationTypes"]

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1)

    [receipt] = await receive_all(config, "events")
    assert receipt["Success"] is False
    assert "Order.EvaluationTypes: is required" in receipt["ErrorMessage"]
    assert "Patient.Dob: is required" in receipt["ErrorMessage"]
    assert "John" not in receipt["ErrorMessage"]


async def test_wrong_field_type_gets_failed_receipt(config, example_order):
    example_order["Patient"]["Dob"] = "not a date"

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1)

    [receipt] = await receive_all(config, "events")
    assert receipt["Success"] is False
    assert "Patient.Dob" in receipt["ErrorMessage"]
    assert "not a date" not in receipt["ErrorMessage"]


async def test_unknown_client_guid_gets_nothing(config, example_order, caplog):
    example_order["ClientGuid"] = str(uuid.UUID(int=7)).upper()

    with caplog.at_level("INFO", logger="iris_transport.simulator"):
        async with simulator(config) as sim:
            await send_order(config, example_order)
            await run_until(sim, orders=1)

    assert sim.stats["ignored"] == 1
    assert sim.stats["events"] == 0
    assert await receive_all(config, "events", wait=1.0) == []
    assert "unknown or missing ClientGuid" in caplog.text
    assert "John" not in caplog.text
    assert "1234-1-1" not in caplog.text


async def test_missing_client_guid_gets_nothing(config, example_order):
    del example_order["ClientGuid"]

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1)

    assert await receive_all(config, "events", wait=1.0) == []


async def test_cancel_of_created_order(config, example_order):
    cancel = json.loads((TEST_DATA / "order-cancel.json").read_bytes())

    async with simulator(config, auto_grade=False) as sim:
        await send_order(config, example_order, "order-1")
        await run_until(sim, orders=1)
        await send_order(config, cancel, "order-2")
        await run_until(sim, orders=2)

    events = await receive_all(config, "events")
    assert [event["ResultObjectType"] for event in events] == [
        "OrderCreationReceipt",
        "ImageReceipt",
        "ReadyForGradingEvent",
        "OrderCancelled",
    ]
    cancelled = events[-1]
    assert cancelled["Success"] is True
    assert cancelled["OrderLocalId"] == "ORD1234"
    assert cancelled["IrisOrderId"] == events[0]["IrisOrderId"]


async def test_cancel_of_unknown_order_is_ignored(config):
    cancel = json.loads((TEST_DATA / "order-cancel.json").read_bytes())

    async with simulator(config) as sim:
        await send_order(config, cancel)
        await run_until(sim, orders=1)

    assert await receive_all(config, "events") == []


async def test_duplicate_new_order_is_rejected(config, example_order):
    async with simulator(config, auto_grade=False) as sim:
        await send_order(config, example_order, "order-1")
        await send_order(config, example_order, "order-2")
        await run_until(sim, orders=2)

    receipts = [event for event in await receive_all(config, "events") if event["ResultObjectType"] == "OrderCreationReceipt"]
    assert [receipt["Success"] for receipt in receipts] == [True, False]
    assert receipts[1]["ErrorMessage"].startswith("Order.LocalId")


async def test_redelivered_order_is_answered_once(config, example_order):
    async with simulator(config, auto_grade=False) as sim:
        await send_order(config, example_order, "same-id")
        await send_order(config, example_order, "same-id")
        await run_until(sim, orders=1)
        await sim.wait_until(lambda stats: stats["events"] >= 3, WAIT)

    receipts = [event for event in await receive_all(config, "events") if event["ResultObjectType"] == "OrderCreationReceipt"]
    assert len(receipts) == 1


async def test_change_adds_images(config, example_order):
    without_images = json.loads(json.dumps(example_order))
    without_images["Camera"]["Images"] = []
    change = json.loads(json.dumps(example_order))
    change["OrderControlCode"] = "XO"

    async with simulator(config) as sim:
        await send_order(config, without_images, "order-1")
        await run_until(sim, orders=1)
        await send_order(config, change, "order-2")
        await run_until(sim, orders=2, results=1)

    events = await receive_all(config, "events")
    assert [event["ResultObjectType"] for event in events] == [
        "OrderCreationReceipt",
        "OrderCreationReceipt",
        "ImageReceipt",
        "ReadyForGradingEvent",
        "OrderGradedEvent",
    ]


async def test_change_of_unknown_order_fails(config, example_order):
    example_order["OrderControlCode"] = "XO"

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1)

    [receipt] = await receive_all(config, "events")
    assert receipt["Success"] is False
    assert receipt["ErrorMessage"].startswith("Order.LocalId")


async def test_grading_for_unknown_order_fails(config):
    grading = json.loads((TEST_DATA / "grading-submission-1.json").read_bytes())
    grading["Site"]["LocalId"] = EXAMPLE_SITE
    transport = config.create_transport("gradings")
    await transport.send(encode_json_message(json.dumps(grading).encode(), message_id="grading-1"))
    await transport.close()

    async with simulator(config) as sim:
        await sim.wait_until(lambda stats: stats["gradings"] >= 1, WAIT)

    [receipt] = await receive_all(config, "events")
    assert receipt["ResultObjectType"] == "GradingReceipt"
    assert receipt["Success"] is False
    assert receipt["ErrorMessage"].startswith("LocalId")


async def test_auto_add_site_with_name_and_address(config, example_order):
    example_order["Site"] = {
        "LocalId": "NEW-SITE",
        "Name": "North clinic",
        "Address": {"Street1": "1 Main St", "City": "Tampa", "State": "FL", "PostalCode": "33601"},
    }

    async with simulator(config, auto_add_sites=True) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1, results=1)

    events = await receive_all(config, "events")
    assert events[0]["Success"] is True
    assert "NEW-SITE" in sim.sites


async def test_undecodable_order_is_dead_lettered(config):
    async with simulator(config) as sim:
        await send_order(config, b"\x00 not json", "broken")
        dead_letters = config.create_transport("orders").dead_letter_transport()
        try:
            [message] = await dead_letters.receive(max_messages=1, max_wait=WAIT)
        finally:
            await dead_letters.close()

    assert message.message_id == "broken"
    assert message.application_properties["DeadLetterReason"] == "DecodeError"
    assert await receive_all(config, "events", wait=0.2) == []


async def test_same_seed_gives_same_messages(tmp_path, example_order):
    outputs = []
    for run in ("first", "second"):
        directory = tmp_path / run
        directory.mkdir()
        config = local_config(directory / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)
        async with simulator(config, seed=42, clock=FixedClock()) as sim:
            await send_order(config, example_order)
            await run_until(sim, orders=1, results=1)
        outputs.append((await receive_all(config, "events"), await receive_all(config, "results")))

    assert outputs[0] == outputs[1]
    assert outputs[0][0][0]["Timestamp"] == "2025-01-02T09:30:02+00:00"


async def test_other_seed_gives_other_ids(tmp_path, example_order):
    order_ids = []
    for seed in (1, 2):
        directory = tmp_path / str(seed)
        directory.mkdir()
        config = local_config(directory / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)
        async with simulator(config, seed=seed) as sim:
            await send_order(config, example_order)
            await run_until(sim, orders=1)
        order_ids.append((await receive_all(config, "events"))[0]["IrisOrderId"])

    assert order_ids[0] != order_ids[1]


async def test_report_is_read_by_pdfinfo(config, example_order, tmp_path):
    pdfinfo = shutil.which("pdfinfo")
    require_peer(pdfinfo is not None, "pdfinfo", "install poppler-utils (apt-get install -y poppler-utils)")

    async with simulator(config) as sim:
        await send_order(config, example_order)
        await run_until(sim, orders=1, results=1)
    [result] = await receive_all(config, "results")
    report = tmp_path / "report.pdf"
    report.write_bytes(models.parse_order_result(result).report_bytes())

    completed = subprocess.run([pdfinfo, str(report)], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "Pages:           1" in completed.stdout


def test_simulator_needs_a_client_guid(tmp_path):
    config = local_config(tmp_path / "queues.sqlite3")

    with pytest.raises(ConfigurationError, match="ClientGuid"):
        IrisSimulator(config)


async def test_stop_cuts_delays_short(config, example_order):
    # With a minute before each step, the simulator sends every reply only if
    # stopping ends the delays. Otherwise the handler is abandoned at the
    # shutdown deadline and no result is ever sent.
    sim = IrisSimulator(
        config, receive_wait=0.2, shutdown_timeout=5.0, delays=SimulatorDelays.uniform(60.0)
    )
    async with sim:
        await send_order(config, example_order)
        await sim.wait_until(lambda stats: stats["events"] >= 1, WAIT)

    events = await receive_all(config, "events")
    results = await receive_all(config, "results")
    assert [event["ResultObjectType"] for event in events] == [
        "OrderCreationReceipt",
        "ImageReceipt",
        "ReadyForGradingEvent",
        "OrderGradedEvent",
    ]
    assert len(results) == 1
    assert await receive_all(config, "orders", wait=0.2) == []


async def test_concurrent_change_receipts_image_once(config, example_order):
    change = json.loads(json.dumps(example_order))
    change["OrderControlCode"] = "XO"
    second_image = dict(change["Camera"]["Images"][0], LocalId="1234-1-2", Laterality="OS")
    change["Camera"]["Images"].append(second_image)

    # The NW handler waits before its ImageReceipt, so the XO of the same
    # image arrives while the first image is still pending.
    async with simulator(config, delays=SimulatorDelays(image=3.0)) as sim:
        await send_order(config, example_order, "order-1")
        await sim.wait_until(lambda stats: stats["events"] >= 1, WAIT)
        await send_order(config, change, "order-2")
        await run_until(sim, orders=2, results=1)

    events = await receive_all(config, "events")
    image_ids = [event["ImageLocalId"] for event in events if event["ResultObjectType"] == "ImageReceipt"]
    assert sorted(image_ids) == ["1234-1-1", "1234-1-2"]


async def test_grading_problems_listed_once(config):
    transport = config.create_transport("gradings")
    body = json.dumps({"ClientGuid": EXAMPLE_CLIENT_GUID, "OD": {"Gradable": True}}).encode()
    await transport.send(encode_json_message(body, message_id="grading-1"))
    await transport.close()

    async with simulator(config) as sim:
        await sim.wait_until(lambda stats: stats["gradings"] >= 1, WAIT)

    [receipt] = await receive_all(config, "events")
    problems = receipt["ErrorMessage"].split("; ")
    assert receipt["Success"] is False
    assert "Site.LocalId: is required" in problems
    assert len(problems) == len(set(problems))


@pytest.mark.parametrize("body", [b"[]", b"null", b"42", b""])
async def test_non_object_order_is_dead_lettered(config, example_order, body):
    async with simulator(config) as sim:
        await send_order(config, body, "not-an-object")
        await send_order(config, example_order, "order-1")
        await run_until(sim, orders=1, results=1)

    dead_letters = config.create_transport("orders").dead_letter_transport()
    try:
        [message] = await dead_letters.receive(max_messages=1, max_wait=WAIT)
    finally:
        await dead_letters.close()
    assert message.message_id == "not-an-object"
    assert message.application_properties["DeadLetterReason"] == "DecodeError"


async def test_rejection_ids_ignore_other_orders(tmp_path, example_order):
    rejected = json.loads(json.dumps(example_order))
    rejected["Order"]["LocalId"] = "ORD-REJECTED"
    rejected["Site"]["LocalId"] = "NOT-A-SITE"

    receipts = []
    for run, sequence in (("good-first", [example_order, rejected]), ("rejected-first", [rejected, example_order])):
        directory = tmp_path / run
        directory.mkdir()
        config = local_config(directory / "queues.sqlite3", client_guid=EXAMPLE_CLIENT_GUID, default_site=EXAMPLE_SITE)
        async with simulator(config, seed=42) as sim:
            for number, document in enumerate(sequence, start=1):
                await send_order(config, document, f"order-{number}")
                await run_until(sim, orders=number)
        events = await receive_all(config, "events")
        [receipt] = [event for event in events if event["OrderLocalId"] == "ORD-REJECTED"]
        receipts.append(receipt)

    assert receipts[0]["Success"] is False
    assert receipts[0]["TransactionId"] == receipts[1]["TransactionId"]


async def test_repeated_rejections_get_distinct_ids(config, example_order):
    example_order["Site"]["LocalId"] = "NOT-A-SITE"

    async with simulator(config) as sim:
        await send_order(config, example_order, "order-1")
        await send_order(config, example_order, "order-2")
        await run_until(sim, orders=2)

    first, second = await receive_all(config, "events")
    assert first["TransactionId"] != second["TransactionId"]
