"""SIGTERM shutdown of a consumer running in its own process, on the real local backend."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from iris_transport.backends.local import LocalSettings, LocalTransport

from .conftest import drain, json_message, send_all

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")

CONSUMER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path

    from iris_transport.backends.local import LocalSettings, LocalTransport
    from iris_transport.runtime import Consumer

    queue_path, marker_dir, handling_time, shutdown_timeout = sys.argv[1:5]
    markers = Path(marker_dir)

    def handler(message):
        (markers / "started").touch()
        time.sleep(float(handling_time))
        (markers / "finished").touch()

    async def main():
        transport = LocalTransport(LocalSettings(path=queue_path, lock_duration=2.0), "results")
        consumer = Consumer(transport, handler, receive_wait=0.2, shutdown_timeout=float(shutdown_timeout))
        consumer.install_signal_handlers()
        await consumer.run()
        (markers / "exited").touch()

    asyncio.run(main())
    """
)


def start_consumer(tmp_path: Path, handling_time: float, shutdown_timeout: float) -> subprocess.Popen:
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "queues.sqlite3"), str(tmp_path), str(handling_time), str(shutdown_timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"consumer process exited with {process.returncode} before {path.name}:\n{output}")
        assert time.monotonic() < deadline, f"{path.name} did not appear within {timeout} s"
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        pytest.fail(f"consumer process did not exit within {timeout} s of SIGTERM")


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    path = tmp_path / "queues.sqlite3"
    asyncio.run(send_all(LocalTransport(LocalSettings(path=path), "results"), json_message("tx-1")))
    return path


def test_sigterm_lets_slow_handler_finish(tmp_path, queue):
    process = start_consumer(tmp_path, handling_time=3.0, shutdown_timeout=30.0)
    wait_for_file(tmp_path / "started", process)

    process.send_signal(signal.SIGTERM)
    returncode = stop_process(process, timeout=60)

    assert returncode == 0
    assert (tmp_path / "finished").exists()
    assert (tmp_path / "exited").exists()
    assert asyncio.run(drain(LocalTransport(LocalSettings(path=queue), "results"))) == []


def test_sigterm_abandons_handler_after_deadline(tmp_path, queue):
    process = start_consumer(tmp_path, handling_time=120.0, shutdown_timeout=1.0)
    wait_for_file(tmp_path / "started", process)

    process.send_signal(signal.SIGTERM)
    returncode = stop_process(process, timeout=60)
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""

    assert returncode == 0, output
    assert not (tmp_path / "finished").exists()
    assert (tmp_path / "exited").exists()
    left = asyncio.run(drain(LocalTransport(LocalSettings(path=queue), "results"), wait=5.0))
    assert [message.message_id for message in left] == ["msg-tx-1"]
