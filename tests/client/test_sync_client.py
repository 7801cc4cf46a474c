"""The blocking client, with the simulator running on its own event-loop thread."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from anyio.from_thread import start_blocking_portal

from iris_transport import models
from iris_transport.client import IrisClient
from iris_transport.exceptions import MessageValidationError

from .conftest import make_simulator

WAIT = 30.0


@pytest.fixture
def running_simulator(config):
    with start_blocking_portal() as portal:
        simulator = make_simulator(config)
        portal.call(simulator.start)
        yield simulator
        portal.call(simulator.stop)


def test_sync_submit_and_iterate_events(config, example_order, running_simulator):
    seen = []
    with IrisClient(config, receive_wait=0.2) as client:
        sent = client.submit_order(example_order)
        with client.events() as events:
            for event in events:
                seen.append(event.result_object_type)
                if event.result_object_type == "OrderGradedEvent":
                    break
        with client.results() as results:
            result = next(results)

    assert sent.subject == "NW"
    assert seen == ["OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent"]
    assert result.local_id == "ORD1234"


def test_sync_run_with_handlers(config, example_order, running_simulator):
    client = IrisClient(config, receive_wait=0.2)
    results: list[models.OrderResult] = []

    @client.on_result
    def on_result(result: models.OrderResult) -> None:
        results.append(result)
        client.request_stop()

    client.submit_order(example_order)
    watchdog = threading.Timer(WAIT, client.request_stop)
    watchdog.start()
    try:
        client.run()
    finally:
        watchdog.cancel()
        client.close()

    assert len(results) == 1
    assert results[0].result_code is models.ResultCode.FINAL


def test_sync_invalid_order_raises(config, example_order):
    example_order["Patient"] = None

    with IrisClient(config) as client:
        with pytest.raises(MessageValidationError) as raised:
            client.submit_order(example_order)

    assert [problem.path for problem in raised.value.problems] == ["Patient"]


def test_sync_cancel(config):
    with IrisClient(config) as client:
        sent = client.cancel_order("ORD-5", site="PC1234")

    assert sent.subject == "CA"
    assert sent.message.site.local_id == "PC1234"


def test_sync_closed_client_rejects_calls(config):
    client = IrisClient(config)
    client.close()

    with pytest.raises(RuntimeError, match="client is closed"):
        client.cancel_order("ORD-5")
    with pytest.raises(RuntimeError, match="client is closed"):
        client.events()


def test_unclosed_sync_client_lets_script_exit(config, tmp_path):
    # A plain script that never calls close() must still end.
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "from iris_transport.client import IrisClient\n"
        "from iris_transport.config import load_config\n"
        "client = IrisClient(load_config(sys.argv[1]))\n"
        "client.cancel_order('ORD-5')\n"
        "print('sent', flush=True)\n"
    )

    completed = subprocess.run(
        [sys.executable, str(script), str(config.source)], capture_output=True, text=True, timeout=WAIT
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "sent\n"
    assert completed.stderr == ""


def test_sync_stream_after_client_close(config):
    client = IrisClient(config, receive_wait=0.2)
    events = client.events()
    client.close()

    assert next(events, None) is None
    events.ack()
    events.close()
    with events:
        pass


def test_second_signal_ends_run_and_close(config, tmp_path):
    # The handler outlives the shutdown deadline by far; after a second
    # SIGTERM, run() and close() must return without waiting for it.
    script = tmp_path / "script.py"
    script.write_text(
        "import os, signal, sys, threading, time\n"
        "from iris_transport.client import IrisClient\n"
        "from iris_transport.config import load_config\n"
        "client = IrisClient(load_config(sys.argv[1]), receive_wait=0.2, shutdown_timeout=600)\n"
        "started = threading.Event()\n"
        "@client.on_event\n"
        "def block(event):\n"
        "    started.set()\n"
        "    time.sleep(600)\n"
        "def signal_twice():\n"
        "    started.wait()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(0.5)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=signal_twice, daemon=True).start()\n"
        "try:\n"
        "    client.run()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "client.close()\n"
        "print('closed', flush=True)\n"
    )
    _send_receipt(config)

    completed = subprocess.run(
        [sys.executable, str(script), str(config.source)], capture_output=True, text=True, timeout=120
    )

    assert completed.stdout == "interrupted\nclosed\n", completed.stderr


def _send_receipt(config) -> None:
    import asyncio

    from iris_transport.codec import encode_model

    async def send() -> None:
        transport = config.create_transport("events")
        try:
            receipt = models.OrderCreationReceipt(order_local_id="ORD1", success=True)
            await transport.send(encode_model(receipt, message_id="m1"))
        finally:
            await transport.close()

    asyncio.run(send())
