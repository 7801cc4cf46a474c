"""The async client against the IRIS simulator on the local backend."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from iris_transport import models
from iris_transport.client import AsyncIrisClient, MessageStream
from iris_transport.exceptions import MessageValidationError
from iris_transport.runtime import MemoryDeduplicationStore, RetryPolicy

from .conftest import EXAMPLE_CLIENT_GUID, EXAMPLE_SITE, WAIT, drain, make_simulator

NO_BACKOFF = RetryPolicy(initial_delay=0.0, max_delay=0.0, jitter=0.0)


async def next_of_type(stream: MessageStream[Any], event_type: str) -> models.EventBase:
    """Return the next event of ``event_type``, completing the events before it."""
    async def find() -> models.EventBase:
        async for event in stream:
            if event.result_object_type == event_type:
                return event
        raise AssertionError(f"the stream ended before a {event_type}")

    return await asyncio.wait_for(find(), WAIT)


# Sending


async def test_invalid_order_never_reaches_broker(config, example_order):
    del example_order["Patient"]["Dob"]
    del example_order["Order"]["EvaluationTypes"]
    example_order["Camera"]["Images"][0]["Laterality"] = None

    async with AsyncIrisClient(config) as client:
        with pytest.raises(MessageValidationError) as raised:
            await client.submit_order(example_order)

    paths = {problem.path for problem in raised.value.problems}
    assert paths == {"Patient.Dob", "Order.EvaluationTypes", "Camera.Images[0].Laterality"}
    assert "John" not in str(raised.value)
    assert await drain(config, "orders") == []


async def test_submit_fills_client_guid_and_site(config, example_order):
    del example_order["ClientGuid"]
    del example_order["Site"]
    del example_order["OrderControlCode"]

    async with AsyncIrisClient(config) as client:
        sent = await client.submit_order(example_order)

    [message] = await drain(config, "orders")
    body = json.loads(message.body)
    assert body["ClientGuid"] == EXAMPLE_CLIENT_GUID
    assert body["Site"] == {"LocalId": EXAMPLE_SITE}
    assert body["OrderControlCode"] == "NW"
    assert message.content_type == "application/json"
    assert message.subject == "NW"
    assert message.message_id == sent.message_id
    assert sent.local_id == "ORD1234"


async def test_submit_keeps_the_caller_order_unchanged(config, example_order):
    del example_order["ClientGuid"]
    order = models.parse_order_request(example_order)

    async with AsyncIrisClient(config) as client:
        await client.submit_order(order)

    assert order.client_guid is None


async def test_message_id_is_transaction_id(config, example_order):
    example_order["TransactionId"] = "0F8FAD5B-D9CB-469F-A165-70867728950E"

    async with AsyncIrisClient(config) as client:
        sent = await client.submit_order(example_order)

    [message] = await drain(config, "orders")
    assert sent.message_id == "0F8FAD5B-D9CB-469F-A165-70867728950E"
    assert message.message_id == sent.message_id


async def test_submit_order_rejects_cancel_code(config, example_order):
    example_order["OrderControlCode"] = "CA"

    async with AsyncIrisClient(config) as client:
        with pytest.raises(MessageValidationError) as raised:
            await client.submit_order(example_order)

    assert [problem.path for problem in raised.value.problems] == ["OrderControlCode"]
    assert await drain(config, "orders") == []


async def test_cancel_order_sends_minimal_request(config):
    async with AsyncIrisClient(config) as client:
        sent = await client.cancel_order("ORD-9")

    [message] = await drain(config, "orders")
    body = json.loads(message.body)
    assert body["OrderControlCode"] == "CA"
    assert body["Order"] == {"LocalId": "ORD-9"}
    assert body["ClientGuid"] == EXAMPLE_CLIENT_GUID
    assert message.subject == "CA"
    assert sent.local_id == "ORD-9"


async def test_cancel_order_rejects_empty_local_id(config):
    async with AsyncIrisClient(config) as client:
        with pytest.raises(ValueError, match="LocalId"):
            await client.cancel_order("  ")


async def test_grading_is_validated(config):
    async with AsyncIrisClient(config) as client:
        with pytest.raises(MessageValidationError) as raised:
            await client.submit_grading({"LocalId": "ORD1234"})

    assert [problem.path for problem in raised.value.problems] == ["OD"]
    assert await drain(config, "gradings") == []


async def test_closed_client_rejects_calls(config, example_order):
    client = AsyncIrisClient(config)
    await client.close()

    with pytest.raises(RuntimeError, match="closed"):
        await client.submit_order(example_order)


# Round trips with the simulator


async def test_submit_round_trip_with_iterators(config, example_order):
    async with make_simulator(config, seed=3), AsyncIrisClient(config, receive_wait=0.2) as client:
        await client.submit_order(example_order)

        seen = []
        async with client.events() as events:
            async for event in events:
                seen.append(event.result_object_type)
                if event.result_object_type == "OrderGradedEvent":
                    break
        async with client.results() as results:
            result = await asyncio.wait_for(results.__anext__(), WAIT)

    assert seen == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent"]
    assert result.local_id == "ORD1234"
    assert result.result_code is models.ResultCode.FINAL
    assert result.report_media_type == "application/pdf"
    assert result.report_bytes().startswith(b"%PDF-")
    assert result.gradings.od.findings
    assert result.gradings.care_plan_name


async def test_cancel_round_trip(config, example_order):
    async with make_simulator(config, auto_grade=False), AsyncIrisClient(config, receive_wait=0.2) as client:
        await client.submit_order(example_order)
        async with client.events() as events:
            ready = await next_of_type(events, "ReadyForGradingEvent")
            await client.cancel_order("ORD1234")
            cancelled = await next_of_type(events, "OrderCancelled")

    assert isinstance(cancelled, models.OrderCancelled)
    assert cancelled.success is True
    assert cancelled.order_local_id == "ORD1234"
    assert cancelled.iris_order_id == ready.iris_order_id


async def test_grading_round_trip(config, example_order, tmp_path):
    grading = {
        "LocalId": "ORD1234",
        "OD": {"Gradable": True, "Findings": [{"Finding": "Diabetic Retinopathy", "Result": "Moderate"}]},
        "OS": {"Gradable": False, "UngradableReasons": ["Poor image quality"]},
    }
    async with make_simulator(config, auto_grade=False), AsyncIrisClient(config, receive_wait=0.2) as client:
        await client.submit_order(example_order)
        async with client.events() as events:
            await next_of_type(events, "ReadyForGradingEvent")
            await client.submit_grading(grading)
            receipt = await next_of_type(events, "GradingReceipt")
            await next_of_type(events, "OrderGradedEvent")
        async with client.results() as results:
            result = await asyncio.wait_for(results.__anext__(), WAIT)

    assert receipt.success is True
    assert result.gradings.od.findings[0].result == "Moderate"
    assert result.gradings.os.gradable is False
    assert result.gradings.care_plan_name == "Refer to eye care professional"
    assert result.gradings.dx_codes == ["E113391"]


async def test_resend_results_sends_fresh_result(config, example_order):
    async with make_simulator(config), AsyncIrisClient(config, receive_wait=0.2) as client:
        await client.submit_order(example_order)
        async with client.results() as results:
            first = await asyncio.wait_for(results.__anext__(), WAIT)
            await client.resend_results("ORD1234")
            second = await asyncio.wait_for(results.__anext__(), WAIT)

    assert first.result_code is models.ResultCode.FINAL
    assert second.result_code is models.ResultCode.RESEND
    assert second.transaction_id != first.transaction_id
    assert second.iris_order_id == first.iris_order_id


# Handlers


async def test_handlers_by_type_and_for_all(config, example_order):
    client = AsyncIrisClient(config, receive_wait=0.2)
    receipts: list[models.EventBase] = []
    every_event: list[str] = []
    results: list[models.OrderResult] = []

    @client.on_event(models.OrderCreationReceipt)
    async def on_receipt(event: models.EventBase) -> None:
        receipts.append(event)

    def stop_when_done() -> None:
        if results and "OrderGradedEvent" in every_event:
            client.request_stop()

    @client.on_event
    def on_any(event: models.EventBase) -> None:
        every_event.append(event.result_object_type)
        stop_when_done()

    @client.on_result
    async def on_result(result: models.OrderResult) -> None:
        results.append(result)
        stop_when_done()

    async with make_simulator(config), client:
        await client.submit_order(example_order)
        await asyncio.wait_for(client.serve(install_signal_handlers=False), WAIT)

    assert [event.result_object_type for event in receipts] == ["OrderCreationReceipt"]
    assert every_event == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent"]
    assert len(results) == 1


async def test_handler_by_type_name(config, example_order):
    client = AsyncIrisClient(config, receive_wait=0.2)
    images: list[models.EventBase] = []

    @client.on_event("ImageReceipt")
    def on_image(event: models.EventBase) -> None:
        images.append(event)
        client.request_stop()

    async with make_simulator(config), client:
        await client.submit_order(example_order)
        await asyncio.wait_for(client.serve(install_signal_handlers=False), WAIT)

    assert len(images) == 1
    assert images[0].image_local_id == "1234-1-1"


async def test_failing_handler_is_retried(config, example_order):
    client = AsyncIrisClient(config, receive_wait=0.2, backoff=NO_BACKOFF)
    attempts: list[str] = []

    @client.on_event(models.OrderCreationReceipt)
    def flaky(event: models.EventBase) -> None:
        attempts.append(event.result_object_type)
        if len(attempts) == 1:
            raise RuntimeError("temporary failure")
        client.request_stop()

    async with make_simulator(config), client:
        await client.submit_order(example_order)
        await asyncio.wait_for(client.serve(install_signal_handlers=False), WAIT)

    assert attempts == ["OrderCreationReceipt", "OrderCreationReceipt"]


async def test_duplicate_event_handled_once(config):
    event = models.OrderCreationReceipt(
        transaction_id=uuid.UUID("CCB9F08D-29AA-446F-96F0-3018B20803E8"), order_local_id="ORD1", success=True
    )
    client = AsyncIrisClient(config, receive_wait=0.2, dedup=MemoryDeduplicationStore())
    handled: list[str] = []

    @client.on_event
    def on_event(received: models.EventBase) -> None:
        handled.append(received.order_local_id)

    transport = config.create_transport("events")
    from iris_transport.codec import encode_model

    await transport.send_batch([encode_model(event, message_id="m1"), encode_model(event, message_id="m2")])
    await transport.close()

    async with client:
        serving = asyncio.ensure_future(client.serve(install_signal_handlers=False))
        for _ in range(200):
            if not await _pending(config, "events"):
                break
            await asyncio.sleep(0.05)
        client.request_stop()
        await asyncio.wait_for(serving, WAIT)

    assert handled == ["ORD1"]


async def _pending(config, channel: str) -> bool:
    # Peeks by receiving and giving back at once, without counting a failed delivery elsewhere.
    transport = config.create_transport(channel)
    try:
        messages = await transport.receive(max_messages=1, max_wait=0.05)
        for message in messages:
            await transport.retry(message)
        return bool(messages)
    finally:
        await transport.close()


async def test_serve_without_handlers_raises(config):
    async with AsyncIrisClient(config) as client:
        with pytest.raises(RuntimeError, match="no handler"):
            await client.serve()


def test_on_event_rejects_other_classes(config):
    client = AsyncIrisClient(config)

    with pytest.raises(TypeError, match="event classes"):
        client.on_event(models.OrderResult)


async def test_undecodable_event_is_dead_lettered(config, example_order):
    from iris_transport.transport import OutgoingMessage

    client = AsyncIrisClient(config, receive_wait=0.2)
    transport = config.create_transport("events")
    await transport.send(OutgoingMessage(body=b"not json", message_id="bad"))
    await transport.close()

    async with client:
        stream = client.events()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 2.0)
        await stream.aclose()

    dead_letters = config.create_transport("events").dead_letter_transport()
    try:
        [message] = await dead_letters.receive(max_messages=1, max_wait=WAIT)
        assert message.message_id == "bad"
        assert message.application_properties["DeadLetterReason"] == "DecodeError"
    finally:
        await dead_letters.close()


async def _send_event(config, local_id: str = "ORD1", message_id: str = "m1") -> None:
    from iris_transport.codec import encode_model

    event = models.OrderCreationReceipt(
        transaction_id=uuid.uuid4(), order_local_id=local_id, success=True
    )
    transport = config.create_transport("events")
    try:
        await transport.send(encode_model(event, message_id=message_id))
    finally:
        await transport.close()


async def _dead_letters(config, channel: str) -> list[Any]:
    transport = config.create_transport(channel).dead_letter_transport()
    try:
        return await transport.receive(max_messages=10, max_wait=0.2)
    finally:
        await transport.close()


async def test_break_then_close_gives_message_back(config):
    await _send_event(config)

    # Each round breaks out of a plain loop and closes the client; that is
    # not a handler failure, so it must neither delay nor dead-letter the event.
    for _ in range(3):
        async with AsyncIrisClient(config, receive_wait=0.2, max_attempts=2) as client:
            async for event in client.events():
                assert event.order_local_id == "ORD1"
                break

    transport = config.create_transport("events")
    try:
        [message] = await transport.receive(max_messages=1, max_wait=0.5)
        await transport.complete(message)
    finally:
        await transport.close()
    assert message.message_id == "m1"
    assert await _dead_letters(config, "events") == []


async def test_stream_closed_with_error_gives_back_at_once(config):
    await _send_event(config)

    async with AsyncIrisClient(config, receive_wait=0.2, max_attempts=1) as client:
        with pytest.raises(KeyError):
            async with client.events() as events:
                async for _event in events:
                    raise KeyError("caller bug")
        async with client.events() as events:
            again = await asyncio.wait_for(events.__anext__(), WAIT)

    assert again.order_local_id == "ORD1"
    assert await _dead_letters(config, "events") == []


async def test_nack_counts_as_failed_attempt(config):
    await _send_event(config)

    async with AsyncIrisClient(config, receive_wait=0.2, max_attempts=1) as client:
        async with client.events() as events:
            await asyncio.wait_for(events.__anext__(), WAIT)
            events.nack()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(events.__anext__(), 1.0)

    [dead] = await _dead_letters(config, "events")
    assert dead.application_properties["DeadLetterReason"] == "StreamClosed"


async def test_handler_error_text_can_be_hidden(config):
    await _send_event(config, local_id="ORD-SECRET")
    client = AsyncIrisClient(config, receive_wait=0.2, max_attempts=1, include_exception_message=False)

    @client.on_event
    def fail(event: models.EventBase) -> None:
        client.request_stop()
        raise ValueError(f"patient value {event.order_local_id}")

    async with client:
        await asyncio.wait_for(client.serve(install_signal_handlers=False), WAIT)

    [dead] = await _dead_letters(config, "events")
    assert dead.application_properties["DeadLetterReason"] == "ValueError"
    assert "ORD-SECRET" not in json.dumps(dead.application_properties)


def test_on_event_rejects_misspelt_type(config):
    client = AsyncIrisClient(config)

    with pytest.raises(ValueError, match="did you mean 'OrderCreationReceipt'"):
        client.on_event("OrderCreatedReceipt")
    with pytest.raises(ValueError, match="did you mean 'ImageReceipt'"):
        client.on_event("imagereceipt")


def test_on_event_sends_order_result_to_on_result(config):
    client = AsyncIrisClient(config)

    with pytest.raises(TypeError, match="on_result"):
        client.on_event("OrderResult")


def test_on_event_warns_about_unknown_type(config, caplog):
    client = AsyncIrisClient(config)

    @client.on_event("RetinalAnalysisCompleted")
    def on_new_type(event: models.EventBase) -> None: ...

    assert "RetinalAnalysisCompleted" in caplog.text
    assert "not a ResultObjectType" in caplog.text


async def test_order_file_path_gets_hint(config, tmp_path):
    from iris_transport.exceptions import DecodeError

    async with AsyncIrisClient(config) as client:
        with pytest.raises(DecodeError, match="content of the file"):
            await client.submit_order("order.json")
        with pytest.raises(TypeError, match="content of the file"):
            await client.submit_order(tmp_path / "order.json")

    assert await drain(config, "orders") == []


def test_second_signal_returns_from_run(config, tmp_path):
    import subprocess
    import sys

    asyncio.run(_send_event(config))
    script = tmp_path / "script.py"
    script.write_text(
        "import asyncio, os, signal, sys, threading, time\n"
        "from iris_transport.client import AsyncIrisClient\n"
        "from iris_transport.config import load_config\n"
        "client = AsyncIrisClient(load_config(sys.argv[1]), receive_wait=0.2, shutdown_timeout=600)\n"
        "started = threading.Event()\n"
        "@client.on_event\n"
        "async def block(event):\n"
        "    started.set()\n"
        "    await asyncio.sleep(600)\n"
        "def signal_twice():\n"
        "    started.wait()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(0.5)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=signal_twice, daemon=True).start()\n"
        "client.run()\n"
        "print('returned', flush=True)\n"
    )

    completed = subprocess.run(
        [sys.executable, str(script), str(config.source)], capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "returned\n"
    assert "Traceback" not in completed.stderr
